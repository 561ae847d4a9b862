// The rank layout of a plan: which global rank runs which (stage, dp index, cp index, tp index).
// Written once here; the coordinator's placement hands out ranks in this order and the executor's
// topology builds its TP/CP/DP groups from it, so all agree. Stage by stage; inside a stage
// rank = stageBase + (dpIndex * cp + cpIndex) * tp + tpIndex: tp fastest, then cp, then dp, as
// Megatron-Core's default order "tp-cp-ep-dp-pp" (megatron/core/parallel_state.py,
// initialize_model_parallel). A TP group is tp consecutive ranks (on one host, since tp divides
// mesh.gpusPerNode: Shoeybi et al. 2019); a CP group is cp ranks tp apart.
import { meshSize, type Plan, stageCp, stageEp } from './plan';

export interface RankPosition {
  rank: number;
  stage: number;
  dpIndex: number;
  /** Index in the stage's context-parallel group (0 when cp is 1). */
  cpIndex: number;
  tpIndex: number;
  /** First global rank of the stage. */
  stageBase: number;
  dp: number;
  cp: number;
  tp: number;
}

/** First global rank of a stage (the devices of the stages before it). */
export function stageBase(plan: Plan, stage: number): number {
  let base = 0;
  for (let i = 0; i < stage; i++) base += meshSize(plan.stages[i].mesh);
  return base;
}

/** The global rank of (stage, dpIndex, tpIndex, cpIndex). */
export function rankOf(plan: Plan, stage: number, dpIndex: number, tpIndex: number, cpIndex = 0): number {
  const s = plan.stages[stage];
  return stageBase(plan, stage) + (dpIndex * stageCp(s) + cpIndex) * s.tp + tpIndex;
}

function position(plan: Plan, stage: number, base: number, local: number): RankPosition {
  const s = plan.stages[stage];
  const cp = stageCp(s);
  const group = Math.floor(local / s.tp);
  return {
    rank: base + local, stage, dpIndex: Math.floor(group / cp), cpIndex: group % cp, tpIndex: local % s.tp,
    stageBase: base, dp: s.dp, cp, tp: s.tp,
  };
}

/** Where a global rank sits; throws a RangeError outside the plan's ranks. */
export function rankPosition(plan: Plan, rank: number): RankPosition {
  let base = 0;
  for (const [stage, s] of plan.stages.entries()) {
    const size = meshSize(s.mesh);
    if (rank < base + size) return position(plan, stage, base, rank - base);
    base += size;
  }
  throw new RangeError(`rank ${rank} is outside the plan's ${base} ranks`);
}

/** Every rank of the plan in rank order (planDevices(plan) of them). */
export function planRanks(plan: Plan): RankPosition[] {
  const out: RankPosition[] = [];
  let base = 0;
  for (const [stage, s] of plan.stages.entries()) {
    const size = meshSize(s.mesh);
    for (let local = 0; local < size; local++) out.push(position(plan, stage, base, local));
    base += size;
  }
  return out;
}

/**
 * A rank's place in its stage's expert grid (mixture of experts): Megatron-Core builds the experts'
 * groups over the same ranks in the order tp-ep-dp (parallel_state.py, the expert RankGenerator with
 * cp folded into dp), so inside a stage local = (edpIndex * ep + epIndex) * tp + tpIndex. An
 * expert-parallel group is ep consecutive TP groups (it holds every expert once); an
 * expert-data-parallel group, dp * cp / ep ranks tp * ep apart, holds the same experts and sums
 * their gradients.
 */
export function expertRankIndices(plan: Plan, rank: number): { epIndex: number; edpIndex: number; ep: number; edp: number } {
  const p = rankPosition(plan, rank);
  const ep = stageEp(plan.stages[p.stage]);
  const group = Math.floor((p.rank - p.stageBase) / p.tp);
  return { epIndex: group % ep, edpIndex: Math.floor(group / ep), ep, edp: (p.dp * p.cp) / ep };
}
