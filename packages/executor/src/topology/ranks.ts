// The process groups a rank belongs to. The rank layout itself (rank = stageBase + (dpIndex * cp +
// cpIndex) * tp + tpIndex, stage by stage: tp fastest, then cp, then dp) and the device count are
// core's (rank-layout.ts, planDevices), the same functions the coordinator's placement uses.
// Context parallelism (cp > 1) adds a CP group (the K/V ring: same stage, dp and tp index) and
// widens the gradient group to the dp * cp ranks of a stage with the same tp index: every cp rank
// holds a part of each sequence, so gradients are summed and ZeRO shards cut over dp * cp
// (Megatron-Core's data-parallel group "with context parallel", parallel_state.py).
import { planDevices, type Plan, rankOf, type RankPosition } from '@mist/core';

export { rankOf, rankPosition, type RankPosition, stageBase } from '@mist/core';

/** Ranks of the plan's world: one per device (core's planDevices). */
export const worldSize: (plan: Plan) => number = planDevices;

/** The ranks of this rank's TP group (same stage, dp and cp index), in tp order. */
export function tpGroup(plan: Plan, p: RankPosition): number[] {
  return Array.from({ length: p.tp }, (_, t) => rankOf(plan, p.stage, p.dpIndex, t, p.cpIndex));
}

/** The ranks of this rank's gradient group (same stage and tp index: dp * cp ranks), in dpcpIndex order. */
export function dpGroup(plan: Plan, p: RankPosition): number[] {
  return Array.from({ length: p.dp * p.cp }, (_, i) => rankOf(plan, p.stage, Math.floor(i / p.cp), p.tpIndex, i % p.cp));
}

/** The ranks of this rank's CP group, the K/V ring (same stage, dp and tp index), in cp order. */
export function cpGroup(plan: Plan, p: RankPosition): number[] {
  return Array.from({ length: p.cp }, (_, c) => rankOf(plan, p.stage, p.dpIndex, p.tpIndex, c));
}

/** The rank's index in its gradient group (dp * cp ranks): ZeRO shard and data-parallel rank. */
export function dpcpIndex(p: RankPosition): number {
  return p.dpIndex * p.cp + p.cpIndex;
}

/**
 * Split colors for communicator.split(color, key): one color per TP, gradient (DP x CP) and CP
 * group, disjoint across stages (each below stageBase + the stage's ranks), so every rank can
 * call split() with the same collective pattern.
 */
export function tpColor(p: RankPosition): number {
  return p.stageBase + dpcpIndex(p);
}

export function dpColor(p: RankPosition): number {
  return p.stageBase + p.tpIndex;
}

export function cpColor(p: RankPosition): number {
  return p.stageBase + p.dpIndex * p.tp + p.tpIndex;
}
