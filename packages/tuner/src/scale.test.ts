// The scale features of the tuner: lower bounds, time limit and abort with a proven gap, the
// frontier cache, and the re-plan report. Exactness itself is optimality.test.ts's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileStageModel } from '@mist/analyzer';
import { describe, expect, it } from 'vitest';
import { boundsForG } from './bounds';
import { bruteForce } from './brute-force';
import { ckptLevels, meshChoices, parallelConfigs, stageGroupSpecs } from './enumerate';
import { cutoffCovers } from './frontier-cache';
import { explainReplan } from './replan';
import { mistSpace, NO_OFFLOAD_LEVELS } from './search-space';
import { expectBoundsBelowPlan } from './test/plan-specs';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

const space = mistSpace({ zero: [0], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity });

describe('tuner at scale', () => {
  it('the bound of the optimum\'s G is below it, and so is every spec bound of its stages (brute force)', () => {
    for (const [cluster, bytes, batch] of [['2x2-l4', 2.2e6, 16], ['1x4-l4', 2.5e6, 16], ['2x2-l4', 3e6, 32]] as const) {
      const ctx = tinyContext(cluster, bytes, batch);
      const compiled = compileStageModel(ctx);
      const cl = ctx.profile.cluster;
      const specs = stageGroupSpecs(space, ctx.model.layers, cl, meshChoices(cl));
      const best = bruteForce(ctx, space)!;
      const G = best.plan.gradAccumSteps;
      const configsOf = (s: (typeof specs)[number]) => parallelConfigs(space, ctx.model, ctx.training.seqLen, s.mesh, batch / G);
      const b = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, { ckpt: (l) => ckptLevels(space.ckpt, l), offload: space.offload }, cl.nodes * cl.gpusPerNode);
      expectBoundsBelowPlan(b, specs, best, ctx);
    }
  });

  it('a time limit returns the best plan so far with a proven gap; no limit returns gap null', async () => {
    const ctx = tinyContext('2x2-l4', 3e6, 32);
    const full = await tune(ctx, { space });
    expect(full.stoppedBy).toBeNull();
    expect(full.gap).toBeNull();
    const cut = await tune(ctx, { space, timeLimitS: 1e-6 });
    expect(cut.stoppedBy).toBe('time-limit');
    expect(cut.gap).not.toBeNull();
    expect(cut.gap!.lowerBoundS).toBeLessThanOrEqual(full.predicted!.iterationTimeS * (1 + 1e-12));
    if (cut.plan) expect(cut.gap!.relative).toBeGreaterThanOrEqual(0);
  });

  it('an aborted signal stops the search and says so', async () => {
    const ctx = tinyContext('2x2-l4', 3e6, 32);
    const ac = new AbortController();
    ac.abort();
    const res = await tune(ctx, { space, signal: ac.signal });
    expect(res.stoppedBy).toBe('signal');
    expect(res.gap).not.toBeNull();
  });

  it('progress reports candidates/s and an ETA', async () => {
    const seen: Array<{ candidatesPerS?: number; etaS?: number | null }> = [];
    await tune(tinyContext('2x2-l4', 3e6, 32), { space, onProgress: (p) => seen.push(p) });
    expect(seen.some((p) => (p.candidatesPerS ?? 0) > 0 && typeof p.etaS === 'number')).toBe(true);
  });

  it('the frontier cache gives the same plan on a re-tune and on another global batch, and is used', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-cache-test-'));
    try {
      for (const batch of [16, 32]) {
        const ctx = tinyContext('2x2-l4', 2.2e6, batch);
        const cold = await tune(ctx, { space });
        const first = await tune(ctx, { space, cacheDir: dir });
        const again = await tune(ctx, { space, cacheDir: dir });
        expect(first.predicted!.iterationTimeS).toBe(cold.predicted!.iterationTimeS);
        expect(again.predicted!.iterationTimeS).toBe(cold.predicted!.iterationTimeS);
        expect(again.cache!.hits).toBeGreaterThan(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cut set stands for another (G, cutoff) only when every left-out point stays useless', () => {
    expect(cutoffCovers(4, 10, 8, 10)).toBe(true);
    expect(cutoffCovers(4, 10, 8, 11)).toBe(false);
    expect(cutoffCovers(5, 10, 3, 5)).toBe(true); // (3 - 1) / (5 - 1) = 1/2
    expect(cutoffCovers(5, 10, 3, 5.01)).toBe(false);
    expect(cutoffCovers(1, 10, 1, 10)).toBe(true);
    expect(cutoffCovers(3, Infinity, 1, 1e9)).toBe(true);
    // With the group's floors (every point has steady >= 1, imbalance >= 2) more settings are covered.
    const floor = { steady: 1, imbalance: 2 };
    expect(cutoffCovers(4, 10, 8, 14, floor)).toBe(true); // 10 + 4 * 1
    expect(cutoffCovers(4, 10, 8, 14.01, floor)).toBe(false);
    expect(cutoffCovers(5, 10, 3, 6, floor)).toBe(true); // 10 / 2 + 2 / 2
    expect(cutoffCovers(5, 10, 3, 6.01, floor)).toBe(false);
    // Every plan using the group has a bottleneck >= 3: its points pay (G' - 1) * 3 at least.
    const slow = { ...floor, bottleneck: 3 };
    expect(cutoffCovers(4, 10, 8, 22, slow)).toBe(true); // 10 + 4 * 3
    expect(cutoffCovers(4, 10, 8, 22.01, slow)).toBe(false);
    expect(cutoffCovers(5, 10, 3, 8, slow)).toBe(true); // 2 + 2 * 3
    expect(cutoffCovers(5, 10, 3, 8.01, slow)).toBe(false);
  });

  it('whenever a cut set is said to cover (G\', C\'), no left-out point beats C\' there (random points above the floors, with and without a least bottleneck)', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let covered = 0;
    for (let trial = 0; trial < 2000; trial++) {
      // Half the trials with a least bottleneck B of the plans at G': a point's plans pay (G' - 1) max(steady, B).
      const bottleneck = trial % 2 === 0 ? rnd() * 4 : undefined;
      const floor = { steady: rnd() * 2, imbalance: rnd() * 5, bottleneck };
      const G = 1 + Math.floor(rnd() * 20);
      const newG = 1 + Math.floor(rnd() * 40);
      const C = floor.imbalance + (G - 1) * floor.steady + rnd() * 30;
      const newC = rnd() * 80;
      if (!cutoffCovers(G, C, newG, newC, floor)) continue;
      covered++;
      for (let p = 0; p < 50; p++) {
        const steady = floor.steady + rnd() * 3;
        const imbalance = floor.imbalance + rnd() * 20;
        if (imbalance + (G - 1) * steady < C) continue; // kept in the set
        expect(imbalance + (newG - 1) * Math.max(steady, bottleneck ?? 0)).toBeGreaterThanOrEqual(newC * (1 - 1e-12));
      }
    }
    expect(covered).toBeGreaterThan(100);
  });

  it('--from: the earlier plan under a new global batch, and what changed', async () => {
    const old = await tune(tinyContext('2x2-l4', 2.2e6, 16), { space });
    const ctx = tinyContext('2x2-l4', 2.2e6, 32);
    const fresh = await tune(ctx, { space });
    const r = explainReplan(old.plan!, fresh, ctx, '2x2-l4');
    expect(r.planChanges).toContain('global batch: 16 -> 32');
    if (r.carriedEstimate) expect(r.carriedEstimate.iterationTimeS).toBeGreaterThanOrEqual(fresh.predicted!.iterationTimeS * (1 - 1e-12));
    else expect(r.broken).toBeTruthy();
    expect(r.summary.length).toBeGreaterThan(0);
  });
});
