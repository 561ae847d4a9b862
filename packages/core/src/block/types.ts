// The data a block description is made of: named tensors with symbolic sizes, the weights the block
// declares (full shapes, how tensor parallelism shards them), and ops in forward order reading and
// writing tensors by name. The analyzer costs it; the executor runs it.
import type { Dim } from './dim';

/** Bytes per element: 'act' the compute dtype's, 'fp32' 4, 'mask' 1 (a dropout mask), 'index' 4 (token ids, targets). */
export type BlockDtype = 'act' | 'fp32' | 'mask' | 'index';

/** A tensor of one micro-batch on one tensor-parallel rank: rows x width elements. */
export interface BlockTensor {
  rows: Dim;
  width: Dim;
  dtype: BlockDtype;
}

/** 'normal': N(0, std); 'outputNormal': std / sqrt(2 * layers) (GPT-2's output projections); 'ones', 'zeros'. */
export type WeightInit = 'normal' | 'outputNormal' | 'ones' | 'zeros';

/** How tensor parallelism splits a weight: replicated, by output columns, or by input rows. */
export type WeightShard = 'none' | 'cols' | 'rows';

export interface BlockWeight {
  /** Name inside the block (e.g. `attn.wq`); the owner of a layer adds its prefix (`layers.3.`). */
  name: string;
  /** Full (unsharded) shape; matrices are [in, out]. */
  shape: readonly [Dim] | readonly [Dim, Dim];
  shard: WeightShard;
  init: WeightInit;
  /** AdamW decays matrices, not norms, biases or position tables. */
  decay: boolean;
  /**
   * The head's tied token table: the embedding's own tensor, declared by the head only on a stage
   * without the embedding (where it keeps a copy).
   */
  tied?: boolean;
  /**
   * Mixture of experts: the weight is `experts` stacked matrices (or vectors) of `shape`, one per
   * expert; expert parallelism gives each of ep ranks experts/ep of them (tensor parallelism then
   * shards each as `shard` says). Absent: one.
   */
  experts?: number;
}

/** Tensor-parallel hook points: names of the collectives a block's ops call. */
export type BlockTpPoint =
  | 'attn-out' | 'mlp-out' | 'parallel-out' | 'attn-in-grad' | 'mlp-in-grad' | 'parallel-in-grad'
  | 'embed-out' | 'head-in-grad' | 'loss-max' | 'loss-sum'
  /**
   * With sequence parallelism: the sum over the tensor-parallel ranks of the gradients of the
   * replicated weights (norms, row-parallel output biases) that each rank took over its own tokens
   * (Korthikanti et al. 2022, Sec. 4.2.2; Megatron-LM's allreduce of sequence-parallel grads).
   */
  | 'sp-grads'
  /** With sequence parallelism: the all-gather of a pipeline stage's output tokens (and of its input gradient) for the send. */
  | 'stage-boundary';

interface OpBase {
  /** Unique in the block; the analyzer's op name. */
  name: string;
  /** Runs only with (flash) or without (noFlash) flash attention; default always. */
  when?: 'flash' | 'noFlash';
  inputs: readonly string[];
  outputs: readonly string[];
  /** Tensors this op keeps for its backward (a tensor kept by several ops is kept once). */
  saves: readonly string[];
  /**
   * Part of the selective-recompute set (Korthikanti et al. 2022, Sec. 5: the attention core, QK^T,
   * softmax, softmax dropout and attention over V): with selective recompute the tensors these ops
   * produce and keep are dropped after forward and the ops run again in backward (selective.ts).
   */
  selective?: boolean;
}

/** LayerNorm or RMSNorm over rows of width h: outputs[0] = norm(inputs[0]). */
export interface NormOp extends OpBase {
  kind: 'norm';
  norm: 'layernorm' | 'rmsnorm';
  gamma: string;
  beta?: string;
}

/**
 * outputs[i] = inputs[0] x weights[i] (+ biases[i]): one GEMM per output, [rows, inner] x
 * [inner, cols[i]]. `biasAt: 'reduce'` adds the biases after the output's tensor-parallel sum
 * (row-parallel projections; the tpExit op names them), 'gemm' right after the GEMM.
 */
export interface LinearOp extends OpBase {
  kind: 'linear';
  weights: readonly string[];
  /** The weights are stored [out, in] (the LM head and the token table it may share), not [in, out]. */
  transposed?: boolean;
  biases: readonly string[];
  biasAt: 'gemm' | 'reduce';
  rows: Dim;
  inner: Dim;
  cols: readonly Dim[];
}

/** Rotary positions applied in place to each input (outputs = inputs), with `heads[i]` heads each. */
export interface RopeOp extends OpBase {
  kind: 'rope';
  heads: readonly Dim[];
}

/** Fused (flash) attention: inputs q, k, v; outputs the attention output and the log-sum-exp. */
export interface AttentionOp extends OpBase {
  kind: 'attention';
  /** Elements of the s x s scores it never stores: b * heads per rank * s * s. */
  scores: Dim;
}

/** The unfused attention's products: scores = q k^T per head, values = probabilities x v. */
export interface AttentionGemmOp extends OpBase {
  kind: 'scores' | 'values';
  rows: Dim;
  inner: Dim;
  cols: Dim;
}

/** Element-wise ops of one input tensor (softmax over the scores, attention dropout with its mask). */
export interface PointwiseOp extends OpBase {
  kind: 'softmax' | 'dropout';
}

/** gelu(inputs[0]), silu(inputs[0]) * inputs[1], or relu(inputs[0])^2 ('squared-relu'). */
export interface ActivationOp extends OpBase {
  kind: 'activation';
  fn: 'gelu' | 'swiglu' | 'squared-relu';
}

/**
 * A mixture-of-experts router's gate: per token, a softmax over the top `topK` of the `experts`
 * logits in inputs[0]; outputs the topK probabilities (outputs[0]) and the experts' indices
 * (outputs[1], no gradient).
 */
export interface RouterOp extends OpBase {
  kind: 'router';
  experts: number;
  topK: number;
}

/**
 * Expert parallelism's token exchange (Megatron-Core's MoEAlltoAllTokenDispatcher): 'dispatch'
 * permutes each token of inputs[0] into `topK` copies grouped by the expert inputs[1] chose and
 * sends each group to the rank holding that expert; 'combine' sends the experts' outputs back and
 * restores the token order. An all-to-all over the ep ranks of `elements` (the rank's send buffer)
 * each way: forward, and in backward for the gradient.
 */
export interface AllToAllOp extends OpBase {
  kind: 'allToAll';
  direction: 'dispatch' | 'combine';
  elements: Dim;
}

/** outputs[0][token] = sum over its topK copies of inputs[1] (router probability) * inputs[0] (expert output row). */
export interface ExpertSumOp extends OpBase {
  kind: 'expertSum';
  topK: number;
}

/** outputs[0] = inputs[0] (the residual stream) + inputs[1] (a branch), with dropout on the branch when `dropout`. */
export interface ResidualOp extends OpBase {
  kind: 'residual';
  dropout: boolean;
}

/** outputs[0] = inputs[0] + inputs[1]: the parallel block's two branches before their one reduction. */
export interface BranchSumOp extends OpBase {
  kind: 'branchSum';
}

/**
 * Entry of a tensor-parallel region at inputs[0] (Megatron-LM's "f"; with SP an all-gather): the
 * backward sums the input gradient at `point`. `elements` is the full (unsharded) tensor.
 */
export interface TpEntryOp extends OpBase {
  kind: 'tpEntry';
  point: BlockTpPoint;
  elements: Dim;
}

/** Exit of a region at inputs[0] ("g"; with SP a reduce-scatter): the forward sums it at `point`, then adds `biases`. */
export interface TpExitOp extends OpBase {
  kind: 'tpExit';
  point: BlockTpPoint;
  elements: Dim;
  biases: readonly string[];
}

/**
 * Token lookup: outputs[0] = wte[inputs[0]] (+ wpe[position]). Vocab-parallel: each rank holds
 * V/t rows and writes zeros for the other tokens; the tpExit that follows sums the ranks' rows.
 * `elements` is the full output (b * s * h).
 */
export interface EmbeddingOp extends OpBase {
  kind: 'embedding';
  wte: string;
  wpe?: string;
  elements: Dim;
}

/**
 * Softmax cross-entropy of inputs[0] (logits, a vocabulary shard per rank) against inputs[1]
 * (targets); the forward also writes the logits' gradient. Vocab-parallel (Megatron-LM): the
 * per-token max, sum of exp and target logit are summed over the ranks at `points`, one fp32
 * value per token each.
 */
export interface CrossEntropyOp extends OpBase {
  kind: 'crossEntropy';
  points: readonly BlockTpPoint[];
}

export type BlockOp =
  | EmbeddingOp | CrossEntropyOp
  | NormOp | LinearOp | RopeOp | AttentionOp | AttentionGemmOp | PointwiseOp | ActivationOp | ResidualOp | BranchSumOp
  | TpEntryOp | TpExitOp | RouterOp | AllToAllOp | ExpertSumOp;

export type BlockOpKind = BlockOp['kind'];

/** Sizes the ops are written in, shared by the analyzer's cost formulas. */
export interface BlockSizes {
  /** Tokens per micro-batch: b * s. */
  tokens: Dim;
  /** Tokens a rank holds in the sequence-parallel regions: b * s / t with SP, b * s without. */
  tokensSp: Dim;
  headDim: Dim;
  headsPerRank: Dim;
  /** k / t, or 1 (replicated) when t > k. */
  kvHeadsPerRank: Dim;
  /** Query width h / t and key (or value) width headDim * kvHeadsPerRank on a rank. */
  qWidth: Dim;
  kvWidth: Dim;
  ffnPerRank: Dim;
}

export interface BlockDescription {
  sizes: BlockSizes;
  /** Input and output tensor of the block. */
  input: string;
  output: string;
  /** Data the block reads besides its input, with no gradient (the head's targets). */
  data?: readonly string[];
  tensors: Readonly<Record<string, BlockTensor>>;
  /** In declaration order (the order of the parameter vector). */
  weights: readonly BlockWeight[];
  /** In forward order. */
  ops: readonly BlockOp[];
}
