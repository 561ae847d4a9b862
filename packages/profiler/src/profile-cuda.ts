// profileCuda(): `mist profile --device cuda`. Measures this host's GPU (device 0) on @mist/native's
// CUDA backend and assembles a HardwareProfile (core's schema, source "measured") the analyzer and
// the tuner use, as profileHost() does for CPU devices:
//   - the GEMM table over the grid's shapes in the compute dtype, timed on the device (CUDA events);
//   - causal flash attention forward and backward, and the attention efficiency fit;
//   - the element-wise ops under the analyzer's opTable names, device-memory copies (the achievable
//     HBM bandwidth) and the optimizer step (its share of that bandwidth);
//   - pinned host<->device copies both ways, and the slowdown of GEMMs beside them;
//   - the cost of one kernel launch from JavaScript;
//   - the executor on the GPU (trainSingleProcess, the probe model): its step time.
// Not measured on one GPU: collectives (NCCL needs two GPUs or more). The profile then has no
// `collectives` / `collectiveTable`; its links, the slowdown beside a collective and NCCL's memory
// are the datasheet profile's (builtinHardwareProfile) and named in `unmeasured`.
//
// The measuring runs against a CudaRuntime (cuda-runtime.ts): @mist/native's by default, the
// simulated device in the tests. assembleCudaProfile() is pure apart from the host description.
import * as os from 'node:os';
import {
  builtinHardwareProfile, buildCluster, type FitReport, getGpu, getModel, type GpuSpec, type HardwareProfile, modelStateBytesPerParam,
  parseHardwareProfile, parseTrainingSpec,
} from '@mist/core';
import type { CudaGpu, CudaProbe } from '@mist/native';
import { computeFits } from './compute-bench';
import {
  type CudaAttentionPoint, type CudaComputeMeasurements, cudaComputeSteps, measureCudaCompute, warmUpGpu,
} from './cuda-compute-bench';
import { type CudaCopyMeasurements, type CudaCopyOverlap, bothDirections, copyFits, cudaCopySteps, measureCudaCopies, measureCudaCopyOverlap } from './cuda-copy-bench';
import { checkCudaGrid, cudaProfileGrid, type CudaProfileGrid } from './cuda-grids';
import { type CudaRuntime, nativeCudaRuntime, type ProfileDtype, STORAGE_BYTES, STORAGE_OF } from './cuda-runtime';
import { fitLineRelative, fitTransfer, relativeErrors } from './fit';
import { ProgressCounter, type ProgressFn } from './progress';
import { PASS_PROBE } from './runtime-bench';
import { median } from './timing';

export interface ProfileCudaOptions {
  /** Fewer shapes and repeats: well under a minute on a datacenter GPU. */
  quick?: boolean;
  /** The compute dtype of the GEMMs, attention, element-wise ops and the executor probe (default bf16). */
  dtype?: ProfileDtype;
  onProgress?: ProgressFn;
  /** Replaces the quick/full grid (tests use a tiny one). */
  grid?: CudaProfileGrid;
  /** The GPU to measure (default: @mist/native's CUDA backend). */
  runtime?: CudaRuntime;
}

/** Why this host cannot be profiled with --device cuda, or null when it can. */
export function cudaUnavailableReason(probe: CudaProbe): string | null {
  if (!probe.available) return probe.reason ?? 'the CUDA backend reports no usable GPU';
  if (probe.devices.length === 0) return 'the driver reports no CUDA device';
  return null;
}

/** The machine kind of a GPU profile: the device's name, architecture and SM count (a MIG slice has fewer SMs). */
export function cudaMachineKind(gpu: Pick<CudaGpu, 'name' | 'computeCapability' | 'multiprocessors'>): string {
  return `${gpu.name.replace(/\s+/g, ' ').trim()} (sm_${gpu.computeCapability}, ${gpu.multiprocessors} SMs)`;
}

/**
 * Dense FLOP per SM per clock from the architectures' whitepapers, as the datasheet peaks multiply
 * out (peak = SMs x clock x this): tensor cores with fp16/bf16 inputs and fp32 accumulation, and
 * fp32 FMA (2 FLOP per lane). V100: 80 x 1.53 GHz x 1024 = 125 TFLOPS; A100: 108 x 1.41 x 2048 = 312;
 * A10: 72 x 1.695 x 1024 = 125; L4: 58 x 2.04 x 1024 = 121; H100 SXM: 132 x 1.83 x 4096 = 989;
 * B200: 148 x 1.86 x 8192 = 2250. Volta and Turing have no bf16 tensor cores (bf16 at the fp32 rate).
 */
const PER_SM_CLOCK: ReadonlyArray<{ cc: number; tensor: number; fp32: number; bf16Tensor: boolean }> = [
  { cc: 70, tensor: 1024, fp32: 128, bf16Tensor: false },
  { cc: 75, tensor: 1024, fp32: 128, bf16Tensor: false },
  { cc: 80, tensor: 2048, fp32: 128, bf16Tensor: true },
  { cc: 86, tensor: 1024, fp32: 256, bf16Tensor: true },
  { cc: 89, tensor: 1024, fp32: 256, bf16Tensor: true },
  { cc: 90, tensor: 4096, fp32: 256, bf16Tensor: true },
  { cc: 100, tensor: 8192, fp32: 256, bf16Tensor: true },
];

/** Peaks of a GPU the catalog does not know: SMs x the driver's (boost) clock x the architecture's rate per SM. */
export function derivedPeakFlops(gpu: Pick<CudaGpu, 'computeCapability' | 'multiprocessors' | 'clockKHz'>): { fp16: number; bf16: number; fp32: number } {
  const arch = [...PER_SM_CLOCK].reverse().find((a) => a.cc <= gpu.computeCapability) ?? PER_SM_CLOCK[0];
  const perClock = gpu.multiprocessors * gpu.clockKHz * 1e3;
  const tensor = perClock * arch.tensor, fp32 = perClock * arch.fp32;
  return { fp16: tensor, bf16: arch.bf16Tensor ? tensor : fp32, fp32 };
}

/** The catalog's spec of the GPU by its driver name (forgiving: "NVIDIA H200" is h200), or null. */
export function catalogGpu(name: string): GpuSpec | null {
  try {
    return getGpu(name);
  } catch {
    return null;
  }
}

/**
 * Attention efficiency relative to the matmul rate, as the analyzer uses it (hardware-cost.ts):
 * forward time w F / (rate * eff) + launch, backward 2.5 w F / (rate * eff) + launch, where F is the
 * full s x s count 4 b s^2 h d and w the work fraction (a causal kernel skips the tiles above the
 * diagonal: FlashAttention-2, Dao 2023, Sec. 3.1.1). Least squares of relative residuals through the
 * origin of t - launch = c * x over forward and backward points, eff = 1 / (c * rate), at most 1.
 */
export function attentionEfficiencyFit(
  points: readonly CudaAttentionPoint[], matmulRate: number, launch: number, workFraction: number,
): { efficiency: number; report: FitReport } {
  const xy = points.flatMap((p) => [
    { x: workFraction * p.forwardFlops, y: p.forwardSeconds },
    { x: 2.5 * workFraction * p.forwardFlops, y: p.backwardSeconds },
  ]);
  let num = 0, den = 0;
  for (const p of xy) {
    num += (p.x * (p.y - launch)) / (p.y * p.y);
    den += (p.x * p.x) / (p.y * p.y);
  }
  const c = den > 0 ? num / den : 0;
  const efficiency = c > 0 ? Math.min(1, Math.max(1e-6, 1 / (c * matmulRate))) : 1;
  const c1 = 1 / (matmulRate * efficiency);
  const errors = relativeErrors(xy, (x) => launch + c1 * x);
  return {
    efficiency,
    report: {
      model: `attention: seconds = c0 + c1 * FLOPs (forward ${workFraction} x 4bs^2h, backward 2.5x; c1 = 1 / (matmul rate * attentionEfficiency))`,
      c0: launch, c1, points: xy.length, maxRelError: errors.length ? Math.max(...errors) : 0, medianRelError: errors.length ? median(errors) : 0,
    },
  };
}

/** The executor probe's result: trainSingleProcess on the GPU, or why it did not run. */
export type ExecutorProbeResult =
  | { ran: true; model: string; seq: number; microBatch: number; gradAccumSteps: number; passesPerStep: number; stepSeconds: number[] }
  | { ran: false; reason: string };

/** Everything profileCuda measured; assembleCudaProfile turns it into a HardwareProfile. */
export interface CudaMeasurements {
  dtype: ProfileDtype;
  quick: boolean;
  gpu: CudaGpu;
  /** GPUs of the same name as device 0 on this host (the node's devices). */
  devices: number;
  driverVersion?: number;
  cublasLt?: string;
  compute: CudaComputeMeasurements;
  copies: CudaCopyMeasurements;
  copyOverlap: CudaCopyOverlap;
  /** Device memory in use outside the caching allocator (CUDA context, kernels' code, library workspaces). */
  contextBytes: number;
  executor: ExecutorProbeResult;
  /** Seconds the measurement took. */
  seconds: number;
}

/** Module passes of a step of one stage holding every layer: G x 2 x (layers + embedding + head) + 1 optimizer pass (runtime-bench.ts). */
function probePasses(layers: number, gradAccumSteps: number): number {
  return gradAccumSteps * 2 * (layers + 2) + 1;
}

async function runExecutorProbe(rt: CudaRuntime, grid: CudaProfileGrid, dtype: ProfileDtype): Promise<ExecutorProbeResult> {
  if (grid.passSteps === 0) return { ran: false, reason: 'the grid asks for no executor steps (passSteps 0)' };
  const { model, seq, microBatch, gradAccumSteps } = PASS_PROBE;
  try {
    const steps = await rt.trainSteps({ model, seq, microBatch, gradAccumSteps, dtype, steps: grid.passWarmupSteps + grid.passSteps });
    const kept = steps.slice(grid.passWarmupSteps);
    if (kept.length === 0 || !kept.every((s) => s > 0)) return { ran: false, reason: `the probe reported no positive step times (${steps.join(', ')})` };
    return { ran: true, model, seq, microBatch, gradAccumSteps, passesPerStep: probePasses(getModel(model).layers, gradAccumSteps), stepSeconds: kept };
  } catch (e) {
    return { ran: false, reason: `trainSingleProcess on the GPU failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Measures device 0 and returns its HardwareProfile. Throws naming the reason when no usable GPU is here. */
export async function profileCuda(opts: ProfileCudaOptions = {}): Promise<HardwareProfile> {
  const rt = opts.runtime ?? nativeCudaRuntime();
  const probe = rt.probe();
  const reason = cudaUnavailableReason(probe);
  if (reason !== null) throw new Error(`mist profile --device cuda: no usable GPU here: ${reason}`);
  const dtype = opts.dtype ?? 'bf16';
  if (!(dtype in STORAGE_OF)) throw new RangeError(`dtype must be fp32, bf16 or fp16, got '${String(dtype)}'`);
  const storage = STORAGE_OF[dtype];
  const quick = opts.quick ?? false;
  const grid = opts.grid ?? cudaProfileGrid(quick);
  checkCudaGrid(grid);
  const started = rt.now();
  const progress = new ProgressCounter(1 + cudaComputeSteps(grid) + cudaCopySteps(grid) + 2, opts.onProgress);

  warmUpGpu(rt, grid, storage);
  progress.tick('GPU warm-up');
  const compute = measureCudaCompute(rt, grid, storage, progress);
  const copies = measureCudaCopies(rt, grid, progress);
  const copyOverlap = measureCudaCopyOverlap(rt, grid, storage, copyFits(copies).both, progress);
  // What the device holds outside the allocator once the ops' kernels have loaded: the context
  // (taken before the executor probe, whose failure could leave the context unusable).
  rt.synchronize();
  rt.emptyCache();
  const mem = rt.memory();
  const executor = await runExecutorProbe(rt, grid, dtype);
  progress.tick('executor on the GPU');
  const gpu = probe.devices[0];
  return assembleCudaProfile({
    dtype, quick, gpu, devices: probe.devices.filter((d) => d.name === gpu.name).length,
    driverVersion: probe.driverVersion,
    cublasLt: probe.cublasLt.available ? `${probe.cublasLt.path ?? 'cuBLASLt'}${probe.cublasLt.version ? ` (version ${probe.cublasLt.version})` : ''}` : undefined,
    compute, copies, copyOverlap,
    contextBytes: Math.max(0, mem.deviceTotal - mem.deviceFree - mem.reserved),
    executor, seconds: rt.now() - started,
  });
}

/** The profile of a GPU from its measurements (core's schema, checked by parseHardwareProfile). */
export function assembleCudaProfile(m: CudaMeasurements): HardwareProfile {
  const storage = STORAGE_OF[m.dtype];
  const c = m.compute;
  const unmeasured: Record<string, string> = {};

  const line = fitLineRelative(c.matmuls.map((p) => ({ x: 2 * p.m * p.n * p.k, y: p.seconds })));
  if (!line || !(line.c1 > 0)) throw new Error('profile --device cuda: the GEMM table gives no positive rate (too few or too noisy points)');
  const matmulRate = 1 / line.c1;
  // A causal kernel computes the tiles on and below the diagonal: half of s x s in the long-sequence limit.
  const workFraction = 0.5;
  const attn = attentionEfficiencyFit(c.attention, matmulRate, c.kernelLaunch, workFraction);

  const copyBytes = STORAGE_BYTES[storage];
  const streamFit = fitTransfer(`device memory copy (${storage}): seconds = c0 + c1 * bytes (read + write)`,
    c.copy.map((p) => ({ bytes: 2 * copyBytes * p.elements, seconds: p.seconds })));
  const memoryBandwidth = 1 / streamFit.beta;
  const hostFits = copyFits(m.copies);
  for (const [what, beta] of [['host<->device copy', hostFits.both.beta], ['device memory copy', streamFit.beta]] as const) {
    if (!(beta > 0 && Number.isFinite(beta))) {
      throw new Error(`profile --device cuda: the ${what} points give no bandwidth (beta ${beta}); too few sizes or too noisy, use a larger grid`);
    }
  }
  // The optimizer step as the analyzer counts its bytes for this dtype (stage-model.ts optStep:
  // grads + 2 x optim + weights per parameter; core's modelStateBytesPerParam).
  const state = modelStateBytesPerParam(parseTrainingSpec({ globalBatch: 1, seqLen: 1, paramDtype: m.dtype, computeDtype: m.dtype }));
  const perParam = median(c.adamw.map((p) => p.seconds / p.elements));
  const optimizerBandwidth = (state.grads + 2 * state.optim + state.weights) / perParam;

  const catalog = catalogGpu(m.gpu.name);
  const peaks = catalog ? catalog.peakFlops : derivedPeakFlops(m.gpu);
  const peakFlops = peaks[m.dtype];
  const hostToDevice = { alpha: hostFits.both.alpha, beta: hostFits.both.beta };
  const gpuSpec: GpuSpec = {
    name: catalog?.name ?? m.gpu.name.replace(/\s+/g, '-').toLowerCase(),
    memoryBytes: m.gpu.memoryBytes,
    peakFlops: catalog ? catalog.peakFlops : { ...derivedPeakFlops(m.gpu) },
    memoryBandwidth,
    nvlinkBandwidth: catalog?.nvlinkBandwidth ?? null,
    pcieGen: catalog?.pcieGen ?? 4,
    pcieBandwidth: 1 / hostToDevice.beta,
  };
  if (catalog) {
    unmeasured['cluster.gpu.peakFlops'] = `the catalog's ${catalog.name} datasheet peaks (dense); the GEMM table gives the achieved rate`;
    unmeasured['cluster.gpu.nvlinkBandwidth, pcieGen'] = `the catalog's ${catalog.name} figures`;
  } else {
    unmeasured['cluster.gpu.peakFlops'] = `${m.gpu.name} is not in the GPU catalog: SMs x the driver's clock (${m.gpu.clockKHz} kHz, the boost clock) x sm_${m.gpu.computeCapability}'s dense rate per SM`;
    unmeasured['cluster.gpu.nvlinkBandwidth, pcieGen'] = `${m.gpu.name} is not in the GPU catalog: no NVLink and PCIe Gen4 assumed`;
  }
  const cluster = buildCluster({
    nodes: 1, gpusPerNode: m.devices, gpu: gpuSpec, hostMemoryPerNode: os.totalmem(),
    // The catalog's network for a known GPU; otherwise 100 Gb/s per GPU (core's figure for PCIe cloud GPUs).
    ...(catalog ? {} : { interNode: { bandwidth: 12.5e9, latency: 20e-6 } }),
  });
  // What one GPU cannot measure comes from the datasheet profile of this cluster.
  const datasheet = builtinHardwareProfile(cluster, m.dtype);
  unmeasured['collectives'] = 'one GPU runs no collective (NCCL needs two GPUs or more): no collectives or collectiveTable; the links\' alpha-beta models price them';
  unmeasured['links.intraNode, links.interNode'] = `the datasheet profile's (${catalog ? 'catalog figures with nccl-tests bus efficiencies' : 'PCIe and a 100 Gb/s network'}): one GPU has no peer to measure against`;
  unmeasured['overlap.commSlowdown'] = `the datasheet profile's ${datasheet.overlap.commSlowdown}: no collective ran beside the GEMMs`;
  unmeasured['memory.ncclBufferBytes'] = 'the datasheet profile\'s: no communicator was created';
  unmeasured['memory.fragmentation'] = 'the datasheet profile\'s caching-allocator share: a training step\'s peak was not measured';
  unmeasured['opTable.moe_router, moe_permute, moe_sum'] = 'not measured: the analyzer prices them from the memory bandwidth';
  unmeasured['opTable.cross_entropy_backward'] = 'none: the CUDA executor writes the logits\' gradient inside the forward kernel (cross_entropy times that fused kernel); ' +
    'core\'s backend section has no cuda kind to say so (fusedIntoForward), so the analyzer prices a backward at 1.5x the forward';
  const e = m.executor;
  const stepMedian = e.ran ? median(e.stepSeconds) : 0;
  unmeasured['backend'] = e.ran
    ? `no section: core's backend profile has no cuda kind yet; the executor probe's step time is in host['backend.cuda.executorProbe']`
    : `no section: the executor probe did not run (${e.reason})`;

  const copyRatio = m.copyOverlap.besideSeconds / m.copyOverlap.aloneSeconds;
  const fits: Record<string, FitReport> = {
    ...computeFits(c.matmuls, c.ops, c.kernelLaunch),
    attention: attn.report,
    'memory:copy': streamFit.report,
    'link:hostToDevice': hostFits.both.report,
    'link:hostToDevice:toDevice': hostFits.toDevice.report,
    'link:hostToDevice:toHost': hostFits.toHost.report,
  };

  const profile = {
    version: 1,
    source: 'measured',
    createdAt: new Date().toISOString(),
    machineKind: cudaMachineKind(m.gpu),
    host: {
      hostname: os.hostname(),
      cpuModel: (os.cpus()[0]?.model ?? 'unknown').trim(),
      cores: os.cpus().length,
      totalMemoryBytes: os.totalmem(),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      node: process.version,
      backend: 'cuda kernels of @mist/native (device 0); no collectives',
      device: `${m.gpu.name}, sm_${m.gpu.computeCapability}, ${m.gpu.multiprocessors} SMs, ${m.gpu.clockKHz} kHz`,
      devices: m.devices,
      dtype: m.dtype,
      ...(m.driverVersion !== undefined ? { cudaDriverVersion: m.driverVersion } : {}),
      cublasLt: m.cublasLt ?? 'not available (the own tensor-core kernels run the GEMMs)',
      'compute.gemmPath': c.gemmPaths.join(', '),
      'compute.matmulTable': `c[m,n] = a[m,k] b[k,n] in ${storage}, fp32 accumulation; device time per launch from CUDA events (cudaGemmBenchmark)`,
      'compute.opTable': `ops queued through KernelOps on the compute stream in ${storage}, per call: a group of calls between host clock readings, the second after a synchronize`,
      'compute.kernelLaunch': `host cost per launch of a tiny kernel (fill of 16 elements) queued from JavaScript: the slope of batches of few and many launches`,
      'compute.synchronize': c.synchronize,
      hostToDevice: 'pinned host memory <-> device memory on the comm stream (cuMemcpyAsync), mean of both directions',
      'overlap.offloadSlowdown': `${m.copyOverlap.gemms} GEMMs on the compute stream alone and beside ${m.copyOverlap.copies} copies of ` +
        `${m.copyOverlap.copyBytes} B on the comm stream, alternating directions (least tail of copies after the GEMMs ${(m.copyOverlap.minTail * 1e3).toFixed(2)} ms)`,
      'memory.cudaContextBytes': 'device memory in use outside the caching allocator after every kernel ran: CUDA context, kernel images, library workspaces',
      ...(e.ran ? {
        'backend.cuda.executorProbe': `trainSingleProcess on the GPU: ${e.model}, micro-batch ${e.microBatch} x ${e.seq} tokens, G ${e.gradAccumSteps}, ${m.dtype}; ` +
          `median step ${(stepMedian * 1e3).toFixed(2)} ms over ${e.stepSeconds.length} steps, ${e.passesPerStep} module passes per step ` +
          `(at most ${((stepMedian / e.passesPerStep) * 1e6).toFixed(0)} us of host time per pass: the kernels of so small a model take a fraction of it; ` +
          'their device time is not separated without a kernel trace on CUDA)',
        'backend.cuda.stepSeconds': stepMedian,
      } : {}),
      quick: m.quick ? 'yes' : 'no',
      profileSeconds: m.seconds,
    },
    cluster,
    compute: {
      peakFlops,
      matmulEfficiency: Math.min(1, matmulRate / peakFlops),
      matmulHalfEfficiencyFlops: Math.max(0, line.c0 - c.kernelLaunch) * matmulRate,
      attentionEfficiency: attn.efficiency,
      attentionWorkFraction: workFraction,
      memoryBandwidth,
      memoryEfficiency: Math.min(1, optimizerBandwidth / memoryBandwidth),
      kernelLaunch: c.kernelLaunch,
    },
    matmulTable: c.matmuls,
    opTable: [
      ...c.ops,
      ...c.attention.flatMap((p) => {
        const scores = p.batch * p.heads * p.seq * p.seq;
        return [
          { op: 'attention', elements: scores, seconds: p.forwardSeconds },
          { op: 'attention_backward', elements: scores, seconds: p.backwardSeconds },
        ];
      }),
      ...c.copy,
      ...c.adamw,
    ],
    links: { ...datasheet.links, hostToDevice },
    copyTable: bothDirections(m.copies),
    overlapTable: [{ beside: 'copy', aloneSeconds: m.copyOverlap.aloneSeconds, besideSeconds: m.copyOverlap.besideSeconds, ratio: copyRatio }],
    overlap: { commSlowdown: datasheet.overlap.commSlowdown, offloadSlowdown: Math.max(1, copyRatio) },
    fits,
    unmeasured,
    memory: {
      cudaContextBytes: m.contextBytes,
      ncclBufferBytes: datasheet.memory.ncclBufferBytes,
      fragmentation: datasheet.memory.fragmentation,
    },
  };
  return parseHardwareProfile(profile);
}
