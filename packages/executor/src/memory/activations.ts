// Saved activations of a module (what a layer or the head keeps for its backward): their size, and
// moving a fraction of them to the host pool after the module's forward and back just before its
// backward (activation offload), module by module as the analyzer models it.
import type { MemoryPools } from './pools';

/**
 * The head's loss gradient over the logits (HeadSaved.dlogits) lives only from the last stage's
 * forward to the backward of the same micro-batch: the analyzer counts it with the loss's transient
 * bytes, not with the saved activations, and so do the executor's pools.
 */
export const TRANSIENT_SAVED_KEYS: ReadonlySet<string> = new Set(['dlogits']);

type Visitor = (a: Float32Array) => Float32Array;

/** Replaces every Float32Array reachable from `root` (objects and arrays, in place, skipping TRANSIENT_SAVED_KEYS) by fn(array). */
function mapArrays(root: unknown, fn: Visitor): void {
  const memo = new Map<Float32Array, Float32Array>();
  const visit = (v: unknown): unknown => {
    if (v instanceof Float32Array) {
      let r = memo.get(v);
      if (!r) {
        r = fn(v);
        memo.set(v, r);
      }
      return r;
    }
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return v;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = visit(v[i]);
      return v;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!TRANSIENT_SAVED_KEYS.has(k)) o[k] = visit(o[k]);
    return v;
  };
  visit(root);
}

/** Distinct Float32Arrays reachable from `root`, in traversal order. */
export function savedArrays(root: unknown): Float32Array[] {
  const out: Float32Array[] = [];
  mapArrays(root, (a) => {
    out.push(a);
    return a;
  });
  return out;
}

export function savedBytes(root: unknown): number {
  return savedArrays(root).reduce((n, a) => n + a.byteLength, 0);
}

/**
 * Moves arrays of a module's saved activations, `ratio` of their bytes rounded to whole arrays (in order,
 * each one taken when it brings the total closer to the budget), to host buffers; returns the bytes moved. The device copies are dropped.
 */
export function offloadActivations(ctx: unknown, ratio: number, pools: MemoryPools, hostArrays: Set<Float32Array>): number {
  if (ratio <= 0) return 0;
  const total = savedBytes(ctx);
  const budget = ratio * total;
  let moved = 0;
  mapArrays(ctx, (a) => {
    // Whole arrays only: take one when it brings the moved bytes closer to the budget.
    if (moved + a.byteLength / 2 > budget) return a;
    const h = pools.f32('activations', a.length, 'host');
    pools.copy(h, a, 'toHost');
    hostArrays.add(h);
    moved += a.byteLength;
    return h;
  });
  return moved;
}

/** Brings the host arrays of saved activations back to fresh device buffers; returns the bytes moved. */
export function reloadActivations(ctx: unknown, pools: MemoryPools, hostArrays: Set<Float32Array>): number {
  let moved = 0;
  mapArrays(ctx, (a) => {
    if (!hostArrays.has(a)) return a;
    const d = new Float32Array(a.length);
    pools.copy(d, a, 'toDevice');
    hostArrays.delete(a);
    pools.release(a);
    moved += a.byteLength;
    return d;
  });
  return moved;
}

/**
 * Accounting of a rank's saved activations, module by module: after a module's forward its saved
 * bytes join the 'activations' pool (less the offloaded part, in the host pool); just before its
 * backward the offloaded part comes back into a device buffer accounted as 'transient' (the
 * analyzer's activation prefetch buffer, one layer at a time); after its backward both are freed.
 * The head's logits gradient is accounted to 'transient' for the same span.
 */
export class ActivationStash {
  private readonly host = new Set<Float32Array>();
  private readonly bytes = new WeakMap<object, { resident: number; moved: number }>();

  constructor(private readonly pools: MemoryPools, private readonly offloadRatio: number) {}

  private transientOf(saved: object): Float32Array | null {
    const d = (saved as Record<string, unknown>).dlogits;
    return d instanceof Float32Array ? d : null;
  }

  afterForward(saved: object | null): void {
    if (!saved) return;
    const bytes = savedBytes(saved);
    const moved = offloadActivations(saved, this.offloadRatio, this.pools, this.host);
    this.pools.add('activations', 'device', bytes - moved);
    this.bytes.set(saved, { resident: bytes - moved, moved });
    const t = this.transientOf(saved);
    if (t) this.pools.adopt(t, 'transient');
  }

  beforeBackward(saved: object | null): void {
    if (!saved) return;
    this.pools.add('transient', 'device', reloadActivations(saved, this.pools, this.host));
  }

  afterBackward(saved: object | null): void {
    if (!saved) return;
    const bytes = this.bytes.get(saved);
    if (bytes === undefined) throw new Error('backward of a module whose forward was not accounted');
    this.pools.remove('activations', 'device', bytes.resident);
    this.pools.remove('transient', 'device', bytes.moved);
    this.bytes.delete(saved);
    const t = this.transientOf(saved);
    if (t) this.pools.release(t);
  }
}
