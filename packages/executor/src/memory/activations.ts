// Saved activations of a micro-batch (a stage's forward context): their size, and moving a fraction
// of them to the host pool after the forward and back before the backward (activation offload).
import type { MemoryPools } from './pools';

type Visitor = (a: Float32Array) => Float32Array;

/** Replaces every Float32Array reachable from `root` (objects and arrays, in place) by fn(array). */
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
    for (const k of Object.keys(o)) o[k] = visit(o[k]);
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
 * Moves the first arrays of a context, `ratio` of its bytes (rounded to whole arrays), to host
 * buffers; returns the bytes moved. The device copies are dropped (garbage collected).
 */
export function offloadActivations(ctx: unknown, ratio: number, pools: MemoryPools, hostArrays: Set<Float32Array>): number {
  if (ratio <= 0) return 0;
  const total = savedBytes(ctx);
  const budget = ratio * total;
  let moved = 0;
  mapArrays(ctx, (a) => {
    if (moved + a.byteLength > budget) return a;
    const h = pools.f32('activations', a.length, 'host');
    pools.copy(h, a, 'toHost');
    hostArrays.add(h);
    moved += a.byteLength;
    return h;
  });
  return moved;
}

/** Brings the host arrays of a context back to fresh device buffers; returns the bytes moved. */
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
