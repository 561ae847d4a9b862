// Saved activations of a module (what a layer or the head keeps for its backward): their size, and
// moving a fraction of them to the host pool after the module's forward and back just before its
// backward (activation offload), module by module as the analyzer models it.
// Generic over the rank's Device: saved tensors are its float tensors (Float32Array on the CPU), the
// offloaded copies host Float32Arrays.
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device, TensorClass } from '../device/device';
import { type MemoryPools, tensorBytes } from './pools';

/**
 * The head's loss gradient over the logits (HeadSaved.dlogits) lives only from the last stage's
 * forward to the backward of the same micro-batch: the analyzer counts it with the loss's transient
 * bytes, not with the saved activations, and so do the executor's pools.
 */
export const TRANSIENT_SAVED_KEYS: ReadonlySet<string> = new Set(['dlogits']);

type Visitor = (a: unknown) => unknown;

/**
 * Replaces every device tensor and host Float32Array reachable from `root` (objects and arrays, in
 * place, skipping TRANSIENT_SAVED_KEYS) by fn(it).
 */
function mapArrays<F extends TensorLike>(root: unknown, device: Device<F, unknown>, fn: Visitor): void {
  const memo = new Map<unknown, unknown>();
  const visit = (v: unknown): unknown => {
    // Int32 tensors of a device whose tensor type holds both (a GPU's tokens, targets) are not
    // activations: neither counted nor moved, as the CPU device's Int32Arrays.
    if (device.isTensor(v) && device.storageOf(v) === 'i32') return v;
    if (device.isTensor(v) || v instanceof Float32Array) {
      let r = memo.get(v);
      if (r === undefined) {
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

/** Distinct device tensors reachable from `root`, in traversal order. */
export function savedArrays<F extends TensorLike = Float32Array>(root: unknown, device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>): F[] {
  const out: F[] = [];
  mapArrays(root, device, (a) => {
    if (device.isTensor(a)) out.push(a);
    return a;
  });
  return out;
}

/** Bytes of the device tensors reachable from `root`, at their storage. */
export function savedBytes<F extends TensorLike = Float32Array>(root: unknown, device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>): number {
  return savedArrays(root, device).reduce((n, a) => n + tensorBytes(device, a), 0);
}

/** The class a saved tensor is reloaded as: its own storage's ('act' unless it is stored as the fp32 class alone). */
function classOf<F extends TensorLike>(device: Device<F, unknown>, t: F): TensorClass {
  return device.storageOf(t) === device.storage('act') ? 'act' : 'fp32';
}

/**
 * Moves arrays of a module's saved activations, `ratio` of their bytes rounded to whole arrays (in order,
 * each one taken when it brings the total closer to the budget), to host buffers; returns the bytes moved. The device copies are dropped.
 */
export function offloadActivations<F extends TensorLike>(
  ctx: unknown, ratio: number, pools: MemoryPools<F>, hostArrays: Map<Float32Array, TensorClass>,
): number {
  if (ratio <= 0) return 0;
  const device = pools.device;
  const total = savedBytes(ctx, device);
  const budget = ratio * total;
  let moved = 0;
  mapArrays(ctx, device, (a) => {
    if (!device.isTensor(a)) return a;
    // Whole arrays only: take one when it brings the moved bytes closer to the budget.
    const bytes = tensorBytes(device, a);
    if (moved + bytes / 2 > budget) return a;
    const h = pools.host('activations', a.length);
    pools.toHost(h, a);
    hostArrays.set(h, classOf(device, a));
    moved += bytes;
    return h;
  });
  return moved;
}

/** Brings the host arrays of saved activations back to fresh device buffers; returns the bytes moved. */
export function reloadActivations<F extends TensorLike>(ctx: unknown, pools: MemoryPools<F>, hostArrays: Map<Float32Array, TensorClass>): number {
  const device = pools.device;
  let moved = 0;
  mapArrays(ctx, device, (a) => {
    const cls = a instanceof Float32Array ? hostArrays.get(a) : undefined;
    if (cls === undefined) return a;
    const h = a as Float32Array;
    const d = device.zeros(h.length, cls);
    pools.toDevice(d, h);
    hostArrays.delete(h);
    pools.release(h);
    moved += tensorBytes(device, d);
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
export class ActivationStash<F extends TensorLike = Float32Array> {
  /** Offloaded arrays and the class their device copy is reloaded as. */
  private readonly host = new Map<Float32Array, TensorClass>();
  private readonly bytes = new WeakMap<object, { resident: number; moved: number }>();

  constructor(private readonly pools: MemoryPools<F>, private readonly offloadRatio: number) {}

  private transientOf(saved: object): F | null {
    const d = (saved as Record<string, unknown>).dlogits;
    return this.pools.device.isTensor(d) ? d : null;
  }

  afterForward(saved: object | null): void {
    if (!saved) return;
    const bytes = savedBytes(saved, this.pools.device);
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
