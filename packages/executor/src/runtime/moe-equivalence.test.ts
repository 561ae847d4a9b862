// Mixture of experts in the executor: a small MoE model trains (the loss falls) and every split of
// it — data parallelism, expert parallelism (the experts spread over ep ranks, tokens sent to them
// and back all-to-all), expert parallelism with tensor parallelism and with a pipeline — trains the
// same model as one process: the loss of every step and the final weights agree up to float rounding.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ModelSpec, type Plan, parseModelSpec, parsePlan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint';
import { isExpertParam } from '../model';
import { TokenSource } from './data';
import { localWorld, runInProcess } from './testing/local-world';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';
import { type ReferenceOptions, referenceTrain, type ReferenceResult, relL2, scheduleOf } from './testing/reference';

const SEQ = 16, BATCH = 8, STEPS = 5, SEED = 7, LR = 3e-3;

/** llama-tiny's structure (RMSNorm, SwiGLU, RoPE, grouped-query attention) with 4 experts, top-2, in every layer. */
const MOE_TINY: ModelSpec = parseModelSpec({
  name: 'moe-tiny', family: 'mixtral', layers: 4, hidden: 64, heads: 4, kvHeads: 2, ffnHidden: 96, vocab: 256, maxSeq: 64,
  norm: 'rmsnorm', activation: 'swiglu', positional: 'rope', tiedEmbeddings: false, bias: false, moe: { experts: 4, topK: 2 },
});

/** gpt's structure (LayerNorm, GELU with biases, learned positions, tied embeddings) with 4 experts, top-1. */
const MOE_GPT: ModelSpec = parseModelSpec({
  name: 'moe-gpt-tiny', family: 'gpt', layers: 2, hidden: 64, heads: 4, kvHeads: 4, ffnHidden: 128, vocab: 256, maxSeq: 64,
  norm: 'layernorm', activation: 'gelu', positional: 'learned', tiedEmbeddings: true, bias: true, moe: { experts: 4, topK: 1 },
});

const refs = new Map<string, Promise<ReferenceResult>>();
const refOptions = (model: ModelSpec): ReferenceOptions =>
  ({ model, seed: SEED, lr: LR, steps: STEPS, globalBatch: BATCH, seq: SEQ, data: 'synthetic', warmupSteps: 2 });

function reference(model: ModelSpec): Promise<ReferenceResult> {
  let r = refs.get(model.name);
  if (!r) refs.set(model.name, (r = referenceTrain(refOptions(model))));
  return r;
}

type Sketch = StageSketch & { ep?: number };

/** singleHostPlan with each stage's ep. */
function moePlan(model: ModelSpec, G: number, stages: Sketch[], virtualStages?: number): Plan {
  const flat = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G }, stages);
  const withEp = flat.stages.map((s, i) => ({ ...s, ...(stages[i].ep ? { ep: stages[i].ep } : {}) }));
  return parsePlan({ ...flat, stages: withEp, ...(virtualStages ? { virtualStages } : {}) }, { model });
}

/** Largest relative loss difference to one process over the steps. */
async function expectEquivalent(model: ModelSpec, G: number, stages: Sketch[], virtualStages?: number): Promise<number> {
  const plan = moePlan(model, G, stages, virtualStages);
  const ref = await reference(model);
  const run = await runInProcess(plan, model, {
    seed: SEED, lr: scheduleOf(refOptions(model)), steps: STEPS, data: new TokenSource('synthetic', SEED, model.vocab, BATCH, SEQ),
  });
  try {
    // Each rank holds experts / ep of every layer's experts.
    for (const rt of run.runtimes) {
      const held = new Set(rt.stages.flatMap((st) => st.paramEntries).filter((e) => isExpertParam(e.name)).map((e) => e.name.replace(/^.*\.expert/, '')));
      expect(held.size, `rank ${rt.pos.rank}`).toBe((model.moe?.experts ?? 0) / (plan.stages[rt.pos.stage].ep ?? 1));
    }
    expect(run.losses).toHaveLength(STEPS);
    let worst = 0;
    run.losses.forEach((l, i) => {
      const d = Math.abs(l - ref.losses[i]) / ref.losses[i];
      worst = Math.max(worst, d);
      expect(d, `step ${i + 1}: ${l} vs ${ref.losses[i]}`).toBeLessThan(1e-4);
    });
    const w = await run.weights();
    expect([...w.keys()].sort()).toEqual([...ref.weights.keys()].sort());
    for (const [name, full] of ref.weights) {
      // The key bias shifts a query's scores alike (softmax ignores it): no gradient, only rounding noise.
      if (!/\.attn\.bk$/.test(name)) expect(relL2(w.get(name) as Float32Array, full), name).toBeLessThan(1e-4);
    }
    return worst;
  } finally {
    await run.close();
  }
}

describe('mixture of experts: distributed runs equal the single-process run (5 steps)', () => {
  it('the single-process MoE model learns: the loss falls', async () => {
    const ref = await reference(MOE_TINY);
    expect(ref.losses[STEPS - 1]).toBeLessThan(ref.losses[0]);
  });
  it('pp=1 ep=1 dp=2', () => expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 2 }]));
  it('ep=2 with dp=2 (every rank holds 2 of the 4 experts)', () => expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 2, ep: 2 }]));
  it('ep=2 with dp=4: expert-data-parallel groups of 2, ckpt some', () => expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 4, ep: 2, ckpt: 2 }]));
  it('ep=2 with tp=2 (expert tensor parallelism) and dp=2', () => expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 2, tp: 2, ep: 2 }]));
  it('ep=2 with dp=4 and ZeRO-1 (the experts sharded over their expert-data-parallel pairs)', () =>
    expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 4, ep: 2, zero: 1 }]));
  it('ep=2 with dp=4, ZeRO-2 and gradient offload 0.5', () =>
    expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], dp: 4, ep: 2, zero: 2, offload: { grads: 0.5 } }]));
  it('ep=2 with dp=2, ZeRO-3 and offload 0.5 of everything, ckpt some', () =>
    expectEquivalent(MOE_TINY, 2, [{ layers: [0, 3], dp: 2, ep: 2, zero: 3, ckpt: 2, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }]));
  it('ep=2 over the context-parallel ranks: cp=2, ep=2 (Megatron-Core folds cp into the expert grid\'s dp)', () =>
    expectEquivalent(MOE_TINY, 1, [{ layers: [0, 3], cp: 2, ep: 2 }]));
  it('ep=4 with dp=4: one expert per rank', () => expectEquivalent(MOE_TINY, 2, [{ layers: [0, 3], dp: 4, ep: 4 }]));
  it('ep=2 with tp=2 and sequence parallelism (each TP rank routes its own tokens; the experts gather them)', () =>
    expectEquivalent(MOE_TINY, 2, [{ layers: [0, 3], dp: 2, tp: 2, sp: true, ep: 2, ckpt: 1 }]));
  it('gelu experts with biases and sequence parallelism tp=2, ep=2, ZeRO-1', () =>
    expectEquivalent(MOE_GPT, 1, [{ layers: [0, 1], dp: 2, tp: 2, sp: true, ep: 2, zero: 1 }]));
  it('pp=2 with ep=2, G=4', () => expectEquivalent(MOE_TINY, 4, [{ layers: [0, 1], dp: 2, ep: 2 }, { layers: [2, 3], dp: 2, ep: 2, ckpt: 1 }]));
  it('interleaved 1F1B (pp=2, v=2) with ep=2 in every chunk, G=2', () =>
    expectEquivalent(MOE_TINY, 2, [{ layers: [0, 1], dp: 2, ep: 2 }, { layers: [2, 3], dp: 2, ep: 2 }], 2));
  it('gelu experts with biases, top-1, tied embeddings: pp=2, ep=2 on one stage only, G=2', () =>
    expectEquivalent(MOE_GPT, 2, [{ layers: [0, 0], dp: 2, ep: 2 }, { layers: [1, 1], dp: 2 }]));
  it('a checkpoint saved with ep=2 (each expert from the ranks holding it) resumes on pp=2 without expert parallelism', async () => {
    const { losses } = await reference(MOE_TINY);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-moe-'));
    const data = (): TokenSource => new TokenSource('synthetic', SEED, MOE_TINY.vocab, BATCH, SEQ);
    try {
      const planA = moePlan(MOE_TINY, 1, [{ layers: [0, 3], dp: 4, ep: 2 }]);
      const a = await runInProcess(planA, MOE_TINY, { seed: SEED, lr: scheduleOf(refOptions(MOE_TINY)), steps: 3, data: data() });
      const world = await localWorld(a.runtimes.length);
      try {
        await Promise.all(a.runtimes.map((rt, rank) => saveCheckpoint(rt, world[rank], dir, { plan: planA, model: MOE_TINY, rank, worldSize: world.length, jobId: 'moe' })));
      } finally {
        await Promise.all(world.map((w) => w.destroy()));
        await a.close();
      }
      const ck = latestCheckpoint(dir);
      expect(ck?.manifest.step).toBe(3);
      const planB = moePlan(MOE_TINY, 2, [{ layers: [0, 1] }, { layers: [2, 3], dp: 2 }]);
      const b = await runInProcess(planB, MOE_TINY, { seed: SEED, lr: scheduleOf(refOptions(MOE_TINY)), steps: 2, data: data() },
        async (rts) => { for (const rt of rts) await loadCheckpoint(rt, ck!); });
      await b.close();
      [...a.losses, ...b.losses].forEach((l, i) => expect(Math.abs(l - losses[i]) / losses[i], `step ${i + 1}`).toBeLessThan(1e-4));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
