// The CUDA element-wise ops (cuda/kernels/elementwise.cu) against the CPU kernels of the same name on
// the same inputs, in f32 and in the 16-bit storage dtypes, plus the CUDA-only cast against a
// JavaScript round-to-nearest-even. Skipped (with the reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { CudaTensor, cudaRun, cudaSynchronize } from '../tensor';
import { firstMismatch, randn, roundBf16, roundTo, uniforms } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;
// One element, a size that is not a multiple of the 256-thread block, and one above the launcher's
// grid cap (32 blocks of 256 per multiprocessor: 1.08M threads on 132) with a ragged tail, so the
// grid-stride loops go round more than once.
const SIZES = [1, 1000, (1 << 21) + 3];

// Outputs are computed in fp32 on both sides; bf16/f16 outputs are rounded once (relative error
// 2^-9 and 2^-11), the rest is the difference between the CPU's vectorised exp/tanh and CUDA's.
const TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 1e-6, rtol: 1e-5 },
  bf16: { atol: 1e-3, rtol: 1e-2 },
  f16: { atol: 1e-4, rtol: 2e-3 },
};

/** fp32 values that exercise every rounding path: ties, overflow, subnormals, signed zero, NaN, inf. */
function castInputs(): Float32Array {
  const special = [
    0, -0, 1, -1, 0.1, -2.5, 3.14159, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -12,
    65504, 65519, 65520, 65536, 70000, -1e5, 1e-5, 6e-8, 2.9e-8, 3e-8, 1e-9, 1e-40, -1e-39, 3.4e38, -3.39e38,
    Infinity, -Infinity, NaN,
  ];
  const u = uniforms(7);
  const random = randn(20000, 8).map((v) => v * 2 ** Math.floor(u() * 60 - 36));
  const out = new Float32Array(special.length + random.length);
  out.set(special);
  out.set(random, special.length);
  return out;
}

describeCuda('CUDA element-wise kernels', () => {
  const cases = DTYPES.flatMap((dtype) => SIZES.map((n) => [dtype, n] as const));

  it.each(cases)('add %s n=%i (and in place)', (dtype, n) => {
    const a = randn(n, 1), b = randn(n, 2), out = new Float32Array(n);
    // Only original inputs feed each call: a rounded bf16/f16 output fed into a cancelling sum would
    // differ from the CPU's fp32 intermediate by more than the tolerance.
    const r = compareWithCpu((ops: KernelOps) => {
      ops.add(out, a, b);
      ops.add(b, a, b); // out aliases an input
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('accumulate %s n=%i', (dtype, n) => {
    const dst = randn(n, 3), src = randn(n, 4), dst2 = randn(n, 21);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.accumulate(dst, src, 0.37);
      ops.accumulate(dst2, src); // alpha defaults to 1
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('copy, scale and fill %s n=%i', (dtype, n) => {
    const x = randn(n, 5), y = new Float32Array(n), z = randn(n, 6);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.copy(y, x);
      ops.scale(y, -1.7);
      ops.fill(z, 0.3);
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  // (rows, cols): single element, one row wider than a block, columns that are not a multiple of
  // the 32-column tile, and a tall matrix with more rows than the reduction has lanes.
  const biasShapes = [[1, 1], [1, 1000], [1000, 7], [4099, 257]] as const;
  const biasCases = DTYPES.flatMap((dtype) => biasShapes.map(([rows, cols]) => [dtype, rows, cols] as const));

  it.each(biasCases)('biasAdd %s rows=%i cols=%i', (dtype, rows, cols) => {
    const y = randn(rows * cols, 7), bias = randn(cols, 8);
    const r = compareWithCpu((ops: KernelOps) => ops.biasAdd(y, bias, rows, cols), { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(biasCases)('biasGrad %s rows=%i cols=%i (accumulates)', (dtype, rows, cols) => {
    const dy = randn(rows * cols, 9), dbias = randn(cols, 10);
    // Both sides sum `rows` fp32 terms in different orders: allow the rounding of those sums.
    const atol = TOL[dtype].atol + 2e-7 * rows;
    const r = compareWithCpu((ops: KernelOps) => ops.biasGrad(dbias, dy, rows, cols), { dtype, atol, rtol: TOL[dtype].rtol });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(DTYPES)('biasGrad %s gives the same bits on every run', (dtype) => {
    const rows = 3001, cols = 300;
    const dy = CudaTensor.from(randn(rows * cols, 11), dtype);
    const results: Float32Array[] = [];
    for (let k = 0; k < 3; k++) {
      const dbias = CudaTensor.from(new Float32Array(cols), dtype);
      cudaRun('biasGrad', [dbias, dy], [rows, cols], []);
      results.push(dbias.download() as Float32Array);
      dbias.free();
    }
    dy.free();
    expect(firstMismatch(results[1], results[0])).toBe(-1);
    expect(firstMismatch(results[2], results[0])).toBe(-1);
  });

  it.each(cases)('gelu and geluBackward %s n=%i', (dtype, n) => {
    const x = randn(n, 12, 3), y = new Float32Array(n), dy = randn(n, 13), dx = new Float32Array(n);
    const x2 = randn(n, 22, 3), dy2 = randn(n, 23);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.gelu(y, x);
      ops.geluBackward(dx, dy, x);
      ops.geluBackward(dy2, dy2, x2); // dx aliases dy
      ops.gelu(x2, x2); // y aliases x
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('squaredRelu and squaredReluBackward %s n=%i', (dtype, n) => {
    const x = randn(n, 14, 2), y = new Float32Array(n), dy = randn(n, 15), dx = new Float32Array(n);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.squaredRelu(y, x);
      ops.squaredReluBackward(dx, dy, x);
      ops.squaredRelu(x, x); // in place
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('swiglu and swigluBackward %s n=%i', (dtype, n) => {
    const gate = randn(n, 16, 3), up = randn(n, 17), y = new Float32Array(n);
    const dy = randn(n, 18), dgate = randn(n, 19), dup = randn(n, 20); // written, not accumulated
    const r = compareWithCpu((ops: KernelOps) => {
      ops.swiglu(y, gate, up);
      ops.swigluBackward(dgate, dup, dy, gate, up);
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it('swiglu and gelu saturate without NaN for large |x| (f32)', () => {
    const x = new Float32Array([-200, -90, -30, 30, 90, 200]);
    const ones = new Float32Array(x.length).fill(1);
    const y = new Float32Array(x.length), g = new Float32Array(x.length), dg = new Float32Array(x.length), du = new Float32Array(x.length);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.swiglu(y, x, ones);
      ops.swigluBackward(dg, du, ones, x, ones);
      ops.gelu(g, x);
    }, { dtype: 'f32', ...TOL.f32 });
    expect(r.ok, r.summary).toBe(true);
  });

  const pairs = DTYPES.flatMap((from) => DTYPES.map((to) => [from, to] as const));

  it.each(pairs)('cast %s -> %s rounds to nearest even', (from, to) => {
    const data = castInputs();
    const src = CudaTensor.from(data, from);
    const dst = CudaTensor.empty(data.length, to);
    cudaRun('cast', [dst, src], [data.length], []);
    const got = dst.download() as Float32Array;
    const want = data.map((x) => roundTo(to, roundTo(from, x)));
    const bad = firstMismatch(got, want);
    expect(bad, bad < 0 ? '' : `element ${bad}: input ${data[bad]}, got ${got[bad]}, want ${want[bad]}`).toBe(-1);
    src.free();
    dst.free();
  });

  it('cast f32 -> bf16 -> f32 equals the JavaScript bf16 rounding', () => {
    const data = castInputs();
    const a = CudaTensor.from(data, 'f32');
    const b = CudaTensor.empty(data.length, 'bf16');
    const c = CudaTensor.empty(data.length, 'f32');
    cudaRun('cast', [b, a], [data.length], []);
    cudaRun('cast', [c, b], [data.length], []);
    cudaSynchronize('compute');
    const got = c.download() as Float32Array;
    const want = data.map(roundBf16);
    const bad = firstMismatch(got, want);
    expect(bad, bad < 0 ? '' : `element ${bad}: input ${data[bad]}, got ${got[bad]}, want ${want[bad]}`).toBe(-1);
    for (const t of [a, b, c]) t.free();
  });

  it('cast refuses an int32 buffer and a short destination', () => {
    const src = CudaTensor.from(new Float32Array(10), 'f32');
    const ints = CudaTensor.from(new Int32Array(10));
    const short = CudaTensor.empty(5, 'bf16');
    expect(() => cudaRun('cast', [ints, src], [10], [])).toThrow(/cast \(cuda\)/);
    expect(() => cudaRun('cast', [short, src], [10], [])).toThrow(/holds 5 elements, needs 10/);
    for (const t of [src, ints, short]) t.free();
  });
});
