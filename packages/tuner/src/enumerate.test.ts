import { getModel, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { ckptLevels, meshChoices, parallelConfigs, stageGroupSpecs } from './enumerate';
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
      expect(c.dp * c.tp).toBe(16);
      expect(8 % c.tp).toBe(0);
      if (c.tp === 1) expect(c.sequenceParallel).toBe(false);
    }
    // dp = 1 keeps one ZeRO level (nothing to shard).
    const single = parallelConfigs(mistSpace(), model, 2048, { nodes: 1, gpusPerNode: 1 }, 4);
    expect(single.map((c) => c.zero)).toEqual([0]);
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

  it('ckpt levels', () => {
    expect(ckptLevels('fine', 3)).toEqual([0, 1, 2, 3]);
    expect(ckptLevels('all-or-none', 3)).toEqual([0, 3]);
    expect(ckptLevels('none', 3)).toEqual([0]);
  });
});
