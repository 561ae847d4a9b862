// Megatron-LM's and NeMo's interleaved 1F1B in the engine searches: the chunk counts searched, and a
// case where more chunks per rank win, against the same search without them.
import { estimatePlan } from '@mist/analyzer';
import { builtinHardwareProfile, engineCapabilities, getModel, parseClusterShorthand, parseTrainingSpec, planCapabilityViolations } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneForEngine, virtualStageChoices } from './engine-search';
import { engineSpace, mistSpace } from './search-space';
import { planSpaceViolations } from './space-membership';

describe('interleaved 1F1B in the engine searches', () => {
  it('tries every chunk count dividing a uniform partition, with G a multiple of pp', () => {
    const megatron = engineCapabilities('megatron');
    expect(virtualStageChoices(megatron, [6, 6, 6, 6], 8)).toEqual([1, 2, 3, 6]);
    expect(virtualStageChoices(megatron, [6, 6, 6, 6], 6)).toEqual([1]);
    expect(virtualStageChoices(megatron, [5, 6, 6, 7], 8)).toEqual([1]);
    expect(virtualStageChoices(megatron, [24], 8)).toEqual([1]);
    expect(virtualStageChoices(engineCapabilities('deepspeed'), [6, 6, 6, 6], 8)).toEqual([1]);
  });

  it('megatron picks more chunks per rank where the bubble dominates, and beats its own search without them', async () => {
    const ctx = {
      model: getModel('gpt3-175b'), training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048 }),
      profile: builtinHardwareProfile(parseClusterShorthand('16x8-a100-80gb')),
    };
    const caps = engineCapabilities('megatron');
    const withV = await tuneForEngine(ctx, caps, { space: engineSpace('megatron') });
    const without = await tuneForEngine(ctx, { ...caps, interleaved: false }, { space: engineSpace('megatron') });
    const plan = withV.plan!;
    console.log(`gpt3-175b 16x8-a100-80gb batch 64: megatron ${without.objectiveS!.toFixed(3)} s without interleaving, ${withV.objectiveS!.toFixed(3)} s with v=${plan.virtualStages ?? 1}`);
    expect(plan.virtualStages ?? 1).toBeGreaterThan(1);
    expect(withV.objectiveS!).toBeLessThan(without.objectiveS!);
    expect(planCapabilityViolations(plan, caps)).toEqual([]);
    expect(planSpaceViolations(plan, engineSpace('megatron'))).toEqual([]);
    expect(withV.objectiveS).toBeCloseTo(estimatePlan(plan, ctx).iterationTimeS, 12);
    // The Mist space holds it (interleaved-search.ts), unless interleaving is turned off.
    expect(planSpaceViolations(plan, mistSpace())).toEqual([]);
    expect(planSpaceViolations(plan, mistSpace({ maxVirtualStages: 1 })))
      .toContain(`virtualStages: ${plan.virtualStages}, the mist space allows at most 1 model chunks per rank`);
  }, 120_000);
});
