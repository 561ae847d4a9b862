// Checks of bounds against a brute-force plan: the bound of its G and the bounds of the stage groups
// its stages are must not be above its time, nor the groups' least bottleneck above its bottleneck.
import { type AnalyzerContext, estimatePlan } from '@mist/analyzer';
import { type Plan, parsePlan } from '@mist/core';
import { expect } from 'vitest';
import type { StageGroupSpec } from '../enumerate';

/** The index in `specs` of the group of stage i of `plan` (position, layers, mesh, depth), or -1. */
export function specOfStage(specs: readonly StageGroupSpec[], plan: Plan, i: number): number {
  const pp = plan.stages.length;
  const st = plan.stages[i];
  const position = pp === 1 ? 'only' : i === 0 ? 'first' : i === pp - 1 ? 'last' : 'middle';
  const layers = st.layers[1] - st.layers[0] + 1;
  return specs.findIndex((s) => s.position === position && s.layers === layers && s.mesh.nodes === st.mesh.nodes &&
    s.mesh.gpusPerNode === st.mesh.gpusPerNode && pp >= s.ppMin && pp <= s.ppMax);
}

interface BoundsOfG {
  lowerBoundS: number;
  specLowerBoundS: ArrayLike<number>;
  specBottleneckS: ArrayLike<number>;
}

/** Expects `b` (bounds of the plan's G over `specs`) to be below the plan (brute force's best at that G). */
export function expectBoundsBelowPlan(b: BoundsOfG, specs: readonly StageGroupSpec[], best: { plan: Plan; iterationTimeS: number }, ctx: AnalyzerContext): void {
  const tol = 1 + 1e-12;
  expect(b.lowerBoundS).toBeLessThanOrEqual(best.iterationTimeS * tol);
  const est = estimatePlan(parsePlan(best.plan, { model: ctx.model, cluster: ctx.profile.cluster }), ctx);
  const bottleneck = est.stages[est.bottleneckStage].steadyTimeS;
  best.plan.stages.forEach((_, i) => {
    const k = specOfStage(specs, best.plan, i);
    expect(k).toBeGreaterThanOrEqual(0);
    expect(b.specLowerBoundS[k]).toBeLessThanOrEqual(best.iterationTimeS * tol);
    // The least bottleneck of a plan using the group (the frontier cache's cover reads it).
    expect(b.specBottleneckS[k]).toBeLessThanOrEqual(bottleneck * tol);
  });
}
