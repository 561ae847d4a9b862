// The tuner against brute force on small instances: same analyzer, same (reduced) grid, every plan.
import { estimatePlan } from '@mist/analyzer';
import { parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { bruteForce } from './brute-force';
import { mistSpace, NO_OFFLOAD_LEVELS, type SearchSpace, uniformOffloadLevels } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

interface Case {
  name: string;
  cluster: string;
  usableBytes: number;
  globalBatch: number;
  space: SearchSpace;
  /** Host memory per GPU for offloaded tensors (default: the catalog's, which never binds here). */
  hostBytes?: number;
}

const reducedOffload = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity });
const activationOffloadOnly = mistSpace({ zero: [0], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity });

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
];

describe('tuner optimality against brute force (gpt-tiny)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const ctx = tinyContext(c.cluster, c.usableBytes, c.globalBatch, 64, c.hostBytes);
      const res = await tune(ctx, { space: c.space });
      const ref = bruteForce(ctx, c.space);
      expect(ref).not.toBeNull();
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
      expect(res.objectiveS).toBeCloseTo(tuned, 12);
      // And brute force's plan is what the analyzer says it is.
      expect(estimatePlan(ref!.plan, ctx).iterationTimeS).toBeCloseTo(ref!.iterationTimeS, 12);
    });
  }

  it('pipelined and mixed-mesh optima are among the instances (the test exercises the inter-stage step)', async () => {
    const ctx = tinyContext('2x2-l4', 3e6, 32);
    const res = await tune(ctx, { space: activationOffloadOnly });
    expect(res.plan!.stages.length).toBeGreaterThan(1);
  });

  it('the MILP solver gives the same plan time as the DP', async () => {
    const ctx = tinyContext('2x2-l4', 2.2e6, 16);
    const dp = await tune(ctx, { space: activationOffloadOnly });
    const milp = await tune(ctx, { space: { ...activationOffloadOnly, solver: 'milp' } });
    expect(milp.predicted!.iterationTimeS).toBeCloseTo(dp.predicted!.iterationTimeS, 12);
  });
});
