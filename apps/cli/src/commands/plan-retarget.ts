// `--seq`, `--global-batch` and `--no-flash-attention` on a command that reads a plan: they re-target
// the plan instead of having to repeat it. The stages keep their micro-batch size and dp; a new global
// batch changes the number of micro-batches per iteration, gradAccumSteps = globalBatch / (b * dp)
// (globalBatch = b * dp * G, ARCHITECTURE.md), which must come out whole.
import { parsePlan } from '@mist/core';
import { UsageError } from '../cli/command';

export interface PlanTarget {
  seq?: number;
  globalBatch?: number;
  /** false: model attention without flash attention; undefined: keep the plan's. */
  flashAttention?: boolean;
}

export interface Retargeted {
  /** The plan document with the new values (the input is not changed). */
  doc: unknown;
  /** What changed, e.g. `global batch 32 -> 64 (G 2 -> 4)`; empty when nothing did. */
  changes: string[];
}

export function retargetPlan(data: unknown, target: PlanTarget): Retargeted {
  if (target.seq === undefined && target.globalBatch === undefined && target.flashAttention === undefined) return { doc: data, changes: [] };
  // Structure first (a SpecError names the bad field); the rules are checked again after the change.
  const plan = parsePlan(data);
  const doc = { ...(data as Record<string, unknown>) };
  const changes: string[] = [];
  if (target.seq !== undefined && target.seq !== plan.seqLen) {
    doc.seqLen = target.seq;
    changes.push(`seq ${plan.seqLen} -> ${target.seq}`);
  }
  if (target.globalBatch !== undefined && target.globalBatch !== plan.globalBatch) {
    const perStep = plan.stages[0].microBatchSize * plan.stages[0].dp;
    if (target.globalBatch % perStep !== 0) {
      throw new UsageError(
        `--global-batch ${target.globalBatch}: the plan's stages take microBatchSize * dp = ${plan.stages[0].microBatchSize} * ` +
          `${plan.stages[0].dp} = ${perStep} sequences per micro-batch (stages[0]), so globalBatch must be a multiple of ${perStep} ` +
          `(gradAccumSteps = globalBatch / ${perStep}); tune a new plan for ${target.globalBatch} with mist tune`,
      );
    }
    const G = target.globalBatch / perStep;
    doc.globalBatch = target.globalBatch;
    doc.gradAccumSteps = G;
    changes.push(`global batch ${plan.globalBatch} -> ${target.globalBatch} (gradAccumSteps ${plan.gradAccumSteps} -> ${G})`);
  }
  if (target.flashAttention !== undefined && target.flashAttention !== (plan.flashAttention ?? true)) {
    doc.flashAttention = target.flashAttention;
    changes.push(target.flashAttention ? 'flash attention on' : 'no flash attention');
  }
  return { doc, changes };
}
