// Op graphs of one transformer layer (gpt, llama, falcon) and of the pre/post layers (embedding;
// final norm, LM head and cross-entropy), per TP rank, as symbolic expressions of
// b, s, h, a (heads), k (kvHeads), f (ffn), V (vocab), t (tp), sp (sequence parallel), fa (flash attention).
// All three are translations of core's block descriptions (layerBlock, embeddingBlock, headBlock),
// the ones the executor runs: this file adds only the cost figures (FLOPs and bytes of each op kind).
//
// Saved activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models", Sec. 4: with 2-byte activations and 1-byte dropout masks a GPT layer keeps
// sbh(34 + 5as/h) bytes; with TP t the 24sbh of the TP-parallel regions and the attention scores
// are divided by t (sbh(10 + 24/t + 5as/(ht))); with sequence parallelism everything is
// (sbh(34/t + 5as/(ht))). Flash attention saves no s x s scores (only its fp32 log-sum-exp).
// Those figures assume dropout (ModelSpec.dropout > 0, GPT-3); without it (Llama, Falcon) the block
// has no masks and keeps the softmax output once: sbh(32 + 2as/h).
import {
  type BlockDescription, blockLaunches, type BlockOp, type BlockTensor, type OpCheckpointSet, type CollectiveKind, type Dim, type DimSymbol,
  embeddingBlock, FLASH_KERNEL_SHARE, type Fp8Recipe, headBlock, layerBlock, type ModelSpec, opCheckpointSet, selectiveSet, type TrainingSpec,
} from '@mist/core';
import { add, choose, div, type Expr, max, mul, named, num, type Operand, step, sub } from './expr';
import { fp8CastOp } from './fp8-ops';
import { M, S } from './symbols';

export type OpKind = 'matmul' | 'attention' | 'elementwise';

/** The collectives the analyzer costs: core's measured kinds and the expert-parallel all-to-all. */
export type AnalyzerCollective = CollectiveKind | 'allToAll';

/**
 * A collective attached to an op, in forward or in backward, of `bytes` (the full, unsharded tensor;
 * for an all-to-all the rank's send buffer), over the TP group or, with `group` 'ep', the
 * expert-parallel group.
 */
export interface OpComm {
  phase: 'forward' | 'backward';
  collective: AnalyzerCollective;
  bytes: Expr;
  /** How often it runs (0/1 expressions such as sp or 1 - sp). */
  weight: Expr;
  /** The ranks it runs over: the stage's TP group (absent) or its expert-parallel group. */
  group?: 'ep';
  /** A TP region's entry (before its column-parallel linears) or exit (after its row-parallel ones). */
  at?: 'entry' | 'exit';
  /**
   * The layer's linear ops (names) whose GEMM this collective is pipelined with under TP
   * communication overlap (TrainingSpec.tpCommOverlap, TrainingSpec.tpBackwardOverlap; layerOps'
   * tpOverlapGemms): set only on the sequence-parallel all-gathers and reduce-scatters and the
   * entries' backward all-reduces of a transformer layer's attention and dense MLP regions. Absent:
   * the collective is exposed whatever the options.
   */
  gemms?: readonly string[];
}

export interface Op {
  name: string;
  kind: OpKind;
  /** 1 when the op runs, 0 when not (e.g. `fa` for the flash-attention kernel); a 0/1 expression. */
  when: Expr;
  /** A fused attention kernel's rate as a share of the profile's (FlashAttention-2's); absent: 1. */
  rateShare?: number;
  /** Name looked up in a profile's opTable (element-wise ops). */
  table?: string;
  /** Elements of the op's main tensor (for opTable lookups). */
  elements: Expr;
  fwdFlops: Expr;
  bwdFlops: Expr;
  fwdBytes: Expr;
  bwdBytes: Expr;
  /** Kernels launched in forward / backward (core's blockLaunches, what the executor launches: a
   * matmul op's GEMMs, q, k and v are three; backward: two GEMMs each). */
  fwdKernels: number;
  bwdKernels: number;
  /** Helper kernels beside the main ones (bias add in forward, bias gradient and gradient sums in
   * backward): a launch each, their few bytes not modelled. */
  fwdAux: number;
  bwdAux: number;
  /** Bytes the op keeps for backward. */
  saved: Expr;
  /**
   * Part of the block's selective-recompute set (core's selectiveSet: the unfused attention core):
   * with selective recompute its forward runs again in backward. Absent: false.
   */
  selective?: boolean;
  /** The part of `saved` that selective recompute does not keep; absent: 0. */
  selectiveSaved?: Expr;
  /**
   * With torchtitan's per-op selective checkpointing (core's opCheckpointSet): the share of the op's
   * forward that runs again in backward (a linear op: its recomputed GEMMs' share of the columns),
   * and the bytes of the kept tensors charged to it. Absent: 0 and 0 (ops outside the layer block).
   */
  opRecompute?: Expr;
  opKept?: Expr;
  /** With per-op checkpointing, the whole op runs again in backward with its collectives (a TP entry's all-gather, MoE all-to-alls). */
  opRecomputedWhole?: boolean;
  comm: OpComm[];
  /** A matmul's operands in fp8 (Transformer Engine's fp8 GEMMs); absent: the compute dtype. */
  operandDtype?: 'fp8';
}

export interface OpGraphOptions {
  /** Bytes per activation element (dtype of compute), 2 for fp16/bf16. */
  actBytes: number;
  /**
   * fp8 linear layers (training spec fp8): the linear ops' GEMMs take fp8 operands, each is followed
   * by its cast kernels (fp8-ops.ts fp8CastOp), and it keeps its input for backward as an fp8 copy;
   * the TP regions' all-gathers move the fp8 copies (regionEntry).
   * The stage model sets it for the transformer layers only (Megatron-LM's embedding and output
   * layer are not Transformer Engine modules). Absent: 'none'.
   */
  fp8?: Fp8Recipe;
  /** The loss's reading of the logits (training spec crossEntropy); absent: 'fused'. */
  crossEntropy?: TrainingSpec['crossEntropy'];
  /** The flash-attention kernel (training spec flashAttentionKernel, core's FLASH_KERNEL_SHARE); absent: 'flash2'. */
  flashAttentionKernel?: TrainingSpec['flashAttentionKernel'];
  /** How the element-wise ops run (training spec elementwise: EAGER below); absent: 'fused'. */
  elementwise?: TrainingSpec['elementwise'];
  /**
   * What an op keeps of a tensor a TP region's entry all-gathers (training spec sequenceParallelInput):
   * 'gathered' keeps the gathered tensor, t times the shard with SP; absent: 'sharded'.
   */
  sequenceParallelInput?: TrainingSpec['sequenceParallelInput'];
}

const { s, h, a, k, f, V, fa } = M;
const { b, t, sp } = S;

/** Tokens per micro-batch on one rank: b*s. */
const T = mul(b, s);
/** Tokens a rank holds in the sequence-parallel regions: b*s/t with SP, b*s without. */
const Tsp = named('Tsp', mul(T, choose(sp, div(1, t), 1)));

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

/**
 * A GEMM [rows x inner] x [inner x cols]: 2*rows*inner*cols FLOPs forward; backward computes the
 * input gradient and the weight gradient, twice the FLOPs and about twice the bytes.
 */
function matmul(name: string, e: number, rows: Expr, inner: Expr, cols: Expr, saved: Operand, operandBytes = e): Op {
  const flops = mul(2, rows, inner, cols);
  const bytes = operandBytes === e
    ? mul(e, add(mul(rows, inner), mul(inner, cols), mul(rows, cols)))
    : add(mul(operandBytes, add(mul(rows, inner), mul(inner, cols))), mul(e, rows, cols));
  return op({
    name, kind: 'matmul', elements: mul(rows, cols), fwdFlops: flops, bwdFlops: mul(2, flops),
    fwdBytes: bytes, bwdBytes: mul(2, bytes), saved,
  });
}

/**
 * An element-wise op's traffic: forward reads `readsF` and writes `writesF` tensors of its
 * elements, backward reads `readsB` and writes `writesB` (plus `extraBytes` either way, e.g. masks).
 */
interface ElementwiseIo {
  readsF: number;
  writesF: number;
  readsB: number;
  writesB: number;
  flopsF: number;
  flopsB: number;
  extraBytes?: Operand;
}

/**
 * TP collectives around a region (Megatron-LM's f/g operators; with SP, all-gather + reduce-scatter).
 * With SP a region's linears that keep only their input's sequence shard (sequenceParallelInput
 * 'sharded') all-gather it again in backward for the weight gradient (Megatron-LM's
 * LinearWithGradAccumulationAndAsyncCommunication.backward; Korthikanti et al. 2022, Sec. 4.2.2).
 * `gatheredBytes`: what the all-gathers move, the tensor's fp8 copy in fp8 linear layers (Transformer
 * Engine quantizes the norm output, then gathers it, and gathers the output gradient the same
 * FP8-aware way: module/layernorm_linear.py and linear.py, gather_along_first_dim with the quantizer;
 * torchao's Float8ColwiseParallel / PrepareFloat8ModuleInput cast to fp8 before redistributing and
 * Float8RowwiseParallel casts the output gradient before its backward all-gather:
 * torchao/float8/float8_tensor_parallel.py at eab345c); the reduce-scatters and all-reduces move
 * the compute dtype.
 */
function regionEntry(actBytesFull: Expr, gatheredBytes: Expr, keepsShard: boolean): OpComm[] {
  return [
    { phase: 'forward', collective: 'allGather', bytes: gatheredBytes, weight: sp, at: 'entry' },
    ...(keepsShard ? [{ phase: 'backward', collective: 'allGather', bytes: gatheredBytes, weight: sp, at: 'entry' } as const] : []),
    { phase: 'backward', collective: 'allReduce', bytes: actBytesFull, weight: sub(1, sp), at: 'entry' },
    { phase: 'backward', collective: 'reduceScatter', bytes: actBytesFull, weight: sp, at: 'entry' },
  ];
}
function regionExit(actBytesFull: Expr, gatheredBytes: Expr): OpComm[] {
  return [
    { phase: 'forward', collective: 'allReduce', bytes: actBytesFull, weight: sub(1, sp), at: 'exit' },
    { phase: 'forward', collective: 'reduceScatter', bytes: actBytesFull, weight: sp, at: 'exit' },
    { phase: 'backward', collective: 'allGather', bytes: gatheredBytes, weight: sp, at: 'exit' },
  ];
}

/** The analyzer's symbol for each size symbol of a block description. */
const DIM_SYMBOLS: Record<DimSymbol, Expr> = { b, t, sp, s, h, a, k, f, V, fa };

/** A block description's size as an expression (the same named quantities, e.g. Tsp, print by name). */
export function dimExpr(d: Dim): Expr {
  if (typeof d === 'number') return num(d);
  if ('sym' in d) return DIM_SYMBOLS[d.sym];
  switch (d.op) {
    case 'add': return add(...d.args.map(dimExpr));
    case 'mul': return mul(...d.args.map(dimExpr));
    case 'max': return max(...d.args.map(dimExpr));
    case 'div': return div(dimExpr(d.args[0]), dimExpr(d.args[1]));
    case 'sub': return sub(dimExpr(d.args[0]), dimExpr(d.args[1]));
    case 'choose': return choose(dimExpr(d.flag), dimExpr(d.then), dimExpr(d.else));
    case 'named': return named(d.name, dimExpr(d.body));
  }
}

// Cost figures per element of the element-wise ops (tensors read/written in forward and backward,
// FLOPs per element): LayerNorm ~5 FLOPs forward (mean, variance, normalise, scale, shift), ~8
// backward; RMSNorm 4 / 6; GELU (tanh form) 8 / 12; SwiGLU 6 / 10; squared ReLU 2 / 3; dropout 2 / 1 (+ its 1-byte mask);
// bias + dropout + residual add fused as in Megatron-LM.
const IO: Record<string, ElementwiseIo> = {
  layernorm: { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 5, flopsB: 8 },
  rmsnorm: { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 4, flopsB: 6 },
  rope: { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 3, flopsB: 3 },
  softmax: { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 5, flopsB: 4 },
  dropout: { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 2, flopsB: 1 },
  gelu: { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 8, flopsB: 12 },
  swiglu: { readsF: 2, writesF: 1, readsB: 3, writesB: 2, flopsF: 6, flopsB: 10 },
  // relu(x)^2: a max and a product forward; backward dy * 2 relu(x), from the saved input.
  squared_relu: { readsF: 1, writesF: 1, readsB: 2, writesB: 1, flopsF: 2, flopsB: 3 },
  // Mixture of experts: the dispatch / combine permutation copies each row (forward and backward);
  // the weighted sum reads topK rows and a probability per output element (2 FLOPs per row read),
  // its backward writes the rows' gradients and the probabilities'.
  moe_permute: { readsF: 1, writesF: 1, readsB: 1, writesB: 1, flopsF: 0, flopsB: 0 },
  dropout_add: { readsF: 2, writesF: 1, readsB: 1, writesB: 1, flopsF: 3, flopsB: 1 },
  add: { readsF: 2, writesF: 1, readsB: 2, writesB: 1, flopsF: 1, flopsB: 1 },
  // The parallel block's branch sum: its backward hands the same gradient to both branches.
  branch_sum: { readsF: 2, writesF: 1, readsB: 0, writesB: 0, flopsF: 1, flopsB: 0 },
};

/**
 * The element-wise ops as separate PyTorch kernels of the model code, without fusion (training spec
 * elementwise 'eager'): bytes per element of the op's output moved by all its kernels, forward and
 * backward, as functions of the activation bytes e, the kernels launched, and the bytes per element
 * its autograd keeps beyond what the fused op keeps. Counted from the code, each kernel reading its
 * inputs and writing its output once (per-row scalars left out):
 *   RMSNorm (torchtitan models/norms.py: `(x.float() * rsqrt(x.float().pow(2).mean(-1) + eps)).type_as(x) * w`):
 *     forward x.float() e+4, pow 4+4, mean 4, product 4+4, type_as 4+e, weight product 2e: 4e + 28
 *     in 8 kernels (add and rsqrt per row); backward the weight product's two gradients 3e + e, the
 *     casts e+4 and 4+e, the product's gradient 4+4 and its row sums 8, pow's 8+4, their sum 8+4:
 *     6e + 52 in 10 kernels; keeps the fp32 copy of x (4) beside the typed output it adds (e) where
 *     the fused norm keeps x (e): +4.
 *   RoPE (torchtitan apply_rotary_emb: `view_as_real(view_as_complex(x.float()) * freqs).type_as(x)` for q and
 *     k): cast e+4, complex product 4+4, cast 4+e: 2e + 16 each way in 3 kernels per tensor, 6 for
 *     q and k; the product keeps only the (shared) frequencies.
 *   SwiGLU (torchtitan FeedForward: `w2(F.silu(w1(x)) * w3(x))`): silu 2e and the product 3e forward in 2
 *     kernels; backward the product's two gradients (g, u | g, silu) 6e and silu's 3e in 3 kernels:
 *     9e; the product keeps silu's output as well (+e).
 *   The unfused attention's softmax of a causal decoder (Megatron-LM of 2020, megatron/model/
 *     transformer.py and gpt2_model.py at 5281919420: `attention_scores.masked_fill_(ltor_mask, -10000.0)`
 *     then torch.nn.Softmax, where the fused kernel scales, masks and normalises in one pass): the
 *     mask's in-place pass 2e forward and the masked gradient 2e backward: 4e / 5e in 2 / 2 kernels.
 *   Dropout and the residual add (the same code: `self.dropout(output)`, then `hidden_states +
 *     attention_output`, where Megatron-LM's bias_dropout_add fuses them): the dropout writes its
 *     output and the add reads it again, 5e + 1 (its mask) forward in 2 kernels; backward unchanged.
 * LayerNorm and GELU are one PyTorch kernel each eagerly too (F.layer_norm, F.gelu): fused costs.
 * A linear's bias is added by its own kernel (EAGER_BIAS_BYTES) where the fused ops take it into the
 * GEMM, the GELU or the dropout-add.
 */
const EAGER: Record<string, { fwd: (e: number) => number; bwd: (e: number) => number; kernelsF: number; kernelsB: number; keeps: (e: number) => number }> = {
  rmsnorm: { fwd: (e) => 4 * e + 28, bwd: (e) => 6 * e + 52, kernelsF: 8, kernelsB: 10, keeps: () => 4 },
  rope: { fwd: (e) => 2 * e + 16, bwd: (e) => 2 * e + 16, kernelsF: 6, kernelsB: 6, keeps: () => 0 },
  swiglu: { fwd: (e) => 5 * e, bwd: (e) => 9 * e, kernelsF: 2, kernelsB: 3, keeps: (e) => e },
  softmax: { fwd: (e) => 4 * e, bwd: (e) => 5 * e, kernelsF: 2, kernelsB: 2, keeps: () => 0 },
  dropout_add: { fwd: (e) => 5 * e + 1, bwd: (e) => 2 * e + 1, kernelsF: 2, kernelsB: 2, keeps: () => 0 },
};

/**
 * Bytes per output element of an eager bias add (PyTorch 1.x's linear took addmm's fused bias for 2-D
 * inputs only: a 3-D input ran the matmul, then added the bias; Megatron-LM 2020's RowParallelLinear:
 * `output = output_ + self.bias` after the all-reduce): a read and a write, forward only (the bias
 * gradient's row sum reads the output gradient either way).
 */
const EAGER_BIAS_BYTES = (e: number): number => 2 * e;

/**
 * The analyzer's ops of a block description, per TP rank, in forward order: FLOPs and bytes from
 * the ops' shapes (a GEMM [m, k] x [k, n] is 2mkn FLOPs forward, 4mkn backward), saved bytes from
 * the tensors each op keeps (a tensor kept by several ops counted once), the TP collectives at the
 * regions' entries and exits, and the kernel launches of core's blockLaunches.
 */
export function blockOpsToOps(block: BlockDescription, opts: OpGraphOptions): Op[] {
  const e = opts.actBytes;
  const z = block.sizes;
  const tokens = dimExpr(z.tokens);
  const tensor = (name: string): BlockTensor => {
    const x = block.tensors[name];
    if (!x) throw new Error(`block description: unknown tensor ${name}`);
    return x;
  };
  const elements = (name: string): Expr => mul(dimExpr(tensor(name).rows), dimExpr(tensor(name).width));
  const bytes = (name: string): Expr => {
    const x = tensor(name);
    return mul(x.dtype === 'act' ? e : x.dtype === 'mask' ? 1 : 4, elements(name));
  };
  // The tensors TP regions' entries all-gather with SP (held as this rank's token shard); an op that
  // keeps one keeps the gathered tensor, t shards, when sequenceParallelInput is 'gathered'.
  const gatheredOnEntry = new Set(opts.sequenceParallelInput === 'gathered' ? block.ops.flatMap((o) => (o.kind === 'tpEntry' ? o.inputs : [])) : []);
  const keptBytes = (name: string, base: Expr): Expr => (gatheredOnEntry.has(name) ? mul(base, choose(sp, t, 1)) : base);
  const launches = blockLaunches(block);
  // Saved tensors are counted once among the ops that always run and once per attention variant.
  const savedBy = { always: new Set<string>(), flash: new Set<string>(), noFlash: new Set<string>() };
  // An fp8 linear layer keeps an fp8 copy of its input (1 byte per element; Transformer Engine's
  // Linear saves the quantized input, column-wise only: module/linear.py), apart from the tensor
  // itself, which stays only where another op keeps it: the fused attention's output, which its
  // backward reads (TE's DotProductAttention saves it), is charged to the attention op.
  const fp8 = opts.fp8 !== undefined && opts.fp8 !== 'none';
  const fusedAttention = new Map(block.ops.filter((o) => o.kind === 'attention').flatMap((o) => o.outputs.map((x) => [x, o] as const)));
  // Selective recompute's dropped tensors exist only in the unfused attention (core's selectiveSet);
  // each is charged to the first op that keeps it, like the saved bytes themselves.
  const dropped = new Set(selectiveSet(block, false).dropped);
  const droppedCharged = new Set<string>();
  const droppedBytes = (o: BlockOp): Expr => add(...o.saves.filter((x) => dropped.has(x) && !droppedCharged.has(x)).map((x) => {
    droppedCharged.add(x);
    return bytes(x);
  }));
  const savedBytes = (o: BlockOp): Expr => {
    const own = savedBy[o.when ?? 'always'];
    const asFp8 = fp8 && o.kind === 'linear';
    const keys = o.saves.map((x) => (asFp8 ? `fp8:${x}` : x));
    const fresh = keys.filter((x) => !savedBy.always.has(x) && !own.has(x));
    for (const x of fresh) own.add(x);
    const kept = asFp8 ? o.saves.flatMap((x) => {
      const att = fusedAttention.get(x);
      if (!att) return [];
      const set = savedBy[att.when ?? 'always'];
      if (savedBy.always.has(x) || set.has(x)) return [];
      set.add(x);
      return [mul(whenOf(att), bytes(x))];
    }) : [];
    return add(...fresh.map((x) => (x.startsWith('fp8:') ? keptBytes(x.slice(4), elements(x.slice(4))) : keptBytes(x, bytes(x)))), ...kept);
  };
  const whenOf = (o: BlockOp): Expr => (o.when === 'flash' ? fa : o.when === 'noFlash' ? sub(1, fa) : num(1));
  const outputsOf = (o: BlockOp): Expr => add(...o.outputs.filter((x) => tensor(x).dtype !== 'mask').map(elements));
  const pointwise = (o: BlockOp, table: string | undefined, io: ElementwiseIo, saved: Expr): Op => {
    const n = outputsOf(o);
    const extra = io.extraBytes ?? 0;
    return op({
      name: o.name, kind: 'elementwise', table, elements: n, when: whenOf(o),
      fwdFlops: mul(io.flopsF, n), bwdFlops: mul(io.flopsB, n),
      fwdBytes: add(mul(e * (io.readsF + io.writesF), n), extra),
      bwdBytes: add(mul(e * (io.readsB + io.writesB), n), extra), saved,
    });
  };
  // torchtitan's per-op checkpointing keeps different tensors with and without flash attention.
  const opSac = { flash: opCheckpointSet(block, true), noFlash: opCheckpointSet(block, false) };
  const opSacOf = (o: BlockOp): { recompute: Expr; kept: Expr } => {
    const part = (set: OpCheckpointSet): { recompute: Expr; kept: Expr } => {
      const gemms = set.recomputedGemms.get(o.name);
      const recompute = set.recomputed.has(o.name) ? num(1)
        : gemms && gemms.length > 0 && o.kind === 'linear'
          ? div(add(...gemms.map((w) => dimExpr(o.cols[w]))), add(...o.cols.map(dimExpr))) : num(0);
      return { recompute, kept: add(...(set.keptBy.get(o.name) ?? []).map((x) => keptBytes(x, bytes(x)))) };
    };
    const f = part(opSac.flash);
    const n = part(opSac.noFlash);
    return { recompute: add(mul(fa, f.recompute), mul(sub(1, fa), n.recompute)), kept: add(mul(fa, f.kept), mul(sub(1, fa), n.kept)) };
  };
  // Eager element-wise ops (EAGER): their own bytes, kernels and kept bytes.
  const eagerOps = opts.elementwise === 'eager';
  const eagerOf = (o: BlockOp): (typeof EAGER)[string] | null => {
    if (!eagerOps) return null;
    const key = o.kind === 'norm' ? o.norm : o.kind === 'rope' ? 'rope' : o.kind === 'activation' ? o.fn
      : o.kind === 'softmax' ? 'softmax' : o.kind === 'residual' && o.dropout ? 'dropout_add' : '';
    return EAGER[key] ?? null;
  };
  const ops: Op[] = [];
  for (const o of block.ops) {
    const selectiveSaved = droppedBytes(o);
    const sac = opSacOf(o);
    const eager = eagerOf(o);
    const saved = savedBytes(o);
    let x: Op;
    switch (o.kind) {
      case 'norm': x = pointwise(o, o.norm, IO[o.norm], saved); break;
      case 'linear':
        x = matmul(o.name, e, dimExpr(o.rows), dimExpr(o.inner), add(...o.cols.map(dimExpr)), saved, fp8 ? 1 : e);
        if (fp8) x.operandDtype = 'fp8';
        if (eagerOps && o.biases.length > 0) x.fwdBytes = add(x.fwdBytes, mul(EAGER_BIAS_BYTES(e), dimExpr(o.rows), add(...o.cols.map(dimExpr))));
        break;
      case 'scores': case 'values':
        x = { ...matmul(o.name, e, dimExpr(o.rows), dimExpr(o.inner), dimExpr(o.cols), saved), when: whenOf(o) };
        break;
      case 'rope': x = pointwise(o, 'rope', IO.rope, saved); break;
      case 'softmax': x = pointwise(o, 'softmax', IO.softmax, saved); break;
      case 'dropout': x = pointwise(o, 'dropout', { ...IO.dropout, extraBytes: outputsOf(o) }, saved); break;
      case 'activation': {
        const table = o.fn === 'squared-relu' ? 'squared_relu' : o.fn;
        x = pointwise(o, table, IO[table], saved);
        break;
      }
      case 'router': {
        // Softmax over the top-k of E fp32 logits per token (Megatron-Core's TopKRouter): a top-k
        // selection (~log2 E compares per logit, counted as one pass) and the softmax of k values.
        const logits = elements(o.inputs[0]);
        const rows = dimExpr(tensor(o.inputs[0]).rows);
        x = op({
          name: o.name, kind: 'elementwise', table: 'moe_router', elements: logits,
          fwdFlops: add(mul(2, logits), mul(5 * o.topK, rows)), bwdFlops: add(logits, mul(4 * o.topK, rows)),
          fwdBytes: add(mul(4, logits), mul(8 * o.topK, rows)), bwdBytes: add(mul(8, logits), mul(8 * o.topK, rows)), saved,
        });
        break;
      }
      case 'allToAll': {
        // The permutation kernel plus the all-to-all over the ep ranks, each way (the backward sends
        // the gradient rows the same way back). The rank's send buffer: `elements` activations.
        const n = dimExpr(o.elements);
        const sent = mul(e, n);
        x = {
          ...pointwise(o, 'moe_permute', IO.moe_permute, saved),
          elements: n,
          comm: (['forward', 'backward'] as const).map((phase): OpComm => ({ phase, collective: 'allToAll', bytes: sent, weight: num(1), group: 'ep' })),
        };
        break;
      }
      case 'expertSum': {
        const rows = elements(o.inputs[0]);
        x = op({
          name: o.name, kind: 'elementwise', table: 'moe_sum', elements: rows,
          fwdFlops: mul(2, rows), bwdFlops: mul(3, rows),
          fwdBytes: mul(e, add(rows, div(rows, o.topK))), bwdBytes: mul(e, add(mul(2, rows), div(rows, o.topK))), saved,
        });
        break;
      }
      case 'residual':
        x = o.dropout ? pointwise(o, 'dropout_add', { ...IO.dropout_add, extraBytes: outputsOf(o) }, saved) : pointwise(o, 'add', IO.add, saved);
        break;
      case 'branchSum': x = pointwise(o, undefined, IO.branch_sum, saved); break;
      case 'attention': {
        // Flash attention (Dao 2022/2023): 4*b*s^2*h/t forward FLOPs; backward recomputes the
        // scores, 2.5x the forward FLOPs (5 GEMM-like products instead of 2). Moves q, k, v, O.
        const faFlops = mul(4, tokens, s, dimExpr(z.qWidth));
        const faBytes = mul(e, tokens, add(mul(2, dimExpr(z.qWidth)), mul(2, dimExpr(z.kvWidth))));
        x = op({
          name: o.name, kind: 'attention', when: whenOf(o), elements: dimExpr(o.scores),
          fwdFlops: faFlops, bwdFlops: mul(2.5, faFlops), fwdBytes: faBytes, bwdBytes: mul(2, faBytes), saved,
        });
        const share = FLASH_KERNEL_SHARE[opts.flashAttentionKernel ?? 'flash2'];
        if (share !== 1) x.rateShare = share;
        break;
      }
      case 'embedding': {
        // Gather of b*s rows (+ position rows and their sum); backward scatter-adds the rows into
        // the tables' gradients.
        const learned = o.wpe !== undefined;
        const n = dimExpr(o.elements);
        const io = { readsF: learned ? 2 : 1, writesF: 1, readsB: 1, writesB: 2, flopsF: learned ? 1 : 0, flopsB: 1 };
        x = op({
          name: o.name, kind: 'elementwise', table: 'embedding', elements: n,
          fwdFlops: mul(io.flopsF, n), bwdFlops: mul(io.flopsB, n),
          fwdBytes: mul(e * (io.readsF + io.writesF), n), bwdBytes: mul(e * (io.readsB + io.writesB), n), saved,
        });
        break;
      }
      case 'crossEntropy': {
        // Bytes by the loss's mode (lossBytes). Each all-reduce moves one fp32 value per token.
        const logits = elements(o.inputs[0]);
        const io = lossBytes(opts.crossEntropy ?? 'fused', e);
        x = op({
          name: o.name, kind: 'elementwise', table: io.table, elements: logits,
          fwdFlops: mul(5, logits), bwdFlops: mul(2, logits),
          fwdBytes: mul(io.fwd, logits), bwdBytes: mul(io.bwd, logits), saved,
          comm: o.points.map((): OpComm => ({ phase: 'forward', collective: 'allReduce', bytes: mul(4, tokens), weight: num(1) })),
        });
        break;
      }
      case 'tpEntry': case 'tpExit': {
        const full = mul(e, dimExpr(o.elements));
        // fp8 linear layers gather their fp8 copies (1 byte an element; the reductions stay in e).
        const gathered = fp8 ? dimExpr(o.elements) : full;
        x = op({
          name: o.name, kind: 'elementwise', elements: num(0), fwdFlops: 0, bwdFlops: 0, fwdBytes: 0, bwdBytes: 0,
          saved, comm: o.kind === 'tpEntry' ? regionEntry(full, gathered, opts.sequenceParallelInput !== 'gathered') : regionExit(full, gathered),
        });
        break;
      }
    }
    if (eager) {
      const n = outputsOf(o);
      x = {
        ...x, table: x.table === undefined ? undefined : `${x.table}_eager`,
        fwdBytes: mul(eager.fwd(e), n), bwdBytes: mul(eager.bwd(e), n), saved: add(x.saved, mul(eager.keeps(e), n)),
      };
    }
    const l = launches.get(o.name);
    if (!l) throw new Error(`block op ${o.name} has no launch count`);
    ops.push({
      ...x, fwdKernels: eager ? eager.kernelsF : l.forward, bwdKernels: eager ? eager.kernelsB : l.backward, fwdAux: l.forwardAux, bwdAux: l.backwardAux,
      selective: o.selective === true, selectiveSaved, opRecompute: sac.recompute, opKept: sac.kept,
      opRecomputedWhole: opSac.flash.recomputed.has(o.name) && opSac.noFlash.recomputed.has(o.name),
    });
    if (o.kind === 'linear' && fp8 && opts.fp8) {
      ops.push(fp8CastOp(o.name, mul(dimExpr(o.rows), dimExpr(o.inner)), x.elements, e, opts.fp8));
    }
  }
  return ops;
}

/** Ops of one transformer layer of `model` on one TP rank, in forward order (core's layerBlock). */
export function layerOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  const block = layerBlock(model);
  return tpOverlapGemms(block, blockOpsToOps(block, opts));
}

/**
 * The GEMMs of a transformer layer that Megatron-Core's `--tp-comm-overlap` pipelines with the
 * sequence-parallel collectives (Transformer Engine userbuffers, on the layers Megatron-Core names
 * qkv, proj, fc1 and fc2: megatron/core/extensions/transformer_engine.py TELinear /
 * TELayerNormColumnParallelLinear), set as OpComm.gemms on the collectives of the layer's TP entries
 * and exits:
 * - at an entry, the column-parallel linears that read the entry's tensor (QKV, FC1): the forward
 *   all-gather is pipelined with their GEMM (TE ub_overlap_ag), the backward reduce-scatter of their
 *   input gradient with their weight-gradient GEMM (TE ub_bulk_wgrad, layernorm_linear.py: "Overlap
 *   dgrad reduce-scatter with wgrad compute");
 * - at an exit, the row-parallel linears whose output it reduces (the projection, FC2; through the
 *   branch sum of a parallel block): the forward reduce-scatter is pipelined with their GEMM (TE
 *   ub_overlap_rs), the backward all-gather of the output gradient with their input-gradient GEMM
 *   (TE ub_overlap_ag_dgrad, linear.py: "Overlap grad_output all-gather with dgrad compute").
 * A mixture of experts' expert GEMMs get none: Megatron-Core turns the userbuffer overlaps off for
 * expert layers (transformer_engine.py: `if is_expert: extra_kwargs["ub_overlap_ag"] = False`), so
 * their TP collectives and the all-to-alls stay exposed. The all-reduces of TP without sequence
 * parallelism are not pipelined by it (Megatron-LM asserts sequence parallelism with --tp-comm-overlap).
 * The entries' backward collectives, the all-reduce included, carry the same GEMMs for
 * TrainingSpec.tpBackwardOverlap (Megatron-LM's asynchronous backward collectives, no userbuffers):
 * the all-gather of the saved shard beside the input-gradient GEMM, the reduce-scatter or
 * all-reduce of the input gradient beside the weight-gradient GEMM.
 */
function tpOverlapGemms(block: BlockDescription, ops: Op[]): Op[] {
  const expertWeights = new Set(block.weights.filter((w) => w.experts !== undefined).map((w) => w.name));
  const linears = block.ops.filter((o): o is Extract<BlockOp, { kind: 'linear' }> =>
    o.kind === 'linear' && !o.weights.some((w) => expertWeights.has(w)));
  const producers = (tensor: string): string[] => {
    const lin = linears.filter((o) => o.outputs.includes(tensor)).map((o) => o.name);
    const sums = block.ops.filter((o) => o.kind === 'branchSum' && o.outputs.includes(tensor));
    return [...lin, ...sums.flatMap((o) => o.inputs.flatMap(producers))];
  };
  const byName = new Map(block.ops.map((o) => [o.name, o]));
  return ops.map((op) => {
    const b = byName.get(op.name);
    if (!b || (b.kind !== 'tpEntry' && b.kind !== 'tpExit')) return op;
    const gemms = b.kind === 'tpEntry'
      ? linears.filter((o) => o.inputs.includes(b.inputs[0])).map((o) => o.name)
      : producers(b.inputs[0]);
    if (gemms.length === 0) return op;
    return { ...op, comm: op.comm.map((c) => (c.collective === 'allGather' || c.collective === 'reduceScatter' || c.at === 'entry' ? { ...c, gemms } : c)) };
  });
}

/** Ops of the first stage's pre-layers: vocab-parallel token embedding (+ learned positions, dropout) (core's embeddingBlock). */
export function embeddingOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  return blockOpsToOps(embeddingBlock(model), opts);
}

/** Ops of the last stage's post-layers: final norm, LM head (column-parallel over the vocabulary) and loss (core's headBlock). */
export function headOps(model: ModelSpec, opts: OpGraphOptions): Op[] {
  return blockOpsToOps(headBlock(model), opts);
}

/** 1 with TP (t > 1): an fp32-logits loss then runs under DTensor's loss_parallel (headTransientBytes). */
const LOSS_PARALLEL = step(sub(t, 1));

/**
 * HBM bytes per logit of a loss over an fp32 copy of the logits (training spec crossEntropy
 * 'fp32-logits'), each kernel once over its tensors (re-reads of a row served from L2 not counted).
 * Without TP, ATen's kernels: forward the copy (e + 4) and log-softmax (4 + 4); backward the
 * nll-loss gradient's zeroed tensor (4), the log-softmax backward (reads the gradient and the kept
 * output, writes the input gradient: 12) and the cast back (4 + e). With TP, loss_parallel's
 * decomposition (headTransientBytes): forward the copy, amax (4), x - max (8), exp (8) and its sum
 * (4), shifted - log(sum) (8); backward zeros (4), exp (8), the add (12), the multiply by the
 * incoming gradient (8) and the cast back. No profile table: the profiler measures the executor's
 * fused kernel, not PyTorch's autograd loss.
 */
function fp32LogitsLossBytes(e: number): { table: undefined; fwd: Expr; bwd: Expr } {
  return {
    table: undefined,
    fwd: choose(LOSS_PARALLEL, (e + 4) + 4 + 8 + 8 + 4 + 8, (e + 4) + 8),
    bwd: choose(LOSS_PARALLEL, 4 + 8 + 12 + 8 + (4 + e), 4 + 12 + (4 + e)),
  };
}

/**
 * HBM bytes per logit of the loss (training spec crossEntropy) and the profile table that may time
 * it. fused and compute-dtype (the executor's kernel, Megatron-LM's): reads the logits, writes the
 * fp32 softmax and loss; backward reads the softmax and writes the logits' gradient. compiled
 * (Inductor's fused kernels): reads the logits in forward; reads them and writes their gradient in
 * backward. fp32-logits: fp32LogitsLossBytes.
 */
function lossBytes(mode: TrainingSpec['crossEntropy'], e: number): { table: string | undefined; fwd: Expr; bwd: Expr } {
  if (mode === 'fp32-logits') return fp32LogitsLossBytes(e);
  if (mode === 'compiled') return { table: undefined, fwd: num(e), bwd: num(2 * e) };
  return { table: 'cross_entropy', fwd: num(e + 4 + 4), bwd: num(4 + e) };
}

/**
 * Transient bytes of the loss on the last stage. Fused (training spec crossEntropy): fp16 logits +
 * their fp32 softmax in forward (6 bytes per logit with 2-byte activations), fp32 softmax + the fp16
 * logits' gradient in backward. fp32-logits (`F.cross_entropy(logits.float(), labels)`): the logits,
 * their fp32 copy and its fp32 log-softmax in forward (the copy is freed after it: log-softmax keeps
 * its output, not its input), the kept log-softmax, the loss's gradient of it and the input gradient,
 * all fp32, in backward (12 bytes per logit; the compute-dtype cast of the last comes after the first
 * two are freed). compute-dtype (Megatron-LM's --fp16-lm-cross-entropy): the logits and their softmax
 * in the compute dtype in forward (the logits are freed after it: the loss keeps the softmax), the
 * softmax turned into the logits' gradient in place in backward.
 *
 * fp32-logits with TP (t > 1) runs under DTensor's loss_parallel over vocabulary-sharded logits
 * (torchtitan enables it whenever TP is on: train.py get_train_context, parallel_dims
 * loss_parallel_enabled at 9dec370), whose handlers (torch/distributed/tensor/parallel/loss.py)
 * compute the log-softmax decomposed, each step its own fp32 tensor: shifted = x - max, exp(shifted)
 * summed, result = shifted - log(sum), so the forward holds the logits, their copy, `shifted` and one
 * more (4 bytes a logit beyond the fused log-softmax); and the nll-loss backward computes the
 * log-softmax's gradient with it, `(grad_input + exp(x)) * grad_output` beside the zeroed grad_input
 * and the kept log-softmax: four fp32 tensors a logit, 16 bytes where ATen's nll_loss_backward +
 * _log_softmax_backward_data hold three. (loss.py as recalled: the PyTorch snapshot is over the
 * fetch limit and could not be re-read at the benchmark's torch 1963fc8.)
 * compiled (the same loss under torch.compile, TrainingSpec.crossEntropy): the logits in forward (the
 * fused kernels write per-token values only), the kept logits and their compute-dtype gradient in
 * backward, with or without TP (Inductor fuses loss_parallel's steps between its two all-reduces).
 */
export function headTransientBytes(opts: OpGraphOptions): { forward: Expr; backward: Expr } {
  const logits = mul(T, div(V, t));
  if (opts.crossEntropy === 'compiled') return { forward: mul(opts.actBytes, logits), backward: mul(2 * opts.actBytes, logits) };
  if (opts.crossEntropy === 'fp32-logits') {
    return { forward: mul(add(opts.actBytes + 8, mul(4, LOSS_PARALLEL)), logits), backward: mul(add(12, mul(4, LOSS_PARALLEL)), logits) };
  }
  if (opts.crossEntropy === 'compute-dtype') return { forward: mul(2 * opts.actBytes, logits), backward: mul(opts.actBytes, logits) };
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
  'layernorm', 'rmsnorm', 'dropout_add', 'add', 'softmax', 'dropout', 'rope', 'gelu', 'swiglu', 'squared_relu', 'embedding', 'cross_entropy',
  'moe_router', 'moe_permute', 'moe_sum',
] as const;

/** Sum of an op field over ops, each weighted by its `when`. */
export function sumOps(ops: readonly Op[], field: (o: Op) => Expr): Expr {
  return add(...ops.map((o) => mul(o.when, field(o))));
}
