import { describe, expect, it } from 'vitest';
import { kernels, setKernelThreads, kernelThreads } from './index';
import { dotF64, f32, f64, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { matmulRef } from './testing/reference';

const cases: Array<[number, number, number]> = [
  [5, 7, 3],
  [37, 45, 29],
  [130, 70, 300], // crosses the MC and KC blocks and leaves edge tiles
];

describe('matmul', () => {
  for (const [m, n, k] of cases) {
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      it(`forward ${m}x${n}x${k} transA=${ta} transB=${tb} matches the reference`, () => {
        const a = randomArray(m * k, 1), b = randomArray(k * n, 2);
        const c = new Float32Array(m * n);
        kernels.matmul({ c, a: f32(a), b: f32(b), m, n, k, transA: ta, transB: tb });
        expect(relError(c, matmulRef(a, b, m, n, k, ta, tb))).toBeLessThan(1e-5);
      });
    }
  }

  it('accumulates and scales by alpha', () => {
    const [m, n, k] = [33, 40, 50];
    const a = randomArray(m * k, 3), b = randomArray(k * n, 4), c0 = randomArray(m * n, 5);
    const c = f32(c0);
    kernels.matmul({ c, a: f32(a), b: f32(b), m, n, k, accumulate: true, alpha: 0.5 });
    const ref = matmulRef(a, b, m, n, k).map((v, i) => 0.5 * v + c0[i]);
    expect(relError(c, ref)).toBeLessThan(1e-5);
  });

  it('backward (dA = dC B^T, dB = A^T dC) matches central finite differences', () => {
    const [m, n, k] = [6, 5, 4];
    const a = randomArray(m * k, 6), b = randomArray(k * n, 7), w = randomArray(m * n, 8);
    const loss = (): number => dotF64(w, matmulRef(a, b, m, n, k));
    const da = new Float32Array(m * k), db = new Float32Array(k * n);
    kernels.matmul({ c: da, a: f32(w), b: f32(b), m, n: k, k: n, transB: true });
    kernels.matmul({ c: db, a: f32(a), b: f32(w), m: k, n, k: m, transA: true });
    expect(relError(da, finiteDiff(loss, a))).toBeLessThan(1e-3);
    expect(relError(db, finiteDiff(loss, b))).toBeLessThan(1e-3);
  });

  it('gives bit-identical results with 1 thread and with the whole pool', () => {
    const [m, n, k] = [300, 260, 530];
    const a = f32(randomArray(m * k, 9)), b = f32(randomArray(k * n, 10));
    const threads = kernelThreads();
    const c1 = new Float32Array(m * n), c2 = new Float32Array(m * n);
    try {
      setKernelThreads(1);
      kernels.matmul({ c: c1, a, b, m, n, k });
      setKernelThreads(Math.max(2, threads));
      kernels.matmul({ c: c2, a, b, m, n, k });
    } finally {
      setKernelThreads(threads);
    }
    expect(Buffer.from(c1.buffer).equals(Buffer.from(c2.buffer))).toBe(true);
    expect(f64(c1).some((v) => v !== 0)).toBe(true);
  });

  it('rejects buffers that are too short', () => {
    expect(() => kernels.matmul({ c: new Float32Array(3), a: new Float32Array(4), b: new Float32Array(4), m: 2, n: 2, k: 2 }))
      .toThrow(/buffer c holds 3 elements, needs 4/);
  });
});
