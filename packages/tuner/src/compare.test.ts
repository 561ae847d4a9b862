// The Mist space contains the baselines' spaces: its best plan is never slower, and every plan fits.
import type { AnalyzerContext } from '@mist/analyzer';
import { builtinHardwareProfile, getModel, parseClusterShorthand, parsePlan, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneWithBaselines } from './compare';
import { deepspeedSpace, megatronSpace, mistSpace, uniformOffloadLevels } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune, type TuneResult } from './tuner';

function real(model: string, cluster: string, globalBatch: number, seqLen: number): AnalyzerContext {
  return { model: getModel(model), training: parseTrainingSpec({ globalBatch, seqLen }), profile: builtinHardwareProfile(parseClusterShorthand(cluster)) };
}

function checkPlan(ctx: AnalyzerContext, r: TuneResult): void {
  if (!r.plan) return;
  parsePlan(r.plan, { model: ctx.model, cluster: ctx.profile.cluster });
  expect(r.predicted!.allFit).toBe(true);
  expect(Math.abs(r.objectiveS! - r.predicted!.iterationTimeS)).toBeLessThanOrEqual(1e-9 * r.predicted!.iterationTimeS);
}

const inputs: Array<[string, () => AnalyzerContext]> = [
  ['gpt-tiny 1x4, tight memory', () => tinyContext('1x4-l4', 2.5e6, 16)],
  ['gpt-tiny 2x2, tight memory', () => tinyContext('2x2-l4', 2.2e6, 32)],
  ['gpt3-1.3b 1x2-l4', () => real('gpt3-1.3b', '1x2-l4', 32, 2048)],
  ['gpt3-1.3b 1x4-a100-40gb', () => real('gpt3-1.3b', '1x4-a100-40gb', 64, 2048)],
];

describe('mist against the megatron and deepspeed spaces', () => {
  for (const [name, make] of inputs) {
    it(`${name}: mist (unseeded, offload grid 1/2) is never slower; every plan is valid and fits`, async () => {
      const ctx = make();
      const space = mistSpace({ offload: uniformOffloadLevels(0.5) });
      const mist = await tune(ctx, { space });
      const meg = await tune(ctx, { space: megatronSpace() });
      const ds = await tune(ctx, { space: deepspeedSpace() });
      for (const r of [mist, meg, ds]) checkPlan(ctx, r);
      expect(mist.plan).not.toBeNull();
      for (const base of [meg, ds]) {
        if (base.predicted) expect(mist.predicted!.iterationTimeS).toBeLessThanOrEqual(base.predicted.iterationTimeS * (1 + 1e-12));
      }
    });
  }

  it('seeding the search with the best baseline plan does not change the optimum', async () => {
    const ctx = real('gpt3-1.3b', '1x4-l4', 64, 2048);
    const space = mistSpace({ offload: uniformOffloadLevels(0.5) });
    const alone = await tune(ctx, { space });
    // The baselines on the same offload grid, so that the Mist space holds their plans (DeepSpeed's own
    // space offloads on a 1/8 grid, which beats a 1/2 grid by a hair where offload traffic slows compute).
    const cmp = await tuneWithBaselines(ctx, { space, deepspeed: deepspeedSpace({ offload: uniformOffloadLevels(0.5) }) });
    expect(cmp.best.predicted!.iterationTimeS).toBeCloseTo(alone.predicted!.iterationTimeS, 12);
    expect(cmp.speedup.megatron).toBeGreaterThanOrEqual(1);
    expect(cmp.speedup.deepspeed).toBeGreaterThanOrEqual(1);
  });

  it('when nothing fits it reports the smallest shortfall and what would help', async () => {
    const ctx = tinyContext('1x2-l4', 100e3, 8);
    const r = await tune(ctx, { space: mistSpace({ offload: uniformOffloadLevels(0.5) }) });
    expect(r.plan).toBeNull();
    expect(r.noFit!.shortfallBytes).toBeGreaterThan(0);
    expect(r.noFit!.message).toMatch(/closest candidate needs/);
    expect(r.noFit!.hints[0]).toMatch(/more GPUs/);
    const meg = await tune(ctx, { space: megatronSpace() });
    expect(meg.noFit!.hints.join('\n')).toMatch(/offloading/);
    // The larger space gets at least as close to fitting.
    expect(r.noFit!.shortfallBytes).toBeLessThanOrEqual(meg.noFit!.shortfallBytes!);
  });
});

describe('baselines with fp8 linear layers', () => {
  it('searches the DeepSpeed baseline without fp8 (it runs none), says so, and keeps fp8 for Megatron-LM and the main search', async () => {
    const ctx: AnalyzerContext = {
      model: getModel('gpt3-1.3b'), profile: builtinHardwareProfile(parseClusterShorthand('1x4-h100-sxm'), 'bf16'),
      training: parseTrainingSpec({ globalBatch: 32, seqLen: 2048, paramDtype: 'bf16', computeDtype: 'bf16', fp8: 'current' }),
    };
    const cmp = await tuneWithBaselines(ctx);
    expect(cmp.deepspeed.plan).not.toBeNull();
    expect(cmp.deepspeed.plan!.fp8).toBeUndefined();
    expect(cmp.deepspeed.notes).toEqual([expect.stringMatching(/not run by deepspeed .*tuned without fp8/)]);
    expect(cmp.megatron.plan!.fp8).toBe('current');
    expect(cmp.best.plan!.fp8).toBe('current');
  });
});
