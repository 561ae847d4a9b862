import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { layerNormRef, rmsNormRef } from './testing/reference';

const rows = 5, cols = 24, eps = 1e-5;

describe('LayerNorm', () => {
  const x = randomArray(rows * cols, 1, 2).map((v, i) => v + (i % 3)); // non-zero means
  const gamma = randomArray(cols, 2).map((v) => 1 + 0.5 * v), beta = randomArray(cols, 3), w = randomArray(rows * cols, 4);

  it('forward matches the reference and saves mean and rstd', () => {
    const y = new Float32Array(rows * cols), mean = new Float32Array(rows), rstd = new Float32Array(rows);
    kernels.layerNorm(y, mean, rstd, f32(x), f32(gamma), f32(beta), rows, cols, eps);
    expect(relError(y, layerNormRef(x, gamma, beta, rows, cols, eps))).toBeLessThan(1e-5);
  });

  it('backward matches central finite differences for x, gamma and beta', () => {
    const y = new Float32Array(rows * cols), mean = new Float32Array(rows), rstd = new Float32Array(rows);
    kernels.layerNorm(y, mean, rstd, f32(x), f32(gamma), f32(beta), rows, cols, eps);
    const dx = new Float32Array(rows * cols), dg = new Float32Array(cols), db = new Float32Array(cols);
    kernels.layerNormBackward(dx, dg, db, f32(w), f32(x), f32(gamma), mean, rstd, rows, cols);
    const loss = (): number => dotF64(w, layerNormRef(x, gamma, beta, rows, cols, eps));
    expect(relError(dx, finiteDiff(loss, x))).toBeLessThan(1e-3);
    expect(relError(dg, finiteDiff(loss, gamma))).toBeLessThan(1e-3);
    expect(relError(db, finiteDiff(loss, beta))).toBeLessThan(1e-3);
    // accumulateDx adds onto what dx holds
    const dx2 = new Float32Array(rows * cols).fill(1);
    kernels.layerNormBackward(dx2, new Float32Array(cols), null, f32(w), f32(x), f32(gamma), mean, rstd, rows, cols, true);
    expect(relError(dx2, [...dx].map((v) => v + 1))).toBeLessThan(1e-6);
  });
});

describe('RMSNorm', () => {
  const x = randomArray(rows * cols, 5, 2), gamma = randomArray(cols, 6).map((v) => 1 + 0.5 * v), w = randomArray(rows * cols, 7);

  it('forward matches the reference', () => {
    const y = new Float32Array(rows * cols), rstd = new Float32Array(rows);
    kernels.rmsNorm(y, rstd, f32(x), f32(gamma), rows, cols, eps);
    expect(relError(y, rmsNormRef(x, gamma, rows, cols, eps))).toBeLessThan(1e-5);
  });

  it('backward matches central finite differences for x and gamma', () => {
    const y = new Float32Array(rows * cols), rstd = new Float32Array(rows);
    kernels.rmsNorm(y, rstd, f32(x), f32(gamma), rows, cols, eps);
    const dx = new Float32Array(rows * cols), dg = new Float32Array(cols);
    kernels.rmsNormBackward(dx, dg, f32(w), f32(x), f32(gamma), rstd, rows, cols);
    const loss = (): number => dotF64(w, rmsNormRef(x, gamma, rows, cols, eps));
    expect(relError(dx, finiteDiff(loss, x))).toBeLessThan(1e-3);
    expect(relError(dg, finiteDiff(loss, gamma))).toBeLessThan(1e-3);
  });
});
