// Expert parallelism in the engine searches: Megatron-LM runs it (--expert-model-parallel-size), so its
// space, the baseline of every tune of a mixture-of-experts model, searches ep too.
import { estimatePlan } from '@mist/analyzer';
import { builtinHardwareProfile, engineCapabilities, getModel, parseClusterShorthand, parseTrainingSpec, planCapabilityViolations } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneForEngine } from './engine-search';
import { engineSpace } from './search-space';
import { planSpaceViolations } from './space-membership';

describe('expert parallelism in the engine searches', () => {
  it('megatron on mixtral-8x7b (4x8-h100-sxm) picks ep > 1 and beats its own search without it', async () => {
    const ctx = {
      model: getModel('mixtral-8x7b'), training: parseTrainingSpec({ globalBatch: 256, seqLen: 4096 }),
      profile: builtinHardwareProfile(parseClusterShorthand('4x8-h100-sxm')),
    };
    const caps = engineCapabilities('megatron');
    const withEp = await tuneForEngine(ctx, caps, { space: engineSpace('megatron') });
    const without = await tuneForEngine(ctx, caps, { space: engineSpace('megatron', { maxEp: 1 }) });
    const plan = withEp.plan!;
    expect(plan.stages.every((s) => (s.ep ?? 1) > 1)).toBe(true);
    expect(withEp.objectiveS!).toBeLessThan(without.objectiveS!);
    expect(without.plan!.stages.every((s) => (s.ep ?? 1) === 1)).toBe(true);
    expect(planCapabilityViolations(plan, caps)).toEqual([]);
    expect(planSpaceViolations(plan, engineSpace('megatron'))).toEqual([]);
    expect(withEp.objectiveS).toBeCloseTo(estimatePlan(plan, ctx).iterationTimeS, 12);
  }, 120_000);

  it('deepspeed runs dense MLPs only: a mixture-of-experts model gets no plan there, and the note says why', async () => {
    const ctx = {
      model: getModel('mixtral-8x7b'), training: parseTrainingSpec({ globalBatch: 256, seqLen: 4096 }),
      profile: builtinHardwareProfile(parseClusterShorthand('4x8-h100-sxm')),
    };
    const caps = engineCapabilities('deepspeed');
    const r = await tuneForEngine(ctx, caps, { space: engineSpace('deepspeed') });
    expect(r.plan).toBeNull();
    expect(r.notes).toEqual([expect.stringMatching(/^no deepspeed plan: mixture of experts: mixtral-8x7b has 8 experts/)]);
  }, 120_000);
});
