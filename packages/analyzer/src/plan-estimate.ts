// Estimate of a whole plan: per-stage estimates combined into the 1F1B iteration time.
import { deviceMemoryFootprint, type HardwareProfile, meshSize, type Plan, planDevices, planRuleIssues, planVirtualStages, quantile, SpecError, stageLayerCount, type TrainingSpec } from '@mist/core';
import { backendTerms } from './backend-terms';
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
   * the tensors live at one time, memory.peakLive, and library workspaces), `reservedBytes` (torch.cuda.max_memory_reserved: with the
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
  /** Parts of the iteration time: sum of first micro-batches, (G - 1) bottleneck micro-batches, the
   * largest stage's end-of-step work (last extras run on every stage at once: iterationTime), and
   * the median wait for the slowest rank's step-to-step noise (stepJitter). */
  breakdown: { firstS: number; steadyS: number; lastS: number; jitterS: number };
  stages: PlanStageEstimate[];
  /** Every stage fits in both device and host memory. */
  allFit: boolean;
}

/** The training spec a plan implies (its sequence length, batch, attention kernel and fp8 override ctx's). */
export function planTraining(plan: Plan, base: TrainingSpec): TrainingSpec {
  return {
    ...base,
    seqLen: plan.seqLen,
    globalBatch: plan.globalBatch,
    flashAttention: plan.flashAttention ?? base.flashAttention,
    fp8: plan.fp8 ?? base.fp8,
  };
}

/**
 * Micro-batches whose activations stage i of a 1F1B pipeline of pp stages keeps at its peak: pp - i
 * warm-up forwards before its first backward (Narayanan et al. 2021, Sec. 2.2), but never more than
 * the G micro-batches of the iteration.
 * With v > 1 model chunks per rank (Megatron-LM's interleaved schedule, core's interleavedSchedule)
 * the rank holds (pp - i - 1) * 2 + (v - 1) * pp + 1 forward units at its peak, at most G * v, each
 * with 1/v of the rank's layers: in micro-batches of the whole rank that count / v, which is
 * pp + (pp - 1) / v on the first rank (Korthikanti et al. 2022: pp * (1 + (pp - 1) / (pp * v))).
 * Not an integer then; the stage model's activation terms are linear in it.
 */
export function inFlightMicroBatches(pp: number, stageIndex: number, gradAccumSteps: number, virtualStages = 1): number {
  if (virtualStages === 1) return Math.min(pp - stageIndex, gradAccumSteps);
  const v = virtualStages;
  return Math.min((pp - stageIndex - 1) * 2 + (v - 1) * pp + 1, gradAccumSteps * v) / v;
}

/**
 * A stage estimate of rank i in an interleaved plan (v > 1 chunks per rank). The stage model costs
 * the rank's layers as one block with p2p messages only at the pipeline's ends it touches (next +
 * prev of its position); with v chunks every chunk boundary except the pipeline's two ends is a
 * message, 2v - [first] - [last] per micro-batch, so 2 (v - 1) more messages of the same size
 * (the boundary activation, or its gradient) than at v = 1: added to the steady and first
 * micro-batch and to the ppComm breakdown. Identity for v = 1.
 */
export function interleavedStageEstimate(e: StageEstimate, q: Pick<StageQuery, 'position'>, virtualStages: number): StageEstimate {
  if (virtualStages === 1) return e;
  const messages = (q.position === 'first' || q.position === 'only' ? 0 : 1) + (q.position === 'last' || q.position === 'only' ? 0 : 1);
  if (messages === 0) throw new Error('an interleaved plan needs at least 2 pipeline stages (virtualStages must be 1 for one stage)');
  const extra = (e.time.ppComm / messages) * 2 * (virtualStages - 1);
  return {
    ...e,
    steadyTimeS: e.steadyTimeS + extra,
    firstTimeS: e.firstTimeS + extra,
    time: { ...e.time, ppComm: e.time.ppComm + extra },
  };
}

/** The query of stage i of a plan. */
export function planStageQuery(plan: Plan, i: number): StageQuery {
  const pp = plan.stages.length;
  const s = plan.stages[i];
  return {
    layers: stageLayerCount(s),
    position: stagePosition(i, pp),
    inFlight: inFlightMicroBatches(pp, i, plan.gradAccumSteps, planVirtualStages(plan)),
    pp,
    mesh: s.mesh,
    microBatchSize: s.microBatchSize,
    gradAccumSteps: plan.gradAccumSteps,
    dp: s.dp,
    tp: s.tp,
    cp: s.cp ?? 1,
    ep: s.ep ?? 1,
    sequenceParallel: s.sequenceParallel,
    ckptLayers: s.ckptLayers,
    selectiveRecompute: s.selectiveRecompute ?? false,
    opRecompute: s.opRecompute ?? false,
    zero: s.zero,
    offload: s.offload,
  };
}

/** The stage queries of a plan, in stage order. */
export function planStageQueries(plan: Plan): StageQuery[] {
  return plan.stages.map((_, i) => planStageQuery(plan, i));
}

/**
 * The median delay a step of `ranks` ranks takes from step-to-step noise (the backend section's
 * stepNoise, backend-terms.ts: the part of a rank's noise that the other ranks do not share).
 * Every rank waits for the others each step (gradient sync, pipeline hand-offs), so a step is as
 * late as its slowest rank: with that noise independent across ranks, the median step meets its
 * 0.5^(1/ranks) quantile. 0 for one rank or no noise.
 */
export function stepJitter(profile: HardwareProfile, ranks: number): number {
  const noise = backendTerms(profile).stepNoise;
  if (noise.length < 2 || ranks <= 1) return 0;
  return Math.max(0, quantile(noise, 0.5 ** (1 / ranks)) - quantile(noise, 0.5));
}

/**
 * 1F1B iteration time: sum_i first_i + (G - 1) * max_i steady_i + max_i last_i.
 * The fill and drain (each stage's first micro-batch) and the bottleneck's steady micro-batches are
 * on the critical path one after the other (Mist, EuroSys 2025, Sec. 5.3), but the end-of-step work
 * (`last`: the gradient sync the last backward does not hide, the ZeRO-1 parameter gather, the tied
 * embedding sync and the optimizer step) runs on every stage at once, each stage starting it when its
 * own last backward ends: stage i ends its last backward sum_{j<i} (stage j's backward) before stage
 * 0 does, so the step ends at stage 0's last backward + max_i (last_i - that lead), at most
 * + max_i last_i, which is taken (it never under-predicts; it is exact when the first stage's end
 * work is the largest, as in a balanced pipeline). Mist's closed form sums last_i over the stages,
 * which over-predicts deep pipelines by up to (pp - 1) end-of-step phases: +19% on Megatron-LM's
 * 530B run of Narayanan et al. 2021 (Table 1, pp 35), +3.3% with the max (npm run validate).
 * viz's timeline, which replays the schedule with each stage's last after its own schedule, agrees.
 * Interleaved (v chunks per rank): the pipeline fills and drains in chunk units of steady_i / v, so
 * sum_i (first_i - steady_i + steady_i / v) + (G v - 1) * max_i steady_i / v + max_i last_i; for identical
 * stages (G + (pp - 1) / v) * steady, the bubble (pp - 1) / v of Narayanan et al. 2021, Sec. 2.2.
 * With unequal ranks every micro-batch goes round the ring of ranks v times, so a rank faster than
 * the bottleneck cannot run ahead on its later chunks: each rank's fill also pays (1 - 1/v) of its
 * shortfall (max - steady_i). Where that exceeds the plain 1F1B closed form of the same ranks (very
 * unequal ranks), that form is taken: the interleaved schedule never took longer in the replays.
 * apps/cli's pipeline-schedule test replays core's interleavedSchedule against both.
 */
export function iterationTime(stages: readonly StageEstimate[], gradAccumSteps: number, virtualStages = 1): { total: number; firstS: number; steadyS: number; lastS: number; bottleneck: number } {
  const v = virtualStages;
  let firstS = 0;
  let lastS = 0;
  let bottleneck = 0;
  stages.forEach((s, i) => {
    firstS += v === 1 ? s.firstTimeS : s.firstTimeS - s.steadyTimeS + s.steadyTimeS / v;
    lastS = Math.max(lastS, s.lastTimeS);
    if (s.steadyTimeS > stages[bottleneck].steadyTimeS) bottleneck = i;
  });
  const slowest = stages[bottleneck].steadyTimeS;
  let steadyS = (gradAccumSteps - 1) * slowest;
  if (v > 1) {
    let fill = firstS;
    for (const s of stages) fill += (1 - 1 / v) * (slowest - s.steadyTimeS);
    const steady = ((gradAccumSteps * v - 1) * slowest) / v;
    const plain = stages.reduce((a, s) => a + s.firstTimeS, 0);
    if (fill + steady < plain + steadyS) {
      firstS = fill;
      steadyS = steady;
    } else firstS = plain;
  }
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
  const v = planVirtualStages(plan);
  const stages: PlanStageEstimate[] = planStageQueries(plan).map((q, i) => {
    const e = interleavedStageEstimate(model.estimate(q), q, v);
    const f = deviceMemoryFootprint(ctx.profile, e.peakMemoryBytes, e.memory.peakLive);
    return {
      ...e,
      index: i,
      layers: [plan.stages[i].layers[0], plan.stages[i].layers[1]],
      devices: meshSize(plan.stages[i].mesh),
      deviceMemory: { allocatedBytes: f.allocated, reservedBytes: f.reserved, processBytes: f.process },
    };
  });
  const it = iterationTime(stages, plan.gradAccumSteps, v);
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
