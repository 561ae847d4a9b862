import { describe, expect, it } from 'vitest';
import { KernelBatch, kernels } from './index';
import { f32, randomArray } from './testing/gradcheck';

describe('batched kernels (off the JavaScript thread)', () => {
  it('run in order and give exactly what immediate calls give', async () => {
    const [m, n, k] = [64, 48, 32];
    const a = f32(randomArray(m * k, 1)), b = f32(randomArray(k * n, 2)), bias = f32(randomArray(n, 3));
    const immediate = new Float32Array(m * n);
    kernels.matmul({ c: immediate, a, b, m, n, k });
    kernels.biasAdd(immediate, bias, m, n);
    kernels.gelu(immediate, immediate);

    const batched = new Float32Array(m * n);
    const batch = new KernelBatch();
    batch.matmul({ c: batched, a, b, m, n, k });
    batch.biasAdd(batched, bias, m, n);
    batch.gelu(batched, batched);
    expect(batch.size).toBe(3);
    expect(batched.every((v) => v === 0)).toBe(true); // nothing ran yet
    await batch.run();
    expect(batch.size).toBe(0);
    expect(Buffer.from(batched.buffer).equals(Buffer.from(immediate.buffer))).toBe(true);
  });

  it('rejects with the failing kernel and its reason', async () => {
    const batch = new KernelBatch();
    batch.fill(new Float32Array(4), 1);
    batch.matmul({ c: new Float32Array(1), a: new Float32Array(4), b: new Float32Array(4), m: 2, n: 2, k: 2 });
    await expect(batch.run()).rejects.toThrow(/op 1: matmul: buffer c holds 1 elements, needs 4/);
  });
});
