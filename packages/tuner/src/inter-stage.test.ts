import { describe, expect, it } from 'vitest';
import { solveInterStageDp } from './inter-stage-dp';
import { evaluateSolution } from './inter-stage-instance';
import { solveInterStageMilp } from './inter-stage-milp';
import { exhaustiveOptimum, randomInstance } from './test/random-instance';

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

describe('inter-stage solvers', () => {
  it('the bottleneck DP finds the exhaustive optimum on 60 random instances (and with end-of-step times: the scan over the largest last)', () => {
    let feasible = 0;
    let capped = 0;
    for (let seed = 1; seed <= 60; seed++) {
      for (const opts of [{}, { uniformPartition: true, uniformMesh: true }, { perDepth: true }, { perDepth: true, uniformMesh: true },
        { withLast: true }, { withLast: true, perDepth: true }]) {
        const inst = randomInstance(seed, opts);
        const ref = exhaustiveOptimum(inst);
        const dp = solveInterStageDp(inst);
        if (ref === null) {
          expect(dp).toBeNull();
          continue;
        }
        feasible++;
        expect(dp, `seed ${seed}`).not.toBeNull();
        expect(close(dp!.iterationTimeS, ref), `seed ${seed}: dp ${dp!.iterationTimeS} vs ${ref}`).toBe(true);
        expect(close(evaluateSolution(inst, dp!.stages).iterationTimeS, dp!.iterationTimeS)).toBe(true);
        if (dp!.stages.length > inst.gradAccumSteps) capped++;
      }
    }
    expect(feasible).toBeGreaterThan(90);
    // Optima with G < pp, where in-flight counts are capped at G.
    expect(capped).toBeGreaterThanOrEqual(5);
  });

  it('with a cutoff the DP returns the exhaustive optimum when it is below the cutoff, and null when it is not', () => {
    let below = 0;
    for (let seed = 1; seed <= 60; seed++) {
      for (const opts of [{}, { perDepth: true }, { withLast: true }]) {
        const inst = randomInstance(seed, opts);
        const ref = exhaustiveOptimum(inst);
        if (ref === null) continue;
        const above = solveInterStageDp(inst, undefined, undefined, ref * (1 + 1e-6));
        expect(above, `seed ${seed}`).not.toBeNull();
        expect(close(above!.iterationTimeS, ref), `seed ${seed}: dp ${above!.iterationTimeS} vs ${ref}`).toBe(true);
        // A cutoff at (or just below) the optimum: no plan beats it.
        expect(solveInterStageDp(inst, undefined, undefined, ref * (1 - 1e-9))).toBeNull();
        below++;
      }
    }
    expect(below).toBeGreaterThan(30);
  });

  it('the HiGHS MILP and the DP agree on the optimum on at least 20 instances', async () => {
    let compared = 0;
    for (let seed = 100; seed < 140 && compared < 25; seed++) {
      const inst = randomInstance(seed, seed % 4 === 0 ? { uniformPartition: true, uniformMesh: true } : seed % 4 === 1 ? { perDepth: true }
        : seed % 4 === 2 ? { withLast: true } : { withLast: true, perDepth: true });
      const dp = solveInterStageDp(inst);
      const milp = await solveInterStageMilp(inst);
      expect(milp === null, `seed ${seed}`).toBe(dp === null);
      if (!dp || !milp) continue;
      compared++;
      expect(close(milp.iterationTimeS, dp.iterationTimeS), `seed ${seed}: milp ${milp.iterationTimeS} vs dp ${dp.iterationTimeS}`).toBe(true);
      expect(milp.stages.length).toBeGreaterThan(0);
    }
    expect(compared).toBeGreaterThanOrEqual(20);
  });
});
