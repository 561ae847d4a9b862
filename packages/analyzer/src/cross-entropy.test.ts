// The loss's reading of the logits (TrainingSpec.crossEntropy): a loss over an fp32 copy of the
// logits (torchtitan's `F.cross_entropy(pred.float(), labels)`) holds 12 bytes per logit in backward
// and bf16 + 8 in forward, against the fused kernel's 6 and 6 with bf16 (op-graph.ts
// headTransientBytes), one over the bf16 logits themselves (Megatron-LM's --fp16-lm-cross-entropy)
// 2 in backward; only the last stage holds logits, and time is unchanged.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';

const model = getModel('llama3-8b');
const profile = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'), 'bf16');
const compiled = (crossEntropy: 'fused' | 'fp32-logits' | 'compute-dtype') => compileStageModel({
  model, profile, training: parseTrainingSpec({ globalBatch: 8, seqLen: 8192, paramDtype: 'bf16', computeDtype: 'bf16', crossEntropy }),
});
const query = (position: StageQuery['position']): StageQuery => ({
  layers: 8, position, inFlight: 1, pp: 4, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, gradAccumSteps: 4, dp: 2, tp: 1,
  sequenceParallel: false, ckptLayers: 8, zero: 3, offload: NO_OFFLOAD,
});

describe('crossEntropy', () => {
  it('fp32-logits adds 6 bytes per logit to the last stage\'s backward peak, nothing elsewhere, and no time', () => {
    const fused = compiled('fused');
    const fp32 = compiled('fp32-logits');
    const a = fused.estimate(query('last'));
    const b = fp32.estimate(query('last'));
    const logits = 8192 * model.vocab; // one micro-batch of one sample, tp 1
    expect(b.memory.peakBackward - a.memory.peakBackward).toBeCloseTo(6 * logits, -3);
    expect(b.steadyTimeS).toBe(a.steadyTimeS);
    for (const position of ['first', 'middle'] as const) expect(fp32.estimate(query(position)).peakMemoryBytes).toBe(fused.estimate(query(position)).peakMemoryBytes);
  });

  it('compute-dtype (Megatron-LM\'s --fp16-lm-cross-entropy) holds 2 bytes per logit in backward, 4 less than the fused kernel', () => {
    const a = compiled('fused').estimate(query('last'));
    const c = compiled('compute-dtype').estimate(query('last'));
    const logits = 8192 * model.vocab;
    expect(a.memory.peakBackward - c.memory.peakBackward).toBeCloseTo(4 * logits, -3);
    expect(c.steadyTimeS).toBe(a.steadyTimeS);
  });
});
