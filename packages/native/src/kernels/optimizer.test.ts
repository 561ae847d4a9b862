import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { f32, randomArray, relError } from './testing/gradcheck';
import { adamwRef } from './testing/reference';

describe('AdamW', () => {
  it('three steps with decoupled weight decay and a clipping scale match the reference', () => {
    const n = 40000; // several tasks of the pool
    const p0 = randomArray(n, 1), st = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
    const param = f32(p0), m = new Float32Array(n), v = new Float32Array(n);
    for (let step = 1; step <= 3; step++) {
      const g = randomArray(n, 10 + step);
      kernels.adamw({ param, grad: f32(g), m, v, step, lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradScale: 0.5 });
      adamwRef(st, g, step, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5);
    }
    expect(relError(param, st.p)).toBeLessThan(1e-5);
    expect(relError(m, st.m)).toBeLessThan(1e-5);
    expect(relError(v, st.v)).toBeLessThan(1e-5);
  });

  it('weight decay alone shrinks parameters by lr * wd (zero gradient)', () => {
    const param = Float32Array.from([2, -4]);
    kernels.adamw({ param, grad: new Float32Array(2), m: new Float32Array(2), v: new Float32Array(2), step: 1, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 });
    expect(param[0]).toBeCloseTo(2 * (1 - 0.05), 6);
    expect(param[1]).toBeCloseTo(-4 * (1 - 0.05), 6);
  });

  it('sum of squares for the global gradient norm', () => {
    const x = randomArray(10007, 3);
    const out = new Float32Array(1);
    kernels.sumSquares(out, f32(x));
    const ref = x.reduce((s, v) => s + Math.fround(v) ** 2, 0);
    expect(Math.abs(out[0] - ref) / ref).toBeLessThan(1e-6);
  });
});
