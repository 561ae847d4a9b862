// The last stage's head: final norm, LM head (logits = h W^T with W [vocab, hidden], the token
// table itself when embeddings are tied) and the fused softmax cross-entropy. In training the loss
// kernel overwrites the logits with their gradient, so no probability matrix is kept.
// Under tensor parallelism the LM head is column-parallel over the vocabulary (each rank holds the
// rows [r V/tp, (r+1) V/tp) of W, the same rows as its token table) and the cross-entropy is
// computed on the vocabulary shards (Megatron-LM's vocab_parallel_cross_entropy): an all-reduce of
// each token's max logit, then one of the sum of exp(logit - max) and of the target logit; the loss
// is log(sum) + max - target logit, and each rank's logits' gradient (softmax - onehot) * scale is
// local. The input gradient dh = dlogits W sums over the shards (one all-reduce).
// With sequence parallelism the final norm runs on this rank's b*s/tp tokens: its output is
// all-gathered for the LM head (again in backward, only the shard is kept), the input gradient is
// reduce-scattered instead of all-reduced, and the norm's gradients are summed over the ranks.
import { headBlock, LM_HEAD, type ModelSpec } from '@mist/core';
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device, TensorClass } from '../device/device';
import { blockParamDecls } from './block-params';
import { vocabRange, WTE } from './embedding';
import { type NormSaved, normBackwardAccumulate, normForward } from './norm';
import type { ParamDecl, ParamStore } from './params';
import { Scratch } from './scratch';
import type { TpHooks } from './tp-hooks';

const NORM = 'head.norm';

/** Core's head block's weights: the final norm and the LM head, or (tied) the token table on a stage without the embedding. */
export function headParamDecls(model: ModelSpec, stageHasEmbedding: boolean): ParamDecl[] {
  const block = headBlock(model);
  return blockParamDecls(model, block, undefined, block.weights.filter((w) => !w.tied || !stageHasEmbedding));
}

export interface HeadSaved<F = Float32Array> {
  /** The final norm's input and output: this rank's token rows (all of them without SP). */
  x: F;
  h: F;
  norm: NormSaved<F>;
  /** Gradient of the loss with respect to the logits, written over the logits. */
  dlogits: F;
}

export interface HeadResult<F = Float32Array> {
  /** Sum of the per-token losses over tokens whose target is not -1. */
  lossSum: number;
  lossTokens: number;
  /** Logits [tokens, vocab], only when no targets were given. */
  logits: F | null;
  saved: HeadSaved<F> | null;
}

/** F, I: the device's float and int32 tensor types (targets arrive on the host and are handed to the device). */
export class Head<F extends TensorLike = Float32Array, I = Int32Array> {
  private readonly vocab: { lo: number; hi: number };
  /** Where training passes take their temporaries (shared with the stage's layers). */
  private readonly scratch: Scratch<F>;

  constructor(
    private readonly model: ModelSpec, private readonly store: ParamStore<F>, private readonly tp = 1, tpRank = 0, private readonly hooks?: TpHooks<F>,
    scratch?: Scratch<F>,
    sequenceParallel = false,
    private readonly device: Device<F, I> = cpuDevice as unknown as Device<F, I>,
  ) {
    this.scratch = scratch ?? new Scratch<F>(device);
    this.vocab = vocabRange(model, tp, tpRank);
    if (tp > 1 && !hooks) throw new Error(`the LM head with tp=${tp} needs TP hooks for its all-reduces`);
    this.sp = sequenceParallel && tp > 1;
  }

  private readonly sp: boolean;

  /** SP: the whole micro-batch's rows of the normalised input from this rank's shard. */
  private async gather(h: F): Promise<F> {
    const hooks = this.hooks as TpHooks<F>;
    if (!hooks.allGather) throw new Error('sequence parallelism: the TP hooks have no allGather');
    const whole = this.scratch.take(h.length * this.tp);
    await hooks.allGather(h, whole, this.site('head-in-grad'));
    return whole;
  }

  private site(point: 'head-in-grad' | 'loss-max' | 'loss-sum' | 'sp-grads'): { layer: number; point: typeof point; recompute: boolean } {
    return { layer: this.model.layers, point, recompute: false };
  }

  /**
   * Vocab-parallel cross-entropy of this rank's logits [T, V/tp] (global columns vocab.lo..hi):
   * per-token losses, and with `dlogits` (may be the logits) the gradient of gradScale * sum(losses).
   */
  private async parallelCrossEntropy(lossRows: F, logits: F, targets: I, dlogits: F | null, T: number, gradScale: number): Promise<void> {
    const hooks = this.hooks as TpHooks<F>;
    const Vl = this.vocab.hi - this.vocab.lo, lo = this.vocab.lo;
    const k = this.device.batch();
    const max = this.device.zeros(T, 'fp32');
    k.crossEntropyShardMax(max, logits, T, Vl);
    await k.run();
    await hooks.allReduce(max, this.site('loss-max'));
    // [0, T): sum of exp(logit - max) over this rank's columns; [T, 2T): the target logit if this rank holds it.
    const sums = this.device.zeros(2 * T, 'fp32');
    k.crossEntropyShardSums(sums, logits, max, targets, T, Vl, lo);
    await k.run();
    await hooks.allReduce(sums, this.site('loss-sum'));
    k.crossEntropyShardFinish(lossRows, dlogits, logits, max, sums, targets, T, Vl, lo, gradScale);
    await k.run();
  }

  private weightName(): string {
    return this.model.tiedEmbeddings ? WTE : LM_HEAD;
  }

  /**
   * Forward from x [tokens, hidden]. With targets: the loss, and when `train`, the logits' gradient
   * for the loss gradScale * sum(token losses). Without targets: the logits.
   */
  async forward(x: F, targets: Int32Array | null, train: boolean, gradScale: number): Promise<HeadResult<F>> {
    const m = this.model, H = m.hidden, V = this.vocab.hi - this.vocab.lo, rows = x.length / H, T = this.sp ? rows * this.tp : rows;
    const dev = this.device;
    const k = dev.batch();
    // A training pass's normalised input and logits (then their gradient) live until backward,
    // which gives them back; logits returned to the caller are fresh.
    const kept = train && targets !== null;
    const alloc = (n: number, cls: TensorClass = 'act'): F => (kept ? this.scratch.take(n, cls) : dev.zeros(n, cls));
    const h = alloc(rows * H);
    const norm = normForward(k, m, this.store, NORM, h, x, rows, alloc);
    let hAll = h;
    if (this.sp) {
      await k.run();
      hAll = await this.gather(h);
    }
    const logits = alloc(T * V);
    k.matmul({ c: logits, a: hAll, b: this.store.param(this.weightName()), m: T, n: V, k: H, transB: true });
    if (hAll !== h) {
      await k.run();
      this.scratch.give([hAll]);
    }
    if (!targets) {
      await k.run();
      if (this.tp > 1) throw new Error(`not implemented: logits without targets under tp=${this.tp} (each rank holds a vocabulary shard)`);
      return { lossSum: 0, lossTokens: 0, logits, saved: null };
    }
    if (targets.length !== T) throw new Error(`targets hold ${targets.length} tokens, the activations ${T}`);
    const lossRows = dev.zeros(T, 'fp32'), targetsOnDevice = dev.ints(targets);
    if (this.tp === 1) {
      k.crossEntropy(lossRows, logits, targetsOnDevice, train ? logits : null, T, V, gradScale);
      await k.run();
    } else {
      await k.run();
      await this.parallelCrossEntropy(lossRows, logits, targetsOnDevice, train ? logits : null, T, gradScale);
    }
    // The per-token losses come to the host (T floats) to be summed in double, in token order.
    const losses = dev.read(lossRows);
    let lossSum = 0, lossTokens = 0;
    for (let i = 0; i < T; i++) {
      if (targets[i] >= 0) {
        lossSum += losses[i];
        lossTokens++;
      }
    }
    return { lossSum, lossTokens, logits: null, saved: train ? { x, h, norm, dlogits: logits } : null };
  }

  /** dx [tokens, hidden]; the head's parameter gradients accumulate. */
  async backward(s: HeadSaved<F>): Promise<F> {
    const m = this.model, H = m.hidden, V = this.vocab.hi - this.vocab.lo, rows = s.x.length / H, T = this.sp ? rows * this.tp : rows;
    const dev = this.device;
    const k = dev.batch();
    const w = this.weightName();
    const hAll = this.sp ? await this.gather(s.h) : s.h;
    k.matmul({ c: this.store.grad(w), a: s.dlogits, b: hAll, m: V, n: H, k: T, transA: true, accumulate: true });
    const dhAll = this.scratch.take(T * H);
    k.matmul({ c: dhAll, a: s.dlogits, b: this.store.param(w), m: T, n: H, k: V });
    let dh = dhAll;
    if (this.sp) {
      const hooks = this.hooks as TpHooks<F>;
      if (!hooks.reduceScatter) throw new Error('sequence parallelism: the TP hooks have no reduceScatter');
      await k.run();
      dh = this.scratch.take(rows * H);
      await hooks.reduceScatter(dhAll, dh, this.site('head-in-grad'));
    } else if (this.tp > 1) {
      await k.run();
      await (this.hooks as TpHooks<F>).allReduce(dh, this.site('head-in-grad'));
    }
    const dx = dev.zeros(rows * H);
    // SP: the norm's gradients of this pass, taken over this rank's tokens, are summed over the ranks.
    const normGrads = this.sp ? [`${NORM}.gamma`, ...(m.norm === 'layernorm' ? [`${NORM}.beta`] : [])].map((n) => this.store.grad(n)) : [];
    const earlier = normGrads.map((g) => {
      const c = this.scratch.take(g.length);
      k.copy(c, g);
      k.fill(g, 0);
      return c;
    });
    normBackwardAccumulate(k, m, this.store, NORM, dx, dh, s.x, s.norm, rows);
    if (normGrads.length > 0) {
      const packed = this.scratch.take(normGrads.length * H);
      normGrads.forEach((g, i) => k.copy(dev.view(packed, i * H, (i + 1) * H), g));
      await k.run();
      await (this.hooks as TpHooks<F>).allReduce(packed, this.site('sp-grads'));
      normGrads.forEach((g, i) => k.add(g, earlier[i], dev.view(packed, i * H, (i + 1) * H)));
      await k.run();
      this.scratch.give([packed, ...earlier]);
    }
    await k.run();
    this.scratch.give([s.h, s.dlogits, dhAll, ...(dh !== dhAll ? [dh] : []), ...(hAll !== s.h ? [hAll] : []), s.norm.rstd, ...(s.norm.mean ? [s.norm.mean] : [])]);
    return dx;
  }
}
