// HardwareProfile: everything the analyzer needs to turn FLOPs and bytes into seconds on a cluster.
// The built-in profile is derived from the datasheet figures of the cluster's GPU and links; a
// measured one comes from `mist profile` (source "measured").
import * as os from 'node:os';
import { z } from 'zod';
import { type ClusterSpec, ClusterSpecSchema } from './cluster';
import { GiB, MiB } from './units';
import { parseSpec, SpecError } from './validation';

/** Alpha-beta model of a transfer: seconds = alpha + bytes * beta. */
export const AlphaBetaSchema = z.strictObject({
  alpha: z.number().nonnegative(),
  beta: z.number().nonnegative(),
});
export type AlphaBeta = z.output<typeof AlphaBetaSchema>;

export const LINK_CLASSES = ['intraNode', 'interNode', 'hostToDevice'] as const;
export type LinkClass = (typeof LINK_CLASSES)[number];
export const COLLECTIVES = ['allReduce', 'allGather', 'reduceScatter', 'sendRecv'] as const;
export type CollectiveKind = (typeof COLLECTIVES)[number];

const MatmulPointSchema = z.strictObject({
  m: z.number().int().positive(), n: z.number().int().positive(), k: z.number().int().positive(),
  seconds: z.number().positive(),
});
const OpPointSchema = z.strictObject({
  op: z.string(), elements: z.number().positive(), seconds: z.number().positive(),
});
/** One measured collective: `bytes` is the full tensor (as the analyzer's collective() takes it). */
const CollectivePointSchema = z.strictObject({
  collective: z.enum(COLLECTIVES), linkClass: z.enum(LINK_CLASSES), ranks: z.number().int().min(2),
  bytes: z.number().positive(), seconds: z.number().positive(),
});
/** One measured host<->device copy of `bytes`. */
const CopyPointSchema = z.strictObject({ bytes: z.number().positive(), seconds: z.number().positive() });
/** A least-squares fit and how well it reproduces the points it came from. */
export const FitReportSchema = z.strictObject({
  /** The model in words, e.g. `seconds = c0 + c1 * FLOPs`. */
  model: z.string(),
  c0: z.number(),
  c1: z.number(),
  points: z.number().int().nonnegative(),
  /** |fit - measured| / measured over the points: the largest and the median. */
  maxRelError: z.number().nonnegative(),
  medianRelError: z.number().nonnegative(),
});
export type FitReport = z.output<typeof FitReportSchema>;
/** Compute time of the same work alone and with a collective or a copy running beside it. */
const OverlapPointSchema = z.strictObject({
  beside: z.enum(['collective', 'copy']),
  aloneSeconds: z.number().positive(),
  besideSeconds: z.number().positive(),
  /** besideSeconds / aloneSeconds before clamping to >= 1. */
  ratio: z.number().positive(),
});

export const HardwareProfileSchema = z.strictObject({
  version: z.literal(1),
  /** Where the numbers come from: `datasheet:<gpu>` for the built-in profile, `measured` otherwise. */
  source: z.string().min(1),
  createdAt: z.string().optional(),
  /** Machine kind the profile was measured on (CPU model or GPU name); used to refuse a foreign profile. */
  machineKind: z.string().optional(),
  host: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  cluster: ClusterSpecSchema,
  compute: z.strictObject({
    /** Peak FLOP/s of the compute dtype. */
    peakFlops: z.number().positive(),
    /** Fraction of peak a large matmul reaches. */
    matmulEfficiency: z.number().positive().max(1),
    /** FLOP count at which a matmul reaches half of matmulEfficiency (small-shape penalty). */
    matmulHalfEfficiencyFlops: z.number().nonnegative(),
    /** Fraction of peak the attention kernels reach (flash attention) relative to matmul. */
    attentionEfficiency: z.number().positive().max(1),
    memoryBandwidth: z.number().positive(),
    /** Fraction of memory bandwidth element-wise kernels reach. */
    memoryEfficiency: z.number().positive().max(1),
    /** Fixed cost per kernel launch, seconds. */
    kernelLaunch: z.number().nonnegative(),
    /**
     * Host time per module pass (one layer's forward or backward, a recompute, the embedding, the
     * head, the optimizer step) that the executor spends besides its kernels and their launches:
     * handing the pass to the kernel thread and back, its JavaScript, garbage collection. Measured
     * by running the executor (CPU backend); absent (0) in datasheet profiles, where launches are
     * asynchronous and overlap the GPU's work.
     */
    modulePassOverhead: z.number().nonnegative().optional(),
    /**
     * The same figures with every device of the host computing at once, those of the slowest
     * device (ranks that synchronize wait for it), measured by running the executor probe on all
     * of them in data parallel: kernels run `kernelSlowdown` times slower, and a module pass costs
     * `modulePassOverhead` (shared caches and memory, thread wake-ups on busy cores, cores that
     * also take the host's interrupts), or `pipelineModulePassOverhead` in a stage of a pipeline
     * (measured with one stage per device; absent: as in data parallel). The
     * analyzer interpolates between one device and all of them by the devices a plan keeps busy
     * on a node. Absent: no slowdown.
     */
    allBusy: z.strictObject({
      kernelSlowdown: z.number().min(1),
      modulePassOverhead: z.number().nonnegative(),
      pipelineModulePassOverhead: z.number().nonnegative().optional(),
    }).optional(),
  }),
  /**
   * Element-wise ops (opTable names) whose backward the backend computes inside the forward kernel,
   * so that their backward costs nothing (the CPU backend's cross-entropy writes the logits'
   * gradient while it computes the loss).
   */
  fusedIntoForward: z.array(z.string()).optional(),
  /** Measured matmul latencies (optional); when present the analyzer interpolates them. */
  matmulTable: z.array(MatmulPointSchema).optional(),
  opTable: z.array(OpPointSchema).optional(),
  links: z.strictObject({ intraNode: AlphaBetaSchema, interNode: AlphaBetaSchema, hostToDevice: AlphaBetaSchema }),
  /** Per-collective fits that override the link model (optional). */
  collectives: z.record(z.enum(COLLECTIVES), z.record(z.enum(LINK_CLASSES), AlphaBetaSchema)).optional(),
  overlap: z.strictObject({
    /** Compute runs this many times slower while a collective runs beside it (>= 1). */
    commSlowdown: z.number().min(1),
    /** Compute slowdown while host<->device copies run beside it (>= 1). */
    offloadSlowdown: z.number().min(1),
  }),
  /**
   * Step-to-step noise of a device that the other devices of a job do not share, seconds: per
   * measured step of ranks in data parallel, a rank's step time less the mean of all ranks' in that
   * step, less its median (garbage collection, preemption; what slows every rank at once makes
   * no straggler). A step of several ranks waits for the slowest, so its median meets a higher
   * quantile of this noise (the analyzer's stepJitter). Measured by the executor probe on CPU
   * hosts of several devices; absent (no noise) in datasheet profiles.
   */
  stepNoise: z.array(z.number()).optional(),
  /**
   * Extra seconds a pipeline message takes when its receiver has been waiting for it (asleep in
   * recv; on a virtual machine its CPU halted), beyond the send/recv fit, plus how much slower the
   * receiver's first compute after it runs than back to back. The analyzer adds it to
   * every pipeline send/recv. Measured on CPU hosts; absent (0) in datasheet profiles.
   */
  p2pWake: z.number().nonnegative().optional(),
  /** Raw collective timings of a measured profile (the source of `collectives`). */
  collectiveTable: z.array(CollectivePointSchema).optional(),
  /** Raw host<->device copy timings of a measured profile (the source of `links.hostToDevice`). */
  copyTable: z.array(CopyPointSchema).optional(),
  /** Raw overlap timings of a measured profile (the source of `overlap`). */
  overlapTable: z.array(OverlapPointSchema).optional(),
  /** The fits a measured profile derived from its tables, by name, with their errors. */
  fits: z.record(z.string(), FitReportSchema).optional(),
  /** Fields a measured profile had to fill without measuring them, with the reason (e.g. no inter-node link on one host). */
  unmeasured: z.record(z.string(), z.string()).optional(),
  memory: z.strictObject({
    /** CUDA context and kernels' code. */
    cudaContextBytes: z.number().nonnegative(),
    /** NCCL's communication buffers per communicator in use. */
    ncclBufferBytes: z.number().nonnegative(),
    /** Fraction of the rest lost to allocator fragmentation. */
    fragmentation: z.number().min(0).max(0.5),
    /**
     * Fraction of each node's host memory (ClusterSpec.hostMemoryPerNode) kept for the OS, the
     * framework and data loading; offloaded tensors may use the rest. Optional: the analyzer
     * defaults it to 0.1 (DEFAULT_HOST_RESERVE_FRACTION in @mist/analyzer).
     */
    hostReserveFraction: z.number().min(0).max(0.9).optional(),
  }),
});
export type HardwareProfile = z.output<typeof HardwareProfileSchema>;

export function parseHardwareProfile(data: unknown): HardwareProfile {
  return parseSpec(HardwareProfileSchema, data, 'hardware profile');
}

/** Device memory a training program can really use: datasheet capacity less the profile's reserves. */
export function usableDeviceMemory(p: HardwareProfile): number {
  const m = p.memory;
  return (p.cluster.gpu.memoryBytes - m.cudaContextBytes - m.ncclBufferBytes) * (1 - m.fragmentation);
}

/**
 * The built-in profile. Efficiencies are typical of large fp16 GEMMs on these GPUs (cuBLAS reaches
 * 70-80% of the tensor-core peak on large shapes; we take 0.7) and of element-wise kernels (~80% of
 * HBM bandwidth). The collective model is the ring's alpha-beta (Thakur et al. 2005) over the link
 * bandwidth. Memory reserves: ~0.5-1 GiB CUDA context (PyTorch/CUDA 12 measurements), NCCL buffers
 * (NCCL_BUFFSIZE 4 MiB x channels x peers, ~256 MiB in practice), ~5% allocator fragmentation.
 */
export function builtinHardwareProfile(cluster: ClusterSpec, computeDtype: 'fp16' | 'bf16' | 'fp32' = 'fp16'): HardwareProfile {
  const gpu = cluster.gpu;
  return parseHardwareProfile({
    version: 1,
    source: `datasheet:${gpu.name}`,
    machineKind: gpu.name,
    cluster,
    compute: {
      peakFlops: gpu.peakFlops[computeDtype],
      matmulEfficiency: 0.7,
      matmulHalfEfficiencyFlops: 2e9,
      attentionEfficiency: 0.8,
      memoryBandwidth: gpu.memoryBandwidth,
      memoryEfficiency: 0.8,
      kernelLaunch: 5e-6,
    },
    links: {
      intraNode: { alpha: cluster.intraNode.latency, beta: 1 / cluster.intraNode.bandwidth },
      interNode: { alpha: cluster.interNode.latency, beta: 1 / cluster.interNode.bandwidth },
      hostToDevice: { alpha: 10e-6, beta: 1 / (gpu.pcieBandwidth * 0.8) },
    },
    overlap: { commSlowdown: 1.1, offloadSlowdown: 1.05 },
    memory: { cudaContextBytes: 0.75 * GiB, ncclBufferBytes: 256 * MiB, fragmentation: 0.05 },
  });
}

/**
 * The kind of machine this process runs on, as a measured CPU profile names it: the CPU model and
 * the core count (os.cpus()). Two hosts of the same kind give interchangeable profiles.
 */
export function cpuMachineKind(): string {
  const cpus = os.cpus();
  const model = (cpus[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim();
  return `${model} (${cpus.length} cores)`;
}

/**
 * Refuses a measured profile taken on another kind of machine (its timings would not describe
 * this one) unless `force`. Datasheet profiles (source `datasheet:*`) and profiles without a
 * machineKind describe no particular host and are always accepted. Throws a SpecError naming both kinds.
 */
export function checkProfileMachine(
  profile: HardwareProfile,
  opts: { force?: boolean; machineKind?: string } = {},
): void {
  if (opts.force || profile.source !== 'measured' || !profile.machineKind) return;
  const here = opts.machineKind ?? cpuMachineKind();
  if (profile.machineKind === here) return;
  throw new SpecError('hardware profile', [{
    field: 'machineKind', value: profile.machineKind,
    message: `was measured on another kind of machine; this one is "${here}". Profile this machine with ` +
      '`mist profile --out host.json`, or pass --force to use the foreign profile anyway',
  }]);
}
