import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { biasAddRef, geluRef, swigluRef } from './testing/reference';

describe('element-wise kernels', () => {
  it('add, accumulate, copy, scale and fill', () => {
    const a = randomArray(50, 1), b = randomArray(50, 2);
    const out = new Float32Array(50);
    kernels.add(out, f32(a), f32(b));
    expect(relError(out, a.map((v, i) => v + b[i]))).toBeLessThan(1e-7);
    kernels.accumulate(out, f32(b), -2);
    expect(relError(out, a.map((v, i) => v - b[i]))).toBeLessThan(1e-6);
    const c = new Float32Array(50);
    kernels.copy(c, out);
    kernels.scale(c, 3);
    expect(relError(c, a.map((v, i) => 3 * (v - b[i])))).toBeLessThan(1e-6);
    kernels.fill(c, 0.25);
    expect([...c].every((v) => v === 0.25)).toBe(true);
  });

  it('bias add forward and its gradient (sum over rows) against finite differences', () => {
    const rows = 7, cols = 130; // more than one 64-column block
    const x = randomArray(rows * cols, 3), bias = randomArray(cols, 4), w = randomArray(rows * cols, 5);
    const y = f32(x);
    kernels.biasAdd(y, f32(bias), rows, cols);
    expect(relError(y, biasAddRef(x, bias, rows, cols))).toBeLessThan(1e-7);
    const db = new Float32Array(cols);
    kernels.biasGrad(db, f32(w), rows, cols);
    expect(relError(db, finiteDiff(() => dotF64(w, biasAddRef(x, bias, rows, cols)), bias))).toBeLessThan(1e-3);
  });

  it('GELU (tanh form) forward and backward', () => {
    const x = randomArray(200, 6, 4), w = randomArray(200, 7);
    const y = new Float32Array(200);
    kernels.gelu(y, f32(x));
    expect(relError(y, geluRef(x))).toBeLessThan(1e-6);
    const dx = new Float32Array(200);
    kernels.geluBackward(dx, f32(w), f32(x));
    expect(relError(dx, finiteDiff(() => dotF64(w, geluRef(x)), x))).toBeLessThan(1e-3);
  });

  it('SwiGLU forward and backward', () => {
    const g = randomArray(120, 8, 4), u = randomArray(120, 9, 2), w = randomArray(120, 10);
    const y = new Float32Array(120);
    kernels.swiglu(y, f32(g), f32(u));
    expect(relError(y, swigluRef(g, u))).toBeLessThan(1e-6);
    const dg = new Float32Array(120), du = new Float32Array(120);
    kernels.swigluBackward(dg, du, f32(w), f32(g), f32(u));
    const loss = (): number => dotF64(w, swigluRef(g, u));
    expect(relError(dg, finiteDiff(loss, g))).toBeLessThan(1e-3);
    expect(relError(du, finiteDiff(loss, u))).toBeLessThan(1e-3);
  });
});
