// The bounds cache (bounds-cache.ts): a re-tune with another global batch reads the spec minima and
// the carried-over plan of an earlier tune, evaluates fewer rows, and finds exactly the plan a tune
// without a cache finds; the bounds from cached minima equal the bounds derived afresh.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type AnalyzerContext, compileStageModel } from '@mist/analyzer';
import { type Plan, PLAN_VERSION } from '@mist/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boundsForG, type StageGrid } from './bounds';
import { BoundsCache, boundsKey, fastBoundsKey, specKeyPart } from './bounds-cache';
import { carryIncumbent, carryPlan, rescalePlan } from './replan';
import { atGradAccum, ckptLevels, gradAccumChoices, meshChoices, type ParallelConfig, parallelConfigs, type StageGroupSpec, stageGroupSpecs } from './enumerate';
import { mistSpace, NO_OFFLOAD_LEVELS } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

const space = mistSpace({ zero: [0, 1, 3], offload: { ...NO_OFFLOAD_LEVELS, optim: [0, 0.5, 1], activations: [0, 0.5, 1] } });

/** Per G of the context's global batch: its stage groups with a configuration there, and what boundsForG reads of them. */
function boundsInputsPerG(ctx: AnalyzerContext): Array<{ G: number; specs: StageGroupSpec[]; configsOf: (s: StageGroupSpec) => ParallelConfig[]; grid: StageGrid }> {
  const cl = ctx.profile.cluster;
  const batch = ctx.training.globalBatch;
  const specs0 = stageGroupSpecs(space, ctx.model.layers, cl, meshChoices(cl));
  const grid = { ckpt: (l: number) => ckptLevels(space.ckpt, l), offload: space.offload };
  return gradAccumChoices(batch).map((G) => {
    const configsOf = (s: StageGroupSpec): ParallelConfig[] => parallelConfigs(space, ctx.model, ctx.training.seqLen, s.mesh, batch / G);
    return { G, specs: specs0.filter((s) => configsOf(s).length > 0).map((s) => atGradAccum(s, G)), configsOf, grid };
  });
}

describe('bounds cache', () => {
  let dir = '';
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-bounds-cache-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [cluster, bytes, from, to] of [['2x2-l4', 2.2e6, 16, 32], ['2x2-l4', 2.2e6, 32, 16], ['1x4-l4', 2.5e6, 16, 48]] as const) {
    it(`a re-tune from batch ${from} to ${to} on ${cluster} reuses the bounds and finds the plan a cold tune finds`, async () => {
      const cold = await tune(tinyContext(cluster, bytes, to), { space });
      const first = await tune(tinyContext(cluster, bytes, from), { space, cacheDir: dir });
      expect(first.cache!.boundsHits).toBe(0);
      expect(first.cache!.carriedPlan).toBe(false);
      const again = await tune(tinyContext(cluster, bytes, to), { space, cacheDir: dir });
      expect(cold.plan).not.toBeNull();
      expect(again.objectiveS).toBe(cold.objectiveS);
      expect(again.cache!.carriedPlan).toBe(true);
      expect(again.cache!.boundsHits).toBeGreaterThan(0);
      expect(again.candidatesEvaluated).toBeLessThan(cold.candidatesEvaluated);
      expect(again.gap).toBeNull();
    });
  }

  it('re-tunes across batches and memory budgets (the fast-corner test, weak minima and partly derived G values) find the plan a cold tune finds', async () => {
    const cases = [['2x2-l4', 1.6e6, 16, 48], ['1x4-l4', 1.6e6, 32, 64], ['2x4-l4', 3e6, 24, 8], ['2x2-l4', 3e6, 8, 24],
      ['1x4-l4', 2.2e6, 64, 96], ['2x4-l4', 1.6e6, 16, 32]] as const;
    for (const [cluster, bytes, from, to] of cases) {
      const sub = fs.mkdtempSync(path.join(dir, 'case-'));
      const cold = await tune(tinyContext(cluster, bytes, to), { space });
      await tune(tinyContext(cluster, bytes, from), { space, cacheDir: sub });
      const again = await tune(tinyContext(cluster, bytes, to), { space, cacheDir: sub });
      expect(again.objectiveS, `${cluster} ${bytes} ${from} -> ${to}`).toBe(cold.objectiveS);
      // And a third tune back at the first batch, over what both left.
      const back = await tune(tinyContext(cluster, bytes, from), { space, cacheDir: sub });
      const coldBack = await tune(tinyContext(cluster, bytes, from), { space });
      expect(back.objectiveS, `${cluster} ${bytes} back to ${from}`).toBe(coldBack.objectiveS);
    }
  });

  for (const [from, to, batch] of [['2x2-l4', '4x2-l4', 32], ['4x2-l4', '2x2-l4', 32]] as const) {
    it(`a re-tune from ${from} to ${to} starts from the earlier plan rescaled to the new node count and finds the plan a cold tune finds`, async () => {
      const cold = await tune(tinyContext(to, 2.2e6, batch), { space });
      const first = await tune(tinyContext(from, 2.2e6, batch), { space, cacheDir: dir });
      expect(first.plan).not.toBeNull();
      const again = await tune(tinyContext(to, 2.2e6, batch), { space, cacheDir: dir });
      expect(again.cache!.carriedPlan).toBe(true);
      expect(again.objectiveS).toBe(cold.objectiveS);
      expect(again.gap).toBeNull();
    });
  }

  it('rescalePlan scales every stage\'s dp and nodes by the device ratio, or gives up when they are not whole', () => {
    const stage = (nodes: number, dp: number) => ({
      layers: [0, 3] as [number, number], mesh: { nodes, gpusPerNode: 2 }, microBatchSize: 2, dp, tp: 2, sequenceParallel: true, ckptLayers: 1, zero: 1 as const,
      offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
    });
    const plan: Plan = { version: PLAN_VERSION, model: 'm', seqLen: 64, globalBatch: 32, gradAccumSteps: 4, flashAttention: true, stages: [stage(2, 2), { ...stage(2, 2), layers: [4, 7] as [number, number] }] };
    const up = rescalePlan(plan, 16, 2)!;
    expect(up.stages.map((s) => [s.mesh.nodes, s.dp, s.tp, s.microBatchSize, s.ckptLayers])).toEqual([[4, 4, 2, 2, 1], [4, 4, 2, 2, 1]]);
    expect(rescalePlan(plan, 4, 2)!.stages.map((s) => [s.mesh.nodes, s.dp])).toEqual([[1, 1], [1, 1]]);
    expect(rescalePlan(plan, 2, 2)).toBeNull(); // half a node per stage
    expect(rescalePlan(plan, 16, 4)).toBeNull(); // other GPUs per node
    expect(rescalePlan(plan, 8, 2)).toBe(plan);
  });

  it('carryIncumbent shrinks micro-batches a new batch does not divide, then trades dp for tp on the same GPUs', () => {
    const ctxAt = (globalBatch: number) => tinyContext('1x4-l4', 2.5e6, globalBatch);
    const old: Plan = {
      version: PLAN_VERSION, model: 'gpt-tiny', cluster: '1x4-l4', seqLen: 64, globalBatch: 12, gradAccumSteps: 1, flashAttention: true,
      stages: [{ layers: [0, ctxAt(12).model.layers - 1], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 3, dp: 4, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 1, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } }],
    };
    const shape = (p: Plan | null) => p && [p.gradAccumSteps, ...p.stages.map((s) => `b${s.microBatchSize} dp${s.dp} tp${s.tp}`)];
    // Its own 12 samples per micro-batch where they divide the batch (as carryPlan), fewer where not.
    expect(shape(carryIncumbent(old, ctxAt(24), '1x4-l4'))).toEqual([2, 'b3 dp4 tp1']);
    expect(shape(carryIncumbent(old, ctxAt(8), '1x4-l4'))).toEqual([1, 'b2 dp4 tp1']);
    expect(carryPlan(old, ctxAt(8), '1x4-l4').plan).toBeNull();
    // 6 samples: no multiple of dp 4 divides it; dp 2 x tp 2 on the same 4 GPUs does.
    expect(shape(carryIncumbent(old, ctxAt(6), '1x4-l4'))).toEqual([1, 'b3 dp2 tp2']);
  });

  it('a tune where nothing fits diagnoses it from rows it evaluated, not from cached minima', async () => {
    await tune(tinyContext('2x2-l4', 2.2e6, 16), { space, cacheDir: dir });
    const none = await tune(tinyContext('2x2-l4', 1e5, 16), { space, cacheDir: dir });
    expect(none.plan).toBeNull();
    expect(none.noFit).not.toBeNull();
    expect(none.cache!.boundsHits).toBe(0);
  });

  it('bounds from cached minima equal the bounds derived afresh, and so do the details derived on demand', () => {
    const ctx = tinyContext('2x2-l4', 2.2e6, 32);
    const compiled = compileStageModel(ctx);
    let compared = 0;
    for (const { G, specs, configsOf, grid } of boundsInputsPerG(ctx)) {
      const fresh = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, grid, 4);
      expect(Array.from(fresh.derived).every((d) => d === 1)).toBe(true);
      const cached = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, grid, 4, Infinity, { known: (s) => fresh.minima[s] });
      expect(Array.from(cached.derived).every((d) => d === 0)).toBe(true);
      expect(cached.evaluated).toBe(0);
      expect(cached.lowerBoundS).toBe(fresh.lowerBoundS);
      expect(Array.from(cached.specLowerBoundS)).toEqual(Array.from(fresh.specLowerBoundS));
      expect(Array.from(cached.specRestS)).toEqual(Array.from(fresh.specRestS));
      specs.forEach((_, s) => {
        // Without an incumbent, the fresh bounds refine every configuration of a spec that may be in a plan.
        if (!Number.isFinite(fresh.specLowerBoundS[s])) return;
        const a = fresh.detail(s);
        const b = cached.detail(s);
        expect(a.evaluated).toBe(0);
        expect(b.configs).toEqual(a.configs);
        expect(Array.from(b.roots)).toEqual(Array.from(a.roots));
        expect(Array.from(b.steady)).toEqual(Array.from(a.steady));
        expect(Array.from(b.imbalance)).toEqual(Array.from(a.imbalance));
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(10);
  });

  it('the fast-corner test closes a G only with lower bounds of the exact ones, and derives the exact minima of the groups that matter when it cannot', () => {
    const ctx = tinyContext('2x2-l4', 2.2e6, 32);
    const compiled = compileStageModel(ctx);
    let closed = 0;
    let open = 0;
    for (const { G, specs, configsOf, grid } of boundsInputsPerG(ctx)) {
      const exact = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, grid, 4);
      const configs = specs.reduce((a, spec) => a + configsOf(spec).length, 0);
      // A bar every bound reaches: closed on the fast corners, one row per configuration.
      const low = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, grid, 4, 1e-9, { fastTest: true });
      expect(low.evaluated).toBe(configs);
      expect(Array.from(low.derived).every((d) => d === 0)).toBe(true);
      expect(Array.from(low.derivedWeak).every((d) => d === 1)).toBe(true);
      expect(low.lowerBoundS).toBeLessThanOrEqual(exact.lowerBoundS);
      specs.forEach((_, s) => {
        expect(low.minima[s].steady).toBeLessThanOrEqual(exact.minima[s].steady);
        expect(low.minima[s].first).toBeLessThanOrEqual(exact.minima[s].first);
        expect(low.minima[s].imbalance).toBeLessThanOrEqual(exact.minima[s].imbalance);
      });
      closed++;
      if (!Number.isFinite(exact.lowerBoundS)) continue;
      // A bar above the exact bound: no lower bound closes G; the specs some plan below the bar may use
      // are derived (the exact minima), the others keep their fast-corner minima.
      const high = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, grid, 4, exact.lowerBoundS * 1.5, { fastTest: true });
      specs.forEach((_, s) => {
        expect(high.derived[s] + high.derivedWeak[s]).toBe(1);
        if (high.derived[s]) expect(high.minima[s]).toEqual(exact.minima[s]);
        else expect(high.minima[s].steady).toBeLessThanOrEqual(exact.minima[s].steady);
      });
      expect(Array.from(high.derived).some((d) => d === 1)).toBe(true);
      open++;
    }
    expect(closed).toBeGreaterThan(2);
    expect(open).toBeGreaterThan(2);
  });

  it('minima at a smaller in-flight count bound those at a larger one, and a view gives the nearest below as weaker minima', () => {
    // Without offloading, what fits depends on the activations in flight: a tight budget makes it strict.
    const space = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS });
    const ctx = tinyContext('1x4-l4', 1.2e6, 32);
    const compiled = compileStageModel(ctx);
    const cl = ctx.profile.cluster;
    const G = 4;
    const configsOf = (s: StageGroupSpec): ParallelConfig[] => parallelConfigs(space, ctx.model, ctx.training.seqLen, s.mesh, 32 / G);
    const grid = { ckpt: (l: number) => ckptLevels(space.ckpt, l), offload: space.offload };
    const specs = stageGroupSpecs(space, ctx.model.layers, cl, meshChoices(cl)).filter((s) => s.position === 'middle' && configsOf(s).length > 0);
    const at = (f: number): StageGroupSpec[] => specs.map((s) => ({ ...s, inFlightMin: f, inFlightMax: f }));
    const minima = [1, 2, 3].map((f) => boundsForG(compiled, ctx.model.layers, G, at(f), configsOf, grid, 4).minima);
    let stricter = 0;
    specs.forEach((_, s) => {
      for (const f of [0, 1]) {
        expect(minima[f][s].steady).toBeLessThanOrEqual(minima[f + 1][s].steady);
        expect(minima[f][s].first).toBeLessThanOrEqual(minima[f + 1][s].first);
        expect(minima[f][s].imbalance).toBeLessThanOrEqual(minima[f + 1][s].imbalance);
        if (minima[f][s].steady < minima[f + 1][s].steady) stricter++;
      }
    });
    expect(stricter).toBeGreaterThan(0);
    const cache = BoundsCache.open(dir, 'w');
    specs.forEach((spec, s) => {
      cache.put(boundsKey({ ...spec, inFlightMin: 1 }, 4, null), minima[0][s]);
      cache.put(boundsKey({ ...spec, inFlightMin: 2 }, 4, null), minima[1][s]);
    });
    cache.put(fastBoundsKey(specs[0], 8, null), { steady: 1, first: 2, imbalance: 3 });
    cache.save();
    const again = BoundsCache.open(dir, 'w');
    expect(again.heldAtOpen).toBe(2 * specs.length + 1);
    const at4 = again.view(4, null);
    const at4G8 = again.view(4, 8);
    specs.forEach((spec, s) => {
      const part = specKeyPart(spec);
      expect(at4.exact(part, 2)).toEqual(minima[1][s]);
      expect(at4.exact(part, 3)).toBeNull();
      expect(at4.weaker(part, 3)).toEqual(minima[1][s]);
      expect(at4.weaker(part, 2)).toEqual(minima[0][s]);
      expect(at4.weaker(part, 1)).toBeNull(); // nothing below, no fast-corner minima
      expect(at4G8.weaker(part, 3)).toBeNull(); // another G in the key
    });
    expect(again.view(8, null).weaker(specKeyPart(specs[0]), 1)).toEqual({ steady: 1, first: 2, imbalance: 3 });
    expect(again.view(8, null).exact(specKeyPart(specs[0]), 1)).toBeNull();
  });

  it('saves merge with what another tune wrote meanwhile, keep the newest entries under a cap; a damaged file reads as empty', () => {
    const a = BoundsCache.open(dir, 'k');
    const b = BoundsCache.open(dir, 'k');
    a.put('x', { steady: 1, first: 2, imbalance: 3 });
    a.save();
    b.put('y', { steady: Infinity, first: Infinity, imbalance: Infinity });
    b.save();
    const c = BoundsCache.open(dir, 'k');
    expect(c.get('x')).toEqual({ steady: 1, first: 2, imbalance: 3 });
    expect(c.get('y')).toEqual({ steady: Infinity, first: Infinity, imbalance: Infinity });
    // Beyond the cap the oldest entries go.
    const capped = BoundsCache.open(dir, 'k', 2);
    capped.put('z', { steady: 5, first: 6, imbalance: 7 });
    capped.save();
    const after = BoundsCache.open(dir, 'k');
    expect(after.get('x')).toBeNull();
    expect(after.get('y')).not.toBeNull();
    expect(after.get('z')).toEqual({ steady: 5, first: 6, imbalance: 7 });
    fs.writeFileSync(path.join(dir, 'k.bounds.bin'), '{ not json');
    expect(BoundsCache.open(dir, 'k').get('x')).toBeNull();
  });
});
