// One plan analysed end to end from its documents, as `mist analyze --json` prints it and as the
// Analyzer.Analyze service returns it (estimate_json): transport-independent.
import {
  builtinHardwareProfile, type ClusterSpec, type HardwareProfile, type ModelSpec, parsePlan, parseTrainingSpec,
  type Plan, type StageStrategy, type TrainingSpec, type TrainingSpecInput,
} from '@mist/core';
import { compileStageModel, type StageQuery } from './compile';
import { estimatePlan, type PlanEstimate, type PlanStageEstimate, planStageQueries, planTraining } from './plan-estimate';

export interface AnalyzeInput {
  model: ModelSpec;
  /** The plan document (validated here against the model and the profile's cluster). */
  plan: unknown;
  /** Needed when no profile is given (the built-in datasheet profile is derived from it). */
  cluster?: ClusterSpec;
  profile?: HardwareProfile;
  /** Dtypes and attention kernel; batch and sequence length always come from the plan. */
  training?: Partial<TrainingSpecInput>;
  /** Add each stage's simplified formulas (layers, micro-batch and ckptLayers left free). */
  explain?: boolean;
}

export interface AnalysisStage extends PlanStageEstimate {
  /** Bytes by which the device peak exceeds the device capacity (0 when it fits). */
  overflowBytes: number;
  /** Bytes by which the host memory exceeds the host capacity per GPU (0 when it fits). */
  hostOverflowBytes: number;
  strategy: StageStrategy;
  explain?: { time: string; memory: string };
}

export interface Analysis extends Omit<PlanEstimate, 'stages'> {
  model: string;
  cluster: string;
  /** The hardware profile's source, e.g. `datasheet:l4` or `measured`. */
  profile: string;
  seqLen: number;
  globalBatch: number;
  gradAccumSteps: number;
  flashAttention: boolean;
  stages: AnalysisStage[];
}

/** The strategy of a stage without layers, micro-batch and checkpointing, so explain shows how those scale. */
function explainQuery(q: StageQuery): Partial<StageQuery> {
  const { layers: _l, microBatchSize: _b, ckptLayers: _c, ...rest } = q;
  return rest;
}

/**
 * Validates the plan (SpecError when it breaks a rule), estimates it and returns the report.
 * A plan that does not fit is reported (`allFit`, `stages[i].fits`, `overflowBytes`,
 * `hostOverflowBytes`), not thrown.
 */
export function analyzePlan(input: AnalyzeInput): { analysis: Analysis; plan: Plan; training: TrainingSpec } {
  const profile = input.profile ?? (input.cluster ? builtinHardwareProfile(input.cluster) : undefined);
  if (!profile) throw new Error('analyzePlan needs a cluster or a hardware profile');
  const plan = parsePlan(input.plan, { model: input.model, cluster: profile.cluster });
  const base = parseTrainingSpec({ ...input.training, globalBatch: plan.globalBatch, seqLen: plan.seqLen });
  const training = planTraining(plan, base);
  const ctx = { model: input.model, training, profile };
  const compiled = compileStageModel(ctx);
  const est = estimatePlan(plan, ctx, compiled);
  const queries = planStageQueries(plan);
  const { stages, ...figures } = est;
  const analysis: Analysis = {
    model: input.model.name,
    cluster: profile.cluster.name,
    profile: profile.source,
    seqLen: plan.seqLen,
    globalBatch: plan.globalBatch,
    gradAccumSteps: plan.gradAccumSteps,
    flashAttention: training.flashAttention,
    ...figures,
    stages: stages.map((s, i) => ({
      ...s,
      overflowBytes: Math.max(0, s.peakMemoryBytes - s.capacityBytes),
      hostOverflowBytes: Math.max(0, s.hostMemoryBytes - s.hostCapacityBytes),
      strategy: plan.stages[i],
      ...(input.explain ? { explain: compiled.explain(explainQuery(queries[i])) } : {}),
    })),
  };
  return { analysis, plan, training };
}
