// The rank layout of a plan: which global rank runs which (stage, dp index, tp index). Written once
// here; the coordinator's placement hands out ranks in this order and the executor's topology builds
// its TP/DP groups from it, so both always agree. Stage by stage; inside a stage
// rank = stageBase + dpIndex * tp + tpIndex, so a TP group is tp consecutive ranks (on one host,
// since tp divides mesh.gpusPerNode: Megatron-LM's tensor-parallel-first order, Shoeybi et al. 2019).
import { meshSize, type Plan } from './plan';

export interface RankPosition {
  rank: number;
  stage: number;
  dpIndex: number;
  tpIndex: number;
  /** First global rank of the stage. */
  stageBase: number;
  dp: number;
  tp: number;
}

/** First global rank of a stage (the devices of the stages before it). */
export function stageBase(plan: Plan, stage: number): number {
  let base = 0;
  for (let i = 0; i < stage; i++) base += meshSize(plan.stages[i].mesh);
  return base;
}

/** The global rank of (stage, dpIndex, tpIndex). */
export function rankOf(plan: Plan, stage: number, dpIndex: number, tpIndex: number): number {
  return stageBase(plan, stage) + dpIndex * plan.stages[stage].tp + tpIndex;
}

/** Where a global rank sits; throws a RangeError outside the plan's ranks. */
export function rankPosition(plan: Plan, rank: number): RankPosition {
  let base = 0;
  for (const [stage, s] of plan.stages.entries()) {
    const size = meshSize(s.mesh);
    if (rank < base + size) {
      const local = rank - base;
      return { rank, stage, dpIndex: Math.floor(local / s.tp), tpIndex: local % s.tp, stageBase: base, dp: s.dp, tp: s.tp };
    }
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
    for (let local = 0; local < size; local++) {
      out.push({ rank: base + local, stage, dpIndex: Math.floor(local / s.tp), tpIndex: local % s.tp, stageBase: base, dp: s.dp, tp: s.tp });
    }
    base += size;
  }
  return out;
}
