// `mist tune --target cpu`: the tuner searches only what the executor's cpu backend runs (core's
// backend table), and returns plans that the coordinator then accepts at submit.
import { backendCapabilities, backendViolations, getModel, NO_OFFLOAD, parseTrainingSpec, type Plan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { backendSpace } from './backend-space';
import { mistSpace, NO_OFFLOAD_LEVELS, ratioGrid, DEFAULT_OFFLOAD_STEP } from './search-space';
import { planInSpace } from './space-membership';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

const llama = getModel('llama-tiny'); // 4 heads, 2 key/value heads

describe('backendSpace(cpu)', () => {
  it('maps the cpu table: tp up to the key/value heads, sequence parallelism, ZeRO 0-3, offload ratios, fine recompute', () => {
    const s = backendSpace('cpu', llama);
    expect(s).toMatchObject({ name: 'cpu', maxTp: 2, sequenceParallel: true, zero: [0, 1, 2, 3], ckpt: 'fine', uniformPartition: false });
    expect(s.offload.activations).toEqual(ratioGrid(DEFAULT_OFFLOAD_STEP));
    expect(backendSpace('cpu', getModel('gpt-tiny')).maxTp).toBe(4);
    // The cpu executor runs ring attention: context parallelism is searched, narrowed by the flags.
    expect(backendSpace('cpu', llama).maxCp).toBeGreaterThan(1);
    expect(backendSpace('cpu', llama, { maxCp: 4 }).maxCp).toBe(4);
    const withCp: Plan = {
      version: 1, model: llama.name, seqLen: 64, globalBatch: 8, gradAccumSteps: 1,
      stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 4, dp: 2, tp: 1, cp: 2, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
    };
    expect(planInSpace(withCp, mistSpace())).toBe(true);
    expect(planInSpace(withCp, backendSpace('cpu', llama))).toBe(true);
    expect(planInSpace(withCp, backendSpace('cpu', llama, { maxCp: 1 }))).toBe(false);
  });

  it('leaves out the plans the executor refuses, which the Mist space contains', () => {
    const wide: Plan = {
      version: 1, model: llama.name, seqLen: 64, globalBatch: 8, gradAccumSteps: 1,
      stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 8, dp: 1, tp: 4, sequenceParallel: true, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
    };
    expect(planInSpace(wide, mistSpace())).toBe(true);
    expect(planInSpace(wide, backendSpace('cpu', llama))).toBe(false);
  });

  it('lets flags narrow the backend space but never widen it', () => {
    const s = backendSpace('cpu', llama, { maxTp: 8, sequenceParallel: false, zero: [1, 3], offload: NO_OFFLOAD_LEVELS, ckpt: 'none' });
    expect(s).toMatchObject({ maxTp: 2, sequenceParallel: false, zero: [1, 3], offload: NO_OFFLOAD_LEVELS, ckpt: 'none' });
    expect(() => backendSpace('cpu', llama, { zero: [] })).toThrow(/zero: .*the cpu backend runs ZeRO 0, 1, 2, 3/);
  });

  it('tunes llama-tiny on 1x4 to a plan the cpu backend runs', async () => {
    const base = tinyContext('1x4-l4', 64 * 1024 * 1024);
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });
    const ctx = { ...base, model: llama, training };
    const r = await tune(ctx, { space: backendSpace('cpu', llama, { offload: NO_OFFLOAD_LEVELS }) });
    expect(r.plan).not.toBeNull();
    expect(backendViolations(backendCapabilities('cpu'), { model: llama, training, plan: r.plan })).toEqual([]);
  });
});

describe('the cpu space follows the training spec and the interleaved schedule', () => {
  it('context parallelism only with flash attention; interleaving allowed and restricted by the knob', () => {
    const model = getModel('gpt-tiny');
    expect(backendSpace('cpu', model, {}, { flashAttention: true }).maxCp).toBeGreaterThan(1);
    expect(backendSpace('cpu', model, {}, { flashAttention: false }).maxCp).toBe(1);
    expect(backendSpace('cpu', model).maxVirtualStages).toBeGreaterThan(1);
    expect(backendSpace('cpu', model, { maxVirtualStages: 1 }).maxVirtualStages).toBe(1);
  });
});

describe('backendSpace(cuda)', () => {
  it('is the cpu space without experts, and its training is bf16; a head size the fused kernel lacks is named', () => {
    const s = backendSpace('cuda', llama);
    expect(s).toMatchObject({ name: 'cuda', maxTp: 2, sequenceParallel: true, zero: [0, 1, 2, 3], maxEp: 1 });
    const caps = backendCapabilities('cuda');
    expect(caps.dtypes[0]).toBe('bf16');
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'bf16', flashAttention: true });
    expect(backendViolations(caps, { model: llama, training, plan: null })).toEqual([]);
    const odd = { ...llama, name: 'odd-heads', hidden: 96, heads: 4, kvHeads: 2 }; // head size 24
    expect(backendViolations(caps, { model: odd, training, plan: null }).map((v) => v.feature)).toEqual(['flash attention with head size 24']);
    expect(backendViolations(caps, { model: odd, training: { ...training, flashAttention: false }, plan: null })).toEqual([]);
  });
});
