// The least-squares line the profiler fits to its measurements and the analyzer fits to a
// profile's tables: one function, so the error the profiler reports is the analyzer's. And the
// quantile both use on measured samples.

/** Ordinary least-squares line y = c0 + c1 x; undefined with fewer than two distinct x. */
export function fitLine(points: readonly { x: number; y: number }[]): { c0: number; c1: number } | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  if (sxx === 0) return undefined;
  const c1 = sxy / sxx;
  return { c0: my - c1 * mx, c1 };
}

/**
 * Least-squares line y = c0 + c1 x with weights 1/y^2 (relative residuals); undefined with fewer
 * than two distinct x or a non-positive y. A profile's tables span decades (a 64^3 GEMM next to a
 * 1024^3 one, 16 Ki next to 4 Mi elements): unweighted least squares lets the largest points set
 * the line and leaves the small shapes a training step of a small model runs with errors of several
 * hundred percent; relative residuals weigh every point alike.
 */
export function fitLineRelative(points: readonly { x: number; y: number }[]): { c0: number; c1: number } | undefined {
  let sw = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    if (!(p.y > 0)) return undefined;
    const w = 1 / (p.y * p.y);
    sw += w;
    sx += w * p.x;
    sy += w * p.y;
    sxx += w * p.x * p.x;
    sxy += w * p.x * p.y;
  }
  const det = sw * sxx - sx * sx;
  if (points.length < 2 || !(det > 1e-12 * sw * sxx)) return undefined;
  const c1 = (sw * sxy - sx * sy) / det;
  return { c0: (sy - c1 * sx) / sw, c1 };
}

/**
 * The q-quantile (0 <= q <= 1) of `values`, interpolating linearly between the two nearest order
 * statistics (q = 0.5 is the median, the mean of the middle two for an even count).
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
