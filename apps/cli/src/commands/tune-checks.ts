// Checks `mist tune` makes before it searches: that --cluster and --profile describe the same
// machines, and that a --baseline plan (the user's own setup, e.g. from `mist import`) is a plan of the
// same model, sequence length and batch, predicted under the same cost model.
import { type AnalyzerContext, estimatePlan, type PlanEstimate } from '@mist/analyzer';
import { type ClusterSpec, loadPlan, type Plan } from '@mist/core';
import { UsageError } from '../cli/command';

/** How two clusters differ in what the cost model reads (shape and GPU), or null when they agree. */
export function clusterMismatch(profiled: ClusterSpec, given: ClusterSpec): string | null {
  const parts: string[] = [];
  if (profiled.nodes !== given.nodes) parts.push(`${profiled.nodes} nodes in the profile, ${given.nodes} given`);
  if (profiled.gpusPerNode !== given.gpusPerNode) parts.push(`${profiled.gpusPerNode} GPUs per node in the profile, ${given.gpusPerNode} given`);
  if (profiled.gpu.name !== given.gpu.name) parts.push(`GPU ${profiled.gpu.name} in the profile, ${given.gpu.name} given`);
  return parts.length > 0 ? parts.join(', ') : null;
}

export interface ImportedBaseline {
  file: string;
  plan: Plan;
  estimate: PlanEstimate;
}

/** Loads and predicts the user's plan; refuses one for another model, sequence length or batch. */
export function estimateBaselinePlan(file: string, ctx: AnalyzerContext): ImportedBaseline {
  let plan: Plan;
  try {
    plan = loadPlan(file, { model: ctx.model, cluster: ctx.profile.cluster });
  } catch (err) {
    throw new UsageError(`--baseline ${file}: ${(err as Error).message}`);
  }
  const same: Array<[string, number, number]> = [
    ['seqLen', plan.seqLen, ctx.training.seqLen],
    ['globalBatch', plan.globalBatch, ctx.training.globalBatch],
  ];
  for (const [field, got, want] of same) {
    if (got !== want) throw new UsageError(`--baseline ${file}: ${field} is ${got}, the tune is for ${want}; compare plans of the same setting`);
  }
  return { file, plan, estimate: estimatePlan(plan, ctx) };
}
