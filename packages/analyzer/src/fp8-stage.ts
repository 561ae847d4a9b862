// What fp8 linear layers add to a pipeline stage beyond its ops (fp8-ops.ts, op-graph.ts): the fp8
// copies of the weights, the scaling state, the casts of the weights and, with delayed scaling, the
// amax bookkeeping of every micro-batch. Facts from Transformer Engine (TE 2.x sources):
// - Weights: Linear quantizes its weight into an fp8 workspace, row-wise for the forward GEMM and
//   column-wise (its transpose) for the dgrad GEMM: 2 bytes per weight element. With
//   `is_first_microbatch` (which Megatron-LM passes) the workspace is cached and refreshed on the
//   first micro-batch of an iteration only (module/linear.py, quantize_weight update_workspace).
//   Weights gathered (ZeRO-3) or fetched (offload) every micro-batch cannot stay cached: they are
//   cast again each micro-batch and only the layers in flight (two, as the gather buffer) hold copies.
// - Scaling state per linear module (num_gemms = 1): 3 fp8 tensors in forward (input, weight,
//   output) and 2 in backward (grad output, grad input) (module/base.py, num_fp8_tensors); delayed
//   scaling keeps an fp32 amax history of amax_history_len = 1024 steps (recipe DelayedScaling
//   default) and a scale per tensor; current scaling a scale and an amax per tensor.
// - Delayed scaling reduces the amaxes over the data- and tensor-parallel group (reduce_amax = True)
//   and updates the scales in one fused kernel, in forward and again in backward of every
//   micro-batch: two small all-reduces (latency-bound) and two launches per micro-batch.
// The embedding and the LM head stay in the compute dtype (not TE modules in Megatron-LM).
import { FP8_AMAX_HISTORY_LEN, type Fp8Recipe, fp8PeakFlops, type HardwareProfile, layerBlock, type ModelSpec, SpecError, type TrainingSpec } from '@mist/core';
import { add, choose, div, type Expr, max, min, mul, num, step, sub } from './expr';
import { type CostModel } from './hardware-cost';
import { dimExpr } from './op-graph';
import { S } from './symbols';

/** fp8 tensors per linear module: 3 in forward (input, weight, output), 2 in backward (TE module/base.py). */
const FP8_TENSORS_PER_LINEAR = 5;
/** Bytes of the fp8 weight workspace per weight element: row-wise + column-wise (transpose) copies. */
const FP8_WEIGHT_COPY_BYTES = 2;

/**
 * Refuses fp8 linear layers where they cannot run: on a GPU without fp8 tensor cores (named), or
 * with fp32 activations (TE's fp8 GEMMs take bf16/fp16 activations). Throws a SpecError on training.fp8.
 */
export function checkFp8(training: TrainingSpec, profile: HardwareProfile): void {
  if (training.fp8ParamGather && (training.fp8 ?? 'none') === 'none') {
    throw new SpecError('training spec', [{
      field: 'fp8ParamGather', value: true, message: 'fp8ParamGather keeps fp8 linear layers\' weights in fp8; fp8 is none (allowed with it: delayed, current)',
    }]);
  }
  if ((training.fp8 ?? 'none') === 'none') return;
  const gpu = profile.cluster.gpu;
  if (fp8PeakFlops(gpu) === null) {
    throw new SpecError('training spec', [{
      field: 'fp8', value: training.fp8,
      message: `fp8 linear layers need fp8 tensor cores; the cluster's GPU ${gpu.name} has none (allowed on it: none)`,
    }]);
  }
  if (training.computeDtype === 'fp32') {
    throw new SpecError('training spec', [{
      field: 'fp8', value: training.fp8, message: 'fp8 linear layers run with bf16 or fp16 compute; computeDtype is fp32 (allowed with it: none)',
    }]);
  }
}

export interface Fp8StageTerms {
  /** Device bytes of the fp8 weight copies and the scaling state of the stage's layers. */
  memory: Expr;
  /**
   * Bytes one layer's compute copy of its weights is smaller with training.fp8ParamGather (the dense
   * fp8 weights at 1 byte instead of the parameter dtype's); 0 without it. The stage model takes it off
   * the resident weights, the gather buffers and the gathers.
   */
  paramGatherSavingPerLayer: Expr;
  /** Seconds added to every micro-batch (amax bookkeeping; weight casts when weights are not resident). */
  perMicroBatch: Expr;
  /** Seconds added to the first micro-batch only (the weight casts cached for the iteration). */
  firstOnly: Expr;
}

const NONE: Fp8StageTerms = { memory: num(0), paramGatherSavingPerLayer: num(0), perMicroBatch: num(0), firstOnly: num(0) };

/** fp8 terms of a stage of L layers (strategy symbols of symbols.ts); all zero with fp8 'none'. */
export function fp8StageTerms(model: ModelSpec, training: TrainingSpec, cost: CostModel, paramBytes: number): Fp8StageTerms {
  const recipe: Fp8Recipe = training.fp8 ?? 'none';
  if (recipe === 'none') return NONE;
  const { L, z3, ow, dp, t, multiNode } = S;
  const block = layerBlock(model);
  const linears = block.ops.flatMap((o) => (o.kind === 'linear' ? [o] : []));
  // Weight elements of one layer's linear ops on a TP rank; a mixture of experts' stacked expert
  // weights count experts / ep copies (the experts the rank holds).
  const experts = new Map(block.weights.map((w) => [w.name, w.experts ?? 1]));
  const copiesOf = (o: (typeof linears)[number]): Expr => {
    const n = experts.get(o.weights[0]) ?? 1;
    return n > 1 ? div(n, max(1, S.ep)) : num(1);
  };
  const weightsOf = (o: (typeof linears)[number]): Expr => mul(dimExpr(o.inner), add(...o.cols.map(dimExpr)));
  const W = add(...linears.map((o) => mul(copiesOf(o), weightsOf(o))));
  // fp8ParamGather: the dense linears' compute copies are fp8 (the experts' are not counted).
  const gatherFp8 = training.fp8ParamGather === true;
  const denseW = add(...linears.filter((o) => (experts.get(o.weights[0]) ?? 1) === 1).map(weightsOf));
  const paramGatherSavingPerLayer = gatherFp8 ? mul(paramBytes - 1, denseW) : num(0);
  const tensors = linears.length * FP8_TENSORS_PER_LINEAR;
  const metaPerLayer = tensors * 4 * (recipe === 'delayed' ? FP8_AMAX_HISTORY_LEN + 1 : 2);
  // 1 when the weights are not resident whole (ZeRO-3 gathers them, offload fetches them) per micro-batch.
  const perMb = step(add(z3, ow));
  // With fp8ParamGather the row-wise copy is the compute weight itself (counted by the stage model at
  // 1 byte): the workspace holds the transpose only.
  const copyBytes = gatherFp8 ? sub(mul(FP8_WEIGHT_COPY_BYTES, W), denseW) : mul(FP8_WEIGHT_COPY_BYTES, W);
  const copies = mul(copyBytes, choose(perMb, min(2, L), L));
  const memory = add(copies, mul(metaPerLayer, L));
  // A layer's weight casts: read the weights, write both fp8 copies (current scaling: read them once
  // more for the amax), a cast kernel (and an amax kernel) per linear module. With fp8ParamGather the
  // cast runs on the shard before the gather (or once after the step) and the transpose is made from
  // the fp8 weight: read 1, write 1 byte an element.
  const current = recipe === 'current';
  const castPerElement = paramBytes + FP8_WEIGHT_COPY_BYTES + (current ? paramBytes : 0);
  const castBytes = gatherFp8 ? add(mul(2, denseW), mul(castPerElement, sub(W, denseW))) : mul(castPerElement, W);
  const castLayer = add(cost.memoryTime(castBytes), linears.length * (current ? 2 : 1) * cost.rates.kernelLaunch);
  const weightCasts = mul(L, castLayer);
  let amax: Expr = num(0);
  if (recipe === 'delayed') {
    const bytes = mul(L, tensors * 4);
    // Megatron-Core reduces the amaxes over the tensor- and data-parallel group with context
    // parallelism (fp8_utils.py: get_amax_reduction_group(with_context_parallel=True)).
    const group = mul(dp, S.cp, t);
    amax = mul(2, add(cost.rates.kernelLaunch, cost.collective('allReduce', bytes, group, { interWeight: multiNode })));
  }
  return {
    memory,
    paramGatherSavingPerLayer,
    perMicroBatch: add(mul(perMb, weightCasts), amax),
    firstOnly: mul(sub(1, perMb), weightCasts),
  };
}
