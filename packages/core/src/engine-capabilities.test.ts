import { describe, expect, it } from 'vitest';
import {
  ENGINE_NAMES, type EngineName, type Plan, type StageStrategy, engineCapabilities, planCapabilityViolations,
} from './index';

function stage(layers: [number, number], over: Partial<StageStrategy> = {}): StageStrategy {
  return {
    layers, mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 2, dp: 4, tp: 1, sequenceParallel: false,
    ckptLayers: 0, zero: 0, offload: { weights: 0, grads: 0, optim: 0, activations: 0 }, ...over,
  };
}

function plan(stages: StageStrategy[]): Plan {
  return { version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 32, gradAccumSteps: 4, stages };
}

const features = (p: Plan, e: EngineName): string[] => planCapabilityViolations(p, engineCapabilities(e)).map((v) => v.feature);

describe('engine capability tables', () => {
  it('has a table with a version and sources for every engine', () => {
    for (const e of ENGINE_NAMES) {
      const caps = engineCapabilities(e);
      expect(caps.engine).toBe(e);
      expect(caps.engineVersion).not.toBe('');
      expect(caps.sources.length).toBeGreaterThan(0);
    }
  });

  it('names the allowed engines for an unknown one', () => {
    expect(() => engineCapabilities('colossal' as EngineName)).toThrow(RangeError);
    expect(() => engineCapabilities('colossal' as EngineName)).toThrow(/allowed: megatron, nemo, deepspeed, torchtitan/);
  });

  it('accepts a plain data-parallel plan everywhere', () => {
    for (const e of ENGINE_NAMES) expect(features(plan([stage([0, 23])]), e)).toEqual([]);
  });

  it('refuses per-stage strategies, naming each differing field', () => {
    const p = plan([stage([0, 11], { mesh: { nodes: 1, gpusPerNode: 4 }, dp: 2, tp: 2, microBatchSize: 4 }), stage([12, 23])]);
    const v = planCapabilityViolations(p, engineCapabilities('megatron'));
    expect(v.filter((x) => x.feature === 'per-stage strategies').map((x) => x.field)).toEqual([
      'stages[1].dp', 'stages[1].tp', 'stages[1].microBatchSize',
    ]);
  });

  it('knows Megatron-LM partitions: even middle stages, free first and last', () => {
    expect(features(plan([stage([0, 4]), stage([5, 12]), stage([13, 20]), stage([21, 23])]), 'megatron')).toEqual([]);
    expect(features(plan([stage([0, 7]), stage([8, 14]), stage([15, 23])]), 'megatron')).toEqual([]);
    expect(features(plan([stage([0, 5]), stage([6, 12]), stage([13, 18]), stage([19, 23])]), 'megatron'))
      .toEqual(['uneven middle stages']);
    expect(features(plan([stage([0, 4]), stage([5, 23])]), 'deepspeed')).toEqual(['uneven layer partitions']);
    expect(features(plan([stage([0, 4]), stage([5, 23])]), 'torchtitan')).toEqual(['ZeRO-0 with pipelining', 'ZeRO-0 with pipelining']);
  });

  it('checks Megatron-LM recompute as one block count per stage', () => {
    const ok = plan([stage([0, 3], { ckptLayers: 3 }), stage([4, 13], { ckptLayers: 3 }), stage([14, 23], { ckptLayers: 3 })]);
    expect(features(ok, 'megatron')).toEqual([]);
    // min(N, stage layers): a 2-layer first stage recomputes both of its layers when N = 3.
    const small = plan([stage([0, 1], { ckptLayers: 2 }), stage([2, 12], { ckptLayers: 3 }), stage([13, 23], { ckptLayers: 3 })]);
    expect(features(small, 'megatron')).toEqual([]);
    const bad = plan([stage([0, 11], { ckptLayers: 4 }), stage([12, 23], { ckptLayers: 2 })]);
    expect(planCapabilityViolations(bad, engineCapabilities('nemo'))).toEqual([
      expect.objectContaining({ feature: 'a different checkpoint count per stage', field: 'stages[1].ckptLayers' }),
    ]);
    expect(features(bad, 'deepspeed')).toEqual(['checkpointing part of a stage']);
  });

  it('allows only the distributed optimizer (ZeRO-1) and no offloading in Megatron-LM', () => {
    const p = plan([stage([0, 23], { zero: 2, offload: { weights: 0, grads: 0, optim: 0.5, activations: 0 } })]);
    expect(features(p, 'megatron')).toEqual(['ZeRO-2', 'optim offloading']);
  });

  it('knows DeepSpeed: ZeRO-0/1 with pipelining, offload rules, no tensor parallelism', () => {
    const pipe = plan([stage([0, 11], { zero: 2 }), stage([12, 23], { zero: 2 })]);
    expect(features(pipe, 'deepspeed')).toEqual(['ZeRO-2 with pipelining', 'ZeRO-2 with pipelining']);
    const tp = plan([stage([0, 23], { dp: 2, tp: 2, microBatchSize: 4, sequenceParallel: true })]);
    expect(features(tp, 'deepspeed')).toEqual(['tensor parallelism', 'sequence parallelism']);
    const off = (zero: 0 | 1 | 2 | 3, weights: number, optim: number, grads = optim) =>
      features(plan([stage([0, 23], { zero, offload: { weights, grads, optim, activations: 0 } })]), 'deepspeed');
    expect(off(3, 1, 0.4)).toEqual([]);
    expect(off(1, 0, 1)).toEqual([]);
    expect(off(2, 0, 0.4)).toEqual(['partial grads offloading below ZeRO-3', 'partial optim offloading below ZeRO-3']);
    expect(off(2, 1, 0)).toEqual(['weights offloading below ZeRO-3']);
    expect(off(3, 0.5, 0)).toEqual(['partial weights offloading']);
    expect(off(3, 0, 1, 0)).toEqual(['separate grads and optim offloading']);
  });

  it('knows torchtitan: FSDP with TP/PP, forced sequence parallelism, all-or-nothing CPU offload', () => {
    const tp = (sp: boolean, zero: 0 | 2 | 3) =>
      features(plan([stage([0, 23], { dp: 2, tp: 2, microBatchSize: 4, sequenceParallel: sp, zero })]), 'torchtitan');
    expect(tp(true, 3)).toEqual([]);
    expect(tp(false, 3)).toEqual(['tensor parallelism without sequence parallelism']);
    expect(tp(true, 0)).toEqual(['ZeRO-0 with tensor parallelism']);
    // dp = 1: no data-parallel wrapper, the ZeRO level is not checked.
    expect(features(plan([stage([0, 11], { dp: 1, tp: 4, sequenceParallel: true, microBatchSize: 8 }),
      stage([12, 23], { dp: 1, tp: 4, sequenceParallel: true, microBatchSize: 8 })]), 'torchtitan')).toEqual([]);
    const all = { weights: 1, grads: 1, optim: 1, activations: 0 };
    expect(features(plan([stage([0, 23], { zero: 3, offload: all })]), 'torchtitan')).toEqual([]);
    expect(features(plan([stage([0, 23], { zero: 3, offload: { ...all, weights: 0 } })]), 'torchtitan'))
      .toEqual(['separate weights and grads offloading']);
    expect(features(plan([stage([0, 23], { zero: 3, offload: { ...all, activations: 1 } })]), 'torchtitan'))
      .toEqual(['activations offloading']);
    expect(features(plan([stage([0, 23], { ckptLayers: 10 })]), 'torchtitan')).toEqual(['checkpointing part of a stage']);
    expect(features(plan([stage([0, 4]), stage([5, 23])].map((s) => ({ ...s, zero: 3 as const }))), 'torchtitan')).toEqual([]);
  });

  it('refuses sequence parallelism without tensor parallelism', () => {
    expect(features(plan([stage([0, 23], { sequenceParallel: true })]), 'megatron'))
      .toEqual(['sequence parallelism without tensor parallelism']);
  });
});
