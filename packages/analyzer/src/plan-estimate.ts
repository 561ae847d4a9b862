// Estimate of a whole plan: per-stage estimates combined into the 1F1B iteration time.
import { deviceMemoryFootprint, type HardwareProfile, meshSize, type Plan, planDevices, planRuleIssues, quantile, SpecError, stageLayerCount, type TrainingSpec } from '@mist/core';
import { type CompiledStageModel, compileStageModel, type StageEstimate, type StageQuery } from './compile';
import { modelFlopsPerIteration } from './flops';
import { stagePosition } from './layout';
import { type AnalyzerContext } from './stage-model';

export interface PlanStageEstimate extends StageEstimate {
  index: number;
  /** Inclusive range of the stage's transformer layers. */
  layers: [number, number];
  devices: number;
  /**
   * The stage's per-GPU peak as a measurement reads it (core's deviceMemoryFootprint of
   * peakMemoryBytes with the profile's fixed terms): `allocatedBytes` (torch.cuda.max_memory_allocated:
   * tensors and library workspaces), `reservedBytes` (torch.cuda.max_memory_reserved: with the
   * caching allocator's rounding and fragmentation) and `processBytes` (nvidia-smi: plus the CUDA
   * context and NCCL's buffers).
   */
  deviceMemory: { allocatedBytes: number; reservedBytes: number; processBytes: number };
}

export interface PlanEstimate {
  iterationTimeS: number;
  tokensPerS: number;
  /** Model FLOPs utilisation: modelFlopsPerIteration / (iterationTimeS * devices * peak FLOP/s). */
  mfu: number;
  modelFlopsPerIteration: number;
  devices: number;
  /** The slowest stage's steady micro-batch (the pipeline's bottleneck) and its index. */
  bottleneckStage: number;
  /** Parts of the iteration time: sum of first micro-batches, (G - 1) bottleneck micro-batches, sum
   * of last extras, and the median wait for the slowest rank's step-to-step noise (stepJitter). */
  breakdown: { firstS: number; steadyS: number; lastS: number; jitterS: number };
  stages: PlanStageEstimate[];
  /** Every stage fits in both device and host memory. */
  allFit: boolean;
}

/** The training spec a plan implies (its sequence length, batch and attention kernel override ctx's). */
export function planTraining(plan: Plan, base: TrainingSpec): TrainingSpec {
  return {
    ...base,
    seqLen: plan.seqLen,
    globalBatch: plan.globalBatch,
    flashAttention: plan.flashAttention ?? base.flashAttention,
  };
}

/**
 * Micro-batches whose activations stage i of a 1F1B pipeline of pp stages keeps at its peak: pp - i
 * warm-up forwards before its first backward (Narayanan et al. 2021, Sec. 2.2), but never more than
 * the G micro-batches of the iteration.
 */
export function inFlightMicroBatches(pp: number, stageIndex: number, gradAccumSteps: number): number {
  return Math.min(pp - stageIndex, gradAccumSteps);
}

/** The query of stage i of a plan. */
export function planStageQuery(plan: Plan, i: number): StageQuery {
  const pp = plan.stages.length;
  const s = plan.stages[i];
  return {
    layers: stageLayerCount(s),
    position: stagePosition(i, pp),
    inFlight: inFlightMicroBatches(pp, i, plan.gradAccumSteps),
    pp,
    mesh: s.mesh,
    microBatchSize: s.microBatchSize,
    gradAccumSteps: plan.gradAccumSteps,
    dp: s.dp,
    tp: s.tp,
    sequenceParallel: s.sequenceParallel,
    ckptLayers: s.ckptLayers,
    zero: s.zero,
    offload: s.offload,
  };
}

/** The stage queries of a plan, in stage order. */
export function planStageQueries(plan: Plan): StageQuery[] {
  return plan.stages.map((_, i) => planStageQuery(plan, i));
}

/**
 * The median delay a step of `ranks` ranks takes from step-to-step noise (profile stepNoise: the
 * part of a rank's noise that the other ranks do not share). Every rank waits for the others each
 * step (gradient sync, pipeline hand-offs), so a step is as late as its slowest rank: with that
 * noise independent across ranks, the median step meets its 0.5^(1/ranks) quantile. 0 for one rank
 * or no noise.
 */
export function stepJitter(profile: HardwareProfile, ranks: number): number {
  const noise = profile.stepNoise;
  if (!noise || noise.length < 2 || ranks <= 1) return 0;
  return Math.max(0, quantile(noise, 0.5 ** (1 / ranks)) - quantile(noise, 0.5));
}

/** 1F1B iteration time: sum_i (first_i + last_i) + (G - 1) * max_i steady_i (Mist, EuroSys 2025, Sec. 5.3). */
export function iterationTime(stages: readonly StageEstimate[], gradAccumSteps: number): { total: number; firstS: number; steadyS: number; lastS: number; bottleneck: number } {
  let firstS = 0;
  let lastS = 0;
  let bottleneck = 0;
  stages.forEach((s, i) => {
    firstS += s.firstTimeS;
    lastS += s.lastTimeS;
    if (s.steadyTimeS > stages[bottleneck].steadyTimeS) bottleneck = i;
  });
  const steadyS = (gradAccumSteps - 1) * stages[bottleneck].steadyTimeS;
  return { total: firstS + steadyS + lastS, firstS, steadyS, lastS, bottleneck };
}

/**
 * Estimates a plan. A plan that breaks a rule (layers not covering the model, dp*tp not the mesh,
 * ...) throws a SpecError; a plan that does not fit in device or host memory is reported
 * (`fits`, `deviceFits`, `hostFits`, `allFit`).
 * `compiled` may pass a stage model already compiled for the plan's training spec.
 */
export function estimatePlan(plan: Plan, ctx: AnalyzerContext, compiled?: CompiledStageModel): PlanEstimate {
  const issues = planRuleIssues(plan, { model: ctx.model, cluster: ctx.profile.cluster });
  if (issues.length > 0) throw new SpecError('plan', issues);
  const training = planTraining(plan, ctx.training);
  const model = compiled ?? compileStageModel({ ...ctx, training });
  const stages: PlanStageEstimate[] = planStageQueries(plan).map((q, i) => {
    const e = model.estimate(q);
    const f = deviceMemoryFootprint(ctx.profile, e.peakMemoryBytes);
    return {
      ...e,
      index: i,
      layers: [plan.stages[i].layers[0], plan.stages[i].layers[1]],
      devices: meshSize(plan.stages[i].mesh),
      deviceMemory: { allocatedBytes: f.allocated, reservedBytes: f.reserved, processBytes: f.process },
    };
  });
  const it = iterationTime(stages, plan.gradAccumSteps);
  const flops = modelFlopsPerIteration(ctx.model, training);
  const devices = planDevices(plan);
  const jitterS = stepJitter(ctx.profile, devices);
  const total = it.total + jitterS;
  return {
    iterationTimeS: total,
    tokensPerS: (plan.globalBatch * plan.seqLen) / total,
    mfu: flops / (total * devices * ctx.profile.compute.peakFlops),
    modelFlopsPerIteration: flops,
    devices,
    bottleneckStage: it.bottleneck,
    breakdown: { firstS: it.firstS, steadyS: it.steadyS, lastS: it.lastS, jitterS },
    stages,
    allFit: stages.every((s) => s.fits),
  };
}
