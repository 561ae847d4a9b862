// AdamW over the part [lo, hi) of a rank's flat parameter vector that it updates (a unit, or its
// DP shard of the unit with ZeRO >= 1). With optimizer offload the last `offload` fraction of the
// range keeps its moments in the host pool and is updated there, ZeRO-Offload style (Ren et al.
// 2021): the gradients (and weights, when they are on the device) go to the host, AdamW runs there,
// the updated weights come back. Weights and gradients are SplitVecs, so each may itself be partly
// offloaded: every piece of the range runs where its moments are, with copies only for what lives
// elsewhere (counted as traffic). Device pieces run on the rank's Device (its kernel batch), host
// pieces on the CPU kernels; on the CPU device both are one KernelBatch. The moments are fp32-class
// tensors (fp32 on every device). With a compute dtype other than fp32 (bf16) the optimizer keeps
// fp32 master weights over its range, split between device and host like the moments: AdamW
// updates the master and writes the rounded copy into the compute-dtype weights (the CUDA kernel's
// `copy` output on the device; on the host the master is copied over, rounded when it goes to the
// device), as mixed-precision training does (Micikevicius et al. 2018, "Mixed Precision Training").
import { type AdamWArgs, KernelBatch, type TensorLike } from '@mist/native';
import type { Device, DeviceBatch } from '../device/device';
import type { ParamEntry } from '../model';
import type { MemoryPools } from '../memory/pools';
import type { AdamWHyper } from './hyper';
import { segments } from './shard';
import { SplitVec } from './split-vec';

/** What recording an AdamW piece needs of a batch. */
interface AdamWOps<T> {
  adamw(x: AdamWArgs<T>): void;
}

/**
 * The kernel batches of one optimizer step: the device's, and one for host (offloaded) arrays. On
 * the CPU device its tensors are host arrays and its batch a KernelBatch: both are that one batch,
 * so a step hands its kernels to the native threads once, as before the device seam.
 */
export class StepBatches<F extends TensorLike> {
  readonly dev: DeviceBatch<F, unknown>;
  readonly host: KernelBatch;
  /** Host work that reads the kernels' results (the master's copy into host weights), run after them. */
  readonly after: Array<() => void> = [];

  constructor(device: Device<F, unknown>) {
    this.dev = device.batch();
    this.host = device.kind === 'cpu' ? (this.dev as unknown as KernelBatch) : new KernelBatch();
  }

  async run(): Promise<void> {
    await this.dev.run();
    if ((this.host as unknown) !== this.dev) await this.host.run();
    for (const f of this.after.splice(0)) f();
  }
}

export class ShardedAdamW<F extends TensorLike = Float32Array> {
  readonly lo: number;
  readonly hi: number;
  private readonly m: SplitVec<F>;
  private readonly v: SplitVec<F>;
  /** fp32 master weights over [lo, hi) when the compute dtype is not fp32 (accounted to 'optim'), else null. */
  private readonly master: SplitVec<F> | null;

  /**
   * `initial` gives the range's initial values (unrounded) for the master weights; it is called
   * only when the device's compute dtype is not fp32.
   */
  constructor(
    private readonly entries: readonly ParamEntry[], lo: number, hi: number, offload: number,
    private readonly hyper: AdamWHyper, private readonly pools: MemoryPools<F>, initial: () => Float32Array,
  ) {
    this.lo = lo;
    this.hi = hi;
    this.m = SplitVec.alloc(pools, 'optim', lo, hi, offload, 'fp32');
    this.v = SplitVec.alloc(pools, 'optim', lo, hi, offload, 'fp32');
    this.master = pools.device.computeDtype === 'fp32' ? null : SplitVec.alloc(pools, 'optim', lo, hi, offload, 'fp32');
    if (this.master) {
      const init = initial();
      if (init.length !== hi - lo) throw new Error(`master weights over [${lo}, ${hi}): got ${init.length} initial values`);
      this.master.load(lo, hi, init);
    }
  }

  private get device(): Device<F, unknown> {
    return this.pools.device;
  }

  /**
   * Whether the step needs copies: some piece of params or grads is stored away from where its
   * moments are (optimizer offload with a different weight/gradient split).
   */
  needsCopies(params: SplitVec<F>, grads: SplitVec<F>): boolean {
    for (const [a, b] of this.pieces(params, grads)) {
      const place = this.m.placeOf(a);
      if (params.placeOf(a) !== place || grads.placeOf(a) !== place) return true;
    }
    return false;
  }

  /**
   * Records the step's AdamW kernels into `k` (run by the caller, e.g. one batch for every unit of
   * a rank). Only for a step without copies (needsCopies false).
   */
  record(k: StepBatches<F>, params: SplitVec<F>, grads: SplitVec<F>, step: number, lr: number, gradScale: number): void {
    if (this.needsCopies(params, grads)) throw new Error('ShardedAdamW.record: this range needs copies, use step()');
    for (const [a, b] of this.pieces(params, grads)) {
      if (this.m.placeOf(a) === 'device') this.recordDevice(k.dev, params.devPiece(a, b), grads.devPiece(a, b), a, b, step, lr, gradScale);
      else this.recordHost(k, params.hostPiece(a, b), grads.hostPiece(a, b), a, b, step, lr, gradScale);
    }
  }

  /** One step (1-based `step`) on params[lo, hi) with grads[lo, hi), gradients times gradScale. */
  async step(params: SplitVec<F>, grads: SplitVec<F>, step: number, lr: number, gradScale: number): Promise<void> {
    if (this.lo === this.hi) return;
    const k = new StepBatches(this.device);
    const devTemps: F[] = [];
    const hostTemps: Float32Array[] = [];
    const writeBack: Array<() => void> = [];
    for (const [a, b] of this.pieces(params, grads)) {
      // The piece's data where the optimizer runs (the moments' place), copied when stored elsewhere.
      if (this.m.placeOf(a) === 'device') {
        const onDevice = (vec: SplitVec<F>, back: boolean): F => {
          if (vec.placeOf(a) === 'device') return vec.devPiece(a, b);
          const stored = vec.hostPiece(a, b);
          const t = this.pools.tensor('transient', b - a);
          devTemps.push(t);
          this.pools.toDevice(t, stored);
          if (back) writeBack.push(() => this.pools.toHost(stored, t));
          return t;
        };
        const p = onDevice(params, true), g = onDevice(grads, false);
        this.recordDevice(k.dev, p, g, a, b, step, lr, gradScale);
      } else {
        const onHost = (vec: SplitVec<F>, back: boolean): Float32Array => {
          if (vec.placeOf(a) === 'host') return vec.hostPiece(a, b);
          const stored = vec.devPiece(a, b);
          const t = this.pools.host('transient', b - a);
          hostTemps.push(t);
          this.pools.toHost(t, stored);
          if (back) writeBack.push(() => this.pools.toDevice(stored, t));
          return t;
        };
        const p = onHost(params, true), g = onHost(grads, false);
        this.recordHost(k, p, g, a, b, step, lr, gradScale);
      }
    }
    try {
      await k.run();
      for (const w of writeBack) w();
    } finally {
      for (const t of devTemps) this.pools.release(t);
      for (const t of hostTemps) this.pools.release(t);
    }
  }

  /** The non-empty pieces [a, b) of the range between the cuts of params, grads and moments. */
  private pieces(params: SplitVec<F>, grads: SplitVec<F>): Array<[number, number]> {
    const cuts = [...new Set([this.lo, this.hi, params.cut, grads.cut, this.m.cut])].filter((c) => c >= this.lo && c <= this.hi).sort((a, b) => a - b);
    const out: Array<[number, number]> = [];
    for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i] < cuts[i + 1]) out.push([cuts[i], cuts[i + 1]]);
    return out;
  }

  /**
   * AdamW kernels over a device piece [a, b), p and g its params and grads on the device; with
   * master weights the kernel updates them and writes the rounded values into p.
   */
  private recordDevice(k: AdamWOps<F>, p: F, g: F, a: number, b: number, step: number, lr: number, gradScale: number): void {
    const d = this.device;
    const view = (t: F, lo: number, hi: number): F => d.view(t, lo, hi);
    const m = this.m.devPiece(a, b), v = this.v.devPiece(a, b);
    if (this.master) this.recordPiece(k, view, this.master.devPiece(a, b), g, m, v, a, b, step, lr, gradScale, p);
    else this.recordPiece(k, view, p, g, m, v, a, b, step, lr, gradScale);
  }

  /**
   * AdamW kernels over a host piece [a, b) (offloaded moments), on the CPU kernels; with master
   * weights they update the master, copied into p once the kernels have run.
   */
  private recordHost(k: StepBatches<F>, p: Float32Array, g: Float32Array, a: number, b: number, step: number, lr: number, gradScale: number): void {
    const view = (t: Float32Array, lo: number, hi: number): Float32Array => t.subarray(lo, hi);
    const m = this.m.hostPiece(a, b), v = this.v.hostPiece(a, b);
    if (!this.master) {
      this.recordPiece(k.host, view, p, g, m, v, a, b, step, lr, gradScale);
      return;
    }
    const w = this.master.hostPiece(a, b);
    this.recordPiece(k.host, view, w, g, m, v, a, b, step, lr, gradScale);
    k.after.push(() => p.set(w));
  }

  /** AdamW kernels over the piece [a, b), one per tensor segment (its decay flag); `copy`: the rounded output. */
  private recordPiece<T>(
    k: AdamWOps<T>, view: (t: T, lo: number, hi: number) => T, p: T, g: T, m: T, v: T, a: number, b: number, step: number, lr: number, gradScale: number,
    copy?: T,
  ): void {
    for (const s of segments(this.entries, a, b)) {
      const o = s.lo - a, n = s.hi - s.lo;
      k.adamw({
        param: view(p, o, o + n), grad: view(g, o, o + n), m: view(m, o, o + n), v: view(v, o, o + n), step, lr,
        beta1: this.hyper.beta1, beta2: this.hyper.beta2, eps: this.hyper.eps,
        weightDecay: s.entry.weightDecay ? this.hyper.weightDecay : 0, gradScale,
        ...(copy !== undefined ? { copy: view(copy, o, o + n) } : {}),
      });
    }
  }

  /** A host copy of the master weights over [lo, hi) (a sub-range of the optimizer's range); null without master weights. */
  masterValues(lo: number, hi: number): Float32Array | null {
    return this.master ? this.master.snapshot(lo, hi) : null;
  }

  /** Sets the master weights (when there are any) from a full-length local vector (flat index i at element i). */
  loadMaster(params: Float32Array): void {
    this.master?.load(this.lo, this.hi, params.subarray(this.lo, this.hi));
  }

  /** Copies of the moments over [lo, hi) (a sub-range of the optimizer's range). */
  moments(lo: number, hi: number): { m: Float32Array; v: Float32Array } {
    return { m: this.m.snapshot(lo, hi), v: this.v.snapshot(lo, hi) };
  }

  /** Sets the moments from full-length local vectors (flat index i at element i). */
  loadMoments(m: Float32Array, v: Float32Array): void {
    this.m.load(this.lo, this.hi, m.subarray(this.lo, this.hi));
    this.v.load(this.lo, this.hi, v.subarray(this.lo, this.hi));
  }
}
