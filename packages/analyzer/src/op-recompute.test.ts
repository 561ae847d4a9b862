// torchtitan's per-op selective checkpointing (core's opCheckpointSet) in the stage model: a Llama
// layer keeps its input, the wq, wv, w1 and w2 products, the attention output and its log-sum-exp,
// and runs the wk, wo and w3 GEMMs and every op outside the save list again in backward.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';

const model = getModel('llama3.1-8b');
const profile = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'));
const s = 2048;
const compiled = compileStageModel({ model, profile, training: parseTrainingSpec({ globalBatch: 64, seqLen: s, flashAttention: true }) });

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 4, position: 'middle', inFlight: 2, pp: 8, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 2, gradAccumSteps: 4, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: NO_OFFLOAD, ...over,
  };
}

describe('per-op selective checkpointing in the stage model', () => {
  const b = 2, h = model.hidden, kv = (model.hidden / model.heads) * model.kvHeads, f = model.ffnHidden, a = model.heads;
  // Per token: x, q, attn, mo (h each), v (kv), gate (f) in bf16, and the fp32 log-sum-exp per head.
  const keptPerToken = 2 * (4 * h + kv + f) + 4 * a;

  it('keeps exactly the kept tensors of every layer not fully checkpointed', () => {
    const op = compiled.estimate(query({ opRecompute: true }));
    expect(op.memory.activations).toBe(2 * 4 * b * s * keptPerToken);
    const mixed = compiled.estimate(query({ opRecompute: true, ckptLayers: 1 }));
    const ckptOnly = compiled.estimate(query({ ckptLayers: 1 }));
    const full = compiled.estimate(query());
    // One checkpointed layer keeps its input (what ckptLayers 1 keeps beyond three whole layers); the other three the kept tensors.
    const keepOfCheckpointed = ckptOnly.memory.activations / 2 - (3 / 4) * (full.memory.activations / 2);
    expect(mixed.memory.activations).toBeCloseTo(2 * (3 * b * s * keptPerToken + keepOfCheckpointed), 0);
    expect(op.memory.activations).toBeLessThan(full.memory.activations);
    expect(op.peakMemoryBytes).toBeLessThan(full.peakMemoryBytes);
  });

  it('recomputes between nothing and whole layers: the wk, wo and w3 GEMMs (36% of the GEMM FLOPs) and the cheap ops', () => {
    const none = compiled.estimate(query());
    const op = compiled.estimate(query({ opRecompute: true }));
    const ckpt = compiled.estimate(query({ ckptLayers: 4 }));
    expect(none.time.recompute).toBe(0);
    expect(op.time.forward).toBe(none.time.forward);
    expect(op.time.recompute).toBeGreaterThan(0.3 * ckpt.time.recompute);
    expect(op.time.recompute).toBeLessThan(0.6 * ckpt.time.recompute);
    expect(op.steadyTimeS).toBeGreaterThan(none.steadyTimeS);
    expect(op.steadyTimeS).toBeLessThan(ckpt.steadyTimeS);
    // Every layer fully checkpointed leaves nothing to the per-op policy.
    const all = compiled.estimate(query({ ckptLayers: 4, opRecompute: true }));
    expect(all.time.recompute).toBeCloseTo(ckpt.time.recompute, 12);
    expect(all.memory.activations).toBe(ckpt.memory.activations);
  });
});
