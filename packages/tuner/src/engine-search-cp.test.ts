// Context parallelism in the engine searches: Megatron-LM searches cp (--context-parallel-size),
// DeepSpeed does not, and with long sequences and little memory a cp plan beats the same search
// without it.
import { estimatePlan } from '@mist/analyzer';
import { builtinHardwareProfile, engineCapabilities, getModel, parseClusterShorthand, parseTrainingSpec, planCapabilityViolations } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneForEngine } from './engine-search';
import { engineSpace } from './search-space';
import { planSpaceViolations } from './space-membership';

describe('context parallelism in the engine searches', () => {
  it('megatron splits a long sequence over cp ranks and beats its own search without cp', async () => {
    const ctx = {
      model: getModel('llama3-8b'), training: parseTrainingSpec({ globalBatch: 8, seqLen: 16384, flashAttention: true }),
      profile: builtinHardwareProfile(parseClusterShorthand('1x8-a100-40gb')),
    };
    const caps = engineCapabilities('megatron');
    const space = engineSpace('megatron', { maxStages: 1 });
    const withCp = await tuneForEngine(ctx, caps, { space });
    const without = await tuneForEngine(ctx, caps, { space: { ...space, maxCp: 1 } });
    const plan = withCp.plan!;
    expect(plan.stages[0].cp ?? 1).toBeGreaterThan(1);
    expect(without.plan === null || withCp.objectiveS! < without.objectiveS!).toBe(true);
    expect(planCapabilityViolations(plan, caps)).toEqual([]);
    expect(planSpaceViolations(plan, space)).toEqual([]);
    expect(withCp.objectiveS).toBeCloseTo(estimatePlan(plan, ctx).iterationTimeS, 12);
    const ds = await tuneForEngine(ctx, engineCapabilities('deepspeed'), { space: engineSpace('deepspeed', { maxStages: 1 }) });
    if (ds.plan) expect(ds.plan.stages[0].cp ?? 1).toBe(1);
  }, 120_000);
});
