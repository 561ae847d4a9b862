// Where a rank sits in a plan, and the process groups it belongs to. Rank numbering is the
// coordinator's placement order: stage by stage; inside a stage rank = base + dpIndex * tp + tpIndex,
// so a TP group is tp consecutive ranks (on one host).
import { meshSize, type Plan } from '@mist/core';

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

export function worldSize(plan: Plan): number {
  return plan.stages.reduce((n, s) => n + meshSize(s.mesh), 0);
}

export function stageBase(plan: Plan, stage: number): number {
  let base = 0;
  for (let i = 0; i < stage; i++) base += meshSize(plan.stages[i].mesh);
  return base;
}

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
  throw new Error(`rank ${rank} is outside the plan's ${base} ranks`);
}

export function rankOf(plan: Plan, stage: number, dpIndex: number, tpIndex: number): number {
  return stageBase(plan, stage) + dpIndex * plan.stages[stage].tp + tpIndex;
}

/** The ranks of this rank's TP group (same stage and dp index), in tp order. */
export function tpGroup(plan: Plan, p: RankPosition): number[] {
  return Array.from({ length: p.tp }, (_, t) => rankOf(plan, p.stage, p.dpIndex, t));
}

/** The ranks of this rank's DP group (same stage and tp index), in dp order. */
export function dpGroup(plan: Plan, p: RankPosition): number[] {
  return Array.from({ length: p.dp }, (_, d) => rankOf(plan, p.stage, d, p.tpIndex));
}

/**
 * Split colors for communicator.split(color, key): one color per TP group and one per DP group,
 * disjoint across stages, so every rank can call split() with the same collective pattern.
 */
export function tpColor(p: RankPosition): number {
  return p.stageBase + p.dpIndex;
}

export function dpColor(p: RankPosition): number {
  return p.stageBase + p.tpIndex;
}
