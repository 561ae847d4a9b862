// The memory-aware bounds (bounds.ts) against brute force: what they drop holds no fitting point,
// the least levels and time bounds they claim hold for every fitting point, and the tuner with them
// finds the brute-force optimum, or proves that nothing fits, on tight and measured-style instances.
import { compileStageModel, INPUT_WIDTH, OUT, OUTPUT_WIDTH } from '@mist/analyzer';
import type { AnalyzerContext } from '@mist/analyzer';
import { describe, expect, it } from 'vitest';
import { boundsForG, DIMS, writeCorner } from './bounds';
import { bruteForce } from './brute-force';
import { atGradAccum, ckptLevels, gradAccumChoices, meshChoices, type ParallelConfig, parallelConfigs, type StageGroupSpec, stageGroupSpecs } from './enumerate';
import { stageModelReadsPp } from './pipeline-depth';
import { mistSpace, NO_OFFLOAD_LEVELS, type SearchSpace, uniformOffloadLevels } from './search-space';
import { tinyContext, withAllBusy } from './test/tiny-context';
import { tune } from './tuner';

const reducedOffload = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity });
const activationOffloadOnly = mistSpace({ zero: [0], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity });

interface Instance {
  name: string;
  ctx: AnalyzerContext;
  space: SearchSpace;
}

const instances: Instance[] = [
  { name: '1x4, tight device', ctx: tinyContext('1x4-l4', 2e6, 8), space: reducedOffload },
  { name: '1x4, tight device and host', ctx: tinyContext('1x4-l4', 2e6, 8, 64, 5e5), space: reducedOffload },
  { name: '2x2, little host memory', ctx: tinyContext('2x2-l4', 2.2e6, 16, 64, 1e5), space: activationOffloadOnly },
  { name: '1x2, nothing fits (host)', ctx: tinyContext('1x2-l4', 1e6, 8, 64, 10e3), space: reducedOffload },
  { name: '1x4, nothing fits (device)', ctx: tinyContext('1x4-l4', 3e5, 8, 64, 2e5), space: reducedOffload },
  { name: '1x4, measured-style profile', ctx: withAllBusy(tinyContext('1x4-l4', 1.2e6, 2)), space: reducedOffload },
  { name: '2x2, measured-style profile', ctx: withAllBusy(tinyContext('2x2-l4', 1.5e6, 2)), space: activationOffloadOnly },
];

const offloadOf = (space: SearchSpace, d: number): number[] =>
  [space.offload.weights, space.offload.grads, space.offload.optim, space.offload.activations][d - 1];

/** Every grid point of one (spec, config) at the spec's smallest in-flight count: level indices, fit, times. */
function gridPoints(ctx: AnalyzerContext, space: SearchSpace, spec: StageGroupSpec, G: number, c: ParallelConfig):
  Array<{ idx: number[]; fits: boolean; steady: number; imbalance: number }> {
  const model = compileStageModel(ctx);
  const lv = [ckptLevels(space.ckpt, spec.layers), ...[1, 2, 3, 4].map((d) => offloadOf(space, d))];
  const all: number[][] = [[]];
  for (let d = 0; d < DIMS; d++) {
    const next: number[][] = [];
    for (const p of all) for (let i = 0; i < lv[d].length; i++) next.push([...p, i]);
    all.splice(0, all.length, ...next);
  }
  const input = new Float64Array(all.length * INPUT_WIDTH);
  const output = new Float64Array(all.length * OUTPUT_WIDTH);
  all.forEach((idx, r) => writeCorner(input, r, spec, G, c, lv[0][idx[0]], [1, 2, 3, 4].map((d) => lv[d][idx[d]]) as [number, number, number, number]));
  model.evaluateBatch(input, output, all.length);
  return all.map((idx, r) => {
    const o = r * OUTPUT_WIDTH;
    return { idx, fits: output[o + OUT.FITS] === 1, steady: output[o + OUT.STEADY], imbalance: output[o + OUT.FIRST] + output[o + OUT.LAST] };
  });
}

describe('memory-aware bounds (bounds.ts) against brute force', () => {
  it('dropped configurations hold no fitting point; kept ones hold none below their least levels or faster than their bounds', () => {
    let dropped = 0;
    let raised = 0;
    let checked = 0;
    for (const { ctx, space } of instances) {
      const compiled = compileStageModel(ctx);
      const cl = ctx.profile.cluster;
      const specs0 = stageGroupSpecs(space, ctx.model.layers, cl, meshChoices(cl), stageModelReadsPp(ctx));
      for (const G of gradAccumChoices(ctx.training.globalBatch)) {
        // One array per mesh, so that the kept configurations are found by identity.
        const byMesh = new Map<string, ParallelConfig[]>();
        const configsOf = (s: StageGroupSpec): ParallelConfig[] => {
          const key = `${s.mesh.nodes}x${s.mesh.gpusPerNode}`;
          if (!byMesh.has(key)) byMesh.set(key, parallelConfigs(space, ctx.model, ctx.training.seqLen, s.mesh, ctx.training.globalBatch / G));
          return byMesh.get(key)!;
        };
        const specs = specs0.filter((s) => configsOf(s).length > 0).map((s) => atGradAccum(s, G));
        // No incumbent: the least levels are searched for every spec that may be in a plan.
        const b = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, { ckpt: (l) => ckptLevels(space.ckpt, l), offload: space.offload },
          cl.nodes * cl.gpusPerNode);
        specs.forEach((spec, s) => {
          for (const c of configsOf(spec)) {
            const pts = gridPoints(ctx, space, spec, G, c);
            const detail = b.detail(s);
            const k = detail.configs.indexOf(c);
            const fitting = pts.filter((p) => p.fits);
            checked++;
            if (k < 0) {
              dropped++;
              expect(fitting.length, `dropped config of ${spec.position}/${spec.layers} at G=${G} has a fitting point`).toBe(0);
              continue;
            }
            const root = Array.from(detail.roots.subarray(k * DIMS, (k + 1) * DIMS));
            if (root.some((x) => x > 0)) raised++;
            for (const p of fitting) {
              for (let d = 0; d < DIMS; d++) expect(p.idx[d]).toBeGreaterThanOrEqual(root[d]);
              expect(p.steady).toBeGreaterThanOrEqual(detail.steady[k] * (1 - 1e-12));
              expect(p.imbalance).toBeGreaterThanOrEqual(detail.imbalance[k] * (1 - 1e-12));
            }
          }
        });
      }
    }
    // The instances exercise both rules.
    expect(dropped).toBeGreaterThan(0);
    expect(raised).toBeGreaterThan(0);
    expect(checked).toBeGreaterThan(100);
  });

  for (const { name, ctx, space } of instances) {
    it(`the tuner finds the brute-force optimum, or proves nothing fits: ${name}`, async () => {
      const res = await tune(ctx, { space });
      const ref = bruteForce(ctx, space);
      if (!ref) {
        expect(res.plan).toBeNull();
        expect(res.noFit).not.toBeNull();
        return;
      }
      expect(res.plan).not.toBeNull();
      expect(Math.abs(res.predicted!.iterationTimeS - ref.iterationTimeS)).toBeLessThanOrEqual(1e-12 * ref.iterationTimeS);
    });
  }

  it('the bound of every G is below the best plan at that G (brute force per G), devices counted', () => {
    let withPlan = 0;
    for (const { ctx, space } of instances.slice(0, 3)) {
      const compiled = compileStageModel(ctx);
      const cl = ctx.profile.cluster;
      const specs0 = stageGroupSpecs(space, ctx.model.layers, cl, meshChoices(cl), stageModelReadsPp(ctx));
      for (const G of gradAccumChoices(ctx.training.globalBatch)) {
        const configsOf = (s: StageGroupSpec): ParallelConfig[] => parallelConfigs(space, ctx.model, ctx.training.seqLen, s.mesh, ctx.training.globalBatch / G);
        const specs = specs0.filter((s) => configsOf(s).length > 0).map((s) => atGradAccum(s, G));
        const b = boundsForG(compiled, ctx.model.layers, G, specs, configsOf, { ckpt: (l) => ckptLevels(space.ckpt, l), offload: space.offload },
          cl.nodes * cl.gpusPerNode);
        const atG = bruteForce(ctx, space, G);
        if (atG) {
          expect(b.lowerBoundS).toBeLessThanOrEqual(atG.iterationTimeS * (1 + 1e-12));
          withPlan++;
        }
      }
    }
    expect(withPlan).toBeGreaterThan(3);
  });
});
