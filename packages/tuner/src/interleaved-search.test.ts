// Interleaved 1F1B in the Mist space: the search against brute force over every interleaved plan,
// and the whole tune against brute force over every plan (interleaved or not) of small spaces.
import { type AnalyzerContext, compileStageModel, estimatePlan } from '@mist/analyzer';
import { getModel, parseModelSpec, parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { bruteForce } from './brute-force';
import { bruteForceInterleaved } from './brute-force-interleaved';
import { parallelConfigs, selectiveLevels } from './enumerate';
import { searchInterleaved } from './interleaved-search';
import { mistSpace, NO_OFFLOAD_LEVELS, type SearchSpace, uniformOffloadLevels } from './search-space';
import { planSpaceViolations } from './space-membership';
import { tinyContext, withAllBusy } from './test/tiny-context';
import { tune } from './tuner';

interface Case {
  name: string;
  layers: number;
  cluster: string;
  globalBatch: number;
  usableBytes: number;
  allBusy?: boolean;
  noFlash?: boolean;
  space: SearchSpace;
  /** The optimum of the space is interleaved (brute force says so; the case checks it stays so). */
  interleavedWins: boolean;
}

const noOffload = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS, frontierSize: Infinity, maxCp: 1 });
const halfOffload = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity, maxCp: 1 });

const cases: Case[] = [
  { name: 'gpt-tiny on 1x4, measured-style profile, tight memory', layers: 4, cluster: '1x4-l4', globalBatch: 8, usableBytes: 1.5e6, allBusy: true, space: noOffload, interleavedWins: true },
  { name: 'gpt-tiny on 2x2, measured-style profile, global batch 4', layers: 4, cluster: '2x2-l4', globalBatch: 4, usableBytes: 1.5e6, allBusy: true, space: noOffload, interleavedWins: true },
  { name: '8 layers on 1x4, analytic profile (v = 4 on two ranks)', layers: 8, cluster: '1x4-l4', globalBatch: 8, usableBytes: 2.5e6, space: noOffload, interleavedWins: true },
  { name: '8 layers on 1x4, measured-style profile (plain 1F1B wins)', layers: 8, cluster: '1x4-l4', globalBatch: 4, usableBytes: 2.5e6, allBusy: true, space: noOffload, interleavedWins: false },
  { name: 'gpt-tiny on 1x4, no flash attention (selective recompute per rank)', layers: 4, cluster: '1x4-l4', globalBatch: 8, usableBytes: 1.5e6, allBusy: true, noFlash: true, space: noOffload, interleavedWins: false },
  { name: 'gpt-tiny on 1x4, offload 1/2 grid beside interleaving', layers: 4, cluster: '1x4-l4', globalBatch: 16, usableBytes: 1.5e6, allBusy: true, space: halfOffload, interleavedWins: false },
];

function contextOf(c: Case): AnalyzerContext {
  const tiny = tinyContext(c.cluster, c.usableBytes, c.globalBatch);
  const model = c.layers === 4 ? tiny.model : parseModelSpec({ ...getModel('gpt-tiny'), name: `gpt-tiny-${c.layers}`, layers: c.layers });
  const training = c.noFlash ? { ...tiny.training, flashAttention: false } : tiny.training;
  const ctx = { ...tiny, model, training };
  return c.allBusy ? withAllBusy(ctx) : ctx;
}

describe('interleaved 1F1B in the Mist space', () => {
  for (const c of cases) {
    it(`${c.name}: the interleaved search equals brute force, the tune equals brute force over every plan`, async () => {
      const ctx = contextOf(c);
      const compiled = compileStageModel(ctx);
      const ref = bruteForceInterleaved(ctx, c.space);
      expect(ref).not.toBeNull();
      const configsAt = (mesh: { nodes: number; gpusPerNode: number }, samples: number) =>
        parallelConfigs(c.space, ctx.model, ctx.training.seqLen, mesh, samples, selectiveLevels(c.space, ctx.training.flashAttention));
      const found = searchInterleaved({ ctx, compiled, space: c.space, configsAt, clusterName: c.cluster, cutoffS: Infinity });
      expect(found).not.toBeNull();
      expect(Math.abs(found!.iterationTimeS - ref!.iterationTimeS)).toBeLessThanOrEqual(1e-12 * ref!.iterationTimeS);
      const plan = parsePlan(found!.plan, { model: ctx.model, cluster: ctx.profile.cluster });
      expect(estimatePlan(plan, ctx).iterationTimeS).toBeCloseTo(found!.iterationTimeS, 12);
      expect(planSpaceViolations(plan, c.space)).toEqual([]);

      const all = bruteForce(ctx, c.space)!;
      const res = await tune(ctx, { space: c.space });
      expect(Math.abs(res.predicted!.iterationTimeS - all.iterationTimeS)).toBeLessThanOrEqual(1e-12 * all.iterationTimeS);
      expect(Math.abs(res.objectiveS! - res.predicted!.iterationTimeS)).toBeLessThanOrEqual(1e-12 * all.iterationTimeS);
      expect(res.predicted!.allFit).toBe(true);
      expect(planSpaceViolations(res.plan!, c.space)).toEqual([]);
      expect((all.plan.virtualStages ?? 1) > 1).toBe(c.interleavedWins);
      if (c.interleavedWins) {
        expect(res.plan!.virtualStages).toBeGreaterThan(1);
        // And it pays: the space without interleaving has a slower optimum.
        const without = await tune(ctx, { space: { ...c.space, maxVirtualStages: 1 } });
        expect(without.plan!.virtualStages ?? 1).toBe(1);
        expect(without.predicted!.iterationTimeS).toBeGreaterThan(res.predicted!.iterationTimeS);
      }
    });
  }

  it('a cutoff returns only plans faster than it', () => {
    const c = cases[2];
    const ctx = contextOf(c);
    const ref = bruteForceInterleaved(ctx, c.space)!;
    const configsAt = (mesh: { nodes: number; gpusPerNode: number }, samples: number) =>
      parallelConfigs(c.space, ctx.model, ctx.training.seqLen, mesh, samples, selectiveLevels(c.space, ctx.training.flashAttention));
    const input = { ctx, compiled: compileStageModel(ctx), space: c.space, configsAt, clusterName: c.cluster };
    expect(searchInterleaved({ ...input, cutoffS: ref.iterationTimeS })).toBeNull();
    expect(searchInterleaved({ ...input, cutoffS: ref.iterationTimeS * (1 + 1e-9) })!.iterationTimeS).toBeCloseTo(ref.iterationTimeS, 12);
  });

  it('membership: chunk count, one mesh and no offloading for interleaved plans of the Mist space', () => {
    const c = cases[2];
    const ctx = contextOf(c);
    const plan = parsePlan(bruteForceInterleaved(ctx, c.space)!.plan, { model: ctx.model, cluster: ctx.profile.cluster });
    const v = plan.virtualStages!;
    expect(planSpaceViolations(plan, { ...c.space, maxVirtualStages: 1 })).toEqual([`virtualStages: ${v}, the mist space allows at most 1 model chunks per rank`]);
    expect(planSpaceViolations(plan, { ...c.space, maxVirtualStages: undefined })).toHaveLength(1);
    const offloaded = { ...plan, stages: plan.stages.map((s, i) => (i === 1 ? { ...s, offload: { ...s.offload, optim: 0.5 } } : s)) };
    expect(planSpaceViolations(offloaded, halfOffload)).toEqual(['stages[1].offload: an interleaved plan of the mist space offloads nothing']);
  });
});
