import { describe, expect, it } from 'vitest';
import { ParetoSet3, paretoFrontier2D, sampleFrontier } from './pareto';
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
      const picked = sampleFrontier(s, im, k);
      expect(picked.length).toBe(Math.min(k, n));
      expect(new Set(picked).size).toBe(picked.length);
      for (let j = 1; j < picked.length; j++) expect(picked[j]).toBeGreaterThan(picked[j - 1]);
      expect(picked[0]).toBe(0);
      if (k > 1) expect(picked[picked.length - 1]).toBe(n - 1);
    }
  });

  it('ParetoSet3 keeps the (steady, imbalance, maxInFlight) non-dominated set and answers per in-flight frontiers', () => {
    const set = new ParetoSet3();
    expect(set.insert(5, 5, 2, 0)).toBe(true);
    expect(set.insert(6, 6, 2, 1)).toBe(false); // dominated
    expect(set.insert(6, 6, 4, 2)).toBe(true); // fits with more in flight
    expect(set.insert(4, 7, 1, 3)).toBe(true);
    expect(set.insert(4, 4, 4, 4)).toBe(true); // dominates all
    expect(set.size).toBe(1);
    const rnd = mulberry32(5);
    const s2 = new ParetoSet3();
    const pts: number[][] = [];
    for (let i = 0; i < 300; i++) {
      const p = [Math.round(rnd() * 20), Math.round(rnd() * 20), 1 + Math.floor(rnd() * 4)];
      pts.push(p);
      s2.insert(p[0], p[1], p[2], i);
    }
    for (const f of [1, 2, 3, 4]) {
      const fr = s2.frontierAt(f);
      const ok = pts.filter((p) => p[2] >= f);
      const best = Math.min(...ok.map((p) => p[1]));
      expect(s2.imbalance[fr[fr.length - 1]]).toBe(best);
      expect(s2.steady[fr[0]]).toBe(Math.min(...ok.map((p) => p[0])));
    }
  });
});
