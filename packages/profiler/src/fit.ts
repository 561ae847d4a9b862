// Least-squares fits of the profile's tables and the report of how well each fit reproduces the
// points it came from (relative error |fit - measured| / measured at every point).
//
// - Lines `seconds = c0 + c1 * x` for the matmul (x = FLOPs) and element-wise (x = elements)
//   tables use least squares on relative residuals (weights 1/y^2), the same estimator the analyzer
//   applies to those tables (core's fitLineRelative, also used by packages/analyzer/src/hardware-cost.ts), so the
//   reported error is the analyzer's. The tables span decades; ordinary least squares let the
//   largest shapes set the line and missed the small ones by several hundred percent.
// - Alpha-beta models of collectives and copies are fitted to relative residuals (weights 1/y^2):
//   their sizes span decades, and an unweighted fit would let the largest transfer decide alpha.
import { type CollectiveKind, type FitReport, fitLine, fitLineRelative } from '@mist/core';
import { median } from './timing';

export interface XY {
  x: number;
  y: number;
}

/** Relative errors |predict(x) - y| / y of a model at the points. */
export function relativeErrors(points: readonly XY[], predict: (x: number) => number): number[] {
  return points.map((p) => Math.abs(predict(p.x) - p.y) / p.y);
}

export function fitReport(model: string, c0: number, c1: number, points: readonly XY[]): FitReport {
  const errors = relativeErrors(points, (x) => c0 + c1 * x);
  return {
    model, c0, c1, points: points.length,
    maxRelError: errors.length ? Math.max(...errors) : 0,
    medianRelError: errors.length ? median(errors) : 0,
  };
}

export { fitLine };

export { fitLineRelative };

/** A point of a two-term model y = a * u + b * v (no intercept). */
export interface UVY {
  u: number;
  v: number;
  y: number;
}

/**
 * Non-negative least squares of y = a u + b v with weights 1/y^2 (relative residuals). Solves the
 * 2x2 normal equations; when a coefficient comes out negative, the best fit with it at 0 is taken.
 */
export function fitTwoTermsRelative(points: readonly UVY[]): { a: number; b: number } {
  if (points.length === 0) throw new RangeError('fit of no points');
  let suu = 0, suv = 0, svv = 0, suy = 0, svy = 0;
  for (const p of points) {
    const w = 1 / (p.y * p.y);
    suu += w * p.u * p.u;
    suv += w * p.u * p.v;
    svv += w * p.v * p.v;
    suy += w * p.u * p.y;
    svy += w * p.v * p.y;
  }
  const det = suu * svv - suv * suv;
  if (det > 0) {
    const a = (suy * svv - svy * suv) / det;
    const b = (svy * suu - suy * suv) / det;
    if (a >= 0 && b >= 0) return { a, b };
  }
  // One term only: the better of a-only and b-only (each clamped at 0).
  const aOnly = { a: suu > 0 ? Math.max(0, suy / suu) : 0, b: 0 };
  const bOnly = { a: 0, b: svv > 0 ? Math.max(0, svy / svv) : 0 };
  const cost = (f: { a: number; b: number }): number =>
    points.reduce((s, p) => s + ((f.a * p.u + f.b * p.v - p.y) / p.y) ** 2, 0);
  return cost(aOnly) <= cost(bOnly) ? aOnly : bOnly;
}

/**
 * The analyzer's ring model of a collective over `ranks` ranks of a `bytes` tensor as
 * seconds = alpha * u + beta * v (Thakur et al. 2005; analyzer CostModel.collective):
 *   all-reduce u = 2(n-1), v = 2(n-1)/n * bytes; all-gather, reduce-scatter u = n-1,
 *   v = (n-1)/n * bytes; send/recv u = 1, v = bytes.
 */
export function collectiveTerms(kind: CollectiveKind, ranks: number, bytes: number): { u: number; v: number } {
  if (kind === 'sendRecv') return { u: 1, v: bytes };
  const steps = kind === 'allReduce' ? 2 : 1;
  return { u: steps * (ranks - 1), v: (steps * (ranks - 1) * bytes) / ranks };
}

export interface AlphaBetaFit {
  alpha: number;
  beta: number;
  report: FitReport;
}

/** Alpha-beta fit of one collective's measurements (any mix of rank counts) and its error. */
export function fitCollective(kind: CollectiveKind, points: readonly { ranks: number; bytes: number; seconds: number }[]): AlphaBetaFit {
  const uvy = points.map((p) => ({ ...collectiveTerms(kind, p.ranks, p.bytes), y: p.seconds }));
  const { a: alpha, b: beta } = fitTwoTermsRelative(uvy);
  const errors = uvy.map((p) => Math.abs(alpha * p.u + beta * p.v - p.y) / p.y);
  return {
    alpha, beta,
    report: {
      model: `${kind}: seconds = alpha * u + beta * v (ring terms u, v of ranks and bytes); c0 = alpha, c1 = beta`,
      c0: alpha, c1: beta, points: points.length,
      maxRelError: Math.max(...errors), medianRelError: median(errors),
    },
  };
}

/** Alpha-beta fit seconds = alpha + beta * bytes of transfers (copies), relative residuals. */
export function fitTransfer(model: string, points: readonly { bytes: number; seconds: number }[]): AlphaBetaFit {
  const { a: alpha, b: beta } = fitTwoTermsRelative(points.map((p) => ({ u: 1, v: p.bytes, y: p.seconds })));
  return { alpha, beta, report: fitReport(model, alpha, beta, points.map((p) => ({ x: p.bytes, y: p.seconds }))) };
}
