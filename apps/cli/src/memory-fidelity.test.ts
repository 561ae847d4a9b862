// The check: the executor's measured peak bytes per pool (its own allocator accounting,
// CPU backend, fp32) against the analyzer's prediction for the same plan with fp32 settings
// (paramDtype = computeDtype = fp32: 4 + 4 + 8 bytes of model state per parameter), pool by pool:
// weights, grads, optim, activations on the device and the host bytes of offloaded state.
// The "device" is a pseudo GPU standing for the CPU with plenty of memory; only memory is compared.
import { builtinHardwareProfile, getModel, GiB, type ModelSpec, parseClusterSpec, type TrainingSpec } from '@mist/core';
import { estimatePlan } from '@mist/analyzer';
import { runInProcess, singleHostPlan, type StageSketch, TokenSource } from '@mist/executor';
import { afterAll, describe, expect, it } from 'vitest';

const SEQ = 16, BATCH = 8;

const cpuCluster = parseClusterSpec({
  name: 'cpu-local', nodes: 1, gpusPerNode: 8,
  gpu: {
    name: 'cpu', memoryBytes: 64 * GiB, peakFlops: { fp16: 1e11, bf16: 1e11, fp32: 1e11 }, memoryBandwidth: 2e10,
    nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: 1e10,
  },
  intraNode: { bandwidth: 1e9, latency: 2e-5 }, interNode: { bandwidth: 1e9, latency: 2e-5 }, hostMemoryPerNode: 64 * GiB,
});
const profile = builtinHardwareProfile(cpuCluster, 'fp32');
// The executor's CPU kernels: fp32 everywhere, an attention kernel that keeps only the log-sum-exp
// (flash-attention style, its dropout mask drawn again in backward); residual and embedding
// dropout keep 1-byte masks when the model has dropout.
const training: TrainingSpec = { globalBatch: BATCH, seqLen: SEQ, paramDtype: 'fp32', computeDtype: 'fp32', optimizer: 'adamw', flashAttention: true, flashAttentionKernel: 'flash2', fp8: 'none', fp8ParamGather: false, tpCommOverlap: false, tpBackwardOverlap: false, paramGatherOverlap: false, crossEntropy: 'fused', elementwise: 'fused', sequenceParallelInput: 'sharded', gradAccumDtype: 'param', gradReduceOverlap: true };

const POOLS = ['weights', 'grads', 'optim', 'activations', 'host'] as const;
type Pool = (typeof POOLS)[number];

interface Row {
  plan: string;
  stage: number;
  pool: Pool;
  measured: number;
  predicted: number;
}

const rows: Row[] = [];

async function compare(label: string, modelName: string | ModelSpec, G: number, stages: StageSketch[], flashAttention = true): Promise<Row[]> {
  const model = typeof modelName === 'string' ? getModel(modelName) : modelName;
  const p = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G, ...(flashAttention ? {} : { flashAttention }) }, stages);
  const est = estimatePlan(p, { model, training: { ...training, flashAttention }, profile });
  const run = await runInProcess(p, model, { seed: 3, lr: () => 1e-3, steps: 2, data: new TokenSource('synthetic', 3, model.vocab, BATCH, SEQ) });
  await run.close();
  const out: Row[] = [];
  p.stages.forEach((_, i) => {
    // The stage's first rank (DP 0, TP 0), second step (steady state).
    const r = run.runtimes.findIndex((rt) => rt.pos.stage === i && rt.pos.dpIndex === 0 && rt.pos.tpIndex === 0);
    const m = run.metrics[1][r].peakBytes;
    const e = est.stages[i];
    const measured: Record<Pool, number> = {
      weights: m.weights, grads: m.grads, optim: m.optim, activations: m.activations,
      host: m['host.weights'] + m['host.grads'] + m['host.optim'] + m['host.activations'],
    };
    const predicted: Record<Pool, number> = {
      weights: e.memory.weights, grads: e.memory.grads, optim: e.memory.optim, activations: e.memory.activations, host: e.hostMemoryBytes,
    };
    for (const pool of POOLS) out.push({ plan: label, stage: i, pool, measured: measured[pool], predicted: predicted[pool] });
  });
  rows.push(...out);
  return out;
}

function expectClose(rs: Row[]): void {
  expect(rs.length).toBeGreaterThan(0);
  for (const r of rs) {
    const what = `${r.plan} stage ${r.stage} ${r.pool}: measured ${r.measured} B, predicted ${r.predicted} B`;
    if (r.predicted === 0) expect(r.measured, what).toBe(0);
    else expect(Math.abs(r.measured - r.predicted) / r.predicted, what).toBeLessThan(0.1);
  }
}

describe('measured peak memory per pool is within 10% of the analyzer (CPU backend, fp32)', () => {
  it('gpt-tiny, pp=1 dp=2, ZeRO 0 and 1', async () => {
    expectClose(await compare('dp2 z0', 'gpt-tiny', 1, [{ layers: [0, 3], dp: 2 }]));
    expectClose(await compare('dp2 z1 G2', 'gpt-tiny', 2, [{ layers: [0, 3], dp: 2, zero: 1 }]));
  });
  it('gpt-tiny, ZeRO 2 and 3, checkpointing, offload', async () => {
    expectClose(await compare('dp2 z2 ckpt2', 'gpt-tiny', 1, [{ layers: [0, 3], dp: 2, zero: 2, ckpt: 2 }]));
    expectClose(await compare('dp2 z3 off.5', 'gpt-tiny', 2, [{ layers: [0, 3], dp: 2, zero: 3, offload: { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 } }]));
  });
  it('gpt-tiny, pp=2 (1F1B keeps 2 micro-batches on stage 0), tp=2 vocab-parallel', async () => {
    expectClose(await compare('pp2 G4 tp2', 'gpt-tiny', 4, [{ layers: [0, 1], tp: 2, ckpt: 1 }, { layers: [2, 3], tp: 2, zero: 1, offload: { optim: 1 } }]));
  });
  it('sequence parallelism (tp=2): the norm, dropout and residual regions hold b*s/t tokens per rank', async () => {
    expectClose(await compare('tp2 sp', 'gpt-tiny', 2, [{ layers: [0, 3], tp: 2, sp: true }]));
    expectClose(await compare('llama pp2 sp', 'llama-tiny', 4, [{ layers: [0, 1], tp: 2, sp: true, ckpt: 1 }, { layers: [2, 3], tp: 2, sp: true, dp: 2, zero: 1 }]));
  });
  it('dropout 0.1: 1-byte masks of the embedding and the residual branches, with and without sequence parallelism', async () => {
    const gptDrop: ModelSpec = { ...getModel('gpt-tiny'), name: 'gpt-tiny-dropout', dropout: 0.1 };
    expectClose(await compare('drop dp2', gptDrop, 2, [{ layers: [0, 3], dp: 2 }]));
    expectClose(await compare('drop pp2 tp2 sp', gptDrop, 4, [{ layers: [0, 1], tp: 2, sp: true, ckpt: 1 }, { layers: [2, 3], tp: 2, sp: true }]));
  });
  it('llama-tiny, pp=2 dp=2 ZeRO-3 with activation offload', async () => {
    expectClose(await compare('llama pp2 z3', 'llama-tiny', 4, [{ layers: [0, 1], dp: 2, zero: 3 }, { layers: [2, 3], dp: 2, zero: 2, offload: { activations: 0.5 } }]));
  });
  it('context parallelism (cp=2): each rank keeps the activations of its b*s/cp tokens, ZeRO shards over dp*cp', async () => {
    expectClose(await compare('cp2 dp2 z1', 'gpt-tiny', 2, [{ layers: [0, 3], cp: 2, dp: 2, zero: 1 }]));
    expectClose(await compare('llama cp2 pp2', 'llama-tiny', 4, [{ layers: [0, 1], cp: 2, tp: 2, ckpt: 1 }, { layers: [2, 3], cp: 2, zero: 3 }]));
  });
  it('unfused attention (flashAttention false): the s x s probabilities (and their dropout mask), dropped by selective recompute', async () => {
    const gptDrop: ModelSpec = { ...getModel('gpt-tiny'), name: 'gpt-tiny-dropout', dropout: 0.1 };
    expectClose(await compare('nofa dp2', 'gpt-tiny', 2, [{ layers: [0, 3], dp: 2 }], false));
    expectClose(await compare('nofa sel dp2', 'gpt-tiny', 2, [{ layers: [0, 3], dp: 2, selectiveRecompute: true }], false));
    expectClose(await compare('nofa drop pp2', gptDrop, 4, [{ layers: [0, 1], tp: 2, ckpt: 1, selectiveRecompute: true }, { layers: [2, 3], tp: 2, sp: true }], false));
  });
  afterAll(() => {
    const fmt = (n: number): string => (n / 1024).toFixed(1).padStart(9);
    const lines = ['plan            stage pool         measured KiB predicted KiB   diff'];
    for (const r of rows) {
      const diff = r.predicted === 0 ? (r.measured === 0 ? '0.0%' : 'n/a') : `${(((r.measured - r.predicted) / r.predicted) * 100).toFixed(1)}%`;
      lines.push(`${r.plan.padEnd(15)} ${String(r.stage).padStart(5)} ${r.pool.padEnd(12)} ${fmt(r.measured)}    ${fmt(r.predicted)}  ${diff.padStart(6)}`);
    }
    console.log(lines.join('\n'));
  });
});
