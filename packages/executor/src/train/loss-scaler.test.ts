import { describe, expect, it } from 'vitest';
import { LossScaler } from './loss-scaler';

describe('LossScaler', () => {
  it('halves on an overflow, doubles after the growth interval of clean steps', () => {
    const s = new LossScaler({ initialScale: 1024, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3 });
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(1024);
    s.update(false);
    expect(s.scale).toBe(512);
    expect(s.skipped).toBe(1);
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(512); // the count restarted at the overflow
    s.update(true);
    expect(s.scale).toBe(1024);
  });
});
