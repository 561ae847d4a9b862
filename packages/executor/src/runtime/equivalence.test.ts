// The runtime's proof of correctness: any plan trains the same model as one process running the
// whole model — the loss of every step and the final weights agree up to float rounding.
// Every rank runs in this process on its own communicator thread over real TCP (the worker process
// tests in ../launch cover the process boundary).
import { getModel, type ModelSpec, parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { TokenSource } from './data';
import { runInProcess } from './testing/local-world';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';
import { type ReferenceOptions, referenceTrain, type ReferenceResult, relL2, scheduleOf } from './testing/reference';

const SEQ = 16, BATCH = 8, STEPS = 5, SEED = 7, LR = 3e-3;
const refs = new Map<string, Promise<ReferenceResult>>();

const refOptions = (model: ModelSpec): ReferenceOptions =>
  ({ model, seed: SEED, lr: LR, steps: STEPS, globalBatch: BATCH, seq: SEQ, data: 'synthetic', warmupSteps: 2 });

function reference(model: ModelSpec): Promise<ReferenceResult> {
  let r = refs.get(model.name);
  if (!r) {
    r = referenceTrain(refOptions(model));
    refs.set(model.name, r);
  }
  return r;
}

// The key bias adds q.bk to every score of a query's row; softmax ignores that, so its exact
// gradient is 0 and both runs move it by Adam-normalised rounding noise only.
const NO_GRADIENT = /\.attn\.bk$/;

// GPT-2's dropout (0.1 on the embedding, the attention probabilities and the residual branches):
// every split must draw the masks one process draws.
const GPT_DROPOUT: ModelSpec = { ...getModel('gpt-tiny'), name: 'gpt-tiny-dropout', dropout: 0.1 };

async function expectEquivalent(
  modelName: string | ModelSpec, G: number, stages: StageSketch[], o: { flashAttention?: boolean; virtualStages?: number } = {},
): Promise<void> {
  const model = typeof modelName === 'string' ? getModel(modelName) : modelName;
  const { virtualStages, ...rest } = o;
  const flat = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G, ...rest }, stages);
  const plan = virtualStages ? parsePlan({ ...flat, virtualStages }, { model }) : flat;
  const ref = await reference(model);
  const run = await runInProcess(plan, model, {
    seed: SEED, lr: scheduleOf(refOptions(model)), steps: STEPS, data: new TokenSource('synthetic', SEED, model.vocab, BATCH, SEQ),
  });
  try {
    expect(run.losses).toHaveLength(STEPS);
    run.losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]) / ref.losses[i], `step ${i + 1}: ${l} vs ${ref.losses[i]}`).toBeLessThan(1e-4));
    const w = await run.weights();
    expect([...w.keys()].sort()).toEqual([...ref.weights.keys()].sort());
    for (const [name, full] of ref.weights) {
      if (!NO_GRADIENT.test(name)) expect(relL2(w.get(name) as Float32Array, full), name).toBeLessThan(1e-4);
    }
  } finally {
    await run.close();
  }
}

describe('distributed runs equal the single-process run (gpt-tiny, 5 steps)', () => {
  it('the reference itself learns: the loss falls', async () => {
    const ref = await reference(getModel('gpt-tiny'));
    expect(ref.losses[STEPS - 1]).toBeLessThan(ref.losses[0]);
  });
  it('pp=1 dp=1 tp=1, G=1', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3] }]));
  it('pp=2, G=4 (1F1B)', () => expectEquivalent('gpt-tiny', 4, [{ layers: [0, 1] }, { layers: [2, 3] }]));
  it('pp=4, G=4, one layer per stage, ckpt all', () =>
    expectEquivalent('gpt-tiny', 4, [0, 1, 2, 3].map((i) => ({ layers: [i, i] as [number, number], ckpt: 1 }))));
  it('dp=2 (all-reduce)', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], dp: 2 }]));
  it('tp=2 (Megatron column/row parallel)', () => expectEquivalent('gpt-tiny', 2, [{ layers: [0, 3], tp: 2 }]));
  it('pp=2 x dp=2 x tp=2, ZeRO-1, ckpt some, G=2', () =>
    expectEquivalent('gpt-tiny', 2, [{ layers: [0, 1], dp: 2, tp: 2, zero: 1, ckpt: 1 }, { layers: [2, 3], dp: 2, tp: 2, zero: 1, ckpt: 2 }]));
  it('non-uniform stages with different dp/tp, ZeRO-2, tp 2 -> 1 and dp 1 -> 2 at the boundary', () =>
    expectEquivalent('gpt-tiny', 2, [{ layers: [0, 0], tp: 2, zero: 2 }, { layers: [1, 3], dp: 2, zero: 2, ckpt: 3 }]));
  it('ZeRO-3 with dp=2 and offload 0.5 of everything', () =>
    expectEquivalent('gpt-tiny', 2, [{ layers: [0, 3], dp: 2, zero: 3, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }]));
  it('pp=2, full offload, sequence parallel tp=2', () =>
    expectEquivalent('gpt-tiny', 4, [
      { layers: [0, 2], tp: 2, sp: true, offload: { weights: 1, grads: 1, optim: 1, activations: 1 } },
      { layers: [3, 3], dp: 2, zero: 3, ckpt: 1 },
    ]));
  it('vocab-parallel tied table on both ends: pp=2, tp=2, ZeRO-3 per-layer gathers, weight/grad offload at ZeRO-0, G=4', () =>
    expectEquivalent('gpt-tiny', 4, [
      { layers: [0, 1], tp: 2, dp: 2, zero: 3, ckpt: 1, offload: { weights: 0.5 } },
      { layers: [2, 3], tp: 2, offload: { weights: 0.5, grads: 0.5 } },
    ]));
  it('dropout 0.1: pp=2 x dp=2 x tp=2, ckpt some, G=2', () =>
    expectEquivalent(GPT_DROPOUT, 2, [{ layers: [0, 1], dp: 2, tp: 2, ckpt: 1 }, { layers: [2, 3], dp: 2, tp: 2, ckpt: 2 }]));
  it('dropout 0.1 with sequence parallel tp=2 on both stages, dp=2 at the last, ckpt, G=4', () =>
    expectEquivalent(GPT_DROPOUT, 4, [{ layers: [0, 1], tp: 2, sp: true, ckpt: 1 }, { layers: [2, 3], tp: 2, sp: true, dp: 2, zero: 1 }]));
  it('llama-tiny with sequence parallel tp=2, G=2', () => expectEquivalent('llama-tiny', 2, [{ layers: [0, 3], tp: 2, sp: true, ckpt: 2 }]));
  it('llama-tiny: pp=2, tp=2, dp=2 at the last stage, ZeRO-2, G=4', () =>
    expectEquivalent('llama-tiny', 4, [{ layers: [0, 1], tp: 2, ckpt: 1 }, { layers: [2, 3], dp: 2, zero: 2 }]));
});

// Context parallelism: each cp rank holds chunks r and 2cp-1-r of every sequence, attention is a
// K/V ring, gradients and ZeRO shards span dp * cp.
describe('context-parallel runs equal the single-process run (ring attention, 5 steps)', () => {
  it('cp=2 (gpt-tiny, learned positions)', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], cp: 2 }]));
  it('cp=4 (8 chunks of 2 tokens)', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], cp: 4 }]));
  it('cp=2 x tp=2 x dp=2, ZeRO-1', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], cp: 2, tp: 2, dp: 2, zero: 1 }]));
  it('cp=2 x tp=2 (sequence parallel) x dp=2, ZeRO-2, ckpt some', () =>
    expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], cp: 2, tp: 2, sp: true, dp: 2, zero: 2, ckpt: 2 }]));
  it('cp=2 on llama-tiny (RoPE, grouped-query attention), tp=2', () => expectEquivalent('llama-tiny', 2, [{ layers: [0, 3], cp: 2, tp: 2 }]));
  it('cp=2 with pp=2, G=4, ZeRO-3 on the last stage', () =>
    expectEquivalent('gpt-tiny', 4, [{ layers: [0, 1], cp: 2, ckpt: 1 }, { layers: [2, 3], cp: 2, zero: 3 }]));
  it('cp=2 with dropout 0.1 (the ring draws one process\'s masks), dp=2', () => expectEquivalent(GPT_DROPOUT, 2, [{ layers: [0, 3], cp: 2, dp: 2 }]));
  it('cp changes at the pipeline boundaries: cp=2 -> dp=2 -> cp=4, G=2', () =>
    expectEquivalent('gpt-tiny', 2, [{ layers: [0, 0], cp: 2 }, { layers: [1, 2], dp: 2, zero: 1 }, { layers: [3, 3], cp: 4 }]));
  it('interleaved 1F1B (pp=2, v=2) with cp=2 in every chunk, G=2', () =>
    expectEquivalent('gpt-tiny', 2, [{ layers: [0, 1], cp: 2 }, { layers: [2, 3], cp: 2 }], { virtualStages: 2 }));
  it('llama-tiny, cp changes at the boundary with tp: tp=2 x cp=2 -> cp=4 (RoPE), G=4', () =>
    expectEquivalent('llama-tiny', 4, [{ layers: [0, 1], tp: 2, cp: 2, ckpt: 1 }, { layers: [2, 3], cp: 4, zero: 2 }]));
});

// flashAttention false: the unfused attention core keeps the s x s probabilities (and with dropout
// their mask); selective recompute drops them and runs the core again in backward.
describe('unfused attention runs equal the single-process (fused) run, with and without selective recompute', () => {
  const unfused = { flashAttention: false };
  it('gpt-tiny, dp=2', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], dp: 2 }], unfused));
  it('gpt-tiny, dp=2, selective recompute', () => expectEquivalent('gpt-tiny', 1, [{ layers: [0, 3], dp: 2, selectiveRecompute: true }], unfused));
  it('dropout 0.1: pp=2 x tp=2 (sequence parallel), selective recompute on one stage, ckpt some, G=2', () =>
    expectEquivalent(GPT_DROPOUT, 2, [{ layers: [0, 1], tp: 2, sp: true, ckpt: 1, selectiveRecompute: true }, { layers: [2, 3], tp: 2, sp: true, dp: 2 }], unfused));
  it('llama-tiny (grouped-query attention, RoPE), tp=2, selective recompute, G=2', () =>
    expectEquivalent('llama-tiny', 2, [{ layers: [0, 3], tp: 2, selectiveRecompute: true, zero: 1 }], unfused));
});
