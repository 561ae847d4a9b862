// The loss's reading of the logits (TrainingSpec.crossEntropy): a loss over an fp32 copy of the
// logits (torchtitan's `F.cross_entropy(pred.float(), labels)`) holds 12 bytes per logit in backward
// and bf16 + 8 in forward, against the fused kernel's 6 and 6 with bf16 (op-graph.ts
// headTransientBytes), 16 and bf16 + 12 with TP's loss_parallel, and takes the time of its extra
// passes over the logits (op-graph.ts fp32LogitsLossBytes); the same loss compiled holds 2 and 4; one over the bf16 logits themselves (Megatron-LM's --fp16-lm-cross-entropy)
// 2 in backward; only the last stage holds logits.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';

const model = getModel('llama3-8b');
const profile = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'), 'bf16');
const compiled = (crossEntropy: 'fused' | 'fp32-logits' | 'compute-dtype' | 'compiled') => compileStageModel({
  model, profile, training: parseTrainingSpec({ globalBatch: 8, seqLen: 8192, paramDtype: 'bf16', computeDtype: 'bf16', crossEntropy }),
});
const query = (position: StageQuery['position']): StageQuery => ({
  layers: 8, position, inFlight: 1, pp: 4, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, gradAccumSteps: 4, dp: 2, tp: 1,
  sequenceParallel: false, ckptLayers: 8, zero: 3, offload: NO_OFFLOAD,
});

describe('crossEntropy', () => {
  it('fp32-logits adds 6 bytes per logit to the last stage\'s backward peak, nothing elsewhere, and its extra passes\' time', () => {
    const fused = compiled('fused');
    const fp32 = compiled('fp32-logits');
    const a = fused.estimate(query('last'));
    const b = fp32.estimate(query('last'));
    const logits = 8192 * model.vocab; // one micro-batch of one sample, tp 1
    expect(b.memory.peakBackward - a.memory.peakBackward).toBeCloseTo(6 * logits, -3);
    expect(b.steadyTimeS).toBeGreaterThan(a.steadyTimeS);
    for (const position of ['first', 'middle'] as const) expect(fp32.estimate(query(position)).peakMemoryBytes).toBe(fused.estimate(query(position)).peakMemoryBytes);
  });

  it('fp32-logits with TP (DTensor loss_parallel over vocabulary-sharded logits) holds 16 bytes per logit of the rank\'s shard in backward, 4 more than without TP', () => {
    const tp2 = { ...query('last'), mesh: { nodes: 1, gpusPerNode: 4 }, tp: 2, sequenceParallel: true };
    const a = compiled('fused').estimate(tp2);
    const b = compiled('fp32-logits').estimate(tp2);
    const logits = 8192 * model.vocab / 2; // the rank's vocabulary shard
    expect(b.memory.peakBackward - a.memory.peakBackward).toBeCloseTo(10 * logits, -3);
    expect(b.memory.peakForward - a.memory.peakForward).toBeCloseTo(8 * logits, -3);
  });

  it('fp32-logits moves 20 more bytes per logit than the fused kernel without TP and 60 more per logit of the shard with loss_parallel', () => {
    const tp2 = { ...query('last'), mesh: { nodes: 1, gpusPerNode: 4 }, tp: 2, sequenceParallel: true };
    const extra = (q: StageQuery) => compiled('fp32-logits').estimate(q).steadyTimeS - compiled('fused').estimate(q).steadyTimeS;
    // Half the logits per rank at tp 2, three times the bytes per logit: 1.5 times the time.
    expect(extra(tp2) / extra(query('last'))).toBeCloseTo(1.5, 6);
  });

  it('compiled (the fp32-logits loss under torch.compile) keeps the bf16 logits and writes their bf16 gradient: 4 bytes per logit in backward, 2 in forward, with or without TP', () => {
    const tp2 = { ...query('last'), mesh: { nodes: 1, gpusPerNode: 4 }, tp: 2, sequenceParallel: true };
    for (const [q, logits] of [[query('last'), 8192 * model.vocab], [tp2, 8192 * model.vocab / 2]] as const) {
      const a = compiled('fused').estimate(q);
      const c = compiled('compiled').estimate(q);
      expect(a.memory.peakBackward - c.memory.peakBackward).toBeCloseTo(2 * logits, -3);
      expect(a.memory.peakForward - c.memory.peakForward).toBeCloseTo(4 * logits, -3);
      // One read of the logits forward, a read and a write backward: fewer bytes than the fused kernel's.
      expect(c.steadyTimeS).toBeLessThan(a.steadyTimeS);
    }
  });

  it('compute-dtype (Megatron-LM\'s --fp16-lm-cross-entropy) holds 2 bytes per logit in backward, 4 less than the fused kernel', () => {
    const a = compiled('fused').estimate(query('last'));
    const c = compiled('compute-dtype').estimate(query('last'));
    const logits = 8192 * model.vocab;
    expect(a.memory.peakBackward - c.memory.peakBackward).toBeCloseTo(4 * logits, -3);
    expect(c.steadyTimeS).toBe(a.steadyTimeS);
  });
});
