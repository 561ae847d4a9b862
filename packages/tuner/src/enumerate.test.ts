import { getModel, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { atDepth, atGradAccum, ckptLevels, meshChoices, parallelConfigs, stageGroupSpecs } from './enumerate';
import { mistSpace } from './search-space';

describe('search-space enumeration', () => {
  it('meshes: powers of two inside a node, then whole nodes', () => {
    const m = meshChoices(parseClusterShorthand('4x8-a100-40gb'));
    expect(m.map((x) => `${x.nodes}x${x.gpusPerNode}`)).toEqual(['1x1', '1x2', '1x4', '1x8', '2x8', '3x8', '4x8']);
  });

  it('parallel configs keep b * dp = globalBatch / G, TP inside the node and dividing the heads', () => {
    const model = getModel('gpt3-6.7b');
    const cfgs = parallelConfigs(mistSpace(), model, 2048, { nodes: 2, gpusPerNode: 8 }, 32);
    expect(cfgs.length).toBeGreaterThan(0);
    for (const c of cfgs) {
      expect(c.microBatchSize * c.dp).toBe(32);
      expect(c.dp * c.tp * c.cp).toBe(16);
      expect(2048 % (2 * c.cp)).toBe(0);
      expect(8 % c.tp).toBe(0);
      if (c.tp === 1) expect(c.sequenceParallel).toBe(false);
    }
    // dp = 1 keeps one ZeRO level (nothing to shard).
    const single = parallelConfigs(mistSpace(), model, 2048, { nodes: 1, gpusPerNode: 1 }, 4);
    expect(single.map((c) => c.zero)).toEqual([0]);
  });

  it('splits dp x cp with the sequence in 2*cp chunks, up to maxCp (off when 1)', () => {
    const model = getModel('gpt3-6.7b');
    const mesh = { nodes: 1, gpusPerNode: 8 };
    const cps = (space = mistSpace(), seq = 2048): number[] => [...new Set(parallelConfigs(space, model, seq, mesh, 8, [false], false).map((c) => c.cp))].sort((x, y) => x - y);
    expect(cps()).toEqual([1, 2, 4, 8]);
    expect(cps(mistSpace({ maxCp: 2 }))).toEqual([1, 2]);
    expect(cps(mistSpace({ maxCp: 1 }))).toEqual([1]);
    // 2 * 8 = 16 does not divide 24; 2 * 4 = 8 does.
    expect(cps(mistSpace(), 24)).toEqual([1, 2, 4]);
    // Pruned: a cp split whose micro-batch also splits over dp * cp data-parallel ranks (same tokens
    // per rank, no ring). With 8 samples on 8 devices every cp split is such; with 2 none is (dp = 8, 4 do not divide 2).
    expect(parallelConfigs(mistSpace(), model, 2048, mesh, 8).every((c) => c.cp === 1)).toBe(true);
    const two = parallelConfigs(mistSpace(), model, 2048, mesh, 2).filter((c) => c.tp === 1 && c.zero === 0);
    expect(two.map((c) => [c.dp, c.cp])).toEqual([[2, 4], [1, 8]]);
    // ZeRO shards over dp * cp: a dp = 1, cp = 8 config keeps every ZeRO level.
    expect(parallelConfigs(mistSpace(), model, 2048, mesh, 1).filter((c) => c.cp === 8).map((c) => c.zero)).toEqual([0, 1, 2, 3]);
  });

  it('megatron groups only allow layers = L / pp and devices = D / pp', () => {
    const cluster = parseClusterShorthand('1x8-l4');
    const specs = stageGroupSpecs(mistSpace({ uniformPartition: true, uniformMesh: true }), 32, cluster, meshChoices(cluster));
    for (const s of specs) {
      const d = s.mesh.nodes * s.mesh.gpusPerNode;
      if (s.position === 'only') continue;
      expect(32 / s.layers).toBe(8 / d);
      if (s.position === 'first') expect(s.inFlightMin).toBe(32 / s.layers);
    }
  });

  it('groups say which pipeline depths they serve; per depth, first stages have pp in flight and middle ones 2 .. pp - 1', () => {
    const cluster = parseClusterShorthand('1x4-l4');
    const shared = stageGroupSpecs(mistSpace(), 4, cluster, meshChoices(cluster));
    const first = shared.find((s) => s.position === 'first' && s.layers === 1 && s.mesh.gpusPerNode === 1)!;
    expect([first.ppMin, first.ppMax, first.inFlightMin, first.inFlightMax]).toEqual([2, 4, 2, 4]);
    const middle = shared.find((s) => s.position === 'middle' && s.layers === 1 && s.mesh.gpusPerNode === 1)!;
    expect([middle.ppMin, middle.ppMax, middle.inFlightMin, middle.inFlightMax]).toEqual([3, 4, 2, 3]);
    expect(atDepth(middle, 3)).toMatchObject({ ppMin: 3, ppMax: 3, inFlightMin: 2, inFlightMax: 2 });
    expect(atDepth(first, 3)).toMatchObject({ ppMin: 3, ppMax: 3, inFlightMin: 3, inFlightMax: 3 });
    expect(() => atDepth(middle, 2)).toThrow(/outside/);
    const perDepth = stageGroupSpecs(mistSpace(), 4, cluster, meshChoices(cluster), true);
    expect(perDepth.every((s) => s.ppMin === s.ppMax)).toBe(true);
    expect(perDepth.filter((s) => s.position === 'first' && s.layers === 1 && s.mesh.gpusPerNode === 1).map((s) => s.ppMin)).toEqual([2, 3, 4]);
  });

  it('at G, in-flight counts are capped at G (1F1B keeps min(pp - i, G) micro-batches)', () => {
    const cluster = parseClusterShorthand('1x4-l4');
    const first = stageGroupSpecs(mistSpace(), 4, cluster, meshChoices(cluster)).find((s) => s.position === 'first' && s.layers === 1 && s.mesh.gpusPerNode === 1)!;
    expect(atGradAccum(first, 8)).toBe(first);
    expect(atGradAccum(first, 3)).toMatchObject({ ppMin: 2, ppMax: 4, inFlightMin: 2, inFlightMax: 3 });
    expect(atGradAccum(first, 1)).toMatchObject({ ppMin: 2, ppMax: 4, inFlightMin: 1, inFlightMax: 1 });
  });

  it('ckpt levels', () => {
    expect(ckptLevels('fine', 3)).toEqual([0, 1, 2, 3]);
    expect(ckptLevels('all-or-none', 3)).toEqual([0, 3]);
    expect(ckptLevels('none', 3)).toEqual([0]);
  });
});
