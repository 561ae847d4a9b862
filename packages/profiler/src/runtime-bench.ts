// The executor's host cost per module pass: what a training step spends besides its kernels and
// their launches (handing each layer's kernel batch to the kernel thread and back, the JavaScript
// around it, garbage collection). The kernel microbenchmarks cannot see it, so the profiler runs
// the executor itself: a few training steps of a probe model on one rank, with the kernel trace on,
//   overhead per step = step time - time waiting on communication - kernel time - kernels x launch
//   per pass = median over steps / passes,  passes = G x 2 x (layers + embedding + head) + 1 (optimizer)
// (one batch per layer forward and backward, per embedding and head pass, one for the optimizer:
// rank-runtime.ts, model/flow.ts). The probe is llama-tiny, not a model the analyzer is checked on.
// It runs in fresh worker processes (the profiler's own heap would slow its collections), on one
// device with the others idle, then on every device at once (all busy).
import { getModel } from '@mist/core';
import { runInProcess, singleHostPlan, TokenSource } from '@mist/executor';
import { startKernelTrace, stopKernelTrace } from '@mist/native';
import { CollectiveCluster } from './collective-cluster';
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
  /** Each measured step's time less the median step time, seconds (the step-to-step noise). */
  stepDeviations: number[];
}

/** The probe in this process (a worker's passProbe request). */
export async function measurePassOverhead(o: { warmupSteps: number; steps: number; kernelLaunch: number }): Promise<PassOverhead> {
  const model = getModel(PASS_PROBE.model);
  const { seq, microBatch: b, gradAccumSteps: G } = PASS_PROBE;
  const globalBatch = b * G;
  const plan = singleHostPlan(model, { seq, globalBatch, G }, [{ layers: [0, model.layers - 1] }]);
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
    }
    const passesPerStep = G * 2 * (model.layers + 2) + 1;
    return {
      seconds: Math.max(0, median(overheads)) / passesPerStep, passesPerStep,
      stepDeviations: steps.map((t) => t - median(steps)),
      stepSeconds: median(steps), kernelSeconds: median(kernelTimes), kernelsPerStep: median(kernelCounts), steps: o.steps,
    };
  } finally {
    await run.close();
  }
}

export interface PassOverheads {
  /** One device computing, the others idle (median over rounds). */
  alone: PassOverhead;
  /** Every device computing at once; absent on a host of one device. */
  allBusy?: {
    /** Kernel time of the slowest device (median over rounds) / the kernel time of one device alone. */
    kernelSlowdown: number;
    /** Median over devices and rounds of their seconds per module pass. */
    modulePassOverhead: number;
    devices: PassOverhead[];
  };
}

function medianOf(results: readonly PassOverhead[]): PassOverhead {
  return {
    seconds: median(results.map((r) => r.seconds)), passesPerStep: results[0].passesPerStep,
    stepSeconds: median(results.map((r) => r.stepSeconds)), kernelSeconds: median(results.map((r) => r.kernelSeconds)),
    kernelsPerStep: median(results.map((r) => r.kernelsPerStep)), steps: results.reduce((n, r) => n + r.steps, 0),
    stepDeviations: results.flatMap((r) => r.stepDeviations),
  };
}

/**
 * The probe in fresh worker processes, one per device, in `rounds` rounds of: device 0 alone, then
 * every device at once. Alternating the two spreads a slow spell of a shared machine over both.
 */
export async function measurePassOverheads(
  devices: number, threads: number, o: { warmupSteps: number; steps: number; kernelLaunch: number; rounds: number }, progress?: ProgressCounter,
): Promise<PassOverheads> {
  const cluster = await CollectiveCluster.start(devices, threads);
  const req = { cmd: 'passProbe' as const, warmupSteps: o.warmupSteps, steps: o.steps, kernelLaunch: o.kernelLaunch };
  try {
    const alone: PassOverhead[] = [], busy: PassOverhead[] = [];
    for (let r = 0; r < o.rounds; r++) {
      alone.push(await cluster.one<PassOverhead>(0, req));
      progress?.tick(`executor pass overhead, one device (round ${r + 1}/${o.rounds})`);
      if (devices > 1) busy.push(...(await cluster.all<PassOverhead>(req)));
      progress?.tick(`executor pass overhead, ${devices} devices at once (round ${r + 1}/${o.rounds})`);
    }
    const a = medianOf(alone);
    if (busy.length === 0) return { alone: a };
    // Kernels: the slowest device (median over its rounds), since ranks that synchronize every step
    // wait for it; the cores of a virtual machine can differ by 10-20% for minutes. The module pass
    // overhead is a residual, noisy per run: the typical device. That a step waits for the slowest
    // rank's transient noise is the analyzer's stepJitter, from these runs' step deviations.
    const perDevice = Array.from({ length: devices }, (_, d) => median(busy.filter((_, i) => i % devices === d).map((x) => x.kernelSeconds)));
    return {
      alone: a,
      allBusy: {
        kernelSlowdown: Math.max(1, Math.max(...perDevice) / a.kernelSeconds),
        modulePassOverhead: median(busy.map((x) => x.seconds)),
        devices: busy,
      },
    };
  } finally {
    await cluster.stop();
  }
}
