import { NO_OFFLOAD, type Plan, PLAN_VERSION, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { newDimensionsUsed, spaceWithout } from './dimension-gains';
import { mistSpace } from './search-space';

const stage = (first: number, extra: Partial<StageStrategy> = {}): StageStrategy => ({
  layers: [first, first + 1], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 1, dp: 2, tp: 2, sequenceParallel: false, ckptLayers: 0, zero: 0,
  offload: { ...NO_OFFLOAD }, ...extra,
});
const plan = (stages: StageStrategy[], extra: Partial<Plan> = {}): Plan => ({
  version: PLAN_VERSION, model: 'gpt-tiny', cluster: '2x4-l4', seqLen: 64, globalBatch: 8, gradAccumSteps: 4, stages, ...extra,
});

describe('the newer dimensions a plan uses', () => {
  it('none for a plain plan', () => {
    expect(newDimensionsUsed(plan([stage(0), stage(2)]))).toEqual([]);
  });

  it('context parallelism, interleaving, selective recompute and expert parallelism, with the stages that use them', () => {
    const p = plan([stage(0, { cp: 2, dp: 1, selectiveRecompute: true }), stage(2, { cp: 2, dp: 1, ep: 2 })], { virtualStages: 2 });
    expect(newDimensionsUsed(p)).toEqual([
      { dimension: 'context-parallel', detail: 'cp 2 in stages 0-1' },
      { dimension: 'interleaved', detail: '2 model chunks on each of 2 ranks' },
      { dimension: 'selective-recompute', detail: 'in stage 0' },
      { dimension: 'expert-parallel', detail: 'ep 2 in stage 1' },
    ]);
  });

  it('each is turned off alone', () => {
    const s = mistSpace();
    expect(spaceWithout(s, 'context-parallel')).toEqual({ ...s, maxCp: 1 });
    expect(spaceWithout(s, 'interleaved')).toEqual({ ...s, maxVirtualStages: 1 });
    expect(spaceWithout(s, 'selective-recompute')).toEqual({ ...s, selectiveRecompute: false });
    expect(spaceWithout(s, 'expert-parallel')).toEqual({ ...s, maxEp: 1 });
  });
});
