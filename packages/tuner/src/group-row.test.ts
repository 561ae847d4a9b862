import { INPUT_WIDTH, readStageQuery, writeStageQuery } from '@mist/analyzer';
import { getModel, parseClusterShorthand } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { atGradAccum, meshChoices, parallelConfigs, queryPp, stageGroupSpecs } from './enumerate';
import { writeGroupRow } from './group-row';
import { mistSpace } from './search-space';

// The tuner's hot-path row writer keeps its own copy of the analyzer's row layout: every row it
// writes must be the analyzer's own row of the same query (writeStageQuery), column for column.
describe('writeGroupRow', () => {
  it.each(['gpt3-1.3b', 'mixtral-8x7b'])('writes exactly the analyzer\'s row of the stage query it stands for (%s)', (name) => {
    const model = getModel(name);
    const cluster = parseClusterShorthand('2x8-a100-80gb');
    const space = mistSpace();
    const G = 4;
    let rows = 0;
    for (const spec0 of stageGroupSpecs(space, model.layers, cluster, meshChoices(cluster))) {
      const spec = atGradAccum(spec0, G);
      for (const c of parallelConfigs(space, model, 2048, spec.mesh, 64 / G)) {
        const mine = new Float64Array(INPUT_WIDTH);
        writeGroupRow(mine, 0, spec, G, c, spec.inFlightMin, 1, 0.25, 0, 0.5, 0.125);
        const q = readStageQuery(mine);
        expect(q).toMatchObject({
          layers: spec.layers, position: spec.position, inFlight: spec.inFlightMin, pp: queryPp(spec), mesh: spec.mesh,
          microBatchSize: c.microBatchSize, gradAccumSteps: G, dp: c.dp, tp: c.tp, cp: c.cp, ep: c.ep ?? 1, sequenceParallel: c.sequenceParallel,
          selectiveRecompute: c.selectiveRecompute === true, ckptLayers: 1, zero: c.zero,
          offload: { weights: 0.25, grads: 0, optim: 0.5, activations: 0.125 },
        });
        const theirs = new Float64Array(INPUT_WIDTH);
        writeStageQuery(q, theirs);
        expect([...mine]).toEqual([...theirs]);
        rows++;
      }
    }
    expect(rows).toBeGreaterThan(50);
  });
});
