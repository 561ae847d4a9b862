// AdamW over the part [lo, hi) of a rank's flat parameter vector that it updates (a unit, or its
// DP shard of the unit with ZeRO >= 1). With optimizer offload the last `offload` fraction of the
// range keeps its moments in the host pool and is updated there, ZeRO-Offload style (Ren et al.
// 2021): the gradients (and weights, when they are on the device) go to the host, AdamW runs there,
// the updated weights come back. Weights and gradients are SplitVecs, so each may itself be partly
// offloaded: every piece of the range runs where its moments are, with copies only for what lives
// elsewhere (counted as traffic).
import { KernelBatch } from '@mist/native';
import type { ParamEntry } from '../model';
import type { MemoryPools } from '../memory/pools';
import type { AdamWHyper } from './hyper';
import { segments } from './shard';
import { SplitVec } from './split-vec';

export class ShardedAdamW {
  readonly lo: number;
  readonly hi: number;
  private readonly m: SplitVec;
  private readonly v: SplitVec;

  constructor(
    private readonly entries: readonly ParamEntry[], lo: number, hi: number, offload: number,
    private readonly hyper: AdamWHyper, private readonly pools: MemoryPools,
  ) {
    this.lo = lo;
    this.hi = hi;
    this.m = SplitVec.alloc(pools, 'optim', lo, hi, offload);
    this.v = SplitVec.alloc(pools, 'optim', lo, hi, offload);
  }

  /**
   * Whether the step needs copies: some piece of params or grads is stored away from where its
   * moments are (optimizer offload with a different weight/gradient split).
   */
  needsCopies(params: SplitVec, grads: SplitVec): boolean {
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
  record(k: KernelBatch, params: SplitVec, grads: SplitVec, step: number, lr: number, gradScale: number): void {
    if (this.needsCopies(params, grads)) throw new Error('ShardedAdamW.record: this range needs copies, use step()');
    for (const [a, b] of this.pieces(params, grads)) this.recordPiece(k, params.piece(a, b), grads.piece(a, b), a, b, step, lr, gradScale);
  }

  /** One step (1-based `step`) on params[lo, hi) with grads[lo, hi), gradients times gradScale. */
  async step(params: SplitVec, grads: SplitVec, step: number, lr: number, gradScale: number): Promise<void> {
    if (this.lo === this.hi) return;
    const k = new KernelBatch();
    const temps: Float32Array[] = [];
    const writeBack: Array<() => void> = [];
    // The piece's data where the optimizer runs (the moments' place), copied when stored elsewhere.
    const at = (vec: SplitVec, a: number, b: number, place: 'device' | 'host', back: boolean): Float32Array => {
      const stored = vec.piece(a, b);
      if (vec.placeOf(a) === place) return stored;
      const t = this.pools.f32('transient', b - a, place);
      temps.push(t);
      this.pools.copy(t, stored, place === 'host' ? 'toHost' : 'toDevice');
      if (back) writeBack.push(() => this.pools.copy(stored, t, place === 'host' ? 'toDevice' : 'toHost'));
      return t;
    };
    for (const [a, b] of this.pieces(params, grads)) {
      const place = this.m.placeOf(a);
      this.recordPiece(k, at(params, a, b, place, true), at(grads, a, b, place, false), a, b, step, lr, gradScale);
    }
    try {
      await k.run();
      for (const w of writeBack) w();
    } finally {
      for (const t of temps) this.pools.release(t);
    }
  }

  /** The non-empty pieces [a, b) of the range between the cuts of params, grads and moments. */
  private pieces(params: SplitVec, grads: SplitVec): Array<[number, number]> {
    const cuts = [...new Set([this.lo, this.hi, params.cut, grads.cut, this.m.cut])].filter((c) => c >= this.lo && c <= this.hi).sort((a, b) => a - b);
    const out: Array<[number, number]> = [];
    for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i] < cuts[i + 1]) out.push([cuts[i], cuts[i + 1]]);
    return out;
  }

  /** AdamW kernels over the piece [a, b), p and g its params and grads where its moments are. */
  private recordPiece(k: KernelBatch, p: Float32Array, g: Float32Array, a: number, b: number, step: number, lr: number, gradScale: number): void {
    const m = this.m.piece(a, b), v = this.v.piece(a, b);
    for (const s of segments(this.entries, a, b)) {
      const o = s.lo - a, n = s.hi - s.lo;
      k.adamw({
        param: p.subarray(o, o + n), grad: g.subarray(o, o + n), m: m.subarray(o, o + n), v: v.subarray(o, o + n), step, lr,
        beta1: this.hyper.beta1, beta2: this.hyper.beta2, eps: this.hyper.eps,
        weightDecay: s.entry.weightDecay ? this.hyper.weightDecay : 0, gradScale,
      });
    }
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
