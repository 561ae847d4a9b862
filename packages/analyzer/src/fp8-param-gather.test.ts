// fp8ParamGather (Megatron-LM's --fp8-param-gather, torchao's enable_fsdp_float8_all_gather): the fp8
// linear layers' compute weights kept and all-gathered as fp8, 1 byte an element instead of 2 with bf16.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec, SpecError } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';

const model = getModel('gpt3-1.3b');
const h100 = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'), 'bf16');
const stageModel = (fp8ParamGather: boolean, fp8: 'current' | 'none' = 'current') => compileStageModel({
  model, profile: h100,
  training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', fp8, fp8ParamGather }),
});
const query = (zero: StageQuery['zero']): StageQuery => ({
  layers: 8, position: 'middle', inFlight: 1, pp: 3, mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 4, gradAccumSteps: 2,
  dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero, offload: NO_OFFLOAD,
});
// Dense linear weight elements of one layer (QKV, projection, FC1, FC2).
const layerWeights = 4 * model.hidden * model.hidden + 2 * model.hidden * model.ffnHidden;

describe('fp8ParamGather', () => {
  it('ZeRO-1: the resident compute weights are fp8 and the fp8 workspace keeps only the transpose: 2 bytes less a weight element', () => {
    const a = stageModel(false).estimate(query(1));
    const b = stageModel(true).estimate(query(1));
    expect(a.memory.weights - b.memory.weights).toBe(2 * 8 * layerWeights);
    // The parameter all-gather after the step moves half the layers' bytes.
    expect(b.lastTimeS).toBeLessThan(a.lastTimeS);
  });

  it('ZeRO-3: the two gathered layers are fp8, the sharded weights unchanged, and the per-micro-batch gathers move fewer bytes', () => {
    const a = stageModel(false).estimate(query(3));
    const b = stageModel(true).estimate(query(3));
    // The fp8 copies of the two layers in flight: 1 byte less each; the gather buffer of two layers
    // (beyond the rank's own shard, 1 - 1/dp of them): 1 byte less each.
    expect(a.memory.weights - b.memory.weights).toBe(2 * layerWeights);
    expect(a.peakMemoryBytes - b.peakMemoryBytes).toBeCloseTo(2 * layerWeights + 2 * layerWeights * (1 - 1 / 8), -3);
    expect(b.steadyTimeS).toBeLessThan(a.steadyTimeS);
  });

  it('is refused without fp8 linear layers, naming the field and the recipes it needs', () => {
    expect(() => stageModel(true, 'none')).toThrow(SpecError);
    expect(() => stageModel(true, 'none')).toThrow(/fp8ParamGather.*allowed with it: delayed, current/);
  });
});
