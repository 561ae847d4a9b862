// Expert parallelism's groups inside a stage (mixture of experts): core's expertRankIndices places a
// rank in its stage's expert grid (Megatron-Core's order tp-ep-dp with cp folded into dp,
// parallel_state.py): the expert-parallel group is the ep ranks with the same expert-data-parallel
// index and tp index (they hold every expert once and exchange tokens all-to-all); the
// expert-data-parallel group is the dp * cp / ep ranks with the same ep and tp index (they hold the
// same experts and sum their gradients). Colors for communicator.split stay below the stage's
// stageBase + ranks, so the stages' groups never share a color.
import { expertRankIndices, type Plan } from '@mist/core';
import type { RankPosition } from './ranks';

export function epColor(plan: Plan, p: RankPosition): number {
  return p.stageBase + expertRankIndices(plan, p.rank).edpIndex * p.tp + p.tpIndex;
}

export function edpColor(plan: Plan, p: RankPosition): number {
  return p.stageBase + expertRankIndices(plan, p.rank).epIndex * p.tp + p.tpIndex;
}
