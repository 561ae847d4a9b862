// The runtime reaches tensors only through its Device: on the boxed test device (opaque tensors
// whose values only the device, its kernels and its communicators can see: testing/boxed-device.ts)
// every plan gives bit for bit the CPU device's losses, gradient norms, memory pool figures and
// final weights and moments — through DP, ZeRO 1-3, offload of every kind, TP with sequence
// parallelism, pipelines with tied embeddings, context parallelism and interleaved stages.
import { getModel, type ModelSpec, parsePlan, type Plan } from '@mist/core';
import type { ComputeDtype } from '../device/device';
import { describe, expect, it } from 'vitest';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';
import { localWorld, runInProcess } from '../launch/in-process';
import { worldSize } from '../topology';
import type { StepMetrics } from '../worker/protocol';
import { TokenSource } from './data';
import { type LocalState, RankRuntime } from './rank-runtime';
import { BoxedCommunicator, type BoxedCounts, boxedDevice } from './testing/boxed-device';

const SEQ = 16, BATCH = 8, STEPS = 3, SEED = 11;
const lr = (step: number): number => 2e-3 / step;
const data = (model: ModelSpec): TokenSource => new TokenSource('synthetic', SEED, model.vocab, BATCH, SEQ);

interface Outcome {
  metrics: StepMetrics[][];
  /** states[rank][chunk]. */
  states: LocalState[][];
}

async function exportAll(runtimes: ReadonlyArray<{ stages: readonly unknown[]; exportState(c: number): Promise<LocalState> }>): Promise<LocalState[][]> {
  const out: LocalState[][] = runtimes.map(() => []);
  const chunks = Math.max(...runtimes.map((r) => r.stages.length));
  for (let c = 0; c < chunks; c++) {
    const s = await Promise.all(runtimes.map((r) => r.exportState(c)));
    s.forEach((x, i) => out[i].push(x));
  }
  return out;
}

async function onCpu(plan: Plan, model: ModelSpec): Promise<Outcome> {
  const run = await runInProcess(plan, model, { seed: SEED, lr, steps: STEPS, data: data(model) });
  try {
    return { metrics: run.metrics, states: await exportAll(run.runtimes) };
  } finally {
    await run.close();
  }
}

async function onBoxes(plan: Plan, model: ModelSpec, counts: BoxedCounts, computeDtype: ComputeDtype): Promise<Outcome> {
  const world = await localWorld(worldSize(plan));
  const device = boxedDevice(counts, computeDtype);
  const comms = world.map((w) => new BoxedCommunicator(w));
  // The boxed device reads as 'cuda', whose runtime overlaps communication with compute by default;
  // compared here with the CPU device's order of calls (grad-overlap.test.ts checks the overlap).
  const runtimes = await Promise.all(comms.map((w, rank) => RankRuntime.create({ plan, model, rank, world: w, seed: SEED, lr, data: data(model), device, overlapComm: false })));
  try {
    const metrics: StepMetrics[][] = [];
    for (let s = 0; s < STEPS; s++) metrics.push(await Promise.all(runtimes.map((r) => r.step())));
    return { metrics, states: await exportAll(runtimes) };
  } finally {
    await Promise.all(runtimes.map((r) => r.destroy()));
    await Promise.all(comms.map((w) => w.destroy()));
  }
}

/** Index of the first element where two arrays differ bit for bit (NaN equal to NaN), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

async function expectSame(modelName: string, G: number, stages: StageSketch[], o: { virtualStages?: number; computeDtype?: ComputeDtype } = {}): Promise<void> {
  const { virtualStages, computeDtype = 'fp32' } = o;
  const model = getModel(modelName);
  const flat = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G }, stages);
  const plan = virtualStages ? parsePlan({ ...flat, virtualStages }, { model }) : flat;
  const counts: BoxedCounts = { reads: 0, writes: 0 };
  const cpu = await onCpu(plan, model);
  const boxed = await onBoxes(plan, model, counts, computeDtype);
  // The grad norm (and the loss where DP sums it) come back through device.read.
  expect(counts.reads).toBeGreaterThan(0);
  cpu.metrics.forEach((ranks, s) => ranks.forEach((m, r) => {
    const b = boxed.metrics[s][r];
    const at = `step ${s + 1} rank ${r}`;
    expect(b.loss, `${at} loss`).toBe(m.loss);
    expect(b.gradNorm, `${at} grad norm`).toBe(m.gradNorm);
    if (computeDtype === 'fp32') {
      expect(b.peakBytes, `${at} pool peaks`).toEqual(m.peakBytes);
    } else {
      // fp32 master weights beside m and v, split between device and host like them.
      const { optim, 'host.optim': hostOptim, total, 'host.total': hostTotal, ...rest } = b.peakBytes;
      const { optim: o0, 'host.optim': h0, total: t0, 'host.total': ht0, ...rest0 } = m.peakBytes;
      expect([optim, hostOptim], `${at} optimizer pool peaks`).toEqual([1.5 * o0, 1.5 * h0]);
      expect(rest, `${at} pool peaks`).toEqual(rest0);
      expect(total, `${at} device total`).toBeGreaterThan(t0);
      expect(hostTotal, `${at} host total`).toBeGreaterThanOrEqual(ht0);
    }
    expect(b.offloadBytes, `${at} offload traffic`).toEqual(m.offloadBytes);
  }));
  cpu.states.forEach((chunks, r) => chunks.forEach((st, c) => {
    for (const k of ['params', 'm', 'v'] as const) {
      const i = firstDifference(boxed.states[r][c][k], st[k]);
      expect(i, `rank ${r} chunk ${c} ${k}[${i}]: ${boxed.states[r][c][k][i]} vs ${st[k][i]}`).toBe(-1);
    }
  }));
}

describe('the runtime through an opaque device equals the CPU device bit for bit (gpt-tiny, 3 steps)', () => {
  it('dp=2 (flat all-reduce), a checkpointed layer', () => expectSame('gpt-tiny', 1, [{ layers: [0, 3], dp: 2, ckpt: 1 }]));
  it('dp=2 ZeRO-3 with weight, gradient, optimizer and activation offload', () =>
    expectSame('gpt-tiny', 2, [{ layers: [0, 3], dp: 2, zero: 3, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }]));
  it('ZeRO-2 with optimizer offload split differently from the gradients (copies both ways)', () =>
    expectSame('gpt-tiny', 1, [{ layers: [0, 3], dp: 2, zero: 2, offload: { grads: 0.25, optim: 0.75 } }]));
  it('pp=2 with tied embeddings, tp=2 with sequence parallelism, ZeRO-1', () =>
    expectSame('gpt-tiny', 2, [{ layers: [0, 1], tp: 2, sp: true, ckpt: 1 }, { layers: [2, 3], tp: 2, sp: true, dp: 2, zero: 1 }]));
  it('cp=2 changing to cp=4 across stages (packed route copies), ZeRO-1 in between', () =>
    expectSame('gpt-tiny', 2, [{ layers: [0, 0], cp: 2 }, { layers: [1, 2], dp: 2, zero: 1 }, { layers: [3, 3], cp: 4 }]));
  it('interleaved stages (virtualStages 2) on llama-tiny', () => expectSame('llama-tiny', 2, [{ layers: [0, 1] }, { layers: [2, 3] }], { virtualStages: 2 }));
});

// The boxed device with computeDtype bf16 stores everything in fp32, so the master-weight path
// (AdamW on fp32 masters, the result copied into the compute weights) must equal the fp32 run.
describe('mixed precision\'s master weights (bf16 path, emulated at fp32 storage) equal the fp32 run bit for bit', () => {
  it('dp=2 ZeRO-0, the master over whole units', () => expectSame('gpt-tiny', 1, [{ layers: [0, 3], dp: 2 }], { computeDtype: 'bf16' }));
  it('ZeRO-3 with every offload (master pieces on the host copied into host and device weights)', () =>
    expectSame('gpt-tiny', 2, [{ layers: [0, 3], dp: 2, zero: 3, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }], { computeDtype: 'bf16' }));
  it('ZeRO-2 with the optimizer offloaded more than the gradients, pp=2 tp=2 ZeRO-1', async () => {
    await expectSame('gpt-tiny', 1, [{ layers: [0, 3], dp: 2, zero: 2, offload: { grads: 0.25, optim: 0.75 } }], { computeDtype: 'bf16' });
    await expectSame('gpt-tiny', 2, [{ layers: [0, 1], tp: 2, zero: 1, dp: 2 }, { layers: [2, 3], tp: 2 }], { computeDtype: 'bf16' });
  });
});

// fp16 with dynamic loss scaling, emulated at fp32 storage: the loss gradient is scaled by 2^16 and the
// optimizer divides it out; a power-of-two scale commutes with every rounding of the backward (it is
// linear in the output gradient), so the run equals the fp32 one bit for bit.
describe('fp16\'s dynamic loss scaling (emulated at fp32 storage)', () => {
  it('equals the fp32 run bit for bit (dp=2 ZeRO-1, pp=2 tp=2)', async () => {
    await expectSame('gpt-tiny', 1, [{ layers: [0, 3], dp: 2, zero: 1 }], { computeDtype: 'fp16' });
    await expectSame('gpt-tiny', 2, [{ layers: [0, 1], tp: 2 }, { layers: [2, 3], tp: 2 }], { computeDtype: 'fp16' });
  });

  it('skips a step whose gradients overflow, on every rank, leaving the weights as they were', async () => {
    const model = getModel('gpt-tiny');
    const plan = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 1 }, [{ layers: [0, 3], dp: 2 }]);
    const world = await localWorld(2);
    const device = boxedDevice(undefined, 'fp16');
    const comms = world.map((w) => new BoxedCommunicator(w));
    const runtimes = await Promise.all(comms.map((w, rank) => RankRuntime.create({
      plan, model, rank, world: w, seed: SEED, lr, data: data(model), device, lossScaler: { initialScale: Infinity },
    })));
    try {
      const before = await exportAll(runtimes);
      const m = await Promise.all(runtimes.map((r) => r.step()));
      for (const x of m) {
        expect(x).toMatchObject({ skipped: true, lossScale: Infinity });
        expect(Number.isFinite(x.gradNorm)).toBe(false);
      }
      expect(Number.isFinite(m[0].loss)).toBe(true);
      const after = await exportAll(runtimes);
      after.forEach((chunks, r) => chunks.forEach((st, c) => expect(firstDifference(st.params, before[r][c].params)).toBe(-1)));
    } finally {
      await Promise.all(runtimes.map((r) => r.destroy()));
      await Promise.all(comms.map((w) => w.destroy()));
    }
  });
});
