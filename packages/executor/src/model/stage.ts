// A pipeline stage: a contiguous range of transformer layers [start, end] (global, inclusive, as a
// plan's StageStrategy.layers), with the embedding when it is the first stage and the final norm,
// LM head and loss when it is the last. Parameters are initialised deterministically from the seed
// per global tensor name, so the same seed gives the same model whatever the stage split and the
// tensor-parallel degree. They are laid out as one flat vector cut into units (embedding, each
// layer, head); by default that vector is one Float32Array (`params`, `grads`). With per-unit
// storage the caller's UnitHooks attach a module's units just before it computes and may free
// them right after (ZeRO-3's per-layer gather, offload fetches), in forward and in backward (where
// a checkpointed layer also recomputes).
//
// forward() returns a context that backward() consumes, so a 1F1B schedule can keep several
// micro-batches in flight. Parameter gradients accumulate until zeroGrads().
import type { ModelSpec } from '@mist/core';
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device } from '../device/device';
import { contextParallelLayout, type CpRing, type SeqLayout } from './context-parallel';
import { type DropoutDraw, sequenceShard } from './dropout';
import { Embedding, type EmbeddingSaved, embeddingParamDecls } from './embedding';
import { Head, type HeadSaved, headParamDecls } from './head';
import { type LayerSaved, TransformerLayer, layerParamDecls } from './layer';
import { type ExpertGroup, isExpertParam } from './moe';
import { type ParamDecl, type ParamEntry, ParamStore, type ParamUnit, type StorageMode } from './params';
import { Scratch } from './scratch';
import type { TpHooks } from './tp-hooks';

/** F, I: the device's float and int32 tensor types (Float32Array, Int32Array on the CPU). */
export interface StageOptions<F extends TensorLike = Float32Array, I = Int32Array> {
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
  /** All-reduce hooks for tp > 1 (with sequenceParallel also all-gather and reduce-scatter). */
  hooks?: TpHooks<F>;
  /**
   * Sequence parallelism (tp > 1): inside the stage the norms, dropout and residuals hold this
   * rank's b*s/tp tokens; the stage's input and output stay whole micro-batches (each rank takes
   * its rows of the input, and all-gathers its output for the pipeline send).
   */
  sequenceParallel?: boolean;
  /** How many of the stage's layers (the first ones) recompute their activations in backward. */
  ckptLayers?: number;
  /** Selective recompute of the attention core in the other layers (TransformerLayer; default false). */
  selectiveRecompute?: boolean;
  /** The fused attention kernel (default true), or the unfused core that keeps the s x s probabilities. */
  flashAttention?: boolean;
  /** Storage of parameters and gradients (default 'flat' both); 'units' needs `units` hooks. */
  storage?: { params?: StorageMode; grads?: StorageMode };
  units?: UnitHooks;
  /**
   * Context parallelism (ring.cp > 1): the stage's inputs hold this rank's two chunks of every
   * sequence (StageInput.seq is the rank's seq / cp rows; context-parallel.ts), the embedding adds
   * their global positions and the layers' attention is a K/V ring over the CP group.
   */
  ring?: CpRing<F>;
  /** Mixture of experts: the stage's expert-parallel group (absent: every expert on this rank). */
  experts?: ExpertGroup;
  /** Where the parameters, activations and gradients live and the kernels run (default the CPU). */
  device?: Device<F, I>;
}

/**
 * Called around every module (embedding, layer, head) of a forward or backward pass with the units
 * whose parameters it reads (and, in backward, whose gradients it accumulates): the owner of
 * per-unit storage attaches them in enter() and may detach them in exit(). `saved` is what the
 * module keeps for its backward (its LayerSaved or HeadSaved; null for the embedding or when
 * nothing is kept): given to exit() of the forward and to enter() and exit() of the backward, so
 * the owner can offload it after the forward and bring it back just before the module's backward.
 */
export interface UnitHooks {
  enter(units: readonly ParamUnit[], phase: 'forward' | 'backward', saved: object | null): Promise<void>;
  exit(units: readonly ParamUnit[], phase: 'forward' | 'backward', saved: object | null): Promise<void>;
}

export interface StageInput<F = Float32Array> {
  /** Sequences in this micro-batch and tokens per sequence. */
  batch: number;
  seq: number;
  /** First stage: token ids [batch * seq]. */
  tokens?: Int32Array;
  /** Other stages: the previous stage's output [batch * seq, hidden]. */
  hidden?: F;
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
  /** Training a model with dropout: the step and the micro-batch's first global sample (where its draws come from). */
  dropout?: DropoutDraw;
}

export interface StageContext<F = Float32Array> {
  input: StageInput<F>;
  /** The embedding's dropout mask (first stage). */
  embedding: EmbeddingSaved<F> | null;
  layers: LayerSaved<F>[];
  head: HeadSaved<F> | null;
}

export interface StageForwardResult<F = Float32Array> {
  /** Hidden states for the next stage [batch * seq, hidden]; null on the last stage. */
  output: F | null;
  /** Logits [batch * seq, vocab] on the last stage when no targets were given. */
  logits: F | null;
  /** Mean loss over the counted tokens (last stage with targets), else null. */
  loss: number | null;
  lossSum: number;
  lossTokens: number;
  /** Pass to backward(); null when train is false. */
  context: StageContext<F> | null;
}

export class Stage<F extends TensorLike = Float32Array, I = Int32Array> {
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
  private readonly store: ParamStore<F>;
  private readonly layers: TransformerLayer<F, I>[];
  private readonly embedding: Embedding<F, I> | null;
  private readonly head: Head<F, I> | null;
  /** Where the stage's tensors live and its kernels run. */
  readonly device: Device<F, I>;
  /** Temporary buffers shared by the stage's layers (see scratch.ts). */
  private readonly scratch: Scratch<F>;

  constructor(opts: StageOptions<F, I>) {
    this.device = opts.device ?? (cpuDevice as unknown as Device<F, I>);
    this.scratch = new Scratch<F>(this.device);
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
    this.sp = (opts.sequenceParallel ?? false) && this.tp > 1;
    if (this.sp && !opts.hooks?.allGather) throw new Error('sequence parallelism needs TP hooks with allGather and reduceScatter');
    if (!Number.isInteger(this.tpRank) || this.tpRank < 0 || this.tpRank >= this.tp) throw new Error(`tpRank ${this.tpRank} must be in 0..${this.tp - 1}`);
    const ckpt = opts.ckptLayers ?? 0;
    if (ckpt < 0 || ckpt > end - start + 1) throw new Error(`ckptLayers ${ckpt} must be between 0 and the stage's ${end - start + 1} layers`);
    this.tiedEmbeddingCopy = m.tiedEmbeddings && this.hasHead && !this.hasEmbedding;

    const decls: ParamDecl[] = [];
    const groups: Array<{ name: string; count: number }> = [];
    const group = (name: string, d: ParamDecl[]): void => {
      decls.push(...d);
      groups.push({ name, count: d.length });
    };
    if (this.hasEmbedding) group('embed', embeddingParamDecls(m));
    // A mixture of experts' layer is two units: its dense weights and its experts' (they sync and
    // shard over different groups with expert parallelism: runtime/unit-memory.ts).
    for (let i = start; i <= end; i++) {
      const d = layerParamDecls(m, i, opts.experts);
      group(`layers.${i}`, d.filter((x) => !isExpertParam(x.name)));
      if (m.moe) group(`layers.${i}.experts`, d.filter((x) => isExpertParam(x.name)));
    }
    if (this.hasHead) group('head', headParamDecls(m, this.hasEmbedding));
    const storage = opts.storage ?? {};
    if ((storage.params === 'units' || storage.grads === 'units') && !opts.units) throw new Error('per-unit storage needs unit hooks to attach the units');
    this.store = new ParamStore<F>(decls, { seed: opts.seed, tp: this.tp, tpRank: this.tpRank, groups, params: storage.params, grads: storage.grads }, this.device);
    this.unitHooks = opts.units ?? null;
    this.layers = [];
    const scratch = this.scratch;
    for (let i = start; i <= end; i++) {
      this.layers.push(new TransformerLayer<F, I>(
        { model: m, index: i, tp: this.tp, tpRank: this.tpRank, checkpoint: i - start < ckpt, hooks: opts.hooks, scratch, sequenceParallel: this.sp, seed: opts.seed,
          selectiveRecompute: opts.selectiveRecompute, ring: opts.ring, experts: opts.experts, flashAttention: opts.flashAttention, device: this.device },
        this.store,
      ));
    }
    this.embedding = this.hasEmbedding ? new Embedding<F, I>(m, this.store, this.tp, this.tpRank, opts.hooks, this.sp, opts.seed, this.device) : null;
    this.head = this.hasHead ? new Head<F, I>(m, this.store, this.tp, this.tpRank, opts.hooks, this.scratch, this.sp, this.device) : null;
    this.hooks = opts.hooks ?? null;
    this.ring = opts.ring && opts.ring.cp > 1 ? opts.ring : null;
    const units = this.store.units;
    let u = 0;
    this.embeddingUnits = this.hasEmbedding ? [units[u++]] : [];
    this.layerUnits = this.layers.map(() => (m.moe ? [units[u++], units[u++]] : [units[u++]]));
    // With tied embeddings and both ends here, the head reads the embedding's token table.
    this.headUnits = this.hasHead ? (m.tiedEmbeddings && this.hasEmbedding ? [units[u], units[0]] : [units[u]]) : [];
  }

  private readonly unitHooks: UnitHooks | null;
  /** Sequence parallelism in effect. */
  readonly sp: boolean;
  private readonly hooks: TpHooks<F> | null;
  /** The CP ring when cp > 1. */
  private readonly ring: CpRing<F> | null;

  /** Where the rows of a sequence of `seq` local rows sit in the whole sequence (undefined: all of it, in order). */
  private layout(seq: number): SeqLayout | undefined {
    return this.ring ? contextParallelLayout(seq * this.ring.cp, this.ring.cp, this.ring.rank) : undefined;
  }

  /** SP: this rank's rows of a whole micro-batch's [T, hidden] activations (a copy). */
  private shardOf(whole: F, T: number): F {
    const H = this.model.hidden, { first, count } = sequenceShard(T, this.tp, this.tpRank);
    const x = this.scratch.take(count * H);
    this.device.copy(x, this.device.view(whole, first * H, (first + count) * H));
    return x;
  }

  /** SP: the whole micro-batch's rows from every rank's shard. */
  private async gatherTokens(shard: F): Promise<F> {
    const whole = this.scratch.take(shard.length * this.tp);
    await (this.hooks as TpHooks<F>).allGather?.(shard, whole, { layer: this.layerRange[1], point: 'stage-boundary', recompute: false });
    return whole;
  }
  private readonly embeddingUnits: ParamUnit[];
  private readonly layerUnits: ParamUnit[][];
  private readonly headUnits: ParamUnit[];

  /** The units of the flat vector, in order (embedding, layers, head). */
  get units(): readonly ParamUnit[] {
    return this.store.units;
  }

  /** The units each module uses, in forward order (embedding, layers, head). */
  get moduleUnits(): readonly (readonly ParamUnit[])[] {
    return [...(this.hasEmbedding ? [this.embeddingUnits] : []), ...this.layerUnits, ...(this.hasHead ? [this.headUnits] : [])];
  }

  /** Elements of the stage's flat parameter vector on this rank. */
  get paramCount(): number {
    return this.store.size;
  }

  /** A fresh host array with a unit's initial values. */
  initialValues(u: ParamUnit): Float32Array {
    return this.store.initialValues(u);
  }

  /** Per-unit storage: the owner attaches (or, with null, detaches) a unit's values or gradients. */
  attachParams(u: ParamUnit, buf: F | null): void {
    this.store.attachParams(u, buf);
  }

  attachGrads(u: ParamUnit, buf: F | null): void {
    this.store.attachGrads(u, buf);
  }

  /** Runs a module between the unit hooks; `savedOf` names what it keeps for backward. */
  private async around<T>(
    units: readonly ParamUnit[], phase: 'forward' | 'backward', run: () => Promise<T>, savedOf: (r: T | null) => object | null = () => null,
  ): Promise<T> {
    if (!this.unitHooks) return run();
    await this.unitHooks.enter(units, phase, phase === 'backward' ? savedOf(null) : null);
    const r = await run();
    await this.unitHooks.exit(units, phase, savedOf(r));
    return r;
  }

  /** This rank's parameters, one flat array ('flat' storage). */
  get params(): F {
    return this.store.params;
  }

  /** Gradients, same layout as params. */
  get grads(): F {
    return this.store.grads;
  }

  /** Every tensor: global name, full and local shapes, offset in params/grads, decay flag. */
  get paramEntries(): readonly ParamEntry[] {
    return this.store.entries;
  }

  param(name: string): F {
    return this.store.param(name);
  }

  grad(name: string): F {
    return this.store.grad(name);
  }

  zeroGrads(): void {
    this.store.zeroGrads();
  }

  /**
   * Hands back a buffer this stage returned (its output, its input gradient) once the caller is
   * done with it, e.g. after sending it to the next stage: the stage's layers reuse it.
   */
  /** A zeroed buffer of n floats from the stage's scratch (e.g. to receive activations into); give it back with recycle(). */
  takeBuffer(n: number): F {
    return this.scratch.take(n);
  }

  recycle(buffers: Iterable<F>): void {
    this.scratch.give(buffers);
  }

  async forward(input: StageInput<F>, opts: ForwardOptions = {}): Promise<StageForwardResult<F>> {
    const train = opts.train ?? true;
    const { batch, seq } = input;
    const T = batch * seq, H = this.model.hidden;
    if (train && this.model.dropout > 0 && !opts.dropout) {
      throw new Error(`training ${this.model.name} (dropout ${this.model.dropout}) needs ForwardOptions.dropout: the step and the micro-batch's first sample`);
    }
    const draw = train ? (opts.dropout ?? null) : null;
    let x: F;
    let embSaved: EmbeddingSaved<F> | null = null;
    if (this.embedding) {
      if (!input.tokens || input.tokens.length !== T) throw new Error(`the first stage needs tokens [${batch} x ${seq}]`);
      const emb = this.embedding, tokens = input.tokens;
      const r = await this.around(this.embeddingUnits, 'forward', () => emb.forward(tokens, seq, draw, this.layout(seq)), (v) => (train ? v?.saved ?? null : null));
      x = r.x;
      embSaved = r.saved;
    } else {
      if (!input.hidden || input.hidden.length !== T * H) throw new Error(`this stage needs hidden states [${batch} x ${seq} x ${H}]`);
      // With SP the stage keeps its own copy of its rows; the caller may reuse input.hidden at once.
      x = this.sp ? this.shardOf(input.hidden, T) : input.hidden;
    }
    const saved: LayerSaved<F>[] = [];
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i], xin = x;
      const r = await this.around(this.layerUnits[i], 'forward', () => layer.forward(xin, batch, seq, train, draw), (v) => v?.saved ?? null);
      if (r.saved) saved.push(r.saved);
      x = r.y;
    }
    if (!this.head) {
      if (this.sp) {
        const shard = x;
        x = await this.gatherTokens(shard);
        this.scratch.give([shard]);
      }
      return { output: x, logits: null, loss: null, lossSum: 0, lossTokens: 0, context: train ? { input, embedding: embSaved, layers: saved, head: null } : null };
    }
    const targets = input.targets ?? null;
    let gradScale = opts.gradScale;
    if (gradScale === undefined && targets) {
      let counted = 0;
      for (const t of targets) if (t >= 0) counted++;
      gradScale = counted > 0 ? 1 / counted : 0;
    }
    if (train && !targets) throw new Error('training the last stage needs targets');
    const head = this.head, xin = x;
    const h = await this.around(this.headUnits, 'forward', () => head.forward(xin, targets, train, gradScale ?? 1), (v) => v?.saved ?? null);
    return {
      output: null,
      logits: h.logits,
      loss: targets && h.lossTokens > 0 ? h.lossSum / h.lossTokens : null,
      lossSum: h.lossSum,
      lossTokens: h.lossTokens,
      context: train ? { input, embedding: embSaved, layers: saved, head: h.saved } : null,
    };
  }

  /**
   * Backward through the stage. The last stage takes no gradOutput (the loss starts it); others
   * take the next stage's input gradient. Returns the gradient with respect to this stage's input
   * hidden states, or null on the first stage (it ends in the embedding).
   */
  async backward(ctx: StageContext<F>, gradOutput?: F): Promise<F | null> {
    let dy: F;
    if (this.head) {
      if (!ctx.head) throw new Error('the context holds no head activations (was forward run with train: true and targets?)');
      const head = this.head, saved = ctx.head;
      dy = await this.around(this.headUnits, 'backward', () => head.backward(saved), () => saved);
    } else {
      if (!gradOutput) throw new Error('a stage without the head needs gradOutput');
      dy = this.sp ? this.shardOf(gradOutput, ctx.input.batch * ctx.input.seq) : gradOutput;
    }
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i], dyi = dy;
      dy = await this.around(this.layerUnits[i], 'backward', () => layer.backward(ctx.layers[i], dyi), () => ctx.layers[i]);
      // Buffers the stage made itself are dead once this layer's backward ran: the gradient it
      // consumed (from the layer above, the head, or with SP its copy of gradOutput) and its input
      // (the layer below's output, or with SP its copy of the stage's input).
      const own: F[] = [];
      if (i < this.layers.length - 1 || this.head || this.sp) own.push(dyi);
      if (i > 0 || (this.sp && !this.embedding)) own.push(ctx.layers[i].x);
      this.scratch.give(own);
    }
    if (this.embedding) {
      const emb = this.embedding, dyi = dy, embSaved = ctx.embedding ?? undefined;
      await this.around(this.embeddingUnits, 'backward', () => emb.backward(ctx.input.tokens as Int32Array, ctx.input.seq, dyi, embSaved, this.layout(ctx.input.seq)), () => ctx.embedding);
      return null;
    }
    if (this.sp) {
      const shard = dy;
      dy = await this.gatherTokens(shard);
      this.scratch.give([shard]);
    }
    return dy;
  }
}
