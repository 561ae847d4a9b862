// Sizes of one layer on one tensor-parallel rank, checked against the model and tp.
import { type ModelSpec, headDim } from '@mist/core';

export interface LayerDims {
  hidden: number;
  headDim: number;
  /** Query heads on this rank. */
  heads: number;
  /** Key/value heads on this rank. */
  kvHeads: number;
  /** MLP hidden width on this rank. */
  ffn: number;
}

export function layerDims(model: ModelSpec, tp: number): LayerDims {
  if (!Number.isInteger(tp) || tp < 1) throw new Error(`tp must be a positive integer, got ${tp}`);
  if (model.heads % tp !== 0) throw new Error(`tp=${tp} must divide the ${model.heads} attention heads of ${model.name}`);
  if (model.kvHeads % tp !== 0) {
    // Megatron replicates the key/value heads when tp > kvHeads; their gradients then need an extra
    // reduction over the ranks sharing a head, which this module does not do yet.
    throw new Error(`not implemented: tp=${tp} larger than the ${model.kvHeads} key/value heads of ${model.name} (replicated KV heads)`);
  }
  if (model.ffnHidden % tp !== 0) throw new Error(`tp=${tp} must divide ffnHidden ${model.ffnHidden} of ${model.name}`);
  return {
    hidden: model.hidden,
    headDim: headDim(model),
    heads: model.heads / tp,
    kvHeads: model.kvHeads / tp,
    ffn: model.ffnHidden / tp,
  };
}

/** Norm epsilon: 1e-5 for LayerNorm (GPT-2) and RMSNorm (Llama 2 uses 1e-5 as well). */
export const NORM_EPS = 1e-5;
/** RoPE base (Su et al. 2021; Llama 2). */
export const ROPE_THETA = 10000;
/** Standard deviation of the weight initialisation (GPT-2, Radford et al. 2019). */
export const INIT_STD = 0.02;
