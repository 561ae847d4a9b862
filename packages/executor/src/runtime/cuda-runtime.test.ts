// The distributed runtime on the GPU: one rank (a one-GPU NCCL world) runs a plan on the CUDA
// device and gives the CPU device's losses and gradient norms within 1e-3 relative (fp32), or
// within bf16's rounding (bf16 compute with fp32 master weights) — with offload of weights,
// gradients, optimizer state and activations moving data between the GPU and host pools. Skipped,
// naming the reason, where the CUDA backend or NCCL cannot run.
import { getModel, type ModelSpec, type Plan } from '@mist/core';
import { backends, type CudaTensor, type Communicator, createCommunicator, cudaProbe, ncclGetUniqueId } from '@mist/native';
import { describe, expect, it } from 'vitest';
import { cudaDevice } from '../device/cuda-device';
import type { ComputeDtype } from '../device/device';
import { singleHostPlan, type StageSketch } from '../launch/single-host-plan';
import { runInProcess } from '../launch/in-process';
import { TokenSource } from './data';
import { RankRuntime } from './rank-runtime';

const probe = cudaProbe();
const nccl = backends().find((b) => b.name === 'nccl');
const reason = !probe.available ? probe.reason : !nccl?.available ? `NCCL: ${nccl?.reason ?? 'not built'}` : null;
const describeGpu = reason === null ? describe : describe.skip;

const SEQ = 32, BATCH = 8, STEPS = 4, SEED = 5;
const lr = (step: number): number => 3e-3 / step;
const data = (model: ModelSpec): TokenSource => new TokenSource('synthetic', SEED, model.vocab, BATCH, SEQ);

async function onGpu(plan: Plan, model: ModelSpec, computeDtype: ComputeDtype): Promise<Array<{ loss: number; gradNorm: number }>> {
  const world = await createCommunicator({ backend: 'nccl', rank: 0, worldSize: 1, uniqueId: ncclGetUniqueId() }) as Communicator<CudaTensor>;
  const rt = await RankRuntime.create({ plan, model, rank: 0, world, seed: SEED, lr, data: data(model), device: cudaDevice(computeDtype) });
  try {
    const out: Array<{ loss: number; gradNorm: number }> = [];
    for (let s = 0; s < STEPS; s++) {
      const m = await rt.step();
      out.push({ loss: m.loss as number, gradNorm: m.gradNorm as number });
    }
    return out;
  } finally {
    await rt.destroy();
    await world.destroy();
  }
}

async function compare(modelName: string, G: number, sketch: StageSketch, computeDtype: ComputeDtype, tol: number): Promise<void> {
  const model = getModel(modelName);
  const plan = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G }, [sketch]);
  const cpu = await runInProcess(plan, model, { seed: SEED, lr, steps: STEPS, data: data(model) });
  await cpu.close();
  const gpu = await onGpu(plan, model, computeDtype);
  cpu.metrics.forEach(([m], i) => {
    const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
    expect(rel(gpu[i].loss, m.loss as number), `step ${i + 1} loss ${gpu[i].loss} vs ${m.loss}`).toBeLessThan(tol);
    expect(rel(gpu[i].gradNorm, m.gradNorm as number), `step ${i + 1} grad norm ${gpu[i].gradNorm} vs ${m.gradNorm}`).toBeLessThan(10 * tol);
  });
}

const ALL_OFFLOAD = { weights: 0.5, grads: 0.5, optim: 0.5, activations: 0.5 };

describeGpu(`the runtime on one GPU gives the CPU device's losses${reason === null ? '' : ` (skipped: ${reason})`}`, () => {
  it('gpt-tiny fp32, two micro-batches, a checkpointed layer', () => compare('gpt-tiny', 2, { layers: [0, 3], ckpt: 1 }, 'fp32', 1e-3));
  it('gpt-tiny fp32 with half of every kind of state offloaded to the host', () => compare('gpt-tiny', 2, { layers: [0, 3], offload: ALL_OFFLOAD }, 'fp32', 1e-3));
  it('llama-tiny bf16 with fp32 master weights, offload included', () => compare('llama-tiny', 2, { layers: [0, 3], offload: ALL_OFFLOAD }, 'bf16', 3e-2));
});
