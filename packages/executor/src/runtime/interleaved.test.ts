// Interleaved 1F1B (plan.virtualStages > 1) against one process running the whole model: every rank
// holds v model chunks and runs core's interleavedSchedule; the loss of every step agrees within
// 1e-4 (equivalence.test.ts's pattern). A 12-layer gpt-tiny gives pp * v chunks of whole layers.
import { getModel, interleavedSchedule, maxInFlight, type ModelSpec, oneFOneBSchedule, parsePlan, type Plan, rankChunkLayers } from '@mist/core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint';
import { TokenSource } from './data';
import { localWorld, runInProcess } from './testing/local-world';
import { type ReferenceOptions, referenceTrain, type ReferenceResult, relL2, scheduleOf } from './testing/reference';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';

const SEQ = 16, BATCH = 12, STEPS = 5, SEED = 7, LR = 3e-3;
const MODEL: ModelSpec = { ...getModel('gpt-tiny'), name: 'gpt-tiny-12', layers: 12 };
const refOptions: ReferenceOptions = { model: MODEL, seed: SEED, lr: LR, steps: STEPS, globalBatch: BATCH, seq: SEQ, data: 'synthetic', warmupSteps: 2 };
let ref: Promise<ReferenceResult> | null = null;

function interleavedPlan(G: number, v: number, stages: StageSketch[]): Plan {
  return parsePlan({ ...singleHostPlan(MODEL, { seq: SEQ, globalBatch: BATCH, G }, stages), virtualStages: v }, { model: MODEL });
}

async function expectEquivalent(plan: Plan): Promise<void> {
  ref ??= referenceTrain(refOptions);
  const { losses } = await ref;
  const run = await runInProcess(plan, MODEL, {
    seed: SEED, lr: scheduleOf(refOptions), steps: STEPS, data: new TokenSource('synthetic', SEED, MODEL.vocab, BATCH, SEQ),
  });
  try {
    expect(run.losses).toHaveLength(STEPS);
    run.losses.forEach((l, i) => expect(Math.abs(l - losses[i]) / losses[i], `step ${i + 1}: ${l} vs ${losses[i]}`).toBeLessThan(1e-4));
    // Every rank holds its v chunks, laid out as core's rankChunkLayers says.
    for (const rt of run.runtimes) expect(rt.stages.map((s) => s.layerRange)).toEqual(rankChunkLayers(plan, rt.pos.stage));
    expect(run.runtimes[0].stages).toHaveLength(plan.virtualStages ?? 1);
    // And the final weights, assembled from every rank's chunks (the key bias gets no gradient: skipped).
    const w = await run.weights();
    const { weights } = await ref;
    expect([...w.keys()].sort()).toEqual([...weights.keys()].sort());
    for (const [name, full] of weights) if (!/\.attn\.bk$/.test(name)) expect(relL2(w.get(name)!, full), name).toBeLessThan(1e-4);
  } finally {
    await run.close();
  }
}

const uniform = (pp: number, s: Omit<StageSketch, 'layers'> = {}): StageSketch[] =>
  Array.from({ length: pp }, (_, i) => ({ ...s, layers: [(i * 12) / pp, ((i + 1) * 12) / pp - 1] as [number, number] }));

describe('interleaved 1F1B runs equal the single-process run (gpt-tiny with 12 layers, 5 steps)', () => {
  it('the reference learns', async () => {
    ref ??= referenceTrain(refOptions);
    const { losses } = await ref;
    expect(losses[STEPS - 1]).toBeLessThan(losses[0]);
  });
  it('pp=3, v=2, G=3: the tied token table between the first and the last rank\'s chunks', () => expectEquivalent(interleavedPlan(3, 2, uniform(3))));
  it('pp=3, v=2, G=6, dp=2, ZeRO-3 per-chunk gathers, offload 0.5, 2 of each rank\'s 4 layers checkpointed (1 per chunk)', () =>
    expectEquivalent(interleavedPlan(6, 2, uniform(3, { dp: 2, zero: 3, ckpt: 2, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }))));
  it('pp=3, v=2, tp=2 with sequence parallelism, ZeRO-1, G=3', () =>
    expectEquivalent(interleavedPlan(3, 2, uniform(3, { tp: 2, sp: true, zero: 1, ckpt: 1 }))));

  it('pp=4, v=3 (one layer per chunk), G=4, ckpt 2 of 3 (chunks 0 and 1), ZeRO-2', () =>
    expectEquivalent(interleavedPlan(4, 3, uniform(4, { zero: 2, ckpt: 2 }))));

  // Two stages: each link carries activations one way and gradients of other chunks the same way
  // (rank 0's chunk 1 sends its input gradient to rank 1's chunk 0). Messages have no tags; they
  // match because both ends issue them in the same order (core's pipeline-schedule test checks it).
  it('pp=2, v=2, G=6, dp=2, ZeRO-1', () => expectEquivalent(interleavedPlan(6, 2, uniform(2, { dp: 2, zero: 1 }))));
  it('pp=3, v=2, G=6, dp=2, each rank its own ZeRO level and checkpoint count (as the Mist space tunes them)', () =>
    expectEquivalent(interleavedPlan(6, 2, [
      { layers: [0, 3], dp: 2, zero: 1, ckpt: 2 }, { layers: [4, 7], dp: 2, zero: 0 }, { layers: [8, 11], dp: 2, zero: 3, ckpt: 4 },
    ])));
  it('pp=2, v=3, G=2, tp=2', () => expectEquivalent(interleavedPlan(2, 3, uniform(2, { tp: 2 }))));

  it('a middle rank keeps the saved activations of core\'s in-flight chunk passes (the analyzer\'s count)', async () => {
    const peakActivations = async (plan: Plan): Promise<number> => {
      const run = await runInProcess(plan, MODEL, { seed: SEED, lr: () => 1e-3, steps: 1, data: new TokenSource('synthetic', SEED, MODEL.vocab, BATCH, SEQ) });
      await run.close();
      return run.metrics[0][1].peakBytes.activations; // rank 1: stage 1 of 3, no embedding or head
    };
    const plain = await peakActivations(singleHostPlan(MODEL, { seq: SEQ, globalBatch: BATCH, G: 6 }, uniform(3)));
    const inter = await peakActivations(interleavedPlan(6, 2, uniform(3)));
    // Rank 1 of 3: 2 micro-batches of 4 layers in flight under 1F1B; 6 chunk passes of 2 layers interleaved.
    const units = maxInFlight(interleavedSchedule({ stage: 1, pp: 3, gradAccumSteps: 6, chunks: 2 }));
    expect(units).toBe(6);
    expect(maxInFlight(oneFOneBSchedule({ stage: 1, pp: 3, gradAccumSteps: 6 }))).toBe(2);
    console.log(`rank 1 activations: ${plain} B under 1F1B, ${inter} B interleaved (ratio ${(inter / plain).toFixed(4)}, schedule ${(units / 2 / 2).toFixed(4)})`);
    expect(inter / plain).toBeCloseTo(units / 2 / 2, 6);
  });

  it('saves a checkpoint of interleaved ranks and resumes it on another interleaved plan with the reference\'s losses', async () => {
    ref ??= referenceTrain(refOptions);
    const { losses } = await ref;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-interleaved-'));
    const data = (): TokenSource => new TokenSource('synthetic', SEED, MODEL.vocab, BATCH, SEQ);
    try {
      const planA = interleavedPlan(6, 2, uniform(3, { dp: 2, zero: 3 }));
      const a = await runInProcess(planA, MODEL, { seed: SEED, lr: scheduleOf(refOptions), steps: 3, data: data() });
      const world = await localWorld(a.runtimes.length);
      try {
        await Promise.all(a.runtimes.map((rt, rank) => saveCheckpoint(rt, world[rank], dir, { plan: planA, model: MODEL, rank, worldSize: world.length, jobId: 'interleaved' })));
      } finally {
        await Promise.all(world.map((w) => w.destroy()));
        await a.close();
      }
      const ck = latestCheckpoint(dir)!;
      expect(ck.manifest.step).toBe(3);
      const planB = interleavedPlan(4, 3, uniform(4, { tp: 2 }));
      const b = await runInProcess(planB, MODEL, { seed: SEED, lr: scheduleOf(refOptions), steps: 2, data: data() },
        async (rts) => { for (const rt of rts) await loadCheckpoint(rt, ck); });
      await b.close();
      [...a.losses, ...b.losses].forEach((l, i) => expect(Math.abs(l - losses[i]) / losses[i], `step ${i + 1}`).toBeLessThan(1e-4));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
