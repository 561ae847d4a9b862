// The last stage's head: final norm, LM head (logits = h W^T with W [vocab, hidden], the token
// table itself when embeddings are tied) and the fused softmax cross-entropy. In training the loss
// kernel overwrites the logits with their gradient, so no probability matrix is kept.
// Replicated over tensor-parallel ranks (no vocabulary-parallel split yet).
import type { ModelSpec } from '@mist/core';
import { KernelBatch } from '@mist/native';
import { INIT_STD } from './dims';
import { WTE, wteDecl } from './embedding';
import { type NormSaved, normBackwardAccumulate, normDecls, normForward } from './norm';
import type { ParamDecl, ParamStore } from './params';

export const LM_HEAD = 'head.lm_head';
const NORM = 'head.norm';

export function headParamDecls(model: ModelSpec, stageHasEmbedding: boolean): ParamDecl[] {
  const decls = normDecls(model, NORM);
  if (!model.tiedEmbeddings) {
    decls.push({ name: LM_HEAD, shape: [model.vocab, model.hidden], shard: 'none', init: { kind: 'normal', std: INIT_STD }, weightDecay: true });
  } else if (!stageHasEmbedding) {
    decls.push(wteDecl(model));
  }
  return decls;
}

export interface HeadSaved {
  x: Float32Array;
  h: Float32Array;
  norm: NormSaved;
  /** Gradient of the loss with respect to the logits, written over the logits. */
  dlogits: Float32Array;
}

export interface HeadResult {
  /** Sum of the per-token losses over tokens whose target is not -1. */
  lossSum: number;
  lossTokens: number;
  /** Logits [tokens, vocab], only when no targets were given. */
  logits: Float32Array | null;
  saved: HeadSaved | null;
}

export class Head {
  constructor(private readonly model: ModelSpec, private readonly store: ParamStore) {}

  private weightName(): string {
    return this.model.tiedEmbeddings ? WTE : LM_HEAD;
  }

  /**
   * Forward from x [tokens, hidden]. With targets: the loss, and when `train`, the logits' gradient
   * for the loss gradScale * sum(token losses). Without targets: the logits.
   */
  async forward(x: Float32Array, targets: Int32Array | null, train: boolean, gradScale: number): Promise<HeadResult> {
    const m = this.model, H = m.hidden, V = m.vocab, T = x.length / H;
    const k = new KernelBatch();
    const h = new Float32Array(T * H);
    const norm = normForward(k, m, this.store, NORM, h, x, T);
    const logits = new Float32Array(T * V);
    k.matmul({ c: logits, a: h, b: this.store.param(this.weightName()), m: T, n: V, k: H, transB: true });
    if (!targets) {
      await k.run();
      return { lossSum: 0, lossTokens: 0, logits, saved: null };
    }
    if (targets.length !== T) throw new Error(`targets hold ${targets.length} tokens, the activations ${T}`);
    const lossRows = new Float32Array(T);
    k.crossEntropy(lossRows, logits, targets, train ? logits : null, T, V, gradScale);
    await k.run();
    let lossSum = 0, lossTokens = 0;
    for (let i = 0; i < T; i++) {
      if (targets[i] >= 0) {
        lossSum += lossRows[i];
        lossTokens++;
      }
    }
    return { lossSum, lossTokens, logits: null, saved: train ? { x, h, norm, dlogits: logits } : null };
  }

  /** dx [tokens, hidden]; the head's parameter gradients accumulate. */
  async backward(s: HeadSaved): Promise<Float32Array> {
    const m = this.model, H = m.hidden, V = m.vocab, T = s.x.length / H;
    const k = new KernelBatch();
    const w = this.weightName();
    k.matmul({ c: this.store.grad(w), a: s.dlogits, b: s.h, m: V, n: H, k: T, transA: true, accumulate: true });
    const dh = new Float32Array(T * H);
    k.matmul({ c: dh, a: s.dlogits, b: this.store.param(w), m: T, n: H, k: V });
    const dx = new Float32Array(T * H);
    normBackwardAccumulate(k, m, this.store, NORM, dx, dh, s.x, s.norm, T);
    await k.run();
    return dx;
  }
}
