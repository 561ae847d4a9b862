// HardwareProfile: everything the analyzer needs to turn FLOPs and bytes into seconds on a cluster.
// The built-in profile is derived from the datasheet figures of the cluster's GPU and links; a
// measured one comes from `mist profile` (source "measured").
import { z } from 'zod';
import { type ClusterSpec, ClusterSpecSchema } from './cluster';
import { GiB, MiB } from './units';
import { parseSpec } from './validation';

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
  }),
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
  /** What a program cannot use of the device's memory. */
  memory: z.strictObject({
    /** CUDA context and kernels' code. */
    cudaContextBytes: z.number().nonnegative(),
    /** NCCL's communication buffers per communicator in use. */
    ncclBufferBytes: z.number().nonnegative(),
    /** Fraction of the rest lost to allocator fragmentation. */
    fragmentation: z.number().min(0).max(0.5),
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
