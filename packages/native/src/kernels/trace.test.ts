import { describe, expect, it } from 'vitest';
import { KernelBatch, kernels, startKernelTrace, stopKernelTrace } from '../index';

describe('kernel trace', () => {
  it('counts calls and seconds per kernel, and batches, only while it runs', async () => {
    const n = 64, a = new Float32Array(n * n).fill(1), b = new Float32Array(n * n).fill(2), c = new Float32Array(n * n);
    kernels.matmul({ c, a, b, m: n, n, k: n }); // before the trace: not counted
    startKernelTrace();
    const batch = new KernelBatch();
    batch.matmul({ c, a, b, m: n, n, k: n });
    batch.matmul({ c, a, b, m: n, n, k: n });
    batch.copy(a, b);
    await batch.run();
    kernels.copy(b, a);
    const trace = stopKernelTrace();
    const byOp = new Map(trace.map((e) => [e.op, e]));
    expect(byOp.get('matmul')?.calls).toBe(2);
    expect(byOp.get('copy')?.calls).toBe(2);
    expect(byOp.get('(batch)')?.calls).toBe(1);
    expect(byOp.get('matmul')?.seconds).toBeGreaterThan(0);
    // The batch's time covers its kernels.
    expect(byOp.get('(batch)')!.seconds).toBeGreaterThanOrEqual(byOp.get('matmul')!.seconds);
    kernels.copy(b, a);
    expect(stopKernelTrace()).toEqual([]);
  });
});
