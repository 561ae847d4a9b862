import { describe, expect, it } from 'vitest';
import { paretoFrontier2D, paretoFrontier3D, sampleFrontier, StagePareto } from './pareto';
import { mulberry32 } from './test/random-instance';

describe('Pareto frontiers', () => {
  it('keeps exactly the non-dominated points, steady ascending and imbalance descending', () => {
    const rnd = mulberry32(3);
    const n = 400;
    const s = Float64Array.from({ length: n }, () => Math.round(rnd() * 50));
    const im = Float64Array.from({ length: n }, () => Math.round(rnd() * 50));
    const f = paretoFrontier2D(s, im, Int32Array.from({ length: n }, (_, i) => i));
    for (let k = 1; k < f.length; k++) {
      expect(s[f[k]]).toBeGreaterThan(s[f[k - 1]]);
      expect(im[f[k]]).toBeLessThan(im[f[k - 1]]);
    }
    const kept = new Set(f);
    for (let i = 0; i < n; i++) {
      const dominated = [...Array(n).keys()].some((j) => s[j] <= s[i] && im[j] <= im[i] && (s[j] < s[i] || im[j] < im[i]));
      if (!dominated) expect(f.some((k) => s[k] === s[i] && im[k] === im[i])).toBe(true);
      if (kept.has(i)) expect(dominated).toBe(false);
    }
  });

  it('samples at most K distinct points and keeps both ends', () => {
    const n = 100;
    const s = Float64Array.from({ length: n }, (_, i) => i * i);
    const im = Float64Array.from({ length: n }, (_, i) => 1000 - i);
    for (const k of [1, 2, 5, 30, 99, 100, 200]) {
      const picked = sampleFrontier(s, [im], k);
      expect(picked.length).toBe(Math.min(k, n));
      expect(new Set(picked).size).toBe(picked.length);
      for (let j = 1; j < picked.length; j++) expect(picked[j]).toBeGreaterThan(picked[j - 1]);
      expect(picked[0]).toBe(0);
      if (k > 1) expect(picked[picked.length - 1]).toBe(n - 1);
    }
  });

  it('paretoFrontier3D keeps exactly the points non-dominated in (steady, first, first + last), steady ascending', () => {
    const rnd = mulberry32(11);
    const n = 300;
    const s = Float64Array.from({ length: n }, () => Math.round(rnd() * 20));
    const f = Float64Array.from({ length: n }, () => Math.round(rnd() * 20));
    const l = Float64Array.from({ length: n }, () => Math.round(rnd() * 20));
    const fr = paretoFrontier3D(s, f, l, Int32Array.from({ length: n }, (_, i) => i));
    for (let k = 1; k < fr.length; k++) expect(s[fr[k]]).toBeGreaterThanOrEqual(s[fr[k - 1]]);
    const dominatedBy = (i: number, j: number): boolean =>
      s[j] <= s[i] && f[j] <= f[i] && f[j] + l[j] <= f[i] + l[i] && (s[j] < s[i] || f[j] < f[i] || f[j] + l[j] < f[i] + l[i]);
    const key = (i: number): string => `${s[i]}/${f[i]}/${f[i] + l[i]}`;
    const keptKeys = new Set(Array.from(fr, key));
    expect(keptKeys.size).toBe(fr.length); // one point per distinct triple
    for (let i = 0; i < n; i++) {
      const dominated = [...Array(n).keys()].some((j) => dominatedBy(i, j));
      expect(keptKeys.has(key(i))).toBe(!dominated);
    }
  });

  it('StagePareto keeps the (steady, first, first + last, maxInFlight) non-dominated set and answers per in-flight frontiers', () => {
    const set = new StagePareto();
    expect(set.insert(5, 5, 1, 2, 0)).toBe(true);
    expect(set.insert(6, 6, 1, 2, 1)).toBe(false); // dominated
    // A shorter last that does not pay for its longer first: never better in a plan.
    expect(set.insert(6, 6, 0.5, 2, 2)).toBe(false);
    expect(set.insert(6, 5.25, 0.5, 2, 2)).toBe(true); // first + last 5.75 < 6: better where its last is the plan's largest
    expect(set.insert(6, 6, 1, 4, 3)).toBe(true); // fits with more in flight
    expect(set.insert(4, 4, 0.5, 4, 4)).toBe(true); // dominates all
    expect(set.size).toBe(1);
    const rnd = mulberry32(5);
    const s2 = new StagePareto();
    const pts: number[][] = [];
    for (let i = 0; i < 300; i++) {
      const p = [Math.round(rnd() * 20), Math.round(rnd() * 20), Math.round(rnd() * 5), 1 + Math.floor(rnd() * 4)];
      pts.push(p);
      s2.insert(p[0], p[1], p[2], p[3], i);
    }
    for (const f of [1, 2, 3, 4]) {
      const fr = s2.frontierAt(f);
      const ok = pts.filter((p) => p[3] >= f);
      expect(s2.steady[fr[0]]).toBe(Math.min(...ok.map((p) => p[0])));
      // Every fitting point is dominated by (or equal to) a frontier point.
      for (const p of ok) {
        expect(Array.from(fr).some((k) => s2.steady[k] <= p[0] && s2.first[k] <= p[1] && s2.first[k] + s2.last[k] <= p[1] + p[2])).toBe(true);
      }
    }
  });
});
