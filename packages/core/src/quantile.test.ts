import { describe, expect, it } from 'vitest';
import { quantile } from './fit';

describe('quantile', () => {
  it('is the median at 0.5, the mean of the middle two for an even count', () => {
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
  });

  it('interpolates linearly between order statistics, with the extremes at 0 and 1', () => {
    expect(quantile([0, 10, 20], 0.25)).toBe(5);
    expect(quantile([5, -1, 9], 0)).toBe(-1);
    expect(quantile([5, -1, 9], 1)).toBe(9);
  });

  it('leaves its input unsorted and names bad arguments', () => {
    const xs = [3, 1, 2];
    quantile(xs, 0.5);
    expect(xs).toEqual([3, 1, 2]);
    expect(() => quantile([], 0.5)).toThrow(/quantile of no values/);
    expect(() => quantile([1], 1.5)).toThrow(/q must be in \[0, 1\], got 1.5/);
  });
});
