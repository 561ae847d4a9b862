import { NO_OFFLOAD, type Plan, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { type PlacementAgent, placePlan } from './placement';

function stage(layers: [number, number], nodes: number, gpusPerNode: number, dp: number, tp: number): StageStrategy {
  return {
    layers, mesh: { nodes, gpusPerNode }, microBatchSize: 1, dp, tp, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: { ...NO_OFFLOAD },
  };
}

function plan(stages: StageStrategy[]): Plan {
  return { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 8 / stages[0].dp, stages };
}

function agent(id: string, devices: number, busy: number[] = []): PlacementAgent {
  return { id, host: `${id}.local`, devices: Array.from({ length: devices }, (_, index) => ({ index, kind: 'cpu', memoryBytes: 1e9 })), busy };
}

describe('placement', () => {
  it('keeps TP groups on one host and numbers ranks stage by stage, tp fastest', () => {
    const res = placePlan(plan([stage([0, 1], 1, 4, 2, 2), stage([2, 3], 1, 4, 2, 2)]), [agent('a', 4), agent('b', 4)]);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.ranks.map((r) => [r.rank, r.stage, r.dpIndex, r.tpIndex, r.agentId])).toEqual([
      [0, 0, 0, 0, 'a'], [1, 0, 0, 1, 'a'], [2, 0, 1, 0, 'a'], [3, 0, 1, 1, 'a'],
      [4, 1, 0, 0, 'b'], [5, 1, 0, 1, 'b'], [6, 1, 1, 0, 'b'], [7, 1, 1, 1, 'b'],
    ]);
  });

  it('carries each rank\'s context-parallel index (tp fastest, then cp, then dp)', () => {
    const cp = { ...stage([0, 3], 1, 8, 2, 2), cp: 2 };
    const res = placePlan({ ...plan([cp]), gradAccumSteps: 4 }, [agent('a', 8)]);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.ranks.map((r) => [r.rank, r.dpIndex, r.cpIndex, r.tpIndex])).toEqual([
      [0, 0, 0, 0], [1, 0, 0, 1], [2, 0, 1, 0], [3, 0, 1, 1], [4, 1, 0, 0], [5, 1, 0, 1], [6, 1, 1, 0], [7, 1, 1, 1],
    ]);
  });

  it('puts neighbouring stages on the same host when it has room', () => {
    const res = placePlan(plan([stage([0, 1], 1, 2, 2, 1), stage([2, 3], 1, 2, 2, 1)]), [agent('a', 4), agent('b', 4)]);
    expect(res.ok && res.ranks.map((r) => r.agentId)).toEqual(['a', 'a', 'a', 'a']);
  });

  it('spreads a multi-node mesh over hosts and skips busy devices', () => {
    const res = placePlan(plan([stage([0, 3], 2, 2, 4, 1)]), [agent('a', 4, [0, 1]), agent('b', 2)]);
    expect(res.ok).toBe(true);
    if (res.ok) expect(res.ranks.map((r) => `${r.agentId}:${r.deviceIndex}`).sort()).toEqual(['a:2', 'a:3', 'b:0', 'b:1']);
  });

  it('refuses with the reason when the free devices cannot hold the plan', () => {
    const tooMany = placePlan(plan([stage([0, 3], 1, 8, 8, 1)]), [agent('a', 4)]);
    expect(tooMany).toEqual({ ok: false, reason: 'the plan needs 8 devices; the 1 agent(s) have 4 free' });
    const split = placePlan(plan([stage([0, 3], 1, 4, 2, 2)]), [agent('a', 2), agent('b', 2)]);
    expect(split.ok).toBe(false);
    if (!split.ok) expect(split.reason).toMatch(/stage 0 needs 1 host\(s\) with 4 free device\(s\) each .* the most free devices on one host is 2/);
  });
});
