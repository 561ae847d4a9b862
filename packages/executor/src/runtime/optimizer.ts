// AdamW over the part of a rank's flat parameter vector that it updates ([lo, hi): everything
// without ZeRO, its DP shard with ZeRO >= 1). With optimizer offload, the last `offload` fraction
// of that range keeps its moments in the host pool and is updated there, ZeRO-Offload style
// (Ren et al. 2021): gradients go to the host, AdamW runs on the host, updated weights come back.
import { KernelBatch } from '@mist/native';
import type { ParamEntry } from '../model';
import type { MemoryPools } from '../memory/pools';
import type { AdamWHyper } from './hyper';
import { segments } from './shard';

/** A flat vector given as an array and the flat index of its element 0. */
export interface FlatView {
  data: Float32Array;
  base: number;
}

const view = (f: FlatView, lo: number, hi: number): Float32Array => f.data.subarray(lo - f.base, hi - f.base);

export class ShardedAdamW {
  readonly lo: number;
  readonly hi: number;
  /** Device part [lo, cut), host part [cut, hi). */
  readonly cut: number;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private readonly hm: Float32Array;
  private readonly hv: Float32Array;

  constructor(
    private readonly entries: readonly ParamEntry[], lo: number, hi: number, offload: number,
    private readonly hyper: AdamWHyper, private readonly pools: MemoryPools,
  ) {
    this.lo = lo;
    this.hi = hi;
    this.cut = hi - Math.round(offload * (hi - lo));
    this.m = pools.f32('optim', this.cut - lo);
    this.v = pools.f32('optim', this.cut - lo);
    this.hm = pools.f32('optim', hi - this.cut, 'host');
    this.hv = pools.f32('optim', hi - this.cut, 'host');
  }

  private record(k: KernelBatch, p: FlatView, g: FlatView, m: FlatView, v: FlatView, lo: number, hi: number, step: number, lr: number, gradScale: number): void {
    for (const s of segments(this.entries, lo, hi)) {
      k.adamw({
        param: view(p, s.lo, s.hi), grad: view(g, s.lo, s.hi), m: view(m, s.lo, s.hi), v: view(v, s.lo, s.hi), step, lr,
        beta1: this.hyper.beta1, beta2: this.hyper.beta2, eps: this.hyper.eps,
        weightDecay: s.entry.weightDecay ? this.hyper.weightDecay : 0, gradScale,
      });
    }
  }

  /** One step (1-based `step`) on params[lo, hi) with grads[lo, hi), gradients times gradScale. */
  async step(params: FlatView, grads: FlatView, step: number, lr: number, gradScale: number): Promise<void> {
    const k = new KernelBatch();
    this.record(k, params, grads, { data: this.m, base: this.lo }, { data: this.v, base: this.lo }, this.lo, this.cut, step, lr, gradScale);
    await k.run();
    if (this.cut === this.hi) return;
    const n = this.hi - this.cut;
    const hp = this.pools.f32('transient', n, 'host');
    const hg = this.pools.f32('transient', n, 'host');
    try {
      this.pools.copy(hp, view(params, this.cut, this.hi), 'toHost');
      this.pools.copy(hg, view(grads, this.cut, this.hi), 'toHost');
      const kh = new KernelBatch();
      const at = (a: Float32Array): FlatView => ({ data: a, base: this.cut });
      this.record(kh, at(hp), at(hg), at(this.hm), at(this.hv), this.cut, this.hi, step, lr, gradScale);
      await kh.run();
      this.pools.copy(view(params, this.cut, this.hi), hp, 'toDevice');
    } finally {
      this.pools.release(hp);
      this.pools.release(hg);
    }
  }

  /** Copies of the moments over [lo, hi) (a sub-range of the optimizer's range). */
  moments(lo: number, hi: number): { m: Float32Array; v: Float32Array } {
    const m = new Float32Array(hi - lo), v = new Float32Array(hi - lo);
    for (let i = lo; i < hi; i++) {
      const dev = i < this.cut;
      m[i - lo] = dev ? this.m[i - this.lo] : this.hm[i - this.cut];
      v[i - lo] = dev ? this.v[i - this.lo] : this.hv[i - this.cut];
    }
    return { m, v };
  }

  /** Sets the moments from full-length local vectors (flat index i at element i). */
  loadMoments(m: Float32Array, v: Float32Array): void {
    this.m.set(m.subarray(this.lo, this.cut));
    this.v.set(v.subarray(this.lo, this.cut));
    this.hm.set(m.subarray(this.cut, this.hi));
    this.hv.set(v.subarray(this.cut, this.hi));
  }
}
