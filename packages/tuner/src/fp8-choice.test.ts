// The fp8 choice: `fp8: auto` tunes with and without fp8 linear layers and keeps the faster plan;
// a recipe asked for on a GPU without fp8 tensor cores, or for the cpu backend, is refused by name.
import { type AnalyzerContext, estimatePlan } from '@mist/analyzer';
import { builtinHardwareProfile, getModel, parseClusterShorthand, parsePlan, parseTrainingSpec, SpecError } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { bruteForce } from './brute-force';
import { fp8Choices } from './fp8-choice';
import { parseSearchKnobs, spaceFromKnobs, trainingForTarget } from './search-knobs';
import { mistSpace, uniformOffloadLevels } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

function ctxOn(cluster: string, fp8: 'none' | 'delayed' = 'none'): AnalyzerContext {
  return {
    model: getModel('gpt3-1.3b'),
    training: parseTrainingSpec({ globalBatch: 32, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', fp8 }),
    profile: builtinHardwareProfile(parseClusterShorthand(cluster), 'bf16'),
  };
}
const knobs = (fp8: string) => parseSearchKnobs({ fp8, offloadStep: 0.5, maxStages: 2 });

describe('fp8: auto', () => {
  it('on H100 picks fp8 when it is faster, records it in the plan, and reports the gain over the best plan without fp8', async () => {
    const ctx = ctxOn('1x4-h100-sxm');
    const k = knobs('auto');
    const space = spaceFromKnobs(k, ctx.model);
    expect(space.fp8Choice).toBe(true);
    const r = await tune({ ...ctx, training: trainingForTarget(k, ctx.model, ctx.training) }, { space });
    const off = await tune(ctx, { space: { ...space, fp8Choice: false } });
    const on = await tune({ ...ctx, training: { ...ctx.training, fp8: 'delayed' } }, { space: { ...space, fp8Choice: false } });
    expect(r.fp8?.tried.map((x) => x.recipe)).toEqual(['none', 'delayed']);
    expect(on.predicted!.iterationTimeS).toBeLessThan(off.predicted!.iterationTimeS);
    expect(r.fp8?.used).toBe('delayed');
    expect(r.plan?.fp8).toBe('delayed');
    expect(r.predicted!.iterationTimeS).toBe(on.predicted!.iterationTimeS);
    expect(r.fp8!.gainOverNone).toBeCloseTo(off.predicted!.iterationTimeS / on.predicted!.iterationTimeS, 12);
    expect(r.fp8!.gainOverNone!).toBeGreaterThan(1);
    // The plan says what it assumes: analyzed in a context without fp8 it reproduces the estimate.
    const again = estimatePlan(parsePlan(r.plan!, { model: ctx.model, cluster: ctx.profile.cluster }), ctx);
    expect(again.iterationTimeS).toBeCloseTo(r.predicted!.iterationTimeS, 12);
  });

  it('on a GPU without fp8 tensor cores searches without fp8 and says why', async () => {
    const ctx = ctxOn('1x4-a100-80gb');
    const space = spaceFromKnobs(knobs('auto'), ctx.model);
    const r = await tune(ctx, { space });
    expect(r.fp8).toEqual({ used: 'none', tried: [{ recipe: 'none', iterationTimeS: r.predicted!.iterationTimeS }], gainOverNone: null,
      skipped: 'the GPU a100-80gb has no fp8 tensor cores' });
    expect(r.plan?.fp8).toBeUndefined();
  });

  it('an engine space tries only the recipes the engine runs', () => {
    const ctx = ctxOn('1x4-h100-sxm');
    expect(fp8Choices(ctx, 'megatron').recipes).toEqual(['none', 'delayed']);
    expect(fp8Choices(ctx, 'torchtitan').recipes).toEqual(['none', 'current']);
    expect(fp8Choices(ctx, 'deepspeed')).toEqual({ recipes: ['none'], skipped: 'deepspeed runs no fp8 linear layers' });
  });
});

describe('fp8 choice against brute force (gpt-tiny on L4, which has fp8 tensor cores)', () => {
  for (const [cluster, usable, batch] of [['1x4-l4', 2e6, 8], ['2x2-l4', 3e6, 8]] as const) {
    it(`${cluster}: the fp8 choice finds the best plan over both training specs`, async () => {
      const ctx = tinyContext(cluster, usable, batch);
      const space = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity });
      const refs = (['none', 'delayed'] as const).map((fp8) => bruteForce({ ...ctx, training: { ...ctx.training, fp8 } }, space));
      const best = Math.min(...refs.map((r) => r?.iterationTimeS ?? Infinity));
      const res = await tune(ctx, { space: { ...space, fp8Choice: true } });
      expect(Math.abs(res.predicted!.iterationTimeS - best)).toBeLessThanOrEqual(1e-12 * best);
      expect(res.fp8!.tried.map((x) => x.iterationTimeS)).toEqual(refs.map((r) => expect.closeTo(r!.iterationTimeS, 12)));
    });
  }
});

describe('fp8 refusals', () => {
  it('a recipe on a GPU without fp8 tensor cores is refused naming the GPU', async () => {
    const ctx = ctxOn('1x4-a100-80gb');
    const k = knobs('delayed');
    const training = trainingForTarget(k, ctx.model, ctx.training);
    expect(training.fp8).toBe('delayed');
    await expect(tune({ ...ctx, training }, { space: spaceFromKnobs(k, ctx.model) })).rejects.toThrow(/fp8.*a100-80gb has none/);
  });
  it('the cpu backend target refuses fp8 linear layers by name', () => {
    const model = getModel('gpt-tiny');
    const t = parseTrainingSpec({ globalBatch: 8, seqLen: 32 });
    expect(() => trainingForTarget(parseSearchKnobs({ target: 'cpu', fp8: 'current' }), model, t)).toThrow(SpecError);
    expect(() => trainingForTarget(parseSearchKnobs({ target: 'cpu', fp8: 'current' }), model, t)).toThrow(/fp8 linear layers \(current scaling\) is not run by the cpu backend/);
    expect(trainingForTarget(parseSearchKnobs({ target: 'cpu', fp8: 'off' }), model, t).fp8).toBe('none');
  });
  it('an engine target refuses a recipe the engine does not run, by name', () => {
    const model = getModel('gpt3-1.3b');
    const t = parseTrainingSpec({ globalBatch: 8, seqLen: 32 });
    expect(() => trainingForTarget(parseSearchKnobs({ target: 'deepspeed', fp8: 'delayed' }), model, t))
      .toThrow(/fp8 linear layers \(delayed scaling\) is not run by deepspeed/);
    expect(() => trainingForTarget(parseSearchKnobs({ space: 'torchtitan', fp8: 'delayed' }), model, t)).toThrow(/--space torchtitan/);
    expect(trainingForTarget(parseSearchKnobs({ target: 'megatron', fp8: 'current' }), model, t).fp8).toBe('current');
  });
    it('the knob refuses unknown values naming the allowed ones', () => {
    expect(() => parseSearchKnobs({ fp8: 'on' })).toThrow(/tune\.fp8.*off, delayed, current, auto/);
  });
});
