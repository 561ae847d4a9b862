// Plans and their analyzer estimates for the viz tests: gpt3-1.3b (24 layers) on one node of L4s,
// split into equal pipeline stages of one GPU each.
import { builtinHardwareProfile, getModel, loadCluster, type Plan } from '@mist/core';
import { analyzePlan, type Analysis } from '@mist/analyzer';

export function pipelinePlan(pp: number, G: number, ckptLayers: number, offloadActivations = 0, virtualStages?: number): { plan: Plan; analysis: Analysis } {
  const model = getModel('gpt3-1.3b');
  const per = model.layers / pp;
  const doc = {
    version: 1, model: model.name, cluster: `1x${pp}-l4`, seqLen: 1024, globalBatch: G, gradAccumSteps: G, virtualStages,
    stages: Array.from({ length: pp }, (_, i) => ({
      layers: [i * per, (i + 1) * per - 1], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, tp: 1,
      sequenceParallel: false, ckptLayers, zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: offloadActivations },
    })),
  };
  const { analysis, plan } = analyzePlan({ model, plan: doc, profile: builtinHardwareProfile(loadCluster(`1x${pp}-l4`)) });
  return { plan, analysis };
}
