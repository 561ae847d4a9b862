// The peak of the tensors live at one time (stage-model.ts peakLive, torch.cuda.max_memory_allocated)
// against the peak the fit test reads (PEAK_MEMORY, torch.cuda.max_memory_reserved less fragmentation):
// the head's backward and a layer's backward are live one after the other, and without flash
// attention a layer's backward holds a second score-sized gradient.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parsePlan, parseTrainingSpec, type Plan, type StageStrategy } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { estimatePlan } from './plan-estimate';

const model = getModel('gpt3-1.3b');
const stage = (layers: [number, number]): StageStrategy => ({
  layers, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 2, dp: 1, tp: 1, sequenceParallel: false,
  ckptLayers: layers[1] - layers[0] + 1, zero: 0, offload: NO_OFFLOAD,
});
const twoStages = (flashAttention: boolean): Plan => parsePlan({
  version: 1, model: model.name, seqLen: 2048, globalBatch: 8, gradAccumSteps: 4, flashAttention, stages: [stage([0, 11]), stage([12, 23])],
});
const estimate = (plan: Plan) => estimatePlan(plan, {
  model, training: parseTrainingSpec({ globalBatch: plan.globalBatch, seqLen: plan.seqLen, flashAttention: plan.flashAttention }),
  profile: builtinHardwareProfile(parseClusterShorthand('1x2-a100-80gb')),
});

describe('live-tensor peak', () => {
  it('with flash attention: the first stage (no head) peaks as the fit test reads it; the last (with the head) lower', () => {
    const [first, last] = estimate(twoStages(true)).stages;
    expect(first.memory.peakLive).toBe(first.peakMemoryBytes);
    expect(last.memory.peakLive).toBeLessThan(last.peakMemoryBytes);
    // The head's backward and the layer's are not added: the difference is at most the smaller of the two.
    expect(last.memory.peakLive).toBeGreaterThanOrEqual(last.memory.weights + last.memory.grads + last.memory.optim + last.memory.activations);
  });

  it('without flash attention a stage without the head holds one more score-sized gradient (b x heads x s x s, bf16)', () => {
    const [first] = estimate(twoStages(false)).stages;
    const scores = 2 * 2 * model.heads * 2048 * 2048;
    expect(first.memory.peakBackward).toBeGreaterThan(first.memory.peakForward);
    expect(first.memory.peakLive - first.memory.peakBackward).toBe(scores);
  });

  it('allocated reads the live peak (with the workspace) and never exceeds reserved', () => {
    const plan = twoStages(false);
    const workspace = builtinHardwareProfile(parseClusterShorthand('1x2-a100-80gb')).memory.workspaceBytes ?? 0;
    for (const s of estimate(plan).stages) {
      expect(s.deviceMemory.allocatedBytes).toBe(Math.min(s.memory.peakLive + workspace, s.deviceMemory.reservedBytes));
      expect(s.deviceMemory.allocatedBytes).toBeLessThanOrEqual(s.deviceMemory.reservedBytes);
    }
  });
});
