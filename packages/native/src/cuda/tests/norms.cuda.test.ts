// The CUDA LayerNorm and RMSNorm (cuda/kernels/norms.cu) against the CPU kernels of the same name on
// the same inputs, in f32 and in the 16-bit storage dtypes: forward, and forward followed by the
// backward (whose mean/rstd come from each side's own forward). Skipped (with the reason) where no GPU
// and kernels are available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import { uniforms, randn, type Storage } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// [rows, cols]: one element, one column, narrow rows (one warp), rows wider than a 1024-thread block
// (4096, 8192), widths that are no multiple of 32, and more rows than the 32 row lanes of the
// dgamma/dbeta column sums.
const SHAPES: Array<[number, number]> = [
  [1, 1], [37, 1], [37, 7], [3, 32], [65, 100], [1, 257], [33, 768], [9, 1031], [5, 4096], [3, 8192], [1000, 64],
];

// Forward: fp32 statistics on both sides (sums in a different order: ~1e-7 relative); bf16/f16
// outputs are rounded once (relative error 2^-9 and 2^-11).
const FORWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 1e-5, rtol: 1e-5 },
  bf16: { atol: 1e-3, rtol: 1e-2 },
  f16: { atol: 2e-4, rtol: 2e-3 },
};
// Backward: dx has a cancellation (g - mean(g) - xhat * mean(g * xhat)) and dgamma/dbeta are sums over
// up to 1000 rows in another order (the CPU's sequential fp32 sum drifts by ~1e-4 there), so f32
// allows a few 1e-4; the 16-bit outputs are rounded once more.
const BACKWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 5e-4, rtol: 1e-4 },
  bf16: { atol: 2e-3, rtol: 1e-2 },
  f16: { atol: 5e-4, rtol: 3e-3 },
};

const shapeName = ([rows, cols]: [number, number]): string => `${rows}x${cols}`;

describeCuda('CUDA layerNorm / rmsNorm against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    it.each(SHAPES.map((s) => [shapeName(s), s] as const))(`layerNorm ${dtype} %s`, (_name, [rows, cols]) => {
      // Inputs with a non-zero mean, so the centring matters.
      const x = randn(rows * cols, 11 + cols, 2, 0.5);
      const gamma = randn(cols, 12, 0.5, 1);
      const beta = randn(cols, 13, 0.2);
      const y = new Float32Array(rows * cols);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      const r = compareWithCpu((ops: KernelOps) => ops.layerNorm(y, mean, rstd, x, gamma, beta, rows, cols, 1e-5), {
        dtype, ...FORWARD_TOL[dtype],
      });
      expect(r.ok, r.summary).toBe(true);
    });

    it.each(SHAPES.map((s) => [shapeName(s), s] as const))(`rmsNorm ${dtype} %s`, (_name, [rows, cols]) => {
      const x = randn(rows * cols, 21 + cols, 1.5, 0.3);
      const gamma = randn(cols, 22, 0.5, 1);
      const y = new Float32Array(rows * cols);
      const rstd = new Float32Array(rows);
      const r = compareWithCpu((ops: KernelOps) => ops.rmsNorm(y, rstd, x, gamma, rows, cols, 1e-6), { dtype, ...FORWARD_TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });

    it.each(SHAPES.map((s) => [shapeName(s), s] as const))(`layerNormBackward ${dtype} %s`, (_name, [rows, cols]) => {
      const x = randn(rows * cols, 31 + cols, 2, -0.4);
      const gamma = randn(cols, 32, 0.5, 1);
      const beta = randn(cols, 33, 0.2);
      const dy = randn(rows * cols, 34 + rows);
      const y = new Float32Array(rows * cols);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      const dx = new Float32Array(rows * cols);
      // The parameter gradients accumulate: start them non-zero.
      const dgamma = randn(cols, 35, 0.1);
      const dbeta = randn(cols, 36, 0.1);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.layerNorm(y, mean, rstd, x, gamma, beta, rows, cols, 1e-5);
        ops.layerNormBackward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, cols);
      }, { dtype, ...BACKWARD_TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });

    it.each(SHAPES.map((s) => [shapeName(s), s] as const))(`rmsNormBackward ${dtype} %s`, (_name, [rows, cols]) => {
      const x = randn(rows * cols, 41 + cols, 1.5, 0.2);
      const gamma = randn(cols, 42, 0.5, 1);
      const dy = randn(rows * cols, 43 + rows);
      const y = new Float32Array(rows * cols);
      const rstd = new Float32Array(rows);
      const dx = new Float32Array(rows * cols);
      const dgamma = randn(cols, 44, 0.1);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.rmsNorm(y, rstd, x, gamma, rows, cols, 1e-6);
        ops.rmsNormBackward(dx, dgamma, dy, x, gamma, rstd, rows, cols);
      }, { dtype, ...BACKWARD_TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });

    it(`layerNorm ${dtype}: no beta, y aliasing x, backward without dbeta adding into dx`, () => {
      const rows = 19, cols = 300;
      const x = randn(rows * cols, 51, 1, 0.1);
      const xSaved = x.slice();
      const gamma = randn(cols, 52, 0.5, 1);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      const dy = randn(rows * cols, 53);
      const dx = randn(rows * cols, 54);  // accumulateDx: the residual gradient already there
      const dgamma = new Float32Array(cols);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.layerNorm(x, mean, rstd, x, gamma, null, rows, cols, 1e-5);
        // The backward reads the normalised input's source: a separate copy, since y overwrote x.
        ops.layerNormBackward(dx, dgamma, null, dy, xSaved, gamma, mean, rstd, rows, cols, true);
      }, { dtype, ...BACKWARD_TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });

    it(`rmsNorm ${dtype}: y aliasing x, backward adding into dx`, () => {
      const rows = 23, cols = 513;
      const x = randn(rows * cols, 61);
      const xSaved = x.slice();
      const gamma = randn(cols, 62, 0.5, 1);
      const rstd = new Float32Array(rows);
      const dy = randn(rows * cols, 63);
      const dx = randn(rows * cols, 64);
      const dgamma = randn(cols, 65, 0.1);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.rmsNorm(x, rstd, x, gamma, rows, cols, 1e-6);
        ops.rmsNormBackward(dx, dgamma, dy, xSaved, gamma, rstd, rows, cols, true);
      }, { dtype, ...BACKWARD_TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });
  }
});
