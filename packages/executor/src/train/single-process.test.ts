import { describe, expect, it } from 'vitest';
import { kernelThreads, setKernelThreads } from '@mist/native';
import { type StepReport, loadCorpus, trainSingleProcess } from './index';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('single-process training', () => {
  it('ships a real corpus under 2 MB', () => {
    const text = loadCorpus();
    expect(text.length).toBeGreaterThan(100_000);
    expect(text.length).toBeLessThan(2 * 1024 * 1024);
    expect(Buffer.from(text.subarray(0, 2000)).toString('latin1')).toMatch(/GNU GENERAL PUBLIC LICENSE/);
  });

  it('gpt-tiny: 100 steps on the corpus lower the loss by at least 30%', async () => {
    const seen: StepReport[] = [];
    const r = await trainSingleProcess({ model: 'gpt-tiny', steps: 100, seed: 1, globalBatch: 8, data: 'corpus' }, (s) => {
      seen.push(s);
    });
    expect(seen.map((s) => s.step)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const first = r.steps[0].loss, lastFive = mean(r.steps.slice(-5).map((s) => s.loss));
    expect(Math.abs(first - Math.log(256))).toBeLessThan(0.1);
    expect(lastFive).toBeLessThan(0.7 * first);
    expect(r.tokensPerS).toBeGreaterThan(0);
    expect(r.steps.every((s) => Number.isFinite(s.tokensPerS) && s.tokensPerS > 0)).toBe(true);
  });

  it('llama-tiny on the corpus falls well below ln(vocab)', async () => {
    const r = await trainSingleProcess({ model: 'llama-tiny', steps: 60, seed: 2, globalBatch: 8, data: 'corpus' });
    expect(mean(r.steps.slice(-5).map((s) => s.loss))).toBeLessThan(0.7 * Math.log(256));
  });

  it('gpt-tiny on synthetic Markov data falls well below ln(vocab) towards the entropy rate', async () => {
    const r = await trainSingleProcess({ model: 'gpt-tiny', steps: 60, seed: 3, globalBatch: 8, lr: 1e-2, data: 'synthetic' });
    expect(r.dataEntropy).toBeCloseTo(Math.log(4), 10);
    expect(mean(r.steps.slice(-5).map((s) => s.loss))).toBeLessThan(0.5 * Math.log(256));
  });

  it('is bit-for-bit reproducible from the seed, with 1 thread or the whole pool, and with gradient accumulation', async () => {
    const threads = kernelThreads();
    const run = async (t: number, microBatch?: number): Promise<{ losses: number[]; params: Float32Array }> => {
      setKernelThreads(t);
      try {
        const r = await trainSingleProcess({ model: 'gpt-tiny', steps: 8, seed: 42, globalBatch: 8, microBatch, seq: 32 });
        return { losses: r.steps.map((s) => s.loss), params: r.params };
      } finally {
        setKernelThreads(threads);
      }
    };
    const a = await run(Math.max(2, threads)), b = await run(Math.max(2, threads)), c = await run(1);
    expect(b.losses).toEqual(a.losses);
    expect(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
    expect(c.losses).toEqual(a.losses);
    expect(Buffer.from(c.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
    // Accumulating 4 micro-batches of 2 follows the same trajectory up to float rounding.
    const d = await run(threads, 2);
    d.losses.forEach((l, i) => expect(Math.abs(l - a.losses[i])).toBeLessThan(1e-3));
    const other = await trainSingleProcess({ model: 'gpt-tiny', steps: 2, seed: 43, globalBatch: 8, seq: 32 });
    expect(other.steps[1].loss).not.toBe(a.losses[1]);
  });

  it('rejects bad options', async () => {
    await expect(trainSingleProcess({ model: 'gpt-tiny', seq: 65 })).rejects.toThrow(/exceeds gpt-tiny's 64 positions/);
    await expect(trainSingleProcess({ model: 'gpt-tiny', globalBatch: 8, microBatch: 3 })).rejects.toThrow(/must divide/);
    await expect(trainSingleProcess({ model: 'nope' })).rejects.toThrow(/allowed/);
  });
});
