// Predictions held against the GPU: GPT-3 350M (24 layers, hidden 1024, 16 heads, seq 2048) trains
// in one process on the CUDA device (bf16 with fp32 master weights) under four plans (micro-batch 1
// and 4, activation checkpointing off and on) and under the plan the tuner picks for one H200; the
// measured peak memory and step time are compared with the analyzer's estimate of the same plan,
// the measured order of the four with the predicted order, and the tuned plan's MFU with the 40%
// target. Needs a GPU and MIST_GPU_PLAN_CHECK=1 (it trains for minutes): tools/device/cuda-checks.sh
// sets it. MIST_CUDA_PROFILE may name a measured profile (mist profile --device cuda) to predict
// with; else the built-in datasheet profile of 1x1-h200. MIST_CUDA_REPORT_PLANS receives one JSON
// line per plan.
import { appendFileSync, readFileSync } from 'node:fs';
import { contextFor, estimatePlan } from '@mist/analyzer';
import { getModel, parseHardwareProfile, parsePlan, type Plan } from '@mist/core';
import { singleHostPlan, trainSingleProcess } from '@mist/executor';
import { cudaProbe } from '@mist/native';
import { mistSpace, tune } from '@mist/tuner';
import { describe, expect, it } from 'vitest';

const probe = cudaProbe();
const enabled = probe.available && process.env.MIST_GPU_PLAN_CHECK === '1';
const why = !probe.available ? `no GPU: ${probe.reason}` : 'set MIST_GPU_PLAN_CHECK=1 to run it (minutes of GPU time)';
const describeGpu = enabled ? describe : describe.skip;

const MODEL = getModel('gpt3-350m');
const SEQ = 2048, GLOBAL_BATCH = 16, STEPS = 6, WARMUP_STEPS = 2;
// H100/H200 SXM dense bf16 tensor-core peak, 989.4 TFLOP/s (NVIDIA H100 datasheet; the H200 has the same GH100 compute).
const PEAK_FLOPS = 989.4e12;

function context(): ReturnType<typeof contextFor> {
  const training = { globalBatch: GLOBAL_BATCH, seqLen: SEQ, paramDtype: 'bf16' as const, computeDtype: 'bf16' as const, flashAttention: true };
  const file = process.env.MIST_CUDA_PROFILE;
  return file
    ? contextFor({ model: MODEL, profile: parseHardwareProfile(JSON.parse(readFileSync(file, 'utf8'))), training })
    : contextFor({ model: MODEL, cluster: '1x1-h200', training });
}

interface Measured {
  label: string;
  microBatch: number;
  ckptLayers: number;
  stepS: number;
  predictedStepS: number;
  peakAllocated: number;
  predictedAllocated: number;
  mfu: number;
}

async function measure(label: string, plan: Plan): Promise<Measured> {
  const ctx = context();
  const parsed = parsePlan(plan, { model: MODEL });
  const est = estimatePlan(parsed, ctx);
  const stage = parsed.stages[0];
  if (parsed.stages.length !== 1 || stage.dp !== 1 || stage.tp !== 1) throw new Error(`${label}: one process runs one stage on one GPU`);
  (globalThis as { gc?: () => void }).gc?.(); // earlier runs' tensors go back to the allocator first
  const run = await trainSingleProcess({
    model: MODEL, steps: STEPS, globalBatch: GLOBAL_BATCH, microBatch: stage.microBatchSize, seq: SEQ, data: 'synthetic',
    device: 'cuda', computeDtype: 'bf16', ckptLayers: stage.ckptLayers, warmupSteps: 1,
  });
  const times = run.steps.slice(WARMUP_STEPS).map((s) => s.seconds).sort((a, b) => a - b);
  const stepS = times[Math.floor(times.length / 2)];
  const m: Measured = {
    label, microBatch: stage.microBatchSize, ckptLayers: stage.ckptLayers, stepS, predictedStepS: est.iterationTimeS,
    peakAllocated: run.memory?.peakAllocated ?? Number.NaN, predictedAllocated: est.stages[0].deviceMemory.allocatedBytes,
    mfu: est.modelFlopsPerIteration / (stepS * PEAK_FLOPS),
  };
  const file = process.env.MIST_CUDA_REPORT_PLANS;
  if (file) appendFileSync(file, JSON.stringify({ ...m, timeErr: stepS / m.predictedStepS - 1, memErr: m.peakAllocated / m.predictedAllocated - 1 }) + '\n');
  return m;
}

describeGpu(`GPT-3 350M on one GPU against the analyzer${enabled ? '' : ` (skipped: ${why})`}`, () => {
  it('four plans: peak memory within 5%, step time within 10%, and the predicted order is the measured one', async () => {
    const results: Measured[] = [];
    for (const mb of [1, 4]) {
      for (const ckpt of [0, MODEL.layers]) {
        const plan = singleHostPlan(MODEL, { seq: SEQ, globalBatch: GLOBAL_BATCH, G: GLOBAL_BATCH / mb }, [{ layers: [0, MODEL.layers - 1], ckpt }]);
        results.push(await measure(`mb${mb} ckpt${ckpt}`, { ...plan, cluster: '1x1-h200' }));
      }
    }
    for (const r of results) {
      expect(Math.abs(r.peakAllocated / r.predictedAllocated - 1), `${r.label} memory`).toBeLessThan(0.05);
      expect(Math.abs(r.stepS / r.predictedStepS - 1), `${r.label} time`).toBeLessThan(0.1);
    }
    const order = (key: 'stepS' | 'predictedStepS'): string[] => [...results].sort((a, b) => a[key] - b[key]).map((r) => r.label);
    expect(order('stepS')).toEqual(order('predictedStepS'));
  }, 1_200_000);

  it('the plan the tuner picks for one H200 trains at >= 40% MFU', async () => {
    // The single-process trainer does not offload: the space is the tuner's without offloading.
    const res = await tune(context(), { space: mistSpace({ offload: { weights: [0], grads: [0], optim: [0], activations: [0] }, maxTp: 1 }), clusterName: '1x1-h200' });
    expect(res.plan, 'the tuner found a plan').not.toBeNull();
    const m = await measure('tuned', res.plan as Plan);
    expect(m.mfu).toBeGreaterThanOrEqual(0.4);
  }, 1_200_000);
});
