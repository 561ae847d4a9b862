// Bounds at G derived from the bounds of the same stage groups at a smaller G (bounds.ts
// boundsFromEarlierG, g-bounds-cache.ts): never above the best plan at G (brute force per G), nor
// above any plan's time for the groups it uses; the cache keeps them as lower bounds (float32 rounded
// down), finds the record of the largest G0 < G of the same groups, and a re-tune reads them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileStageModel } from '@mist/analyzer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boundsForG, boundsFromEarlierG } from './bounds';
import { bruteForce } from './brute-force';
import { atGradAccum, ckptLevels, gradAccumChoices, meshChoices, type ParallelConfig, parallelConfigs, type StageGroupSpec, stageGroupSpecs } from './enumerate';
import { GBoundsCache, groupsBase, groupsFingerprint } from './g-bounds-cache';
import { mistSpace, NO_OFFLOAD_LEVELS } from './search-space';
import { expectBoundsBelowPlan } from './test/plan-specs';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

const space = mistSpace({ zero: [0, 1], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity });

describe('bounds from an earlier G', () => {
  let dir = '';
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-g-bounds-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('are below the best plan at the larger G and below every plan of the groups it uses (brute force)', () => {
    let checked = 0;
    for (const [cluster, bytes, batch, factor] of [['2x2-l4', 2.2e6, 8, 2], ['1x4-l4', 2.5e6, 8, 3], ['2x2-l4', 3e6, 16, 2], ['1x4-l4', 1.6e6, 8, 2]] as const) {
      const small = tinyContext(cluster, bytes, batch);
      const large = tinyContext(cluster, bytes, batch * factor);
      const compiled = compileStageModel(small);
      const cl = small.profile.cluster;
      const D = cl.nodes * cl.gpusPerNode;
      const specs0 = stageGroupSpecs(space, small.model.layers, cl, meshChoices(cl));
      const grid = { ckpt: (l: number) => ckptLevels(space.ckpt, l), offload: space.offload };
      for (const G0 of gradAccumChoices(batch)) {
        // The same samples per micro-batch at G = factor G0 with the larger batch.
        const G = factor * G0;
        const configsOf = (s: StageGroupSpec): ParallelConfig[] => parallelConfigs(space, small.model, small.training.seqLen, s.mesh, batch / G0);
        const kept = specs0.filter((s) => configsOf(s).length > 0);
        const at0 = boundsForG(compiled, small.model.layers, G0, kept.map((s) => atGradAccum(s, G0)), configsOf, grid, D);
        const derived = boundsFromEarlierG(G, kept.length, at0);
        const best = bruteForce(large, space, G);
        if (!best) continue;
        expectBoundsBelowPlan(derived, kept, best, large);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  it('the cache keeps lower bounds, finds the largest G0 < G of the same groups, and reads a damaged file as empty', () => {
    const n = 5;
    const values = [0.1, 1 / 3, 2.5e-7, Infinity, 12345.678901];
    const b = { G: 4, lowerBoundS: 7.25, specLowerBoundS: values, specBottleneckS: values.map((v) => v / 7), specRestS: values.map((v) => v * 3) };
    const base = groupsBase(['first:2:1x2:pp2', 'last:2:1x2:pp2']);
    const print = groupsFingerprint(base, [0, 1]);
    expect(groupsFingerprint(base, [1, 0])).not.toBe(print);
    expect(groupsFingerprint(groupsBase(['first:2:1x2:pp2', 'last:2:1x4:pp2']), [0, 1])).not.toBe(print);
    const c = GBoundsCache.open(dir, 'k');
    c.put('8', 4, print, 4, b, n);
    c.put('8', 4, print, 8, { ...b, G: 8, lowerBoundS: 9 }, n);
    c.put('8', 8, print, 2, { ...b, G: 2 }, n);
    c.save();
    const again = GBoundsCache.open(dir, 'k');
    expect(again.find('8', 4, print, 4)).toBeNull(); // no G0 < 4 on 4 devices
    const r = again.find('8', 4, print, 6)!;
    expect(r.G).toBe(4);
    expect(r.lowerBoundS).toBe(7.25);
    values.forEach((v, i) => {
      expect(r.specLowerBoundS[i]).toBeLessThanOrEqual(v);
      expect(r.specLowerBoundS[i]).toBeGreaterThan(v === Infinity ? 1e300 : v * (1 - 1e-6));
      expect(r.specBottleneckS[i]).toBeLessThanOrEqual(v / 7);
      expect(r.specRestS[i]).toBeLessThanOrEqual(v * 3);
    });
    expect(again.find('8', 4, print, 100)!.G).toBe(8);
    expect(again.find('16', 4, print, 100)).toBeNull(); // other samples
    expect(again.find('8', 4, groupsFingerprint(base, [0]), 100)).toBeNull(); // other groups
    // A G of too many groups is not kept (the file is read whole by every re-tune).
    const big = 70_000;
    const ones = new Float64Array(big).fill(1);
    const c2 = GBoundsCache.open(dir, 'big');
    c2.put('8', 4, print, 4, { G: 4, lowerBoundS: 1, specLowerBoundS: ones, specBottleneckS: ones, specRestS: ones }, big);
    c2.save();
    expect(GBoundsCache.open(dir, 'big').find('8', 4, print, 8)).toBeNull();
    fs.writeFileSync(path.join(dir, 'k.gbounds.bin'), 'MSTGnot a file');
    expect(GBoundsCache.open(dir, 'k').find('8', 4, print, 100)).toBeNull();
  });

  it('a re-tune with a doubled batch derives bounds from the first tune\'s and finds the plan a cold tune finds', async () => {
    let used = 0;
    for (const [cluster, bytes, from] of [['2x2-l4', 2.2e6, 16], ['1x4-l4', 1.6e6, 16], ['2x4-l4', 3e6, 32]] as const) {
      const sub = fs.mkdtempSync(path.join(dir, 'case-'));
      const cold = await tune(tinyContext(cluster, bytes, 2 * from), { space });
      const first = await tune(tinyContext(cluster, bytes, from), { space, cacheDir: sub });
      expect(first.cache!.gBoundsHits).toBe(0);
      const again = await tune(tinyContext(cluster, bytes, 2 * from), { space, cacheDir: sub });
      expect(again.objectiveS, `${cluster} ${bytes} ${from}`).toBe(cold.objectiveS);
      used += again.cache!.gBoundsHits;
    }
    expect(used).toBeGreaterThan(0);
  });
});
