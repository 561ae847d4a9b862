// The CUDA optimizer ops (cuda/kernels/adamw.cu) against the CPU kernels: AdamW over three steps
// (fp32 master weights and moments, gradient in the storage dtype), its optional fifth buffer that
// receives the parameter in the storage dtype, and sumSquares (written, summed in double,
// deterministic). Skipped (with the reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import { CudaTensor, cudaRun } from '../tensor';
import { firstMismatch, randn, roundTo } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;
// 1, not a multiple of the block, and above the grid cap with a tail that is not a whole 16-byte
// vector (sumSquares reads 4 fp32 or 8 bf16/fp16 values at a time).
const SIZES = [1, 1000, (1 << 21) + 3];
const cases = DTYPES.flatMap((dtype) => SIZES.map((n) => [dtype, n] as const));

const HYPER = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describeCuda('CUDA optimizer kernels', () => {
  // param, m and v are fp32 on both sides ('f' buffers) and the gradient is rounded to the dtype
  // for both, so the only differences are fp32 rounding (fused multiply-adds): tight in every dtype.
  it.each(cases)('adamw %s n=%i, three steps', (dtype, n) => {
    const param = randn(n, 1);
    const grads = [randn(n, 2), randn(n, 3, 0.01), randn(n, 4, 100)];
    const m = new Float32Array(n), v = new Float32Array(n);
    const r = compareWithCpu((ops: KernelOps) => {
      grads.forEach((grad, k) => {
        ops.adamw({ param, grad, m, v, step: k + 1, ...HYPER, gradScale: k === 1 ? 0.5 : 1 });
      });
    }, { dtype, atol: 1e-6, rtol: 1e-5 });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(DTYPES)('adamw writes the updated parameter rounded to %s into the optional fifth buffer', (dtype) => {
    const n = 4099;
    const param = randn(n, 5), grad = randn(n, 6);
    const ints = [n, 1];
    const floats = [1e-2, 0.9, 0.999, 1e-8, 0.1, 1];
    const run = (withCopy: boolean): [Float32Array, Float32Array | null] => {
      const p = CudaTensor.from(param, 'f32'), g = CudaTensor.from(grad, dtype);
      const m = CudaTensor.from(new Float32Array(n), 'f32'), v = CudaTensor.from(new Float32Array(n), 'f32');
      const copy = withCopy ? CudaTensor.from(new Float32Array(n), dtype) : null;
      cudaRun('adamw', [p, g, m, v, copy], ints, floats);
      const result: [Float32Array, Float32Array | null] = [p.download() as Float32Array, copy ? (copy.download() as Float32Array) : null];
      for (const t of [p, g, m, v, copy]) t?.free();
      return result;
    };
    const [updated, copy] = run(true);
    const [alone] = run(false);
    // The copy is the fp32 result rounded once, and asking for it does not change the fp32 update.
    expect(firstMismatch(updated, alone)).toBe(-1);
    expect(firstMismatch(updated, param)).not.toBe(-1);
    const want = updated.map((x) => roundTo(dtype, x));
    const bad = firstMismatch(copy as Float32Array, want);
    expect(bad, bad < 0 ? '' : `element ${bad}: fp32 ${updated[bad]}, copy ${copy?.[bad]}, want ${want[bad]}`).toBe(-1);
  });

  it('adamw refuses a copy buffer of another dtype and a short moment buffer', () => {
    const n = 10;
    const p = CudaTensor.from(new Float32Array(n), 'f32'), g = CudaTensor.from(new Float32Array(n), 'bf16');
    const m = CudaTensor.from(new Float32Array(n), 'f32'), short = CudaTensor.from(new Float32Array(n - 1), 'f32');
    const copy = CudaTensor.from(new Float32Array(n), 'f16');
    const floats = [1e-3, 0.9, 0.999, 1e-8, 0, 1];
    expect(() => cudaRun('adamw', [p, g, m, m, copy], [n, 1], floats)).toThrow(/adamw \(cuda\)/);
    expect(() => cudaRun('adamw', [p, g, m, short], [n, 1], floats)).toThrow(/buffer v holds 9 elements, needs 10/);
    for (const t of [p, g, m, short, copy]) t.free();
  });

  // Both sides sum the squares in double and round the total once to fp32.
  it.each(cases)('sumSquares %s n=%i (written, not accumulated)', (dtype, n) => {
    const x = randn(n, 7, 3), out = new Float32Array([1234]);
    const r = compareWithCpu((ops: KernelOps) => ops.sumSquares(out, x), { dtype, atol: 0, rtol: 1e-6 });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(DTYPES)('sumSquares %s gives the same bits on every run', (dtype) => {
    const n = (1 << 22) + 5;
    const x = CudaTensor.from(randn(n, 8), dtype);
    const results: number[] = [];
    for (let k = 0; k < 3; k++) {
      const out = CudaTensor.from(new Float32Array(1), 'f32');
      cudaRun('sumSquares', [out, x], [n], []);
      results.push((out.download() as Float32Array)[0]);
      out.free();
    }
    x.free();
    expect(results[1]).toBe(results[0]);
    expect(results[2]).toBe(results[0]);
  });
});
