// The engine searches cost each ZeRO level's gradient reduction as the engine runs it (core
// engineOverlapsGradReduce): DeepSpeed's ZeRO-0 all-reduces after the backward, so its points pay the
// whole reduction; its ZeRO-1 (overlap_comm, which its export writes) and Megatron-LM
// (--overlap-grad-reduce) overlap it.
import { estimatePlan } from '@mist/analyzer';
import { builtinHardwareProfile, engineCapabilities, engineOverlapsGradReduce, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneForEngine } from './engine-search';
import { engineSpace } from './search-space';

describe('the gradient reduction in the engine searches', () => {
  it('core says which engine reduces which ZeRO level after the backward', () => {
    expect(engineOverlapsGradReduce('deepspeed', 0)).toBe(false);
    for (const zero of [1, 2, 3]) expect(engineOverlapsGradReduce('deepspeed', zero)).toBe(true);
    for (const engine of ['megatron', 'nemo', 'torchtitan'] as const) expect(engineOverlapsGradReduce(engine, 0)).toBe(true);
  });

  it('a DeepSpeed ZeRO-0 plan is predicted with its reduction exposed; the same plan overlapped would be faster', async () => {
    // Two nodes of dp 8 each: the all-reduce crosses the network and takes longer than the overlap hides.
    const ctx = {
      model: getModel('gpt3-1.3b'), training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048, flashAttention: true }),
      profile: builtinHardwareProfile(parseClusterShorthand('2x8-a100-80gb')),
    };
    const r = await tuneForEngine(ctx, engineCapabilities('deepspeed'), { space: engineSpace('deepspeed', { zero: [0] }) });
    const plan = r.plan!;
    expect(plan.stages.every((s) => s.zero === 0 && s.dp > 1)).toBe(true);
    const after = estimatePlan(plan, { ...ctx, training: { ...ctx.training, gradReduceOverlap: false } }).iterationTimeS;
    expect(r.objectiveS).toBeCloseTo(after, 12);
    expect(estimatePlan(plan, ctx).iterationTimeS).toBeLessThan(after);
    // Megatron-LM's ZeRO-0 keeps the overlap (its export writes --overlap-grad-reduce).
    const m = await tuneForEngine(ctx, engineCapabilities('megatron'), { space: engineSpace('megatron', { zero: [0] }) });
    expect(m.objectiveS).toBeCloseTo(estimatePlan(m.plan!, ctx).iterationTimeS, 12);
  }, 120_000);
});
