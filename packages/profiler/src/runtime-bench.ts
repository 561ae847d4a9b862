// The executor's host cost per module pass: what a training step spends besides its kernels and
// their launches (handing each layer's kernel batch to the kernel thread and back, the JavaScript
// around it, garbage collection). The kernel microbenchmarks cannot see it, so the profiler runs
// the executor itself (launchLocal: one worker process per device, as a user's job runs) on a
// probe model, with the kernel trace on; per rank,
//   overhead per step = step time - time waiting on communication - kernel time - kernels x launch
//   per pass = median over steps / passes,  passes = G x 2 x (its layers + embedding + head) + 1
// (one batch per layer forward and backward, per embedding and head pass, one for the optimizer:
// rank-runtime.ts, model/flow.ts). The probe is llama-tiny, not a model the analyzer is checked on.
// Three layouts: one device alone; every device in data parallel; every device a pipeline stage.
// Ranks that synchronize idle while they wait, and a pipeline stage waits inside its step: on a
// 2-core VM a pass cost the host about 0.14 ms alone, 0.16 ms in data parallel and 0.27 ms as a
// pipeline stage (`mist profile --quick`, after the warm-up).
import { getModel, parseTrainingSpec } from '@mist/core';
import { launchLocal, singleHostPlan } from '@mist/executor';
import type { ProgressCounter } from './progress';
import { median } from './timing';

export const PASS_PROBE = { model: 'llama-tiny', seq: 64, microBatch: 4, gradAccumSteps: 4 } as const;

export type ProbeLayout = 'alone' | 'dataParallel' | 'pipeline';

export interface PassOverhead {
  /** Seconds per module pass. */
  seconds: number;
  passesPerStep: number;
  /** Median step time (less the waits) and kernel time of the measured steps, seconds. */
  stepSeconds: number;
  kernelSeconds: number;
  kernelsPerStep: number;
  steps: number;
  /** Each measured step's time less the waits, seconds. */
  stepCompute: number[];
}

export interface ProbeOptions {
  warmupSteps: number;
  steps: number;
  /** Seconds per kernel launch (the profile's compute.kernelLaunch), not counted as pass overhead. */
  kernelLaunch: number;
  /** Kernel threads per device. */
  threads: number;
}

/** Layers [first, last] of stage i when `layers` are split evenly over `stages`. */
function stageLayers(layers: number, stages: number, i: number): [number, number] {
  return [Math.floor((i * layers) / stages), Math.floor(((i + 1) * layers) / stages) - 1];
}

/** Runs the probe on `devices` devices in one layout; per rank, in rank order, its host cost per module pass. */
export async function runPassProbe(layout: ProbeLayout, devices: number, o: ProbeOptions): Promise<PassOverhead[]> {
  const model = getModel(PASS_PROBE.model);
  const { seq, microBatch: b, gradAccumSteps: G } = PASS_PROBE;
  const pp = layout === 'pipeline' ? devices : 1;
  const dp = layout === 'dataParallel' ? devices : 1;
  if (layout === 'alone' && devices !== 1) throw new RangeError(`the 'alone' probe runs on one device, got ${devices}`);
  if (pp > model.layers) throw new RangeError(`a pipeline probe of ${pp} stages needs as many layers; ${model.name} has ${model.layers}`);
  const globalBatch = b * G * dp;
  const stages = Array.from({ length: pp }, (_, i) => stageLayers(model.layers, pp, i));
  const plan = singleHostPlan(model, { seq, globalBatch, G }, stages.map((layers) => ({ layers, dp })));
  const training = parseTrainingSpec({ globalBatch, seqLen: seq, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: true });
  const run = await launchLocal({
    plan, model, training, kernelThreads: o.threads,
    run: { steps: o.warmupSteps + o.steps, seed: 1, lr: 1e-4, data: 'synthetic', traceKernels: true },
  });
  const kept = run.steps.slice(o.warmupSteps);
  return Array.from({ length: pp * dp }, (_, rank) => {
    const stage = Math.floor(rank / dp);
    const [first, last] = stages[stage];
    const passesPerStep = G * 2 * (last - first + 1 + (stage === 0 ? 1 : 0) + (stage === pp - 1 ? 1 : 0)) + 1;
    const m = kept.map((s) => s.ranks[rank]);
    const busy = m.map((x) => x.stepTimeS - x.waitS);
    const kernels = m.map((x) => x.kernels?.seconds ?? NaN);
    const calls = m.map((x) => x.kernels?.calls ?? NaN);
    const overheads = m.map((_, i) => busy[i] - kernels[i] - calls[i] * o.kernelLaunch);
    if (overheads.some((x) => !Number.isFinite(x))) throw new Error('the executor probe reported no kernel trace');
    return {
      seconds: Math.max(0, median(overheads)) / passesPerStep, passesPerStep,
      stepSeconds: median(busy), kernelSeconds: median(kernels), kernelsPerStep: median(calls), steps: kept.length, stepCompute: busy,
    };
  });
}

export interface PassOverheads {
  /** One device computing, the others idle (median over rounds). */
  alone: PassOverhead;
  /** Every device at once; absent on a host of one device. */
  allBusy?: {
    /** The slowest device in data parallel (the longest median step less waits). */
    slowestDevice: number;
    /** Its kernel time (median over rounds) / the kernel time of one device alone. */
    kernelSlowdown: number;
    /** Its seconds per module pass (median over rounds), in data parallel. */
    modulePassOverhead: number;
    /** The same as a pipeline stage (one stage per device). */
    pipelineModulePassOverhead: number;
    /** Per data-parallel step and rank, what the rank's step time did not share with the others (idiosyncraticNoise). */
    stepNoise: number[];
    dataParallel: PassOverhead[];
    pipeline: PassOverhead[];
  };
}

function medianOf(results: readonly PassOverhead[]): PassOverhead {
  return {
    seconds: median(results.map((r) => r.seconds)), passesPerStep: results[0].passesPerStep,
    stepSeconds: median(results.map((r) => r.stepSeconds)), kernelSeconds: median(results.map((r) => r.kernelSeconds)),
    kernelsPerStep: median(results.map((r) => r.kernelsPerStep)), steps: results.reduce((n, r) => n + r.steps, 0),
    stepCompute: results.flatMap((r) => r.stepCompute),
  };
}

/**
 * The part of each rank's step-to-step noise that the other ranks did not share: per step, the
 * rank's time less the mean of all ranks' in that step, less the median of that over steps. The
 * ranks of one job slow down together much of the time (the host's other tenants, garbage
 * collections at the same steps: their step times correlated 0.66-0.94 in data parallel on a 2-core
 * VM), and only what they do not share makes a step wait for a straggler.
 */
export function idiosyncraticNoise(perRank: readonly (readonly number[])[]): number[] {
  const steps = Math.min(...perRank.map((r) => r.length));
  const mean = Array.from({ length: steps }, (_, s) => perRank.reduce((sum, r) => sum + r[s], 0) / perRank.length);
  return perRank.flatMap((r) => {
    const own = Array.from({ length: steps }, (_, s) => r[s] - mean[s]);
    const m = median(own);
    return own.map((x) => x - m);
  });
}

/** Steps of the progress counter that measurePassOverheads takes. */
export function passProbeSteps(devices: number, rounds: number): number {
  return rounds * (devices > 1 ? 3 : 1);
}

/**
 * The probe in `rounds` rounds of: one device alone, then every device in data parallel, then every
 * device as a pipeline stage (when the host has several). Alternating spreads a slow spell of a
 * shared machine over all three.
 */
export async function measurePassOverheads(devices: number, o: ProbeOptions & { rounds: number }, progress?: ProgressCounter): Promise<PassOverheads> {
  const alone: PassOverhead[] = [], dataParallel: PassOverhead[][] = [], pipeline: PassOverhead[][] = [];
  const stages = Math.min(devices, getModel(PASS_PROBE.model).layers);
  for (let r = 0; r < o.rounds; r++) {
    alone.push(...(await runPassProbe('alone', 1, o)));
    progress?.tick(`executor pass overhead, one device (round ${r + 1}/${o.rounds})`);
    if (devices < 2) continue;
    dataParallel.push(await runPassProbe('dataParallel', devices, o));
    progress?.tick(`executor pass overhead, ${devices} devices in data parallel (round ${r + 1}/${o.rounds})`);
    pipeline.push(await runPassProbe('pipeline', stages, o));
    progress?.tick(`executor pass overhead, a pipeline of ${stages} stages (round ${r + 1}/${o.rounds})`);
  }
  const a = medianOf(alone);
  if (devices < 2) return { alone: a };
  // Ranks that synchronize every step wait for the slowest device, and the cores of a virtual
  // machine can differ by 10-30% for minutes: the figures are those of the device with the longest
  // median step (less waits) in data parallel, its kernels and its passes alike.
  const medianOver = (rounds: PassOverhead[][], d: number, f: (x: PassOverhead) => number): number => median(rounds.map((round) => f(round[d])));
  const compute = Array.from({ length: devices }, (_, d) => medianOver(dataParallel, d, (x) => x.stepSeconds));
  const slowest = compute.indexOf(Math.max(...compute));
  return {
    alone: a,
    allBusy: {
      slowestDevice: slowest,
      kernelSlowdown: Math.max(1, medianOver(dataParallel, slowest, (x) => x.kernelSeconds) / a.kernelSeconds),
      modulePassOverhead: medianOver(dataParallel, slowest, (x) => x.seconds),
      pipelineModulePassOverhead: medianOver(pipeline, Math.min(slowest, stages - 1), (x) => x.seconds),
      stepNoise: dataParallel.flatMap((round) => idiosyncraticNoise(round.map((r) => r.stepCompute))),
      dataParallel: dataParallel.flat(),
      pipeline: pipeline.flat(),
    },
  };
}
