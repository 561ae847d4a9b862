import { describe, expect, it } from 'vitest';
import { backendCapabilities, backendMaxTp, backendViolations, isBackendName } from './backend-capabilities';
import { type ModelSpec } from './model';
import { getModel } from './model-catalog';
import { NO_OFFLOAD, type Plan } from './plan';
import { parseTrainingSpec } from './training';
import { planCapabilityViolations, engineCapabilities } from './engine-capabilities';

const cpu = backendCapabilities('cpu');
const fp32 = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });

function plan(model: ModelSpec, stages: Array<Partial<Plan['stages'][number]> & { layers: [number, number] }>): Plan {
  return {
    version: 1, model: model.name, seqLen: 64, globalBatch: 8, gradAccumSteps: 1,
    stages: stages.map((s) => ({
      mesh: { nodes: 1, gpusPerNode: (s.dp ?? 1) * (s.tp ?? 1) }, microBatchSize: 8 / (s.dp ?? 1), dp: 1, tp: 1, sequenceParallel: false,
      ckptLayers: 0, zero: 0, offload: NO_OFFLOAD, ...s,
    })),
  };
}

describe('the cpu backend table', () => {
  it('is found by name and refuses unknown names with the allowed ones', () => {
    expect(isBackendName('cpu')).toBe(true);
    expect(isBackendName('nccl')).toBe(false);
    expect(() => backendCapabilities('gpu' as 'cpu')).toThrow(/backend: got "gpu"; allowed: cpu/);
  });

  it('runs what the executor runs: non-uniform per-stage plans with ZeRO-3, offload and recompute', () => {
    const m = getModel('gpt-tiny');
    const p = plan(m, [
      { layers: [0, 0], dp: 2, tp: 1, zero: 3, offload: { weights: 0.5, grads: 0.25, optim: 1, activations: 0.5 }, ckptLayers: 1 },
      { layers: [1, m.layers - 1], dp: 1, tp: 2, sequenceParallel: true, zero: 1 },
    ]);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: p })).toEqual([]);
  });

  it('names each feature the executor refuses or runs differently', () => {
    const m = getModel('gpt-tiny');
    const fp16 = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'fp16', flashAttention: false });
    const features = backendViolations(cpu, { model: { ...m, positional: 'alibi' }, training: fp16, plan: null }).map((v) => [v.field, v.feature]);
    expect(features).toEqual([
      ['training.paramDtype', 'bf16 training'],
      ['training.computeDtype', 'fp16 training'],
      ['model.positional', 'ALiBi positions'],
    ]);
  });

  it('refuses tp above the key/value head count (replicated KV heads), which core\'s plan rules allow', () => {
    const m: ModelSpec = { ...getModel('llama-tiny'), heads: 8, kvHeads: 2 };
    const p = plan(m, [{ layers: [0, m.layers - 1], tp: 4 }]);
    const v = backendViolations(cpu, { model: m, training: fp32, plan: p });
    expect(v.map((x) => x.field)).toEqual(['plan.stages[0].tp']);
    expect(v[0].feature).toMatch(/replicated key\/value heads/);
    expect(backendMaxTp(cpu, m)).toBe(2);
  });

  it('says the cpu backend shards activations under sequence parallelism and runs dropout', () => {
    expect(cpu.sequenceParallelShardsActivations).toBe(true);
    expect(cpu.dropout).toBe(true);
    const gpt3 = getModel('gpt3-125m');
    expect(backendViolations(cpu, { model: gpt3, training: fp32, plan: null })).toEqual([]);
    // a backend without dropout refuses a model with it, naming the feature
    const v = backendViolations({ ...cpu, dropout: false }, { model: gpt3, training: fp32, plan: null });
    expect(v.map((x) => [x.field, x.feature])).toEqual([['model.dropout', 'dropout']]);
    expect(backendViolations({ ...cpu, dropout: false }, { model: getModel('llama-tiny'), training: fp32, plan: null })).toEqual([]);
  });

  it('runs context parallelism per stage (ring attention), also with a cp change at a pipeline boundary', () => {
    const m = getModel('gpt-tiny');
    const cp2 = { cp: 2, mesh: { nodes: 1, gpusPerNode: 4 }, dp: 1, tp: 2, microBatchSize: 8 };
    expect(cpu.plan.contextParallel).toBe(true);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: plan(m, [{ layers: [0, 1], ...cp2 }, { layers: [2, m.layers - 1], ...cp2 }]) })).toEqual([]);
    const mixed = plan(m, [{ layers: [0, 1], ...cp2 }, { layers: [2, m.layers - 1], tp: 2, mesh: { nodes: 1, gpusPerNode: 2 } }]);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: mixed })).toEqual([]);
  });

  it('runs the unfused attention (flashAttention false), but not with context parallelism', () => {
    const m = getModel('gpt-tiny');
    const unfused = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: false });
    expect(cpu.flashAttention).toEqual([true, false]);
    expect(backendViolations(cpu, { model: m, training: unfused, plan: plan(m, [{ layers: [0, m.layers - 1], dp: 2, selectiveRecompute: true }]) })).toEqual([]);
    const cp = plan(m, [{ layers: [0, m.layers - 1], cp: 2, mesh: { nodes: 1, gpusPerNode: 2 } }]);
    const v = backendViolations(cpu, { model: m, training: unfused, plan: cp });
    expect(v.map((x) => [x.field, x.feature])).toEqual([['plan.stages[0].cp', 'context parallelism with the unfused attention (flashAttention false)']]);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: cp })).toEqual([]);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: { ...cp, flashAttention: false } }).map((x) => x.field)).toEqual(['plan.stages[0].cp']);
  });

  it('runs mixture-of-experts models with expert parallelism at any ZeRO level, with tp and sequence parallelism', () => {
    const m = getModel('mixtral-8x7b');
    expect(cpu.plan.mixtureOfExperts).toBe(true);
    expect(cpu.plan.expertParallel).toBe(true);
    const p = plan(m, [
      { layers: [0, 15], dp: 4, ep: 4, zero: 3, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0 }, mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 2 },
      { layers: [16, m.layers - 1], dp: 2, tp: 2, ep: 2, sequenceParallel: true, zero: 1, mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 4 },
    ]);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: p })).toEqual([]);
  });

  it('refuses Megatron-Core\'s communication overlaps on both backends, naming each training field', () => {
    const m = getModel('gpt-tiny');
    const p = plan(m, [{ layers: [0, m.layers - 1], dp: 2, tp: 2, sequenceParallel: true, zero: 1, mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 4 }]);
    // Off (the default), nothing is refused.
    expect(fp32.tpCommOverlap).toBe(false);
    expect(fp32.paramGatherOverlap).toBe(false);
    expect(backendViolations(cpu, { model: m, training: fp32, plan: p })).toEqual([]);
    const bf16 = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'bf16' });
    for (const backend of ['cpu', 'cuda'] as const) {
      const caps = backendCapabilities(backend);
      const base = backend === 'cpu' ? fp32 : bf16;
      expect(caps.tpCommOverlap).toBe(false);
      expect(caps.paramGatherOverlap).toBe(false);
      for (const job of [{ plan: p }, { plan: null }]) {
        const v = backendViolations(caps, { model: m, training: { ...base, tpCommOverlap: true, paramGatherOverlap: true }, ...job });
        expect(v.map((x) => x.field)).toEqual(['training.tpCommOverlap', 'training.paramGatherOverlap']);
        expect(v[0].feature).toMatch(/--tp-comm-overlap/);
        expect(v[1].feature).toMatch(/--overlap-param-gather/);
        expect(v.every((x) => x.detail.includes(`the ${backend} backend`))).toBe(true);
      }
      expect(backendViolations(caps, { model: m, training: { ...base, paramGatherOverlap: true }, plan: p }).map((x) => x.field)).toEqual(['training.paramGatherOverlap']);
    }
  });

  it('leaves the engine checker unchanged (engine name in the details)', () => {
    const m = getModel('gpt-tiny');
    const p = plan(m, [{ layers: [0, m.layers - 1], dp: 1, tp: 2 }]);
    expect(planCapabilityViolations(p, engineCapabilities('deepspeed'))[0].detail).toMatch(/deepspeed has no tensor parallelism/);
  });
});
