// The process groups a rank belongs to. The rank layout itself (rank = stageBase + dpIndex * tp +
// tpIndex, stage by stage) and the device count are core's (rank-layout.ts, planDevices), the same
// functions the coordinator's placement uses.
import { planDevices, type Plan, rankOf, type RankPosition } from '@mist/core';

export { rankOf, rankPosition, type RankPosition, stageBase } from '@mist/core';

/** Ranks of the plan's world: one per device (core's planDevices). */
export const worldSize: (plan: Plan) => number = planDevices;

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
