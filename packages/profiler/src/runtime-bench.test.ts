import { describe, expect, it } from 'vitest';
import { idiosyncraticNoise } from './runtime-bench';

describe('idiosyncraticNoise', () => {
  it('is zero when every rank slows down at the same steps by the same amount', () => {
    const shared = [10, 12, 10, 15, 10];
    expect(idiosyncraticNoise([shared, shared.map((x) => x + 3)]).every((x) => Math.abs(x) < 1e-12)).toBe(true);
  });

  it('keeps what one rank did alone, relative to its usual distance from the others', () => {
    // rank 1 is 2 s slower than rank 0 every step (a slower device: no noise) and 4 s slower once
    const noise = idiosyncraticNoise([[10, 10, 10, 10, 10], [12, 12, 16, 12, 12]]);
    expect(noise).toHaveLength(10);
    // the spike of 4 s splits about the mean: +2 for rank 1, -2 for rank 0, at step 2 only
    expect(noise.slice(5)).toEqual([0, 0, 2, 0, 0]);
    expect(noise.slice(0, 5)).toEqual([0, 0, -2, 0, 0]);
  });
});
