// Parameters held by one TP rank, as expressions of h, a, k, f, V and t. With t = 1 they equal
// core's layerParams / embeddingParams / headParams (tested). Megatron-LM sharding: QKV, fc1 and
// the LM head are column-parallel (weights and biases split), proj and fc2 row-parallel (weights
// split, bias replicated); norms and learned positions are replicated; key/value heads are
// replicated when t exceeds their number.
import { type ModelSpec } from '@mist/core';
import { add, div, type Expr, max, mul } from './expr';
import { M, S } from './symbols';

const { h, a, k, f, V } = M;
const { t } = S;

export function layerParamsPerRank(m: ModelSpec): Expr {
  const bias = m.bias ? 1 : 0;
  const kvWidth = mul(div(h, a), max(div(k, t), 1)); // key (or value) columns per rank
  const qkvCols = add(div(h, t), mul(2, kvWidth));
  const attention = add(mul(h, qkvCols), mul(bias, qkvCols), mul(div(h, t), h), bias === 1 ? h : 0);
  const mats = m.activation === 'swiglu' ? 3 : 2;
  const mlp = add(mul(mats, h, div(f, t)), mul(bias, add(mul(mats - 1, div(f, t)), h)));
  const normParams = m.norm === 'layernorm' ? mul(2, h) : h;
  const norms = m.parallelAttention && !m.parallelAttentionTwoNorms ? 1 : 2;
  return add(attention, mlp, mul(norms, normParams));
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
