import { describe, expect, it } from 'vitest';
import { collectiveTerms, fitCollective, fitLine, fitLineRelative, fitReport, fitTransfer, fitTwoTermsRelative } from './fit';
import { groupSize, median, timeSync } from './timing';

describe('fits reproduce synthetic points exactly', () => {
  it('line seconds = c0 + c1 x (the analyzer\'s least squares)', () => {
    const pts = [1e3, 1e5, 1e7, 1e9].map((x) => ({ x, y: 2e-5 + x * 3e-12 }));
    const l = fitLine(pts)!;
    expect(l.c0).toBeCloseTo(2e-5, 15);
    expect(l.c1 / 3e-12).toBeCloseTo(1, 12);
    const r = fitReport('m', l.c0, l.c1, pts);
    expect(r.points).toBe(4);
    expect(r.maxRelError).toBeLessThan(1e-9);
    expect(fitLine([{ x: 1, y: 1 }])).toBeUndefined();
    expect(fitLine([{ x: 1, y: 1 }, { x: 1, y: 2 }])).toBeUndefined();
  });

  it('line with relative residuals: exact on a line, and the small points are not sacrificed to the large', () => {
    const pts = [1e3, 1e5, 1e7, 1e9].map((x) => ({ x, y: 2e-5 + x * 3e-12 }));
    const l = fitLineRelative(pts)!;
    expect(l.c0 / 2e-5).toBeCloseTo(1, 9);
    expect(l.c1 / 3e-12).toBeCloseTo(1, 9);
    expect(fitLineRelative([{ x: 1, y: 1 }])).toBeUndefined();
    expect(fitLineRelative([{ x: 1, y: 1 }, { x: 1, y: 2 }])).toBeUndefined();
    expect(fitLineRelative([{ x: 1, y: 0 }, { x: 2, y: 2 }])).toBeUndefined();
    // Small shapes 10 us, large ones on a steeper slope: ordinary least squares misses the small
    // ones by far more than the relative fit does.
    const bent = [{ x: 1e3, y: 1e-5 }, { x: 1e4, y: 1.1e-5 }, { x: 1e8, y: 1e-3 }, { x: 1e9, y: 1.2e-2 }];
    const worst = (f: { c0: number; c1: number }): number => Math.max(...bent.map((p) => Math.abs(f.c0 + f.c1 * p.x - p.y) / p.y));
    expect(worst(fitLineRelative(bent)!)).toBeLessThan(worst(fitLine(bent)!) / 5);
  });

  it('two terms with relative weights, and the non-negative fallback', () => {
    const pts = [[1, 4096], [1, 65536], [1, 1 << 24]].map(([u, v]) => ({ u, v, y: 5e-5 * u + 1e-10 * v }));
    const f = fitTwoTermsRelative(pts);
    expect(f.a / 5e-5).toBeCloseTo(1, 9);
    expect(f.b / 1e-10).toBeCloseTo(1, 9);
    // A line through the origin with a falling intercept: alpha would be negative, so it is 0.
    const neg = fitTwoTermsRelative([{ u: 1, v: 10, y: 0.5 }, { u: 1, v: 100, y: 9.5 }]);
    expect(neg.a).toBe(0);
    expect(neg.b).toBeGreaterThan(0);
  });

  it('alpha-beta of each collective from 2- and 4-rank points (ring formula of the analyzer)', () => {
    const alpha = 3e-5, beta = 2e-10;
    for (const kind of ['allReduce', 'allGather', 'reduceScatter', 'sendRecv'] as const) {
      const pts = [2, 4].flatMap((ranks) => [4096, 1 << 20, 1 << 26].map((bytes) => {
        const { u, v } = collectiveTerms(kind, ranks, bytes);
        return { ranks, bytes, seconds: alpha * u + beta * v };
      }));
      const f = fitCollective(kind, pts);
      expect(f.alpha / alpha).toBeCloseTo(1, 9);
      expect(f.beta / beta).toBeCloseTo(1, 9);
      expect(f.report.maxRelError).toBeLessThan(1e-9);
    }
    expect(collectiveTerms('allReduce', 4, 400)).toEqual({ u: 6, v: 600 });
    expect(collectiveTerms('allGather', 4, 400)).toEqual({ u: 3, v: 300 });
  });

  it('transfer seconds = alpha + beta * bytes', () => {
    const pts = [4096, 1 << 20, 1 << 26].map((bytes) => ({ bytes, seconds: 1e-6 + bytes / 10e9 }));
    const f = fitTransfer('copy', pts);
    expect(f.alpha / 1e-6).toBeCloseTo(1, 9);
    expect(1 / f.beta / 10e9).toBeCloseTo(1, 9);
    expect(f.report.maxRelError).toBeLessThan(1e-9);
  });
});

describe('timing', () => {
  it('median, group size and warm-up + repeats', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(() => median([])).toThrow(/no values/);
    expect(groupSize(1e-6, 1e-3)).toBe(1000);
    expect(groupSize(1, 1e-3)).toBe(1);
    let calls = 0;
    const t = timeSync((g) => { calls += g; }, { warmup: 2, repeats: 5, group: 3 });
    expect(calls).toBe(21);
    expect(t.samples).toHaveLength(5);
    expect(t.median).toBeGreaterThanOrEqual(0);
  });
});
