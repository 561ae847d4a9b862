// Op graphs of one transformer layer (gpt, llama, falcon) and of the pre/post layers (embedding;
// final norm, LM head and cross-entropy), per TP rank, as symbolic expressions of
// b, s, h, a (heads), k (kvHeads), f (ffn), V (vocab), t (tp), sp (sequence parallel), fa (flash attention).
//
// Saved activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models", Sec. 4: with 2-byte activations and 1-byte dropout masks a GPT layer keeps
// sbh(34 + 5as/h) bytes; with TP t the 24sbh of the TP-parallel regions and the attention scores
// are divided by t (sbh(10 + 24/t + 5as/(ht))); with sequence parallelism everything is
// (sbh(34/t + 5as/(ht))). Flash attention saves no s x s scores (only its fp32 log-sum-exp).
import { type CollectiveKind, type ModelSpec } from '@mist/core';
import { add, choose, div, type Expr, max, mul, named, num, type Operand, sub } from './expr';
import { M, S } from './symbols';

export type OpKind = 'matmul' | 'attention' | 'elementwise';

/** A TP collective attached to an op, in forward or in backward, of `bytes` (the full, unsharded tensor). */
export interface OpComm {
  phase: 'forward' | 'backward';
  collective: CollectiveKind;
  bytes: Expr;
  /** How often it runs (0/1 expressions such as sp or 1 - sp). */
  weight: Expr;
}

export interface Op {
  name: string;
  kind: OpKind;
  /** 1 when the op runs, 0 when not (e.g. `fa` for the flash-attention kernel); a 0/1 expression. */
  when: Expr;
  /** Name looked up in a profile's opTable (element-wise ops). */
  table?: string;
  /** Elements of the op's main tensor (for opTable lookups). */
  elements: Expr;
  fwdFlops: Expr;
  bwdFlops: Expr;
  fwdBytes: Expr;
  bwdBytes: Expr;
  /** Kernels launched in forward / backward, as the executor launches them (a matmul op's GEMMs:
   * q, k and v are three; backward: two GEMMs each). */
  fwdKernels: number;
  bwdKernels: number;
  /** Helper kernels beside the main ones (bias add in forward, bias gradient in backward): a launch
   * each, their few bytes not modelled. */
  fwdAux: number;
  bwdAux: number;
  /** Bytes the op keeps for backward. */
  saved: Expr;
  comm: OpComm[];
}

export interface OpGraphOptions {
  /** Bytes per activation element (dtype of compute), 2 for fp16/bf16. */
  actBytes: number;
}

const { s, h, a, k, f, V, fa } = M;
const { b, t, sp } = S;

/** Tokens per micro-batch on one rank: b*s. */
const T = mul(b, s);
/** Tokens a rank holds in the sequence-parallel regions: b*s/t with SP, b*s without. */
const Tsp = named('Tsp', mul(T, choose(sp, div(1, t), 1)));
/** Head dim. */
const d = div(h, a);
/** Key/value heads per TP rank: k/t, or 1 (replicated) when t > k. */
const kvPerRank = named('kvHeadsPerRank', max(div(k, t), 1));
/** Query width and key (or value) width per TP rank. */
const qWidth = div(h, t);
const kvWidth = mul(d, kvPerRank);

interface OpDraft {
  name: string;
  kind: OpKind;
  when?: Expr;
  table?: string;
  elements: Expr;
  fwdFlops: Operand;
  bwdFlops: Operand;
  fwdBytes: Operand;
  bwdBytes: Operand;
  fwdKernels?: number;
  bwdKernels?: number;
  fwdAux?: number;
  bwdAux?: number;
  saved: Operand;
  comm?: OpComm[];
}

function op(x: OpDraft): Op {
  const lift = (v: Operand): Expr => (typeof v === 'number' ? num(v) : v);
  return {
    name: x.name,
    kind: x.kind,
    when: x.when ?? num(1),
    table: x.table,
    elements: x.elements,
    fwdFlops: lift(x.fwdFlops),
    bwdFlops: lift(x.bwdFlops),
    fwdBytes: lift(x.fwdBytes),
    bwdBytes: lift(x.bwdBytes),
    fwdKernels: x.fwdKernels ?? 1,
    bwdKernels: x.bwdKernels ?? (x.kind === 'matmul' ? 2 : 1),
    fwdAux: x.fwdAux ?? 0,
    bwdAux: x.bwdAux ?? 0,
    saved: lift(x.saved),
    comm: x.comm ?? [],
  };
}

/** How a matmul op runs: as `gemms` GEMMs side by side (q, k, v: 3), each with a bias or not. */
interface GemmSplit {
  gemms: number;
  bias: boolean;
}
const ONE_GEMM: GemmSplit = { gemms: 1, bias: false };

/**
 * A GEMM [rows x inner] x [inner x cols]: 2*rows*inner*cols FLOPs forward; backward computes the
 * input gradient and the weight gradient, twice the FLOPs and about twice the bytes. `split` says
 * how many GEMMs the executor runs for it (their columns add up to cols) and whether each adds a bias.
 */
function matmul(name: string, e: number, rows: Expr, inner: Expr, cols: Expr, saved: Operand, comm: OpComm[] = [], split = ONE_GEMM): Op {
  const flops = mul(2, rows, inner, cols);
  const bytes = mul(e, add(mul(rows, inner), mul(inner, cols), mul(rows, cols)));
  const aux = split.bias ? split.gemms : 0;
  return op({
    name, kind: 'matmul', elements: mul(rows, cols), fwdFlops: flops, bwdFlops: mul(2, flops),
    fwdBytes: bytes, bwdBytes: mul(2, bytes), saved, comm,
    fwdKernels: split.gemms, bwdKernels: 2 * split.gemms, fwdAux: aux, bwdAux: aux,
  });
}

/**
 * An element-wise op over `n` elements: forward reads `readsF` and writes `writesF` tensors of n
 * elements, backward reads `readsB` and writes `writesB` (plus `extra` bytes either way, e.g. masks).
 */
function elementwise(
  name: string, table: string, e: number, n: Expr,
  io: { readsF: number; writesF: number; readsB: number; writesB: number; flopsF: number; flopsB: number; extraBytes?: Operand },
  saved: Operand, comm: OpComm[] = [],
): Op {
  const extra = io.extraBytes ?? 0;
  return op({
    name, kind: 'elementwise', table, elements: n,
    fwdFlops: mul(io.flopsF, n), bwdFlops: mul(io.flopsB, n),
    fwdBytes: add(mul(e * (io.readsF + io.writesF), n), extra),
    bwdBytes: add(mul(e * (io.readsB + io.writesB), n), extra),
    bwdKernels: io.readsB + io.writesB === 0 ? 0 : 1,
    saved, comm,
  });
}

/** TP collectives around a region (Megatron-LM's f/g operators; with SP, all-gather + reduce-scatter). */
function regionEntry(actBytesFull: Expr): OpComm[] {
  return [
    { phase: 'forward', collective: 'allGather', bytes: actBytesFull, weight: sp },
    { phase: 'backward', collective: 'allReduce', bytes: actBytesFull, weight: sub(1, sp) },
    { phase: 'backward', collective: 'reduceScatter', bytes: actBytesFull, weight: sp },
  ];
}
function regionExit(actBytesFull: Expr): OpComm[] {
  return [
    { phase: 'forward', collective: 'allReduce', bytes: actBytesFull, weight: sub(1, sp) },
    { phase: 'forward', collective: 'reduceScatter', bytes: actBytesFull, weight: sp },
    { phase: 'backward', collective: 'allGather', bytes: actBytesFull, weight: sp },
  ];
}

function norm(model: ModelSpec, name: string, e: number): Op {
  const n = mul(Tsp, h);
  const layer = model.norm === 'layernorm';
  // LayerNorm: ~5 FLOPs/element forward (mean, variance, normalise, scale, shift), ~8 backward.
  // Saves its input (Korthikanti: 2sbh per LayerNorm).
  return elementwise(name, model.norm, e, n,
    { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: layer ? 5 : 4, flopsB: layer ? 8 : 6 }, mul(e, n));
}

/** Bias + dropout + residual add (fused as in Megatron-LM); saves the 1-byte dropout mask. */
function dropoutAdd(name: string, e: number, dropout: boolean): Op {
  const n = mul(Tsp, h);
  if (dropout) {
    return elementwise(name, 'dropout_add', e, n,
      { readsF: 2, writesF: 1, readsB: 1, writesB: 1, flopsF: 3, flopsB: 1, extraBytes: n }, n);
  }
  // Residual add: forward reads two tensors and writes one; backward adds the branch gradient into the residual's.
  return elementwise(name, 'add', e, n, { readsF: 2, writesF: 1, readsB: 2, writesB: 1, flopsF: 1, flopsB: 1 }, 0);
}

/** Self-attention core (QK^T, softmax, dropout, attention over V), non-flash or flash, per TP rank. */
function attentionCore(model: ModelSpec, e: number): Op[] {
  const dropout = model.family === 'gpt';
  const headsPerRank = div(a, t);
  const scores = mul(b, headsPerRank, s, s); // elements of the s x s score tensor per rank
  const qBytes = mul(e, T, qWidth);
  const kvBytes = mul(e, T, kvWidth);
  const noFa = sub(1, fa);
  // Non-flash: QK^T saves Q and K; softmax saves its output (2as^2b); dropout saves its mask (as^2b)
  // and attention-over-V its input (the dropout output, 2as^2b) and V. Without dropout the
  // softmax output is the AV input: stored once.
  const ops: Op[] = [
    { ...matmul('attn.scores', e, mul(b, headsPerRank, s), d, s, add(qBytes, kvBytes)), when: noFa },
    { ...elementwise('attn.softmax', 'softmax', e, scores,
      { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 5, flopsB: 4 }, mul(e, scores)), when: noFa },
  ];
  if (dropout) {
    ops.push({ ...elementwise('attn.dropout', 'dropout', e, scores,
      { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 2, flopsB: 1, extraBytes: scores }, scores), when: noFa });
  }
  ops.push({
    ...matmul('attn.values', e, mul(b, headsPerRank, s), s, d, add(dropout ? mul(e, scores) : 0, kvBytes)),
    when: noFa,
  });
  // Flash attention (Dao 2022/2023): the same 4*b*s^2*h/t forward FLOPs; backward recomputes the
  // scores, 2.5x the forward FLOPs (5 GEMM-like products instead of 2). Keeps Q, K, V and the fp32
  // log-sum-exp (4 bytes per row of every head); the output O is saved by the projection.
  const faFlops = mul(4, T, s, qWidth);
  const faBytes = mul(e, T, add(mul(2, qWidth), mul(2, kvWidth)));
  ops.push(op({
    name: 'attn.flash', kind: 'attention', when: fa, elements: scores,
    fwdFlops: faFlops, bwdFlops: mul(2.5, faFlops), fwdBytes: faBytes, bwdBytes: mul(2, faBytes),
    saved: add(qBytes, mul(2, kvBytes), mul(4, b, headsPerRank, s)),
  }));
  return ops;
}

/** Ops of one transformer layer of `model` on one TP rank, in forward order. */
export function layerOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  const e = opts.actBytes;
  const dropout = model.family === 'gpt';
  const full = mul(e, T, h); // one activation tensor, unsharded: the TP collectives' size
  const qkvCols = add(qWidth, mul(2, kvWidth));
  const ffnCols = div(f, t);
  const swiglu = model.activation === 'swiglu';
  const up = swiglu ? mul(2, ffnCols) : ffnCols; // gate and up projections fused
  const savedNormOut = mul(e, Tsp, h); // the column-parallel GEMM's input (sharded with SP)

  // The executor's GEMMs: q, k and v separately; gate and up separately; a bias add after each
  // when the model has biases.
  const bias = model.bias;
  const qkv = (comm: OpComm[]): Op => matmul('attn.qkv', e, T, h, qkvCols, savedNormOut, comm, { gemms: 3, bias });
  const rope = model.positional === 'rope'
    ? [{ ...elementwise('attn.rope', 'rope', e, mul(T, add(qWidth, kvWidth)),
      { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 3, flopsB: 3 }, 0), fwdKernels: 2, bwdKernels: 2 }]
    : [];
  const proj = (comm: OpComm[]): Op => matmul('attn.proj', e, T, qWidth, h, mul(e, T, qWidth), comm, { gemms: 1, bias });
  const fc1 = (comm: OpComm[]): Op => matmul('mlp.fc1', e, T, h, up, savedNormOut, comm, { gemms: swiglu ? 2 : 1, bias });
  const act = swiglu
    ? elementwise('mlp.swiglu', 'swiglu', e, mul(T, ffnCols),
      { readsF: 2, writesF: 1, readsB: 3, writesB: 2, flopsF: 6, flopsB: 10 }, mul(2 * e, T, ffnCols))
    : elementwise('mlp.gelu', 'gelu', e, mul(T, ffnCols),
      { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 8, flopsB: 12 }, mul(e, T, ffnCols));
  const fc2 = (comm: OpComm[]): Op => matmul('mlp.fc2', e, T, ffnCols, h, mul(e, T, ffnCols), comm, { gemms: 1, bias });

  if (model.parallelAttention) {
    // Falcon: attention and MLP read the same normalised input and their outputs are summed, so one
    // collective enters and one leaves the block. With one norm its output feeds both GEMMs (saved
    // once); with two norms (Falcon-40B) both read the same input x (saved once) and each output is saved.
    const twoNorms = model.parallelAttentionTwoNorms;
    const n1 = norm(model, 'norm.attn', e);
    const ops: Op[] = [n1];
    if (twoNorms) ops.push({ ...norm(model, 'norm.mlp', e), saved: num(0) });
    ops.push(qkv(regionEntry(full)), ...rope, ...attentionCore(model, e), proj(regionExit(full)));
    ops.push({ ...fc1([]), saved: twoNorms ? savedNormOut : num(0) }, act, fc2([]), dropoutAdd('residual', e, dropout));
    return ops;
  }
  return [
    norm(model, 'norm.attn', e),
    qkv(regionEntry(full)),
    ...rope,
    ...attentionCore(model, e),
    proj(regionExit(full)),
    dropoutAdd('attn.residual', e, dropout),
    norm(model, 'norm.mlp', e),
    fc1(regionEntry(full)),
    act,
    fc2(regionExit(full)),
    dropoutAdd('mlp.residual', e, dropout),
  ];
}

/** Ops of the first stage's pre-layers: vocab-parallel token embedding (+ learned positions, dropout). */
export function embeddingOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  const e = opts.actBytes;
  const n = mul(T, h);
  const learned = model.positional === 'learned';
  const full = mul(e, T, h);
  // Gather of b*s rows (+ position rows and their sum); backward scatter-adds the rows into the
  // table's gradient. Vocab-parallel: every rank writes zeros for tokens outside its shard and an
  // all-reduce (with SP a reduce-scatter) combines them (Megatron-LM VocabParallelEmbedding).
  const ops: Op[] = [elementwise('embedding', 'embedding', e, n,
    { readsF: learned ? 2 : 1, writesF: 1, readsB: 1, writesB: 2, flopsF: learned ? 1 : 0, flopsB: 1 }, 0, [
      { phase: 'forward', collective: 'allReduce', bytes: full, weight: sub(1, sp) },
      { phase: 'forward', collective: 'reduceScatter', bytes: full, weight: sp },
      { phase: 'backward', collective: 'allGather', bytes: full, weight: sp },
    ])];
  if (model.family === 'gpt') {
    const m = mul(Tsp, h);
    ops.push(elementwise('embedding.dropout', 'dropout', e, m,
      { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 2, flopsB: 1, extraBytes: m }, m));
  }
  return ops;
}

/** Ops of the last stage's post-layers: final norm, LM head (column-parallel over the vocabulary) and loss. */
export function headOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  const e = opts.actBytes;
  const full = mul(e, T, h);
  const logits = mul(T, div(V, t));
  // Vocab-parallel cross-entropy in fp32 (Megatron-LM): three all-reduces of one fp32 value per
  // token (max, sum of exp, target logit); saves the fp32 softmax for backward. The logits and the
  // fp32 softmax are transient (see headTransientBytes); they are not counted as saved activations.
  const smallAllReduce = (weight: Operand): OpComm => ({
    phase: 'forward', collective: 'allReduce', bytes: mul(4, T), weight: typeof weight === 'number' ? num(weight) : weight,
  });
  return [
    norm(model, 'final_norm', e),
    matmul('lm_head', e, T, h, div(V, t), mul(e, Tsp, h), regionEntry(full)),
    op({
      name: 'cross_entropy', kind: 'elementwise', table: 'cross_entropy', elements: logits,
      fwdFlops: mul(5, logits), bwdFlops: mul(2, logits),
      fwdBytes: mul(e + 4 + 4, logits), bwdBytes: mul(4 + e, logits),
      saved: 0, comm: [smallAllReduce(1), smallAllReduce(1), smallAllReduce(1)],
    }),
  ];
}

/**
 * Transient bytes of the loss on the last stage: fp16 logits + their fp32 softmax in forward
 * (6 bytes per logit with 2-byte activations), fp32 softmax + the fp16 logits' gradient in backward.
 */
export function headTransientBytes(opts: OpGraphOptions): { forward: Expr; backward: Expr } {
  const logits = mul(T, div(V, t));
  return { forward: mul(opts.actBytes + 4, logits), backward: mul(4 + opts.actBytes, logits) };
}

/** Bytes kept per layer by a checkpointed (fully recomputed) layer: its input, sharded with SP. */
export function checkpointBytes(opts: OpGraphOptions): Expr {
  return mul(opts.actBytes, Tsp, h);
}

/**
 * Names the element-wise ops look up in a profile's opTable (`op` field; `<name>_backward` for a
 * measured backward, else 1.5x the forward fit). `elements` there is the op's main tensor size.
 */
export const ELEMENTWISE_TABLE_NAMES = [
  'layernorm', 'rmsnorm', 'dropout_add', 'add', 'softmax', 'dropout', 'rope', 'gelu', 'swiglu', 'embedding', 'cross_entropy',
] as const;

/** Sum of an op field over ops, each weighted by its `when`. */
export function sumOps(ops: readonly Op[], field: (o: Op) => Expr): Expr {
  return add(...ops.map((o) => mul(o.when, field(o))));
}
