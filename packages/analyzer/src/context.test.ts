import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, getModel, parseClusterShorthand } from '@mist/core';
import { analyzePlan, contextFor } from './index';

const plan = {
  version: 1, model: 'gpt3-1.3b', cluster: '1x2-l4', seqLen: 2048, globalBatch: 32, gradAccumSteps: 2,
  stages: [{ layers: [0, 23], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 8, dp: 2, tp: 1, sequenceParallel: false,
    ckptLayers: 24, zero: 1, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }],
};

describe('contextFor', () => {
  it('builds the same context from names as from specs', () => {
    const byName = contextFor({ model: 'GPT3-1.3B', cluster: '1x2-L4', training: { globalBatch: 32, seqLen: 2048 } });
    const bySpec = contextFor({ model: getModel('gpt3-1.3b'), cluster: parseClusterShorthand('1x2-l4'), training: { globalBatch: 32, seqLen: 2048 } });
    expect(byName).toEqual(bySpec);
    expect(byName.profile).toEqual(builtinHardwareProfile(parseClusterShorthand('1x2-l4')));
    expect(byName.training.flashAttention).toBe(true);
  });

  it('is what analyzePlan takes too: the same estimate as with a cluster', () => {
    const ctx = contextFor({ model: 'gpt3-1.3b', cluster: '1x2-l4', training: { globalBatch: 32, seqLen: 2048 } });
    const viaCtx = analyzePlan({ ...ctx, plan }).analysis;
    const viaCluster = analyzePlan({ model: ctx.model, cluster: parseClusterShorthand('1x2-l4'), plan }).analysis;
    expect(viaCtx.iterationTimeS).toBe(viaCluster.iterationTimeS);
  });

  it('names what is missing or doubled', () => {
    expect(() => contextFor({ model: 'gpt3-1.3b', training: { globalBatch: 32, seqLen: 2048 } })).toThrow(/cluster: got nothing; required/);
    const profile = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
    expect(() => contextFor({ model: 'gpt3-1.3b', cluster: '1x2-l4', profile, training: { globalBatch: 32, seqLen: 2048 } }))
      .toThrow(/not both/);
    expect(() => contextFor({ model: 'gpt3-1.3b', cluster: '1x2-l4', training: { globalBatch: 0, seqLen: 2048 } })).toThrow(/globalBatch/);
  });
});
