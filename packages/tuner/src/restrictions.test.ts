// A returned plan always lies in the space asked for: one check per restriction flag of `mist tune`
// and per engine space, on the cases where the better baseline plan lies outside the restriction
// (the seeding bug of the 2026-12-04 newcomer review, C.3), and the engine searches against an
// exhaustive enumeration of what each engine can express.
import { type AnalyzerContext, estimatePlan } from '@mist/analyzer';
import {
  builtinHardwareProfile, ENGINE_NAMES, engineCapabilities, type EngineName, getModel, parseClusterShorthand, parsePlan, type Plan,
  planCapabilityViolations, planRuleIssues, parseTrainingSpec, PLAN_VERSION, type StageStrategy, type ZeroLevel,
} from '@mist/core';
import { describe, expect, it } from 'vitest';
import { tuneWithBaselines } from './compare';
import { divisors } from './enumerate';
import { engineSpace, mistSpace, NO_OFFLOAD_LEVELS, type SearchSpace, uniformOffloadLevels } from './search-space';
import { planSpaceViolations } from './space-membership';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

function real(model: string, cluster: string, globalBatch: number, seqLen: number): AnalyzerContext {
  return { model: getModel(model), training: parseTrainingSpec({ globalBatch, seqLen }), profile: builtinHardwareProfile(parseClusterShorthand(cluster)) };
}

// gpt3-6.7b on 1x8-l4, global batch 128: the better baseline is DeepSpeed's ZeRO-3 with offload, and
// the unrestricted optimum offloads too, so every restriction below excludes both.
const sixB = real('gpt3-6.7b', '1x8-l4', 128, 2048);
const coarse = { offload: uniformOffloadLevels(0.25) };

const restrictions: Array<[string, Partial<SearchSpace>, (p: Plan) => boolean]> = [
  ['--no-offload', { offload: NO_OFFLOAD_LEVELS }, (p) => p.stages.every((s) => Object.values(s.offload).every((x) => x === 0))],
  ['--zero 0,1', { ...coarse, zero: [0, 1] }, (p) => p.stages.every((s) => s.zero <= 1)],
  ['--max-tp 1', { ...coarse, maxTp: 1 }, (p) => p.stages.every((s) => s.tp === 1)],
  ['--no-sp', { ...coarse, sequenceParallel: false }, (p) => p.stages.every((s) => !s.sequenceParallel)],
  ['--max-stages 1', { ...coarse, maxStages: 1 }, (p) => p.stages.length === 1],
  ['--ckpt none', { ...coarse, ckpt: 'none' }, (p) => p.stages.every((s) => s.ckptLayers === 0)],
  ['--ckpt all-or-none', { ...coarse, ckpt: 'all-or-none' }, (p) => p.stages.every((s) => s.ckptLayers === 0 || s.ckptLayers === s.layers[1] - s.layers[0] + 1)],
  ['--pow2-micro-batch', { ...coarse, microBatchPow2: true }, (p) => p.stages.every((s) => (s.microBatchSize & (s.microBatchSize - 1)) === 0)],
  ['--uniform-partition --uniform-mesh', { ...coarse, uniformPartition: true, uniformMesh: true }, (p) => p.stages.every((s) =>
    s.layers[1] - s.layers[0] === p.stages[0].layers[1] - p.stages[0].layers[0] && s.mesh.gpusPerNode === p.stages[0].mesh.gpusPerNode)],
  ['--max-stages 1 --no-offload --zero 0,1 --ckpt all-or-none', { maxStages: 1, offload: NO_OFFLOAD_LEVELS, zero: [0, 1], ckpt: 'all-or-none' },
    (p) => p.stages.length === 1 && p.stages.every((s) => s.zero <= 1 && s.offload.optim === 0)],
];

describe('restricted searches return plans of the restricted space (seeded by the baselines)', () => {
  for (const [flag, overrides, holds] of restrictions) {
    it(flag, async () => {
      const space = mistSpace(overrides);
      const cmp = await tuneWithBaselines(sixB, { space });
      const plan = cmp.best.plan;
      expect(plan).not.toBeNull();
      expect(planSpaceViolations(plan!, space)).toEqual([]);
      expect(holds(plan!)).toBe(true);
      expect(cmp.best.predicted!.allFit).toBe(true);
    }, 120_000);
  }

  for (const engine of ENGINE_NAMES) {
    it(`--space ${engine}: the main search returns a plan ${engine} can run`, async () => {
      const space = engineSpace(engine);
      const cmp = await tuneWithBaselines(sixB, { space });
      expect(cmp.best.space).toBe(engine);
      expect(cmp.best.plan).not.toBeNull();
      expect(planCapabilityViolations(cmp.best.plan!, engineCapabilities(engine))).toEqual([]);
      expect(planSpaceViolations(cmp.best.plan!, space)).toEqual([]);
    }, 120_000);
  }
});

describe('the megatron and deepspeed baselines are what those systems run', () => {
  it('megatron: one tp, dp, sp, micro-batch and recompute count for all stages, ZeRO <= 1, no offload', async () => {
    const ctx = real('gpt3-22b', '4x8-a100-40gb', 256, 2048);
    const r = await tune(ctx, { space: engineSpace('megatron') });
    const p = r.plan!;
    expect(p).not.toBeNull();
    const s0 = p.stages[0];
    for (const s of p.stages) {
      expect([s.tp, s.dp, s.sequenceParallel, s.microBatchSize, s.mesh]).toEqual([s0.tp, s0.dp, s0.sequenceParallel, s0.microBatchSize, s0.mesh]);
      expect(s.zero).toBeLessThanOrEqual(1);
      expect(Object.values(s.offload)).toEqual([0, 0, 0, 0]);
    }
    const counts = p.stages.map((s) => s.layers[1] - s.layers[0] + 1);
    expect(new Set(counts.slice(1, -1)).size).toBeLessThanOrEqual(1);
    const n = Math.max(...p.stages.map((s) => s.ckptLayers));
    p.stages.forEach((s, i) => expect(s.ckptLayers).toBe(Math.min(n, counts[i])));
    expect(r.objectiveS).toBeCloseTo(estimatePlan(p, ctx).iterationTimeS, 12);
  }, 120_000);

  it('deepspeed: no tensor parallelism, no pipeline with ZeRO-2/3, parameter offload only with ZeRO-3', async () => {
    for (const ctx of [sixB, real('gpt3-22b', '4x8-a100-40gb', 256, 2048)]) {
      const r = await tune(ctx, { space: engineSpace('deepspeed') });
      const p = r.plan!;
      expect(p).not.toBeNull();
      for (const s of p.stages) {
        expect(s.tp).toBe(1);
        if (p.stages.length > 1) expect(s.zero).toBeLessThanOrEqual(1);
        if (s.offload.weights > 0) expect(s.zero).toBe(3);
        expect(s.offload.grads).toBe(s.offload.optim);
      }
      expect(planCapabilityViolations(p, engineCapabilities('deepspeed'))).toEqual([]);
    }
  }, 120_000);

  it('the Mist search beats or ties every engine on the same case', async () => {
    const cmp = await tuneWithBaselines(sixB, { space: mistSpace(coarse) });
    for (const base of [cmp.megatron, cmp.deepspeed]) {
      expect(cmp.best.predicted!.iterationTimeS).toBeLessThanOrEqual(base.predicted!.iterationTimeS * (1 + 1e-12));
    }
    expect(cmp.megatron.space).toBe('megatron');
    expect(cmp.deepspeed.space).toBe('deepspeed');
  }, 120_000);
});

// Exhaustive reference: every plan of gpt-tiny on the cluster with one strategy for all stages, any
// layer split, any per-stage checkpoint count and offload on a 1/2 grid, kept when the engine's
// table accepts it and the analyzer says it fits. Shares nothing with engine-search.ts but core and
// the analyzer.
function exhaustiveEngineOptimum(ctx: AnalyzerContext, engine: EngineName): number {
  const caps = engineCapabilities(engine);
  const L = ctx.model.layers;
  const cluster = ctx.profile.cluster;
  const D = cluster.nodes * cluster.gpusPerNode;
  const grid = [0, 0.5, 1];
  let best = Infinity;
  const splits = (total: number, parts: number): number[][] => (parts === 1 ? [[total]]
    : Array.from({ length: total - parts + 1 }, (_, i) => i + 1).flatMap((f) => splits(total - f, parts - 1).map((r) => [f, ...r])));
  const ckpts = (counts: number[]): number[][] => counts.reduce<number[][]>((acc, c) =>
    acc.flatMap((a) => Array.from({ length: c + 1 }, (_, k) => [...a, k])), [[]]);
  for (const pp of divisors(D)) {
    if (pp > L) continue;
    const d = D / pp;
    const mesh = d >= cluster.gpusPerNode ? { nodes: d / cluster.gpusPerNode, gpusPerNode: cluster.gpusPerNode } : { nodes: 1, gpusPerNode: d };
    if (mesh.nodes % 1 !== 0) continue;
    for (const tp of divisors(mesh.gpusPerNode)) {
      const dp = d / tp;
      for (const G of divisors(ctx.training.globalBatch)) {
        if ((ctx.training.globalBatch / G) % dp !== 0) continue;
        const b = ctx.training.globalBatch / G / dp;
        for (const sp of tp > 1 ? [false, true] : [false]) {
          for (const zero of [0, 1, 2, 3] as ZeroLevel[]) {
            for (const w of grid) for (const g of grid) for (const o of grid) for (const a of grid) {
              for (const counts of splits(L, pp)) {
                // Interleaved 1F1B: any chunk count per rank; core's plan rules and the table keep what is valid.
                for (const v of divisors(counts[0])) for (const ck of ckpts(counts)) {
                  let first = 0;
                  const stages: StageStrategy[] = counts.map((n, i) => {
                    const s: StageStrategy = {
                      layers: [first, first + n - 1], mesh, microBatchSize: b, dp, tp, sequenceParallel: sp, ckptLayers: ck[i], zero,
                      offload: { weights: w, grads: g, optim: o, activations: a },
                    };
                    first += n;
                    return s;
                  });
                  const plan: Plan = {
                    version: PLAN_VERSION, model: ctx.model.name, seqLen: ctx.training.seqLen, globalBatch: ctx.training.globalBatch, gradAccumSteps: G,
                    ...(v > 1 ? { virtualStages: v } : {}), stages,
                  };
                  if (planCapabilityViolations(plan, caps).length > 0) continue;
                  if (v > 1 && planRuleIssues(plan, { model: ctx.model, cluster }).length > 0) continue;
                  const e = estimatePlan(parsePlan(plan, { model: ctx.model, cluster }), ctx);
                  if (e.allFit && e.iterationTimeS < best) best = e.iterationTimeS;
                }
              }
            }
          }
        }
      }
    }
  }
  return best;
}

describe('engine searches against exhaustive enumeration (gpt-tiny)', () => {
  for (const engine of ENGINE_NAMES) {
    it(`${engine}: the optimum of everything the engine expresses`, async () => {
      const ctx = tinyContext('1x4-l4', 2.5e6, 8);
      const r = await tune(ctx, { space: engineSpace(engine, { offload: uniformOffloadLevels(0.5) }) });
      const ref = exhaustiveEngineOptimum(ctx, engine);
      expect(Number.isFinite(ref)).toBe(true);
      expect(r.predicted!.iterationTimeS).toBeCloseTo(ref, 12);
    }, 300_000);
  }
});
