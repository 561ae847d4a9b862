import { compileStageModel, IN, INPUT_WIDTH, OUTPUT_WIDTH, type StageQuery, writeStageQuery } from '@mist/analyzer';
import { NO_OFFLOAD } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { stageModelReadsPp } from './pipeline-depth';
import { mulberry32 } from './test/random-instance';
import { tinyContext, withAllBusy } from './test/tiny-context';

/** Outputs of `rows` random stage queries at PP = a and at PP = b. */
function atTwoDepths(ctx: ReturnType<typeof tinyContext>, rows: number, a: number, b: number): [Float64Array, Float64Array] {
  const model = compileStageModel(ctx);
  const rnd = mulberry32(5);
  const inA = new Float64Array(rows * INPUT_WIDTH);
  for (let r = 0; r < rows; r++) {
    const tp = rnd() < 0.5 ? 1 : 2;
    const q: StageQuery = {
      layers: 1 + Math.floor(rnd() * 3), position: (['first', 'middle', 'last'] as const)[Math.floor(rnd() * 3)], inFlight: 1 + Math.floor(rnd() * 3),
      pp: a, mesh: { nodes: 1, gpusPerNode: tp }, microBatchSize: 1, gradAccumSteps: 4, dp: 1, tp, sequenceParallel: false,
      ckptLayers: 0, zero: 0, offload: { ...NO_OFFLOAD, activations: rnd() < 0.5 ? 0 : 0.5 },
    };
    writeStageQuery(q, inA, r);
  }
  const inB = inA.slice();
  for (let r = 0; r < rows; r++) inB[r * INPUT_WIDTH + IN.PP] = b;
  const outA = new Float64Array(rows * OUTPUT_WIDTH);
  const outB = new Float64Array(rows * OUTPUT_WIDTH);
  model.evaluateBatch(inA, outA, rows);
  model.evaluateBatch(inB, outB, rows);
  return [outA, outB];
}

describe('whether the stage model reads the pipeline depth', () => {
  it('a datasheet profile does not: every output is the same at every pp', () => {
    const ctx = tinyContext('1x4-l4', 2e6, 8);
    expect(stageModelReadsPp(ctx)).toBe(false);
    const [a, b] = atTwoDepths(ctx, 50, 2, 4);
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('a measured-style profile (all-busy slowdowns) does, and stage times differ between pipeline depths', () => {
    const ctx = withAllBusy(tinyContext('1x4-l4', 2e6, 8));
    expect(stageModelReadsPp(ctx)).toBe(true);
    const [a, b] = atTwoDepths(ctx, 50, 2, 4);
    expect(Array.from(b)).not.toEqual(Array.from(a));
  });
});
