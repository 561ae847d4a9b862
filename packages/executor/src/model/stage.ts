// A pipeline stage: a contiguous range of transformer layers [start, end] (global, inclusive, as a
// plan's StageStrategy.layers), with the embedding when it is the first stage and the final norm,
// LM head and loss when it is the last. Parameters and gradients live in two flat Float32Arrays
// (`params`, `grads`), initialised deterministically from the seed per global tensor name, so the
// same seed gives the same model whatever the stage split and the tensor-parallel degree.
//
// forward() returns a context that backward() consumes, so a 1F1B schedule can keep several
// micro-batches in flight. Parameter gradients accumulate until zeroGrads().
import type { ModelSpec } from '@mist/core';
import { Embedding, embeddingParamDecls } from './embedding';
import { Head, type HeadSaved, headParamDecls } from './head';
import { type LayerSaved, TransformerLayer, layerParamDecls } from './layer';
import { type ParamDecl, type ParamEntry, ParamStore } from './params';
import type { TpHooks } from './tp-hooks';

export interface StageOptions {
  model: ModelSpec;
  /** Global layer range, inclusive; default all layers. */
  layers?: [number, number];
  /** Default: the range starts at layer 0. */
  embedding?: boolean;
  /** Default: the range ends at the model's last layer. */
  head?: boolean;
  seed: number;
  /** Tensor-parallel degree and this rank's index in its group (default 1 and 0). */
  tp?: number;
  tpRank?: number;
  /** All-reduce hooks for tp > 1. */
  hooks?: TpHooks;
  /** How many of the stage's layers (the first ones) recompute their activations in backward. */
  ckptLayers?: number;
}

export interface StageInput {
  /** Sequences in this micro-batch and tokens per sequence. */
  batch: number;
  seq: number;
  /** First stage: token ids [batch * seq]. */
  tokens?: Int32Array;
  /** Other stages: the previous stage's output [batch * seq, hidden]. */
  hidden?: Float32Array;
  /** Last stage: next-token targets [batch * seq] (-1 = ignore); without them it returns logits. */
  targets?: Int32Array;
}

export interface ForwardOptions {
  /** Keep activations for backward (default true). False = evaluation, nothing kept. */
  train?: boolean;
  /**
   * The last stage's loss gradient is for gradScale * (sum of token losses); default
   * 1 / (counted tokens), i.e. the mean. With gradient accumulation over G micro-batches, pass
   * 1 / (G * tokens per micro-batch).
   */
  gradScale?: number;
}

export interface StageContext {
  input: StageInput;
  layers: LayerSaved[];
  head: HeadSaved | null;
}

export interface StageForwardResult {
  /** Hidden states for the next stage [batch * seq, hidden]; null on the last stage. */
  output: Float32Array | null;
  /** Logits [batch * seq, vocab] on the last stage when no targets were given. */
  logits: Float32Array | null;
  /** Mean loss over the counted tokens (last stage with targets), else null. */
  loss: number | null;
  lossSum: number;
  lossTokens: number;
  /** Pass to backward(); null when train is false. */
  context: StageContext | null;
}

export class Stage {
  readonly model: ModelSpec;
  readonly layerRange: [number, number];
  readonly hasEmbedding: boolean;
  readonly hasHead: boolean;
  readonly tp: number;
  readonly tpRank: number;
  /**
   * True on a last stage without the embedding when embeddings are tied: it holds its own copy of
   * `embed.wte`, and the executor must sum that gradient with the first stage's (Megatron-LM does
   * the same) to keep the copies equal.
   */
  readonly tiedEmbeddingCopy: boolean;
  private readonly store: ParamStore;
  private readonly layers: TransformerLayer[];
  private readonly embedding: Embedding | null;
  private readonly head: Head | null;

  constructor(opts: StageOptions) {
    const m = opts.model;
    const [start, end] = opts.layers ?? [0, m.layers - 1];
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end >= m.layers) {
      throw new Error(`stage layers [${start}, ${end}] must lie within 0..${m.layers - 1} of ${m.name}, start <= end`);
    }
    this.model = m;
    this.layerRange = [start, end];
    this.hasEmbedding = opts.embedding ?? start === 0;
    this.hasHead = opts.head ?? end === m.layers - 1;
    this.tp = opts.tp ?? 1;
    this.tpRank = opts.tpRank ?? 0;
    if (!Number.isInteger(this.tpRank) || this.tpRank < 0 || this.tpRank >= this.tp) throw new Error(`tpRank ${this.tpRank} must be in 0..${this.tp - 1}`);
    const ckpt = opts.ckptLayers ?? 0;
    if (ckpt < 0 || ckpt > end - start + 1) throw new Error(`ckptLayers ${ckpt} must be between 0 and the stage's ${end - start + 1} layers`);
    this.tiedEmbeddingCopy = m.tiedEmbeddings && this.hasHead && !this.hasEmbedding;

    const decls: ParamDecl[] = [];
    if (this.hasEmbedding) decls.push(...embeddingParamDecls(m));
    for (let i = start; i <= end; i++) decls.push(...layerParamDecls(m, i));
    if (this.hasHead) decls.push(...headParamDecls(m, this.hasEmbedding));
    this.store = new ParamStore(decls, { seed: opts.seed, tp: this.tp, tpRank: this.tpRank });
    this.layers = [];
    for (let i = start; i <= end; i++) {
      this.layers.push(new TransformerLayer(
        { model: m, index: i, tp: this.tp, tpRank: this.tpRank, checkpoint: i - start < ckpt, hooks: opts.hooks },
        this.store,
      ));
    }
    this.embedding = this.hasEmbedding ? new Embedding(m, this.store) : null;
    this.head = this.hasHead ? new Head(m, this.store) : null;
  }

  /** This rank's parameters, one flat array. */
  get params(): Float32Array {
    return this.store.params;
  }

  /** Gradients, same layout as params. */
  get grads(): Float32Array {
    return this.store.grads;
  }

  /** Every tensor: global name, full and local shapes, offset in params/grads, decay flag. */
  get paramEntries(): readonly ParamEntry[] {
    return this.store.entries;
  }

  param(name: string): Float32Array {
    return this.store.param(name);
  }

  grad(name: string): Float32Array {
    return this.store.grad(name);
  }

  zeroGrads(): void {
    this.store.zeroGrads();
  }

  async forward(input: StageInput, opts: ForwardOptions = {}): Promise<StageForwardResult> {
    const train = opts.train ?? true;
    const { batch, seq } = input;
    const T = batch * seq, H = this.model.hidden;
    let x: Float32Array;
    if (this.embedding) {
      if (!input.tokens || input.tokens.length !== T) throw new Error(`the first stage needs tokens [${batch} x ${seq}]`);
      x = await this.embedding.forward(input.tokens, seq);
    } else {
      if (!input.hidden || input.hidden.length !== T * H) throw new Error(`this stage needs hidden states [${batch} x ${seq} x ${H}]`);
      x = input.hidden;
    }
    const saved: LayerSaved[] = [];
    for (const layer of this.layers) {
      const r = await layer.forward(x, batch, seq, train);
      if (r.saved) saved.push(r.saved);
      x = r.y;
    }
    if (!this.head) {
      return { output: x, logits: null, loss: null, lossSum: 0, lossTokens: 0, context: train ? { input, layers: saved, head: null } : null };
    }
    const targets = input.targets ?? null;
    let gradScale = opts.gradScale;
    if (gradScale === undefined && targets) {
      let counted = 0;
      for (const t of targets) if (t >= 0) counted++;
      gradScale = counted > 0 ? 1 / counted : 0;
    }
    if (train && !targets) throw new Error('training the last stage needs targets');
    const h = await this.head.forward(x, targets, train, gradScale ?? 1);
    return {
      output: null,
      logits: h.logits,
      loss: targets && h.lossTokens > 0 ? h.lossSum / h.lossTokens : null,
      lossSum: h.lossSum,
      lossTokens: h.lossTokens,
      context: train ? { input, layers: saved, head: h.saved } : null,
    };
  }

  /**
   * Backward through the stage. The last stage takes no gradOutput (the loss starts it); others
   * take the next stage's input gradient. Returns the gradient with respect to this stage's input
   * hidden states, or null on the first stage (it ends in the embedding).
   */
  async backward(ctx: StageContext, gradOutput?: Float32Array): Promise<Float32Array | null> {
    let dy: Float32Array;
    if (this.head) {
      if (!ctx.head) throw new Error('the context holds no head activations (was forward run with train: true and targets?)');
      dy = await this.head.backward(ctx.head);
    } else {
      if (!gradOutput) throw new Error('a stage without the head needs gradOutput');
      dy = gradOutput;
    }
    for (let i = this.layers.length - 1; i >= 0; i--) dy = await this.layers[i].backward(ctx.layers[i], dy);
    if (this.embedding) {
      await this.embedding.backward(ctx.input.tokens as Int32Array, ctx.input.seq, dy);
      return null;
    }
    return dy;
  }
}
