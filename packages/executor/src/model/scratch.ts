// Reuse of a module's temporary buffers. Every Float32Array a layer allocates per call would
// otherwise be a fresh zeroed allocation that the garbage collector must reclaim: on the CPU
// backend that cost about a quarter of a gpt-tiny training step (allocation, page faults and the
// collections that external memory pressure triggers). A module takes buffers here and gives back
// the ones that no longer hold anything it will read, once the kernels that used them have run.
// take() returns zeroed memory, exactly like `new Float32Array(n)`.

/** Free buffers kept per length; beyond it, given-back buffers are left to the collector. */
const MAX_FREE_PER_LENGTH = 64;

export class Scratch {
  private readonly free = new Map<number, Float32Array[]>();

  /** A zeroed buffer of n floats. */
  take(n: number): Float32Array {
    const list = this.free.get(n);
    const a = list?.pop();
    if (!a) return new Float32Array(n);
    a.fill(0);
    return a;
  }

  /** Hands buffers back; the caller must not read or write them afterwards. Duplicates are ignored. */
  give(buffers: Iterable<Float32Array>): void {
    const seen = new Set<Float32Array>();
    for (const a of buffers) {
      if (seen.has(a) || a.byteOffset !== 0 || a.length !== a.buffer.byteLength / 4) continue;
      seen.add(a);
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      if (list.length < MAX_FREE_PER_LENGTH && !list.includes(a)) list.push(a);
    }
  }

  /** Free buffers held (for tests). */
  get freeCount(): number {
    let n = 0;
    for (const l of this.free.values()) n += l.length;
    return n;
  }
}

/** Every Float32Array directly in `values` or one level down in plain objects (e.g. NormSaved). */
export function arraysOf(values: readonly unknown[]): Float32Array[] {
  const out: Float32Array[] = [];
  for (const v of values) {
    if (v instanceof Float32Array) out.push(v);
    else if (Array.isArray(v)) out.push(...arraysOf(v));
    else if (v !== null && typeof v === 'object') {
      for (const x of Object.values(v)) if (x instanceof Float32Array) out.push(x);
    }
  }
  return out;
}
