// The memory pools report what each feature does to a rank's bytes: ZeRO shards the optimizer
// states, gradients and weights, offload moves them (and activations) to the host pools,
// checkpointing shrinks activations, and ZeRO-3 gathers one unit (layer) at a time.
import { getModel } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { Stage } from '../model';
import { TokenSource } from './data';
import { runInProcess } from './testing/local-world';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';

const model = getModel('gpt-tiny');

async function peaks(dp: number, s: Omit<StageSketch, 'layers' | 'dp'>): Promise<Record<string, number>> {
  const plan = singleHostPlan(model, { seq: 16, globalBatch: 4, G: 1 }, [{ layers: [0, 3], dp, ...s }]);
  const run = await runInProcess(plan, model, { seed: 1, lr: () => 1e-3, steps: 1, data: new TokenSource('synthetic', 1, model.vocab, 4, 16) });
  await run.close();
  return run.metrics[0][0].peakBytes;
}

describe('per-pool peak bytes', () => {
  const units = new Stage({ model, seed: 1 }).units.map((u) => u.hi - u.lo);
  const params = units.reduce((a, b) => a + b, 0);
  const largestUnit = Math.max(...units);

  it('follow ZeRO, offload and checkpointing', async () => {
    const base = await peaks(2, {});
    expect(base.weights).toBe(4 * params);
    expect(base.optim).toBe(8 * params); // fp32 AdamW: m and v
    expect(base.grads).toBe(4 * params);
    const z1 = await peaks(2, { zero: 1 });
    expect(z1.optim).toBe(4 * params); // half of m and v on each of 2 DP ranks
    const off = await peaks(2, { zero: 1, offload: { optim: 1, activations: 1 } });
    expect(off.optim).toBe(0);
    expect(off['host.optim']).toBe(4 * params);
    expect(off['host.activations']).toBe(base.activations);
    const ckpt = await peaks(2, { ckpt: 4 });
    expect(ckpt.activations).toBeLessThan(base.activations / 3);
  });

  it('ZeRO-2/3 keep a shard resident and one unit whole at a time', async () => {
    const z2 = await peaks(2, { zero: 2 });
    expect(z2.grads).toBe(2 * params); // this rank's half of the reduced gradients
    const z3 = await peaks(2, { zero: 3 });
    expect(z3.weights).toBe(2 * params); // this rank's half of the weights
    expect(z3.grads).toBe(2 * params);
    // Transient: at most one gathered unit, its full gradient and small buffers, never the whole stage.
    expect(z3.transient).toBeLessThan(4 * (2 * largestUnit + params / 4));
    expect(z3.transient).toBeGreaterThanOrEqual(4 * largestUnit);
  });

  it('weight and gradient offload keep that fraction in the host pools', async () => {
    const w = await peaks(1, { offload: { weights: 0.5, grads: 0.25 } });
    expect(Math.abs(w.weights + w['host.weights'] - 4 * params)).toBeLessThanOrEqual(4 * units.length);
    expect(Math.abs(w['host.weights'] - 2 * params)).toBeLessThanOrEqual(4 * units.length);
    expect(Math.abs(w['host.grads'] - params)).toBeLessThanOrEqual(4 * units.length);
    const z3 = await peaks(2, { zero: 3, offload: { weights: 1 } });
    expect(z3.weights).toBe(0);
    expect(z3['host.weights']).toBe(2 * params);
  });
});
