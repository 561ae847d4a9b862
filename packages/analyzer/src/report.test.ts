import { getModel, NO_OFFLOAD, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { analyzePlan } from './report';

const planDoc = (over: Record<string, unknown> = {}) => ({
  version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 32, gradAccumSteps: 2,
  stages: [{ layers: [0, 23], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 8, dp: 2, tp: 1, sequenceParallel: false,
    ckptLayers: 24, zero: 1, offload: NO_OFFLOAD, ...over }],
});

describe('analyzePlan', () => {
  const model = getModel('gpt3-1.3b');
  const cluster = parseClusterShorthand('1x2-l4');

  it('builds the report from documents, with the datasheet profile of the cluster', () => {
    const { analysis, plan, training } = analyzePlan({ model, cluster, plan: planDoc(), explain: true });
    expect(analysis.profile).toBe('datasheet:l4');
    expect(analysis.cluster).toBe('1x2-l4');
    expect(training.seqLen).toBe(plan.seqLen);
    expect(analysis.stages[0].strategy).toEqual(plan.stages[0]);
    expect(analysis.stages[0].overflowBytes).toBe(0);
    expect(analysis.stages[0].explain?.time).toMatch(/steady \[s\] = /);
    expect(JSON.parse(JSON.stringify(analysis)).iterationTimeS).toBe(analysis.iterationTimeS);
  });

  it('takes dtypes and the attention kernel from the training input, batch and length from the plan', () => {
    const fa = analyzePlan({ model, cluster, plan: planDoc({ ckptLayers: 0 }), training: { flashAttention: true, globalBatch: 999 } });
    const noFa = analyzePlan({ model, cluster, plan: planDoc({ ckptLayers: 0 }), training: { flashAttention: false } });
    expect(fa.training.globalBatch).toBe(32);
    expect(noFa.analysis.stages[0].memory.activations).toBeGreaterThan(fa.analysis.stages[0].memory.activations);
  });

  it('reports the overflow of a plan that does not fit', () => {
    const { analysis } = analyzePlan({ model, cluster, plan: { ...planDoc({ microBatchSize: 16, ckptLayers: 0, zero: 0 }), gradAccumSteps: 1 } });
    expect(analysis.allFit).toBe(false);
    expect(analysis.stages[0].overflowBytes).toBeCloseTo(analysis.stages[0].peakMemoryBytes - analysis.stages[0].capacityBytes, 0);
  });
});
