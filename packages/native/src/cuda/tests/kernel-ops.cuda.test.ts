// CudaKernels (KernelOps over device tensors) and tensor views: a small transformer-style sequence
// written once against KernelOps runs on the CPU kernels and on CUDA from the same inputs, with
// weights held as views into one flat device buffer, as the executor's parameter store holds them.
import { expect, it } from 'vitest';

import { kernels } from '../../kernels/immediate';
import type { KernelOps, TensorLike } from '../../kernels/ops';
import { cudaKernels } from '../kernel-ops';
import { CudaTensor, cudaSynchronize } from '../tensor';
import { describeCuda } from '../testing/compare';
import { randn } from './values';

interface Tensors<F> {
  weights: F;
  w1: F;
  w2: F;
  gamma: F;
  x: F;
  h: F;
  g: F;
  y: F;
  rstd: F;
}

// rmsNorm -> matmul -> gelu -> matmul -> residual add, on any backend.
function forward<F extends TensorLike>(ops: KernelOps<F, unknown>, t: Tensors<F>, rows: number, hidden: number, ffn: number): void {
  ops.rmsNorm(t.h, t.rstd, t.x, t.gamma, rows, hidden, 1e-5);
  ops.matmul({ c: t.g, a: t.h, b: t.w1, m: rows, n: ffn, k: hidden });
  ops.gelu(t.g, t.g);
  ops.matmul({ c: t.y, a: t.g, b: t.w2, m: rows, n: hidden, k: ffn });
  ops.add(t.y, t.y, t.x);
}

describeCuda('CudaKernels over device tensors and views', () => {
  it('runs the same KernelOps sequence as the CPU kernels, weights as views of one flat buffer', () => {
    const rows = 37, hidden = 64, ffn = 96;
    const n1 = hidden * ffn, n2 = ffn * hidden;
    const flat = randn(n1 + n2 + hidden, 3).map((v) => v * 0.1);
    const x = randn(rows * hidden, 4);
    const cpu: Tensors<Float32Array> = {
      weights: flat,
      w1: flat.subarray(0, n1),
      w2: flat.subarray(n1, n1 + n2),
      gamma: flat.subarray(n1 + n2),
      x,
      h: new Float32Array(rows * hidden),
      g: new Float32Array(rows * ffn),
      y: new Float32Array(rows * hidden),
      rstd: new Float32Array(rows),
    };
    const weights = CudaTensor.from(flat);
    const dev: Tensors<CudaTensor> = {
      weights,
      w1: weights.subarray(0, n1),
      w2: weights.subarray(n1, n1 + n2),
      gamma: weights.subarray(n1 + n2),
      x: CudaTensor.from(x),
      h: CudaTensor.empty(rows * hidden, 'f32'),
      g: CudaTensor.empty(rows * ffn, 'f32'),
      y: CudaTensor.empty(rows * hidden, 'f32'),
      rstd: CudaTensor.empty(rows, 'f32'),
    };
    expect(dev.gamma.length).toBe(hidden);
    forward(kernels, cpu, rows, hidden, ffn);
    forward(cudaKernels, dev, rows, hidden, ffn);
    cudaSynchronize();
    const got = dev.y.download();
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - cpu.y[i]) / (1e-4 + Math.abs(cpu.y[i])));
    expect(worst).toBeLessThan(1e-3);
    // A view downloads exactly its elements.
    expect([...dev.gamma.download()]).toEqual([...flat.subarray(n1 + n2)]);
    for (const t of Object.values(dev)) t.free();
  });

  it('refuses a view outside its tensor', () => {
    const t = CudaTensor.empty(10, 'bf16');
    expect(t.subarray(8, 20).length).toBe(2); // clamped, like Float32Array.subarray
    expect(t.subarray(4, 6).dtype).toBe('bf16');
    t.free();
  });
});
