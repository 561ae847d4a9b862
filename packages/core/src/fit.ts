// The least-squares line the profiler fits to its measurements and the analyzer fits to a
// profile's tables: one function, so the error the profiler reports is the analyzer's.

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
