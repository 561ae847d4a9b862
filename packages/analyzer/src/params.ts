// Parameters held by one TP rank, as expressions of h, a, k, f, V and t. With t = 1 they equal
// core's layerParams / embeddingParams / headParams (tested; a mixture of experts' layer is
// layerParamsPerRank + expertParamsPerRank at ep = 1). Megatron-LM sharding: QKV, fc1 and
// the LM head are column-parallel (weights and biases split), proj and fc2 row-parallel (weights
// split, bias replicated); norms and learned positions are replicated; key/value heads are
// replicated when t exceeds their number.
import { mlpMatrices, type ModelSpec } from '@mist/core';
import { add, div, type Expr, max, mul, num } from './expr';
import { M, S } from './symbols';

const { h, a, k, f, V } = M;
const { t } = S;

/** One MLP of width `ffn` on a TP rank: its matrices split by t, the output bias replicated. */
function mlpPerRank(m: ModelSpec, ffn: Expr): Expr {
  const bias = m.bias ? 1 : 0;
  const mats = mlpMatrices(m);
  return add(mul(mats, h, div(ffn, t)), mul(bias, add(mul(mats - 1, div(ffn, t)), h)));
}

/**
 * A layer's parameters on a TP rank other than its experts: attention, norms, and the dense MLP or,
 * with mixture of experts, the router (replicated over TP, as Megatron-Core's TopKRouter weight).
 */
export function layerParamsPerRank(m: ModelSpec): Expr {
  const bias = m.bias ? 1 : 0;
  const kvWidth = mul(div(h, a), max(div(k, t), 1)); // key (or value) columns per rank
  const qkvCols = add(div(h, t), mul(2, kvWidth));
  const attention = add(mul(h, qkvCols), mul(bias, qkvCols), mul(div(h, t), h), bias === 1 ? h : 0);
  const mlp = m.moe ? mul(h, m.moe.experts) : mlpPerRank(m, f);
  const normParams = m.norm === 'layernorm' ? mul(2, h) : h;
  const norms = m.parallelAttention && !m.parallelAttentionTwoNorms ? 1 : 2;
  return add(attention, mlp, mul(norms, normParams));
}

/**
 * A layer's expert parameters on one rank: experts / ep of them (expert parallelism), each split by
 * t (expert tensor parallelism = tp, Megatron-Core's default expert_tensor_parallel_size); 0 for a
 * dense model. `ep` is the stage's expert-parallel degree.
 */
export function expertParamsPerRank(m: ModelSpec, ep: Expr): Expr {
  if (!m.moe) return num(0);
  return mul(div(m.moe.experts, ep), mlpPerRank(m, m.moe.ffnHidden !== undefined ? num(m.moe.ffnHidden) : f));
}

/** Word embedding (vocab-parallel) and learned position table (replicated). */
export function embeddingParamsPerRank(m: ModelSpec): Expr {
  return add(mul(V, div(h, t)), m.positional === 'learned' ? mul(m.maxSeq, h) : 0);
}

/** Final norm. */
export function finalNormParams(m: ModelSpec): Expr {
  return m.norm === 'layernorm' ? mul(2, h) : h;
}

/** LM head weights per rank (with tied embeddings the last stage of a pipeline keeps its own copy). */
export function lmHeadParamsPerRank(): Expr {
  return mul(V, div(h, t));
}
