// The tuner against brute force on small instances: same analyzer, same (reduced) grid, every plan.
import { estimatePlan } from '@mist/analyzer';
import { parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { bruteForce } from './brute-force';
import { mistSpace, NO_OFFLOAD_LEVELS, type SearchSpace, uniformOffloadLevels } from './search-space';
import { tinyContext, withAllBusy } from './test/tiny-context';
import { tune } from './tuner';

interface Case {
  name: string;
  cluster: string;
  usableBytes: number;
  globalBatch: number;
  space: SearchSpace;
  /** Host memory per GPU for offloaded tensors (default: the catalog's, which never binds here). */
  hostBytes?: number;
  /** A measured-style profile (host cost per pass, all-busy slowdowns): the stage model reads pp. */
  allBusy?: boolean;
  /** The optimum is a pipeline with fewer micro-batches than stages (G < pp: in-flight counts capped at G). */
  gBelowPp?: boolean;
  /** The optimum splits the sequence (some stage has cp > 1). */
  usesCp?: boolean;
  /** The training spec runs the unfused attention: selective recompute is searched. */
  noFlash?: boolean;
  /** The optimum recomputes the attention core selectively in some stage. */
  usesSelective?: boolean;
}

// The pipeline cases keep context parallelism off (their optima are pipelines); the cp cases below turn it on.
const reducedOffload = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity, maxCp: 1 });
const activationOffloadOnly = mistSpace({ zero: [0], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity, maxCp: 1 });
const withCp = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity });
const withCpNoOffload = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS, frontierSize: Infinity });
const noOffload = mistSpace({ zero: [0, 1], offload: NO_OFFLOAD_LEVELS, frontierSize: Infinity, maxCp: 1 });

const cases: Case[] = [
  { name: '1x4, offload 1/2 grid, tight memory', cluster: '1x4-l4', usableBytes: 2e6, globalBatch: 8, space: reducedOffload },
  { name: '2x2, offload 1/2 grid', cluster: '2x2-l4', usableBytes: 3e6, globalBatch: 8, space: reducedOffload },
  { name: '1x4, ZeRO-0 + activation offload (pipelines win)', cluster: '1x4-l4', usableBytes: 2.5e6, globalBatch: 16, space: activationOffloadOnly },
  { name: '2x2, ZeRO-0 + activation offload, mixed meshes', cluster: '2x2-l4', usableBytes: 2.2e6, globalBatch: 16, space: activationOffloadOnly },
  { name: '2x2, four stages', cluster: '2x2-l4', usableBytes: 3e6, globalBatch: 32, space: activationOffloadOnly },
  // Host memory binds: offloading more saves device memory but needs more host memory.
  { name: '1x4, offload 1/2 grid, tight device and host memory', cluster: '1x4-l4', usableBytes: 2e6, globalBatch: 8, space: reducedOffload, hostBytes: 5e5 },
  { name: '1x4, activation offload, host holds part of it', cluster: '1x4-l4', usableBytes: 2.5e6, globalBatch: 16, space: activationOffloadOnly, hostBytes: 1e6 },
  { name: '2x2, activation offload, host holds part of it', cluster: '2x2-l4', usableBytes: 2.2e6, globalBatch: 16, space: activationOffloadOnly, hostBytes: 1e6 },
  { name: '2x2, activation offload, little host memory', cluster: '2x2-l4', usableBytes: 2.2e6, globalBatch: 16, space: activationOffloadOnly, hostBytes: 1e5 },
  // G < pp: 1F1B keeps min(pp - i, G) micro-batches in flight, so stages hold fewer activations.
  { name: '1x4, global batch 1, offload 1/2 grid (G = 1 < pp)', cluster: '1x4-l4', usableBytes: 1.5e6, globalBatch: 1, space: reducedOffload, gBelowPp: true },
  { name: '1x4, global batch 2, activation offload (G = 1 < pp)', cluster: '1x4-l4', usableBytes: 1.8e6, globalBatch: 2, space: activationOffloadOnly, gBelowPp: true },
  { name: '2x2, global batch 2, offload 1/2 grid (G = 1 < pp)', cluster: '2x2-l4', usableBytes: 1.2e6, globalBatch: 2, space: reducedOffload, gBelowPp: true },
  { name: '2x2, global batch 1, activation offload (G = 1 < pp)', cluster: '2x2-l4', usableBytes: 1.2e6, globalBatch: 1, space: activationOffloadOnly, gBelowPp: true },
  // Measured-style profiles: stage times depend on pp (frontiers per pipeline depth).
  { name: '1x4, measured-style profile, global batch 1 (G = 1 < pp)', cluster: '1x4-l4', usableBytes: 2e6, globalBatch: 1, space: activationOffloadOnly, allBusy: true, gBelowPp: true },
  { name: '1x4, measured-style profile, global batch 2, offload 1/2 grid (G = 1 < pp)', cluster: '1x4-l4', usableBytes: 1.2e6, globalBatch: 2, space: reducedOffload, allBusy: true, gBelowPp: true },
  { name: '1x4, measured-style profile, global batch 4 (G = 2 < pp = 3)', cluster: '1x4-l4', usableBytes: 2e6, globalBatch: 4, space: activationOffloadOnly, allBusy: true, gBelowPp: true },
  { name: '2x2, measured-style profile, global batch 2 (G = 2 < pp = 4)', cluster: '2x2-l4', usableBytes: 1.5e6, globalBatch: 2, space: activationOffloadOnly, allBusy: true, gBelowPp: true },
  { name: '1x4, measured-style profile, global batch 16', cluster: '1x4-l4', usableBytes: 2.5e6, globalBatch: 16, space: activationOffloadOnly, allBusy: true },
  // Context parallelism (seq 64: cp 1, 2 or 4 on four devices).
  { name: '1x4, context parallelism, measured-style profile, global batch 1, offload 1/2 grid', cluster: '1x4-l4', usableBytes: 8e5, globalBatch: 1, space: withCp, allBusy: true, usesCp: true },
  { name: '1x4, a cp stage inside a pipeline, measured-style profile, no offload', cluster: '1x4-l4', usableBytes: 1.5e6, globalBatch: 1, space: withCpNoOffload, allBusy: true, usesCp: true },
  { name: '2x2, context parallelism, measured-style profile, global batch 2, offload 1/2 grid', cluster: '2x2-l4', usableBytes: 1e6, globalBatch: 2, space: withCp, allBusy: true, usesCp: true },
  { name: '2x2, context parallelism offered, analytic profile, offload 1/2 grid', cluster: '2x2-l4', usableBytes: 2e6, globalBatch: 2, space: withCp },
  // Selective recompute of the attention core (no flash attention): per stage, beside ckptLayers.
  { name: '1x4, no flash attention, no offload, tight memory (selective recompute and a checkpointed layer in one stage)', cluster: '1x4-l4', usableBytes: 1.2e6, globalBatch: 8, space: noOffload, noFlash: true, usesSelective: true },
  { name: '1x4, no flash attention, no offload (selective recompute in one of two stages)', cluster: '1x4-l4', usableBytes: 2.5e6, globalBatch: 8, space: noOffload, noFlash: true, usesSelective: true },
  { name: '2x2, no flash attention, no offload, tight memory', cluster: '2x2-l4', usableBytes: 1.2e6, globalBatch: 16, space: noOffload, noFlash: true, usesSelective: true },
  { name: '1x4, no flash attention, offload 1/2 grid', cluster: '1x4-l4', usableBytes: 2e6, globalBatch: 8, space: reducedOffload, noFlash: true },
  { name: '2x2, no flash attention, ZeRO-0 + activation offload', cluster: '2x2-l4', usableBytes: 2e6, globalBatch: 16, space: activationOffloadOnly, noFlash: true },
];

describe('tuner optimality against brute force (gpt-tiny)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const tiny = tinyContext(c.cluster, c.usableBytes, c.globalBatch, 64, c.hostBytes);
      const plain = c.noFlash ? { ...tiny, training: { ...tiny.training, flashAttention: false } } : tiny;
      const ctx = c.allBusy ? withAllBusy(plain) : plain;
      const res = await tune(ctx, { space: c.space });
      const ref = bruteForce(ctx, c.space);
      expect(ref).not.toBeNull();
      if (c.gBelowPp) expect(ref!.plan.gradAccumSteps).toBeLessThan(ref!.plan.stages.length);
      if (c.usesCp) expect(ref!.plan.stages.some((s) => (s.cp ?? 1) > 1)).toBe(true);
      if (c.usesSelective) {
        expect(ref!.plan.stages.some((s) => s.selectiveRecompute === true)).toBe(true);
        // And it pays: the space without it has a slower optimum.
        expect(bruteForce(ctx, { ...c.space, selectiveRecompute: false })!.iterationTimeS).toBeGreaterThan(ref!.iterationTimeS);
      }
      if (c.hostBytes !== undefined) {
        // The host limit is active: the optimum without it overflows the host.
        const unlimited = bruteForce(tinyContext(c.cluster, c.usableBytes, c.globalBatch), c.space);
        const est = estimatePlan(unlimited!.plan, ctx);
        expect(est.allFit).toBe(false);
        expect(est.stages.some((s) => s.deviceFits && !s.hostFits)).toBe(true);
        expect(ref!.iterationTimeS).toBeGreaterThan(unlimited!.iterationTimeS);
      }
      expect(res.plan).not.toBeNull();
      const tuned = res.predicted!.iterationTimeS;
      expect(Math.abs(tuned - ref!.iterationTimeS)).toBeLessThanOrEqual(1e-12 * ref!.iterationTimeS);
      // The plan is valid, fits, and the solver's objective is the analyzer's estimate.
      parsePlan(res.plan, { model: ctx.model, cluster: ctx.profile.cluster });
      expect(res.predicted!.allFit).toBe(true);
      expect(Math.abs(res.objectiveS! - tuned)).toBeLessThanOrEqual(1e-12 * tuned);
      // And brute force's plan is what the analyzer says it is.
      expect(estimatePlan(ref!.plan, ctx).iterationTimeS).toBeCloseTo(ref!.iterationTimeS, 12);
    });
  }

  it('pipelined and mixed-mesh optima are among the instances (the test exercises the inter-stage step)', async () => {
    const ctx = tinyContext('2x2-l4', 3e6, 32);
    const res = await tune(ctx, { space: activationOffloadOnly });
    expect(res.plan!.stages.length).toBeGreaterThan(1);
  });

  it('the MILP solver gives the same plan time as the DP when G < pp, with frontiers per pipeline depth', async () => {
    const ctx = withAllBusy(tinyContext('2x2-l4', 1.5e6, 2));
    const dp = await tune(ctx, { space: activationOffloadOnly });
    const milp = await tune(ctx, { space: { ...activationOffloadOnly, solver: 'milp' } });
    expect(dp.plan!.stages.length).toBeGreaterThan(dp.plan!.gradAccumSteps);
    expect(Math.abs(milp.predicted!.iterationTimeS - dp.predicted!.iterationTimeS)).toBeLessThanOrEqual(1e-12 * dp.predicted!.iterationTimeS);
    expect(Math.abs(milp.objectiveS! - milp.predicted!.iterationTimeS)).toBeLessThanOrEqual(1e-12 * milp.predicted!.iterationTimeS);
  });

  it('the MILP solver gives the same plan time as the DP', async () => {
    const ctx = tinyContext('2x2-l4', 2.2e6, 16);
    const dp = await tune(ctx, { space: activationOffloadOnly });
    const milp = await tune(ctx, { space: { ...activationOffloadOnly, solver: 'milp' } });
    expect(milp.predicted!.iterationTimeS).toBeCloseTo(dp.predicted!.iterationTimeS, 12);
  });
});
