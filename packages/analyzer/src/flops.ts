// FLOPs of a training iteration: the Megatron-LM model-FLOPs formula for GPT and the op graph's
// count for every family.
import { type ModelSpec, type TrainingSpec } from '@mist/core';
import { add, evaluate, type Expr, mul, substitute } from './expr';
import { embeddingOps, headOps, layerOps, type Op, sumOps } from './op-graph';
import { modelBindings } from './stage-model';

export interface FlopsOptions {
  /** Count a second forward of every layer (full activation recomputation), as Megatron-LM's 96 does. */
  fullRecompute?: boolean;
}

/**
 * Model FLOPs of one iteration (global batch B sequences of length s).
 * GPT: Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
 * Megatron-LM", Sec. 5.1: forward = 24Bslh^2 (1 + s/(6h)) + 2BshV, backward twice the forward, so
 * 72Bslh^2 (1 + s/(6h) + V/(12lh)); with full recomputation one more forward of the layers:
 * 96Bslh^2 (1 + s/(6h) + V/(16lh)).
 * Llama / Falcon: the matmul FLOPs of their op graphs (projections, attention products, LM head)
 * counted the same way (backward = 2 x forward, + a forward of the layers with recompute).
 * MFU uses the count without recompute (recomputation is not useful model work).
 */
export function modelFlopsPerIteration(model: ModelSpec, training: TrainingSpec, opts: FlopsOptions = {}): number {
  const B = training.globalBatch;
  const s = training.seqLen;
  const l = model.layers;
  const h = model.hidden;
  const V = model.vocab;
  if (model.family === 'gpt') {
    const layers = 24 * B * s * l * h * h * (1 + s / (6 * h));
    const logits = 2 * B * s * h * V;
    return 3 * (layers + logits) + (opts.fullRecompute ? layers : 0);
  }
  const env = flopsEnv(model, training, B);
  const isMatmul = (o: Op): boolean => o.kind === 'matmul';
  // Non-flash attention graph: its QK^T and AV are the attention's model FLOPs.
  const fwd = (ops: Op[]): number => evaluate(substitute(sumOps(ops.filter(isMatmul), (o) => o.fwdFlops), env), {});
  const graphOpts = { actBytes: 2 };
  const layerF = fwd(layerOps(model, graphOpts));
  const headF = fwd(headOps(model, graphOpts));
  return 3 * (l * layerF + headF) + (opts.fullRecompute ? l * layerF : 0);
}

function flopsEnv(model: ModelSpec, training: TrainingSpec, b: number, flash = false): Record<string, number> {
  return { ...modelBindings(model, { ...training, flashAttention: flash }), b, t: 1, sp: 0 };
}

/**
 * Every FLOP the op graph executes in one iteration on the whole model (all ops, element-wise too):
 * forward + backward of every layer, the embedding and the head, plus a forward of `ckptLayers`
 * layers per micro-batch. Used to check the op graph against the published formula.
 */
export function opGraphFlopsPerIteration(model: ModelSpec, training: TrainingSpec, opts: { ckptLayers?: number } = {}): number {
  const env = flopsEnv(model, training, training.globalBatch, training.flashAttention);
  const graphOpts = { actBytes: 2 };
  const both = (ops: Op[]): Expr => add(sumOps(ops, (o) => o.fwdFlops), sumOps(ops, (o) => o.bwdFlops));
  const layer = layerOps(model, graphOpts);
  const total = add(
    mul(model.layers, both(layer)), both(embeddingOps(model, graphOpts)), both(headOps(model, graphOpts)),
    mul(opts.ckptLayers ?? 0, sumOps(layer, (o) => o.fwdFlops)),
  );
  return evaluate(substitute(total, env), {});
}
