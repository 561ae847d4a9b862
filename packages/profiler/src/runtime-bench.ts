// The executor's host cost per module pass: what a training step spends besides its kernels and
// their launches (handing each layer's kernel batch to the kernel thread and back, the JavaScript
// around it, garbage collection). The kernel microbenchmarks cannot see it, so the profiler runs
// the executor itself: a few training steps of a probe model on one rank, with the kernel trace on,
//   overhead per step = step time - time waiting on communication - kernel time - kernels x launch
//   per pass = median over steps / passes,  passes = G x 2 x (layers + embedding + head) + 1 (optimizer)
// (one batch per layer forward and backward, per embedding and head pass, one for the optimizer:
// rank-runtime.ts, model/flow.ts). The probe is llama-tiny, not a model the analyzer is checked on.
import { getModel, NO_OFFLOAD, parsePlan } from '@mist/core';
import { runInProcess, TokenSource } from '@mist/executor';
import { startKernelTrace, stopKernelTrace } from '@mist/native';
import type { ProgressCounter } from './progress';
import { median } from './timing';

export const PASS_PROBE = { model: 'llama-tiny', seq: 64, microBatch: 4, gradAccumSteps: 4 } as const;

export interface PassOverhead {
  /** Seconds per module pass (the profile's compute.modulePassOverhead). */
  seconds: number;
  passesPerStep: number;
  /** Median step time and kernel time of the measured steps, seconds. */
  stepSeconds: number;
  kernelSeconds: number;
  kernelsPerStep: number;
  steps: number;
}

export async function measurePassOverhead(o: { warmupSteps: number; steps: number; kernelLaunch: number }, progress?: ProgressCounter): Promise<PassOverhead> {
  const model = getModel(PASS_PROBE.model);
  const { seq, microBatch: b, gradAccumSteps: G } = PASS_PROBE;
  const globalBatch = b * G;
  const plan = parsePlan({
    version: 1, model: model.name, seqLen: seq, globalBatch, gradAccumSteps: G,
    stages: [{
      layers: [0, model.layers - 1], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: b, dp: 1, tp: 1,
      sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD,
    }],
  }, { model });
  const data = new TokenSource('synthetic', 1, model.vocab, globalBatch, seq);
  const run = await runInProcess(plan, model, { seed: 1, lr: () => 1e-4, steps: o.warmupSteps, data });
  try {
    const rank = run.runtimes[0];
    const overheads: number[] = [], steps: number[] = [], kernelTimes: number[] = [], kernelCounts: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      startKernelTrace();
      const m = await rank.step();
      const trace = stopKernelTrace().filter((e) => e.op !== '(batch)');
      const kernelS = trace.reduce((s, e) => s + e.seconds, 0);
      const kernels = trace.reduce((s, e) => s + e.calls, 0);
      overheads.push(m.stepTimeS - m.waitS - kernelS - kernels * o.kernelLaunch);
      steps.push(m.stepTimeS);
      kernelTimes.push(kernelS);
      kernelCounts.push(kernels);
      progress?.tick(`executor pass overhead (step ${i + 1}/${o.steps})`);
    }
    const passesPerStep = G * 2 * (model.layers + 2) + 1;
    return {
      seconds: Math.max(0, median(overheads)) / passesPerStep, passesPerStep,
      stepSeconds: median(steps), kernelSeconds: median(kernelTimes), kernelsPerStep: median(kernelCounts), steps: o.steps,
    };
  } finally {
    await run.close();
  }
}
