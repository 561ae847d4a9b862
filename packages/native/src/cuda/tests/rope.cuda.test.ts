// The CUDA rotary embedding (cuda/kernels/rope.cu) against the CPU kernels rope / ropeBackward on the
// same inputs, in f32 and in the 16-bit storage dtypes: query- and key-shaped inputs of a
// grouped-query layer (8 and 2 heads), head sizes 2 to 128, positions offset from zero, rows that are
// several sequences, and out in place of x. Skipped (with the reason) where no GPU and kernels are
// available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import { uniforms, randn, type Storage } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// cos/sin are formed in double and rounded to float on both sides, so f32 differs only in the last
// bits of two products and a sum; bf16/f16 outputs are rounded once (2^-9, 2^-11 relative).
const TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 1e-6, rtol: 1e-5 },
  bf16: { atol: 1e-5, rtol: 1e-2 },
  f16: { atol: 1e-5, rtol: 2e-3 },
};

interface RopeCase {
  name: string;
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  theta: number;
  posOffset: number;
}

const CASES: RopeCase[] = [
  { name: 'q of a GQA layer: 8 heads x 64, offset 7', batch: 3, seq: 13, heads: 8, headDim: 64, theta: 10000, posOffset: 7 },
  { name: 'k of a GQA layer: 2 heads x 64, offset 7', batch: 3, seq: 13, heads: 2, headDim: 64, theta: 10000, posOffset: 7 },
  { name: '1 head x 2 (one pair)', batch: 2, seq: 5, heads: 1, headDim: 2, theta: 10000, posOffset: 0 },
  { name: '4 heads x 16, theta 500000, offset 1000', batch: 1, seq: 37, heads: 4, headDim: 16, theta: 500000, posOffset: 1000 },
  { name: '32 heads x 128 (more pairs than threads)', batch: 2, seq: 9, heads: 32, headDim: 128, theta: 10000, posOffset: 3 },
  { name: '3 heads x 96, long positions', batch: 1, seq: 300, heads: 3, headDim: 96, theta: 10000, posOffset: 4000 },
];

describeCuda('CUDA rope / ropeBackward against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    for (const c of CASES) {
      const rows = c.batch * c.seq;
      const n = rows * c.heads * c.headDim;

      it(`rope ${dtype} ${c.name}`, () => {
        const x = randn(n, 1 + c.headDim);
        const out = new Float32Array(n);
        const r = compareWithCpu((ops: KernelOps) => ops.rope(out, x, rows, c.seq, c.heads, c.headDim, c.theta, c.posOffset), {
          dtype, ...TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`ropeBackward ${dtype} ${c.name}`, () => {
        const dy = randn(n, 2 + c.headDim);
        const dx = new Float32Array(n);
        const r = compareWithCpu((ops: KernelOps) => ops.ropeBackward(dx, dy, rows, c.seq, c.heads, c.headDim, c.theta, c.posOffset), {
          dtype, ...TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    it(`rope then ropeBackward ${dtype}, in place`, () => {
      const batch = 2, seq = 11, heads = 4, headDim = 32;
      const rows = batch * seq;
      const x = randn(rows * heads * headDim, 3);
      const dy = randn(rows * heads * headDim, 4);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.rope(x, x, rows, seq, heads, headDim, 10000, 5);
        ops.ropeBackward(dy, dy, rows, seq, heads, headDim, 10000, 5);
      }, { dtype, ...TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });
  }
});
