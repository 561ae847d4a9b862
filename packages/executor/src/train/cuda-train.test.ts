// Training on the GPU (the CUDA device, fp32) against the CPU executor: the same model, seed, data
// and schedule give the same losses within 1e-3 relative at every step. Skipped, naming the reason,
// where the CUDA backend cannot run. MIST_CUDA_TRAIN_STEPS sets the steps (default 20; the device
// script runs 200) and MIST_CUDA_REPORT_TRAIN, when set, receives one JSON line per model with the
// largest difference and both throughputs.
import { appendFileSync } from 'node:fs';
import { getModel, type ModelSpec } from '@mist/core';
import { cudaProbe } from '@mist/native';
import { describe, expect, it } from 'vitest';
import { trainSingleProcess, type TrainResult } from './single-process';

const probe = cudaProbe();
const describeGpu = probe.available ? describe : describe.skip;
const STEPS = Number(process.env.MIST_CUDA_TRAIN_STEPS ?? 20);

async function compare(
  model: ModelSpec, extra: { ckptLayers?: number } = {}, computeDtype: 'fp32' | 'bf16' | 'fp16' = 'fp32',
): Promise<{ cpu: TrainResult; gpu: TrainResult; worst: number }> {
  const o = { model, steps: STEPS, seed: 7, globalBatch: 8, microBatch: 4, seq: 64, data: 'corpus' as const, ...extra };
  const cpu = await trainSingleProcess({ ...o, device: 'cpu' });
  const gpu = await trainSingleProcess({ ...o, device: 'cuda', computeDtype });
  let worst = 0;
  cpu.steps.forEach((s, i) => {
    worst = Math.max(worst, Math.abs(gpu.steps[i].loss - s.loss) / s.loss);
  });
  const file = process.env.MIST_CUDA_REPORT_TRAIN;
  if (file) {
    appendFileSync(file, JSON.stringify({
      model: model.name, steps: STEPS, computeDtype, ...extra, maxRelLossDiff: worst, cpuTokensPerS: cpu.tokensPerS, gpuTokensPerS: gpu.tokensPerS,
      firstLoss: cpu.steps[0].loss, lastLoss: { cpu: cpu.steps[STEPS - 1].loss, gpu: gpu.steps[STEPS - 1].loss },
    }) + '\n');
  }
  return { cpu, gpu, worst };
}

describeGpu(`training on the GPU gives the CPU executor's losses (fp32)${probe.available ? '' : ` (skipped: ${probe.reason})`}`, () => {
  it('gpt-tiny (learned positions, GELU, LayerNorm, tied embeddings), with dropout 0.1', async () => {
    const { gpu, worst } = await compare({ ...getModel('gpt-tiny'), dropout: 0.1 });
    expect(gpu.device).toBe('cuda');
    expect(worst).toBeLessThan(1e-3);
  }, 600_000);

  it('llama-tiny (RoPE, GQA, SwiGLU, RMSNorm) with two checkpointed layers', async () => {
    const { worst } = await compare(getModel('llama-tiny'), { ckptLayers: 2 });
    expect(worst).toBeLessThan(1e-3);
  }, 600_000);

  // Mixed precision: bf16 (fp16 with dynamic loss scaling) activations, weights' compute copies and
  // gradients, fp32 master weights and moments; within 2% of the fp32 CPU losses.
  it.each(['bf16', 'fp16'] as const)('gpt-tiny in %s with fp32 master weights', async (dtype) => {
    const { gpu, worst } = await compare(getModel('gpt-tiny'), {}, dtype);
    expect(gpu.computeDtype).toBe(dtype);
    expect(worst).toBeLessThan(0.02);
  }, 600_000);
});
