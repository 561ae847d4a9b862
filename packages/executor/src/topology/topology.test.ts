import { NO_OFFLOAD, type Plan, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { dpGroup, forwardRecvs, forwardSends, rankPosition, tpGroup, worldSize } from './index';

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
});
