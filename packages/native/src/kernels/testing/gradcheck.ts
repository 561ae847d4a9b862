// Test helpers: seeded random data, float32/float64 conversion, error measures and a central
// finite-difference gradient of a float64 function.
import type { F64 } from './reference';

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

export const f32 = (x: F64): Float32Array => Float32Array.from(x);
export const f64 = (x: Float32Array): Float64Array => Float64Array.from(x);

/** ||a - b|| / max(||b||, tiny): the relative error of a against the reference b. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Weighted sum sum_i w_i y_i: the scalar "loss" whose gradient with respect to y is w. */
export function dotF64(w: F64, y: F64): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i] * y[i];
  return s;
}

/** Central finite differences of the scalar f with respect to every element of x (float64). */
export function finiteDiff(f: () => number, x: F64, h = 1e-5): F64 {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = f();
    x[i] = keep - h;
    const down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
