// The parameter declarations of a block description's weights: names, full shapes, tensor-parallel
// shard axis, initialisation and weight decay, as the store and the optimizer take them.
import { type BlockDescription, type BlockWeight, type DimEnv, evalDim, type ModelSpec } from '@mist/core';
import { INIT_STD } from './dims';
import type { ParamDecl, ParamInit } from './params';

/** Sizes of the full (unsharded) weights: the model's dimensions, tp = 1. */
function weightEnv(model: ModelSpec): DimEnv {
  return { b: 1, s: 1, h: model.hidden, a: model.heads, k: model.kvHeads, f: model.ffnHidden, V: model.vocab, t: 1, sp: 0, fa: 1 };
}

function initOf(w: BlockWeight, model: ModelSpec): ParamInit {
  switch (w.init) {
    case 'normal': return { kind: 'normal', std: INIT_STD };
    // Output projections are scaled by 1/sqrt(2 * layers) (GPT-2, Radford et al. 2019, section 2.3).
    case 'outputNormal': return { kind: 'normal', std: INIT_STD / Math.sqrt(2 * model.layers) };
    case 'ones': return { kind: 'const', value: 1 };
    case 'zeros': return { kind: 'const', value: 0 };
  }
}

/**
 * Parameters of a block's weights (full shapes; the store slices them per rank), named
 * `<prefix>.<name>` (a layer's) or by their own name without a prefix (the embedding's, the head's).
 */
export function blockParamDecls(model: ModelSpec, block: BlockDescription, prefix?: string, weights: readonly BlockWeight[] = block.weights): ParamDecl[] {
  const env = weightEnv(model);
  return weights.map((w): ParamDecl => ({
    name: prefix ? `${prefix}.${w.name}` : w.name,
    shape: w.shape.length === 1 ? [evalDim(w.shape[0], env)] : [evalDim(w.shape[0], env), evalDim(w.shape[1], env)],
    shard: w.shard,
    init: initOf(w, model),
    weightDecay: w.decay,
  }));
}

