import { NO_OFFLOAD, type Plan, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { cpColor, cpGroup, dpColor, dpcpIndex, dpGroup, forwardRecvs, forwardSends, rankPosition, tpColor, tpGroup, worldSize } from './index';

function stage(layers: [number, number], dp: number, tp: number, b: number): StageStrategy {
  return { layers, mesh: { nodes: 1, gpusPerNode: dp * tp }, microBatchSize: b, dp, tp, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: { ...NO_OFFLOAD } };
}

const plan: Plan = {
  version: 1, model: 'gpt-tiny', seqLen: 16, globalBatch: 8, gradAccumSteps: 2,
  stages: [stage([0, 1], 2, 2, 2), stage([2, 3], 1, 1, 4), stage([4, 5], 4, 1, 1)],
};

describe('rank topology', () => {
  it('numbers ranks stage by stage with tp fastest', () => {
    expect(worldSize(plan)).toBe(9);
    expect(rankPosition(plan, 3)).toMatchObject({ stage: 0, dpIndex: 1, tpIndex: 1 });
    expect(rankPosition(plan, 4)).toMatchObject({ stage: 1, dpIndex: 0, tpIndex: 0 });
    expect(tpGroup(plan, rankPosition(plan, 2))).toEqual([2, 3]);
    expect(dpGroup(plan, rankPosition(plan, 1))).toEqual([1, 3]);
    expect(dpGroup(plan, rankPosition(plan, 7))).toEqual([5, 6, 7, 8]);
  });

  it('routes every sample of a micro-batch across stages with different dp and tp exactly once', () => {
    for (let s = 0; s < plan.stages.length - 1; s++) {
      const sends = [];
      const recvs = [];
      for (let r = 0; r < worldSize(plan); r++) {
        const p = rankPosition(plan, r);
        if (p.stage === s) for (const t of forwardSends(plan, p)) sends.push({ from: r, to: t.peer, s: t.senderSamples, r: t.receiverSamples });
        if (p.stage === s + 1) for (const t of forwardRecvs(plan, p)) recvs.push({ from: t.peer, to: r, s: t.senderSamples, r: t.receiverSamples });
      }
      // Senders and receivers agree on every transfer.
      const key = (x: { from: number; to: number; s: number[]; r: number[] }): string => `${x.from}>${x.to}:${x.s}:${x.r}`;
      expect(sends.map(key).sort()).toEqual(recvs.map(key).sort());
      // Every receiver gets each of its samples exactly once.
      const next = plan.stages[s + 1];
      for (let r = 0; r < worldSize(plan); r++) {
        if (rankPosition(plan, r).stage !== s + 1) continue;
        const got = new Array<number>(next.microBatchSize).fill(0);
        for (const t of recvs.filter((x) => x.to === r)) for (let i = t.r[0]; i < t.r[1]; i++) got[i]++;
        expect(got).toEqual(new Array(next.microBatchSize).fill(1));
      }
    }
  });

  it('with context parallelism: TP groups inside a cp rank, CP rings of cp ranks tp apart, gradient groups of dp * cp ranks', () => {
    const cpPlan: Plan = {
      version: 1, model: 'gpt-tiny', seqLen: 16, globalBatch: 8, gradAccumSteps: 2,
      stages: [stage([0, 1], 1, 1, 4), { ...stage([2, 3], 2, 2, 2), cp: 2, mesh: { nodes: 1, gpusPerNode: 8 } }],
    };
    expect(worldSize(cpPlan)).toBe(9);
    // Stage 1 starts at rank 1: rank = 1 + (dpIndex * cp + cpIndex) * tp + tpIndex.
    const p = rankPosition(cpPlan, 1 + (1 * 2 + 1) * 2 + 0);
    expect(p).toMatchObject({ stage: 1, dpIndex: 1, cpIndex: 1, tpIndex: 0, cp: 2 });
    expect(tpGroup(cpPlan, p)).toEqual([7, 8]);
    expect(cpGroup(cpPlan, p)).toEqual([5, 7]);
    expect(dpGroup(cpPlan, p)).toEqual([1, 3, 5, 7]);
    expect(dpcpIndex(p)).toBe(3);
    // Each kind of split color names exactly its group's ranks.
    const ranks = Array.from({ length: worldSize(cpPlan) }, (_, r) => rankPosition(cpPlan, r));
    for (const [color, group] of [[tpColor, tpGroup], [cpColor, cpGroup], [dpColor, dpGroup]] as const) {
      for (const q of ranks) expect(ranks.filter((x) => color(x) === color(q)).map((x) => x.rank), `${color.name} of rank ${q.rank}`).toEqual(group(cpPlan, q));
    }
  });
});
