import { describe, expect, it } from 'vitest';
import { NO_OFFLOAD, type Plan, planDevices } from './plan';
import { planRanks, rankOf, rankPosition } from './rank-layout';

const plan: Plan = {
  version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 1,
  stages: [
    { layers: [0, 1], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 4, dp: 2, tp: 2, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD },
    { layers: [2, 3], mesh: { nodes: 2, gpusPerNode: 2 }, microBatchSize: 2, dp: 4, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD },
  ],
};

describe('the rank layout', () => {
  it('numbers ranks stage by stage with tp-consecutive TP groups, one per device', () => {
    const ranks = planRanks(plan);
    expect(ranks).toHaveLength(planDevices(plan));
    expect(ranks.map((r) => [r.stage, r.dpIndex, r.tpIndex])).toEqual([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 1, 0], [1, 2, 0], [1, 3, 0]]);
    for (const r of ranks) {
      expect(rankPosition(plan, r.rank)).toEqual(r);
      expect(rankOf(plan, r.stage, r.dpIndex, r.tpIndex)).toBe(r.rank);
    }
    expect(() => rankPosition(plan, 8)).toThrow(RangeError);
  });

  it('puts the cp index between tp and dp (Megatron-Core order tp-cp-ep-dp-pp)', () => {
    const cpPlan: Plan = {
      ...plan, seqLen: 64, globalBatch: 4,
      stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 2, dp: 2, tp: 2, cp: 2, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
    };
    const ranks = planRanks(cpPlan);
    expect(ranks.map((r) => [r.dpIndex, r.cpIndex, r.tpIndex])).toEqual([
      [0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1],
    ]);
    for (const r of ranks) {
      expect(rankPosition(cpPlan, r.rank)).toEqual(r);
      expect(rankOf(cpPlan, r.stage, r.dpIndex, r.tpIndex, r.cpIndex)).toBe(r.rank);
    }
  });
});
