// Reuse of a module's temporary buffers. Every tensor a layer allocates per call would otherwise be
// a fresh zeroed allocation: on the CPU backend that cost about a quarter of a gpt-tiny training
// step (allocation, page faults and the collections that external memory pressure triggers); on a
// GPU it is the caching allocator's work. A module takes buffers here and gives back the ones that
// no longer hold anything it will read, once the kernels that used them have been queued (on the
// CPU: have run). take() returns zeroed memory, exactly like the device's zeros(n).
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device, TensorClass } from '../device/device';

/** Free buffers kept per length; beyond it, given-back buffers are left to the collector. */
const MAX_FREE_PER_LENGTH = 64;

export class Scratch<F extends TensorLike = Float32Array> {
  /** Free buffers by storage and length (`${storage}:${n}`). */
  private readonly free = new Map<string, F[]>();

  constructor(private readonly device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>) {}

  /** A zeroed buffer of n elements of a class (default 'act': the compute dtype). */
  take(n: number, cls: TensorClass = 'act'): F {
    const list = this.free.get(`${this.device.storage(cls)}:${n}`);
    const a = list?.pop();
    if (!a) return this.device.zeros(n, cls);
    this.device.zero(a);
    return a;
  }

  /** Hands buffers back; the caller must not read or write them afterwards. Duplicates are ignored. */
  give(buffers: Iterable<F>): void {
    const seen = new Set<F>();
    for (const a of buffers) {
      if (seen.has(a) || !this.device.isWhole(a)) continue;
      seen.add(a);
      const key = `${this.device.storageOf(a)}:${a.length}`;
      let list = this.free.get(key);
      if (!list) this.free.set(key, (list = []));
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

/** Every tensor of `device` directly in `values` or one level down in plain objects (e.g. NormSaved). */
export function arraysOf<F extends TensorLike = Float32Array>(values: readonly unknown[], device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>): F[] {
  const out: F[] = [];
  for (const v of values) {
    if (device.isTensor(v)) out.push(v);
    else if (Array.isArray(v)) out.push(...arraysOf(v, device));
    else if (v !== null && typeof v === 'object') {
      for (const x of Object.values(v)) if (device.isTensor(x)) out.push(x);
    }
  }
  return out;
}
