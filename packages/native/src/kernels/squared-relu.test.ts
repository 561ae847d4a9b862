import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { squaredReluRef } from './testing/reference';

describe('squared ReLU kernels (Primer, So et al. 2021)', () => {
  it('forward is relu(x)^2 and backward matches finite differences of a weighted sum', () => {
    // Away from 0 (the kink), where the finite difference is exact up to rounding.
    const x = randomArray(300, 11, 4).map((v) => (Math.abs(v) < 0.05 ? v + Math.sign(v || 1) * 0.1 : v));
    const w = randomArray(300, 12);
    const y = new Float32Array(300);
    kernels.squaredRelu(y, f32(x));
    expect(relError(y, squaredReluRef(x))).toBeLessThan(1e-6);
    expect([...y].every((v) => v >= 0)).toBe(true);
    const dx = new Float32Array(300);
    kernels.squaredReluBackward(dx, f32(w), f32(x));
    expect(relError(dx, finiteDiff(() => dotF64(w, squaredReluRef(x)), x))).toBeLessThan(1e-3);
    // negative inputs get no gradient
    x.forEach((v, i) => { if (v < 0) expect(Math.abs(dx[i])).toBe(0); });
  });

  it('runs in place (y = x, dx = dy) and refuses a short buffer by name', () => {
    const x = f32(randomArray(64, 13, 2));
    const want = squaredReluRef(Float64Array.from(x));
    kernels.squaredRelu(x, x);
    expect(relError(x, want)).toBeLessThan(1e-6);
    expect(() => kernels.squaredRelu(new Float32Array(4), new Float32Array(3), 4)).toThrow(/squaredRelu.*x/);
  });
});
