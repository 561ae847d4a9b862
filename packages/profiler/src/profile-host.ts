// profileHost(): measures this host on the device backend at hand (the CPU kernels and the CPU/TCP
// collectives of @mist/native) and assembles a HardwareProfile (core's schema, source "measured")
// with the raw tables, the fits and their errors, the host description and the date.
//
// A CPU "device" is one executor worker process using `threadsPerDevice` kernel threads; the host
// holds floor(cores / threadsPerDevice) of them. Every compute figure is measured with that many
// threads, so it describes one device.
import * as os from 'node:os';
import {
  COLLECTIVES, cpuMachineKind, type FitReport, type HardwareProfile, parseHardwareProfile,
} from '@mist/core';
import { deviceCores, gemmConfig, kernelThreads, measureFmaPeak, pinProcessToCores, setKernelThreads } from '@mist/native';
import { commFitReports, commSteps, measureComm, OVERLAP_MATMUL, OVERLAP_MATMUL_COUNT, WAKE_AFTER } from './comm-bench';
import { type AttentionPoint, type ComputeMeasurements, computeFits, computeSteps, measureCompute, warmUpKernels } from './compute-bench';
import { measureCopies, measureCopyOverlap } from './copy-bench';
import { fitLineRelative, relativeErrors } from './fit';
import { profileGrid, type ProfileGrid } from './grids';
import { ProgressCounter, type ProgressFn } from './progress';
import { measurePassOverheads, PASS_PROBE, passProbeSteps, type PassOverheads } from './runtime-bench';
import { median, nowSeconds } from './timing';

export interface ProfileHostOptions {
  /** Fewer shapes and repeats, collectives among 2 ranks only: well under a minute. */
  quick?: boolean;
  onProgress?: ProgressFn;
  /** Kernel threads of one CPU device (one executor worker). Default 1. */
  threadsPerDevice?: number;
  /** Replaces the quick/full grid (tests use a tiny one). */
  grid?: ProfileGrid;
}

/** CPU devices of this host: one per `threads` cores. */
function localDevices(threads: number): number {
  return Math.max(1, Math.floor(os.cpus().length / threads));
}

function progressTotal(grid: ProfileGrid, threads: number): number {
  return 1 + computeSteps(grid) + grid.copyBytes.length + 1 + commSteps(grid) + passProbeSteps(localDevices(threads), grid.passRounds);
}

/**
 * Attention efficiency relative to the matmul rate, as the analyzer uses it: forward time
 * F / (rate * eff) + launch, backward 2.5 F / (rate * eff) + launch (op-graph.ts attn.flash).
 * Least squares over forward and backward points of t - launch = c * F' (F' = F or 2.5 F), eff = 1 / (c * rate).
 */
function attentionFit(points: readonly AttentionPoint[], matmulRate: number, launch: number): { efficiency: number; report: FitReport } {
  const xy = points.flatMap((p) => [
    { x: p.forwardFlops, y: p.forwardSeconds },
    { x: 2.5 * p.forwardFlops, y: p.backwardSeconds },
  ]);
  // Relative least squares through the origin: minimise sum ((c x - (y - launch)) / y)^2.
  let num = 0, den = 0;
  for (const p of xy) {
    num += (p.x * (p.y - launch)) / (p.y * p.y);
    den += (p.x * p.x) / (p.y * p.y);
  }
  const c = num / den;
  const efficiency = Math.min(1, Math.max(1e-6, 1 / (c * matmulRate)));
  const c1 = 1 / (matmulRate * efficiency);
  const errors = relativeErrors(xy, (x) => launch + c1 * x);
  return {
    efficiency,
    report: {
      model: 'attention: seconds = c0 + c1 * FLOPs (forward 4bs^2h, backward 2.5x; c1 = 1 / (matmul rate * attentionEfficiency))',
      c0: launch, c1, points: xy.length, maxRelError: Math.max(...errors), medianRelError: median(errors),
    },
  };
}

export async function profileHost(opts: ProfileHostOptions = {}): Promise<HardwareProfile> {
  const started = nowSeconds();
  const quick = opts.quick ?? false;
  const grid = opts.grid ?? profileGrid(quick);
  const threads = opts.threadsPerDevice ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threadsPerDevice must be a positive integer, got ${threads}`);
  const progress = new ProgressCounter(progressTotal(grid, threads), opts.onProgress);
  const savedThreads = kernelThreads();
  setKernelThreads(threads);
  // The kernels are measured on device 0's cores, where an executor worker of device 0 runs.
  const pinned = pinWhileMeasuring(deviceCores(0, threads));
  try {
    await warmUpKernels(grid.warmupSeconds);
    const fmaPerThread = measureFmaPeak(grid.fmaSeconds);
    progress.tick('FMA peak');
    const compute = await measureCompute(grid, progress);
    const copies = await measureCopies(grid, progress);
    const copyOverlap = await measureCopyOverlap(grid, OVERLAP_MATMUL, OVERLAP_MATMUL_COUNT, Math.max(...grid.copyBytes), progress);
    pinned.release();
    const comm = await measureComm(grid, threads, progress);
    const devices = localDevices(threads);
    const passes = await measurePassOverheads(devices, {
      warmupSteps: grid.passWarmupSteps, steps: grid.passSteps, kernelLaunch: compute.kernelLaunch, rounds: grid.passRounds, threads,
    }, progress);
    return assemble({ grid, quick, threads, fmaPerThread, ...compute, copies, copyOverlap, comm, passes, started });
  } finally {
    pinned.release();
    setKernelThreads(savedThreads);
  }
}

/** Pins this process to `cores` until release() (then to every core again); a no-op where pinning is off or unsupported. */
function pinWhileMeasuring(cores: number[]): { release(): void } {
  if (process.env.MIST_PIN_CORES === '0') return { release() {} };
  try {
    pinProcessToCores(cores);
  } catch {
    return { release() {} };
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      pinProcessToCores(os.cpus().map((_, i) => i));
    },
  };
}

type Measured = ComputeMeasurements & {
  grid: ProfileGrid;
  quick: boolean;
  threads: number;
  fmaPerThread: number;
  copies: Awaited<ReturnType<typeof measureCopies>>;
  copyOverlap: { aloneSeconds: number; besideSeconds: number };
  comm: Awaited<ReturnType<typeof measureComm>>;
  passes: PassOverheads;
  started: number;
};

function assemble(m: Measured): HardwareProfile {
  const cores = os.cpus().length;
  const devices = localDevices(m.threads);
  const peakFlops = m.fmaPerThread * m.threads;
  const unmeasured: Record<string, string> = {};

  const line = fitLineRelative(m.matmuls.map((p) => ({ x: 2 * p.m * p.n * p.k, y: p.seconds })));
  if (!line || !(line.c1 > 0)) throw new Error('profile: the matmul table gives no positive rate (too few or too noisy points)');
  const matmulRate = 1 / line.c1;
  const attn = attentionFit(m.attention, matmulRate, m.kernelLaunch);
  const fits: Record<string, FitReport> = {
    ...computeFits(m.matmuls, m.ops, m.kernelLaunch),
    attention: attn.report,
    'memory:copy': m.streams.copyFit,
    'link:hostToDevice': m.copies.fit.report,
    ...commFitReports(m.comm),
  };

  const sr = m.comm.fits.sendRecv;
  for (const [what, beta] of [['send/recv', sr.beta], ['host<->device copy', m.copies.fit.beta], ['memory copy', 1 / m.streams.memoryBandwidth]] as const) {
    if (!(beta > 0 && Number.isFinite(beta))) {
      throw new Error(`profile: the ${what} points give no bandwidth (beta ${beta}); too few sizes or too noisy, use a larger grid`);
    }
  }
  const intraNode = { alpha: sr.alpha, beta: sr.beta };
  const wake = m.comm.wake;
  // The message's extra latency over the back-to-back fit, plus how much slower the receiver's
  // first compute after it ran than the same compute back to back.
  const p2pWake = wake
    ? Math.max(0, wake.seconds - (sr.alpha + sr.beta * wake.bytes)) + Math.max(0, wake.afterWakeSeconds - wake.hotSeconds)
    : undefined;
  if (!wake) unmeasured['backend.p2pWake'] = 'needs two local ranks';
  unmeasured['links.interNode'] = 'one host has no inter-node link; set to the intra-node (send/recv) fit';
  const hostToDevice = { alpha: m.copies.fit.alpha, beta: m.copies.fit.beta };
  const links = { intraNode, interNode: intraNode, hostToDevice };
  const collectives = Object.fromEntries(COLLECTIVES.map((k) => {
    const f = m.comm.fits[k];
    return [k, { intraNode: { alpha: f.alpha, beta: f.beta }, interNode: links.interNode, hostToDevice }];
  }));

  const overlapTable: NonNullable<HardwareProfile['overlapTable']> = [];
  let commSlowdown = 1;
  if (m.comm.overlap) {
    const ratio = m.comm.overlap.besideSeconds / m.comm.overlap.aloneSeconds;
    overlapTable.push({ beside: 'collective', ...m.comm.overlap, ratio });
    commSlowdown = Math.max(1, ratio);
  } else {
    unmeasured['overlap.commSlowdown'] = 'no compute sample overlapped an all-reduce; 1 (no slowdown) assumed';
  }
  const copyRatio = m.copyOverlap.besideSeconds / m.copyOverlap.aloneSeconds;
  overlapTable.push({ beside: 'copy', ...m.copyOverlap, ratio: copyRatio });

  const matmulEfficiency = Math.min(1, matmulRate / peakFlops);
  const totalMemory = os.totalmem();
  unmeasured['cluster.gpu.pcieGen'] = 'a CPU device has no PCIe link; 3 is the lowest value the schema allows';
  unmeasured['cluster.interNode'] = 'one host has no inter-node link; set to the intra-node (send/recv) fit';
  if (!m.passes.allBusy) unmeasured['backend.allBusy'] = 'the host holds one device: nothing to measure beside it';
  unmeasured['memory.fragmentation'] = 'not measured: typed arrays come from malloc, there is no caching allocator; 0';
  unmeasured['opTable.softmax, opTable.dropout'] = 'not measured as separate kernels: the CPU backend fuses softmax (and attention dropout) into attention, and applies the residual dropout fused with the residual add; the element-wise fit prices them';

  const profile = {
    version: 1,
    source: 'measured',
    createdAt: new Date().toISOString(),
    machineKind: cpuMachineKind(),
    host: {
      hostname: os.hostname(),
      cpuModel: (os.cpus()[0]?.model ?? 'unknown').trim(),
      cores,
      totalMemoryBytes: totalMemory,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      node: process.version,
      backend: 'cpu kernels + cpu/tcp collectives (@mist/native)',
      device: `one executor worker with ${m.threads} kernel thread${m.threads > 1 ? 's' : ''}`,
      devices,
      simdFloats: gemmConfig().vectorFloats,
      fmaPeakFlopsPerThread: m.fmaPerThread,
      hostToDevice: 'memcpy between host buffers (Float32Array.set): device memory is host memory on a CPU host',
      peakFlops: 'measured FMA throughput per thread x threads; the CPU kernels compute in fp32 whatever the dtype',
      'memory.cudaContextBytes': 'resident memory of a worker process with the native addon loaded',
      'memory.ncclBufferBytes': 'resident memory a CPU communicator added (connections, buffers)',
      'compute.batchDispatch': m.batchDispatch,
      ...(wake ? {
        'backend.p2pWake': `a ${wake.bytes}-byte message to a receiver that waited while its sender computed ${wake.busyMs} ms: ` +
          `median ${(wake.seconds * 1e6).toFixed(0)} us over ${wake.rounds} messages, less the send/recv fit; plus the receiver's ` +
          `compute right after it (${WAKE_AFTER.batches} kernel batches of ${WAKE_AFTER.count} ${WAKE_AFTER.shape.m}x${WAKE_AFTER.shape.n}x${WAKE_AFTER.shape.k} matmuls) ` +
          `${(wake.afterWakeSeconds * 1e6).toFixed(0)} us against ${(wake.hotSeconds * 1e6).toFixed(0)} us back to back`,
      } : {}),
      'backend.modulePassOverhead': `executor probe: ${PASS_PROBE.model}, micro-batch ${PASS_PROBE.microBatch} x ${PASS_PROBE.seq} tokens, ` +
        `G ${PASS_PROBE.gradAccumSteps}, one rank per worker process, ${m.passes.alone.passesPerStep} module passes per step; ` +
        `one device alone (median of ${m.passes.alone.steps} steps): step ${(m.passes.alone.stepSeconds * 1e3).toFixed(2)} ms, ` +
        `kernels ${(m.passes.alone.kernelSeconds * 1e3).toFixed(2)} ms (${m.passes.alone.kernelsPerStep} calls)` +
        (m.passes.allBusy ? `; every device in data parallel (per rank and round): steps less waits ` +
          `${m.passes.allBusy.dataParallel.map((d) => (d.stepSeconds * 1e3).toFixed(2)).join(', ')} ms, ` +
          `kernels ${m.passes.allBusy.dataParallel.map((d) => (d.kernelSeconds * 1e3).toFixed(2)).join(', ')} ms, ` +
          `${m.passes.allBusy.dataParallel.map((d) => `${(d.seconds * 1e6).toFixed(0)} us`).join(', ')} per pass; ` +
          `as pipeline stages: ${m.passes.allBusy.pipeline.map((d) => `${(d.seconds * 1e6).toFixed(0)} us`).join(', ')} per pass; ` +
          `the figures of the slowest device, ${m.passes.allBusy.slowestDevice}` : ''),
      quick: m.quick ? 'yes' : 'no',
      profileSeconds: nowSeconds() - m.started,
    },
    cluster: {
      name: `1x${devices}-cpu`,
      nodes: 1,
      gpusPerNode: devices,
      gpu: {
        name: `cpu-${m.threads}t`,
        memoryBytes: totalMemory / devices,
        peakFlops: { fp16: peakFlops, bf16: peakFlops, fp32: peakFlops },
        memoryBandwidth: m.streams.memoryBandwidth,
        nvlinkBandwidth: null,
        pcieGen: 3,
        pcieBandwidth: 1 / hostToDevice.beta,
      },
      intraNode: { bandwidth: 1 / intraNode.beta, latency: intraNode.alpha },
      interNode: { bandwidth: 1 / intraNode.beta, latency: intraNode.alpha },
      hostMemoryPerNode: totalMemory,
    },
    compute: {
      peakFlops,
      matmulEfficiency,
      matmulHalfEfficiencyFlops: Math.max(0, line.c0 - m.kernelLaunch) * matmulRate,
      attentionEfficiency: attn.efficiency,
      memoryBandwidth: m.streams.memoryBandwidth,
      memoryEfficiency: Math.min(1, m.streams.optimizerBandwidth / m.streams.memoryBandwidth),
      kernelLaunch: m.kernelLaunch,
    },
    // The executor's own terms, measured by running it: the CPU backend's section.
    backend: {
      kind: 'cpu',
      modulePassOverhead: m.passes.alone.seconds,
      ...(m.passes.allBusy ? {
        allBusy: {
          kernelSlowdown: m.passes.allBusy.kernelSlowdown, modulePassOverhead: m.passes.allBusy.modulePassOverhead,
          pipelineModulePassOverhead: m.passes.allBusy.pipelineModulePassOverhead,
        },
      } : {}),
      // The CPU cross-entropy kernel writes the logits' gradient while it computes the loss.
      fusedIntoForward: ['cross_entropy'],
      ...(p2pWake === undefined ? {} : { p2pWake }),
      // The noise that makes a step of several ranks wait for a straggler (none with one device).
      ...(m.passes.allBusy ? { stepNoise: m.passes.allBusy.stepNoise } : {}),
    },
    matmulTable: m.matmuls,
    opTable: [
      ...m.ops,
      ...m.attention.flatMap((p) => {
        const scores = p.batch * p.heads * p.seq * p.seq;
        return [
          { op: 'attention', elements: scores, seconds: p.forwardSeconds },
          { op: 'attention_backward', elements: scores, seconds: p.backwardSeconds },
        ];
      }),
      ...m.streams.copy,
      ...m.streams.adamw,
    ],
    links,
    collectives,
    collectiveTable: m.comm.points,
    copyTable: m.copies.points,
    overlapTable,
    overlap: { commSlowdown, offloadSlowdown: Math.max(1, copyRatio) },
    fits,
    unmeasured,
    memory: { cudaContextBytes: m.comm.baseRssBytes, ncclBufferBytes: m.comm.commRssBytes, fragmentation: 0 },
  };
  return parseHardwareProfile(profile);
}
