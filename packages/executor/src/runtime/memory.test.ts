// The memory pools report what each feature does to a rank's bytes: ZeRO shards the optimizer
// states, offload moves them (and activations) to the host pools, checkpointing shrinks activations.
import { getModel } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { TokenSource } from './data';
import { runInProcess } from './testing/local-world';
import { makePlan, type StageSketch } from './testing/plans';

const model = getModel('gpt-tiny');

async function peaks(dp: number, s: Omit<StageSketch, 'layers' | 'dp'>): Promise<Record<string, number>> {
  const plan = makePlan(model, { seq: 16, globalBatch: 4, G: 1 }, [{ layers: [0, 3], dp, ...s }]);
  const run = await runInProcess(plan, model, { seed: 1, lr: () => 1e-3, steps: 1, data: new TokenSource('synthetic', 1, model.vocab, 4, 16) });
  await run.close();
  return run.metrics[0][0].peakBytes;
}

describe('per-pool peak bytes', () => {
  it('follow ZeRO, offload and checkpointing', async () => {
    const base = await peaks(2, {});
    const params = base.weights / 4;
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
});
