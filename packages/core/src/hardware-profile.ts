// HardwareProfile: everything the analyzer needs to turn FLOPs and bytes into seconds on a cluster.
// The built-in profile is derived from the datasheet figures of the cluster's GPU and links; a
// measured one comes from `mist profile` (source "measured").
import * as os from 'node:os';
import { z } from 'zod';
import { BackendProfileSchema, liftLegacyBackendKeys } from './backend-profile';
import { type ClusterSpec, ClusterSpecSchema } from './cluster';
import type { FlashAttentionKernel } from './training';
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
    /**
     * Share of the s x s score work a flash-attention kernel really does: a causal kernel skips the
     * tiles above the diagonal (FlashAttention-2, Dao 2023, Sec. 3.1.1), about half. The
     * analyzer counts the full s x s FLOPs and scales their time by this. Optional, default 1.
     */
    attentionWorkFraction: z.number().positive().max(1).optional(),
    memoryBandwidth: z.number().positive(),
    /** Fraction of memory bandwidth element-wise kernels reach. */
    memoryEfficiency: z.number().positive().max(1),
    /** Fixed cost per kernel launch, seconds. */
    kernelLaunch: z.number().nonnegative(),
  }),
  /** Measured matmul latencies (optional); when present the analyzer interpolates them. */
  matmulTable: z.array(MatmulPointSchema).optional(),
  opTable: z.array(OpPointSchema).optional(),
  links: z.strictObject({
    intraNode: AlphaBetaSchema, interNode: AlphaBetaSchema, hostToDevice: AlphaBetaSchema,
    /**
     * How the inter-node link's bandwidth scales with a collective group's ranks on one node:
     * `ranksPerNode` when a group of k ranks per node gets k times interNode's (per-GPU) bandwidth, no
     * more than the intra-node link's, as NCCL's rings spread over all the node's network cards
     * (one per GPU on DGX-class nodes); `perGpu` (default) when every group gets interNode's alone.
     */
    interNodeScaling: z.enum(['perGpu', 'ranksPerNode']).optional(),
  }),
  /** Per-collective fits that override the link model (optional). */
  collectives: z.record(z.enum(COLLECTIVES), z.record(z.enum(LINK_CLASSES), AlphaBetaSchema)).optional(),
  overlap: z.strictObject({
    /** Compute runs this many times slower while a collective runs beside it (>= 1). */
    commSlowdown: z.number().min(1),
    /** Compute slowdown while host<->device copies run beside it (>= 1). */
    offloadSlowdown: z.number().min(1),
  }),
  /**
   * Calibration terms of the executor backend the profile was measured with (backend-profile.ts):
   * the CPU executor's host cost per module pass, its slowdowns with every device busy, fused ops,
   * step noise and pipeline wake-ups. Absent: a framework on GPUs, with none of these terms.
   * Profiles written before the section kept the CPU terms in `compute` and at the top level; the
   * parser moves them here (liftLegacyBackendKeys).
   */
  backend: BackendProfileSchema.optional(),
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
     * Library workspaces the framework allocates from its allocator beside the tensors (cuBLAS /
     * cuBLASLt workspaces per stream). Optional, default 0.
     */
    workspaceBytes: z.number().nonnegative().optional(),
    /**
     * Fraction of each node's host memory (ClusterSpec.hostMemoryPerNode) kept for the OS, the
     * framework and data loading; offloaded tensors may use the rest. Optional: the analyzer
     * defaults it to 0.1 (DEFAULT_HOST_RESERVE_FRACTION in @mist/analyzer).
     */
    hostReserveFraction: z.number().min(0).max(0.9).optional(),
  }),
});
export type HardwareProfile = z.output<typeof HardwareProfileSchema>;

/**
 * Validates a profile document; the CPU executor's terms at their places before the backend
 * section (compute.modulePassOverhead, compute.allBusy, fusedIntoForward, stepNoise, p2pWake) are
 * moved into `backend` first.
 */
export function parseHardwareProfile(data: unknown): HardwareProfile {
  return parseSpec(HardwareProfileSchema, liftLegacyBackendKeys(data), 'hardware profile');
}

/** Device memory a training program can really use: datasheet capacity less the profile's reserves. */
export function usableDeviceMemory(p: HardwareProfile): number {
  const m = p.memory;
  return (p.cluster.gpu.memoryBytes - m.cudaContextBytes - m.ncclBufferBytes) * (1 - m.fragmentation) - (m.workspaceBytes ?? 0);
}

/**
 * The device memory a process holds for `tensorBytes` of live tensors at its peak, three ways:
 * `allocated` (tensors and library workspaces: torch.cuda.max_memory_allocated), `reserved` (what
 * the caching allocator holds for them, fragmentation included: torch.cuda.max_memory_reserved) and
 * `process` (reserved plus the CUDA context and NCCL's buffers, outside the allocator: what nvidia-smi
 * shows). The inverse of usableDeviceMemory: process(usableDeviceMemory(p)) is the GPU's capacity.
 * `liveBytes` is the peak of the tensors live at one time, where the analyzer knows it apart from the
 * bytes the allocator holds at its peak (analyzer stage-model.ts peakLive); allocated never exceeds
 * reserved.
 */
export function deviceMemoryFootprint(p: HardwareProfile, tensorBytes: number, liveBytes = tensorBytes): { allocated: number; reserved: number; process: number } {
  const m = p.memory;
  const workspace = m.workspaceBytes ?? 0;
  const reserved = (tensorBytes + workspace) / (1 - m.fragmentation);
  const allocated = Math.min(liveBytes + workspace, reserved);
  return { allocated, reserved, process: reserved + m.cudaContextBytes + m.ncclBufferBytes };
}

/**
 * Achievable figures of one GPU kind from public measurements, as fractions of its datasheet peaks:
 *  - `matmul`: the best-shape bf16 GEMM ("Maximum Achievable Matmul FLOPS", S. Bekman, ml-engineering,
 *    compute/accelerator/README.md, MAMF table, torch 2.5-2.7: A100 SXM 271.2 of 312 TFLOPS = 86.9%,
 *    A100 PCIe 252.9 = 81.1%, H100 SXM 794.5 of 989 = 80.3% ("H200 is the same"), B200 1745 of 2250 = 77.6%).
 *  - `flashAttention`: causal FlashAttention-2 forward + backward, head dim 128, FLOPs counted as the
 *    paper counts them (the causal half only): Dao 2023, arXiv:2307.08691, Fig. 4 (A100 80GB SXM4, about
 *    160-190 of 312 TFLOPS from 2k to 16k tokens; 170 taken) and the H100 SXM5 figure of the same
 *    benchmark (about 285-335 of 989; 310 taken).
 *  - `memory`: element-wise kernels' share of the HBM bandwidth (STREAM-like copies reach 85-90%: Jia et
 *    al. 2018, "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking", 790 of 900 GB/s on
 *    V100; framework kernels of small tensors reach less, 85% is taken).
 * GPUs without a measurement of their own take their architecture's: the H100 SXM's for the H800 and
 * H200 (the same silicon), the A100 PCIe's matmul and the H100's attention for the H100 PCIe, the
 * H100's attention relative to matmul for the B200. GPUs the table does not name (L4, A10G, the V100s,
 * custom specs) keep the earlier uniform figures (UNCALIBRATED).
 */
export interface GpuCalibration {
  /** Best-shape bf16 GEMM, share of the datasheet peak (MAMF). */
  matmul: number;
  /** Causal flash attention, share of the datasheet peak. */
  flashAttention: number;
  /** Element-wise kernels, share of the HBM bandwidth. */
  memory: number;
  /** Share of `matmul` (and of the attention rate) a training step's kernels sustain: SUSTAINED_MATMUL_SHARE, or a fitted value. */
  sustained: number;
}
/**
 * GEMMs inside a training step reach less than their isolated best-shape rate (MAMF): training
 * shapes off the best tile fit, clocks held down by sustained power draw, other kernels' memory
 * traffic. 0.8 keeps the A100 at the 70% of peak large cuBLAS GEMMs reach in Megatron-LM training
 * (cuBLAS's 70-80% on large shapes, the figure this profile used before per-GPU calibration) and
 * carries the MAMF ratios between GPUs over to the others.
 */
const SUSTAINED_MATMUL_SHARE = 0.8;
/**
 * The H100 SXM's, fitted (tools/validate/calibrate.js) on NVIDIA's published Megatron-Core runs on H100,
 * 16 together: the weak-scaling runs of the Megatron-LM README (images/model_table.png, source
 * "megatron-core-2024") and NeMo 24.07's FP8 pretraining table (docs/source/performance/
 * performance_summary.md, source "nemo-2407") of tools/validate/published-runs.json, whose runs are then
 * not held out: the share that makes their median predicted iteration time equal the measured one, with
 * their attention at cuDNN's rate (CUDNN_ATTENTION_SHARE; 0.718 on the README's 4 runs at
 * FlashAttention-2's rate before 2026-12-06). SUSTAINED_MATMUL_SHARE carried over by the
 * MAMF ratio had every H100 source of the validation set predicted 9-20% fast (Megatron-Core -9%,
 * torchtitan -12%, llm-foundry -20% median) while the A100 sources sat at -6% to +7%: through a
 * training step the H100 keeps a smaller share of its best-shape rate than the A100 does (MAMF times
 * 100 iterations of one best shape after 50 warm-up ones; power and clock limits under sustained load
 * are one likely cause, not measured here).
 */
const HOPPER_SUSTAINED_SHARE = 0.748;
/**
 * cuDNN's fused flash attention (Transformer Engine's FusedAttention, sub-backend F16_arbitrary_seqlen)
 * against flash-attn v2 on an H100 80GB HBM3, forward + backward, bf16, head dim 128, causal: 1.5968x at
 * 2k tokens (batch 2, 16 heads) and 1.5877x at 8k (batch 2, 32 heads, 4 KV groups) (NVIDIA/TransformerEngine
 * docs/examples/attention/attention.ipynb, the output of benchmarks/attention/benchmark_attention.py; its
 * text: "cuDNN attention has 20-50% advantages on Hopper"). The FlashAttention-3 paper's forward-only
 * figure (Dao-AILab/flash-attention assets/flash3_fp16_fwd.png, H100 SXM5, causal, head dim 128) gives
 * the same ratio forward: cuDNN 484-539 against FlashAttention-2's 298-335 TFLOPS/s from 2k to 16k
 * (1.59-1.62). Measured on Hopper only: Transformer Engine selects it there (attention.py since
 * 32db39288, Dec 2023: "Select FusedAttention on sm90 and FlashAttention on others for performance").
 */
const CUDNN_ATTENTION_SHARE = 1.59;
/**
 * Each flash-attention kernel's rate as a share of FlashAttention-2's (GpuCalibration.flashAttention,
 * the rate the profiles take): causal, head dim 128, forward + backward on A100 80GB SXM4, 2k to 16k
 * tokens (Dao-AILab/flash-attention assets/flash2_a100_fwd_bwd_benchmark.png, the FlashAttention-2
 * release 4f285b3; Dao 2023, arXiv:2307.08691, Fig. 4d): FlashAttention (v1) 69, 76, 80, 83 and
 * FlashAttention Triton 68, 74, 78, 80 TFLOPS/s against FlashAttention-2's 155, 173, 182, 189: 0.44 and
 * 0.43 at every length. The H100 figure of the same benchmark has no Triton bar; its v1 share at
 * those lengths (108-137 of 265-328) is 0.41-0.44, so the A100 shares are taken for every GPU.
 */
export const FLASH_KERNEL_SHARE: Readonly<Record<FlashAttentionKernel, number>> = { flash2: 1, flash1: 0.44, triton: 0.43, cudnn: CUDNN_ATTENTION_SHARE };
const AMPERE_SXM: GpuCalibration = { matmul: 0.869, flashAttention: 170 / 312, memory: 0.85, sustained: SUSTAINED_MATMUL_SHARE };
const AMPERE_PCIE: GpuCalibration = { matmul: 0.811, flashAttention: 170 / 312, memory: 0.85, sustained: SUSTAINED_MATMUL_SHARE };
const HOPPER_SXM: GpuCalibration = { matmul: 0.803, flashAttention: 310 / 989, memory: 0.85, sustained: HOPPER_SUSTAINED_SHARE };
const GPU_CALIBRATION: Record<string, GpuCalibration> = {
  'a100-40gb': AMPERE_SXM, 'a100-80gb': AMPERE_SXM, 'a100-40gb-pcie': AMPERE_PCIE, 'a100-80gb-pcie': AMPERE_PCIE,
  'h100-sxm': HOPPER_SXM, h800: HOPPER_SXM, h200: HOPPER_SXM, 'h100-pcie': { ...AMPERE_PCIE, flashAttention: 310 / 989 },
  b200: { matmul: 0.776, flashAttention: 0.776 * (310 / 989) / 0.803, memory: 0.85, sustained: SUSTAINED_MATMUL_SHARE },
};

/** The calibration of a catalog GPU's built-in profile, or null for a GPU the table does not know (UNCALIBRATED). */
export function builtinGpuCalibration(gpuName: string): GpuCalibration | null {
  return GPU_CALIBRATION[gpuName] ?? null;
}
/**
 * A GPU the table does not know: large GEMMs at 70% of peak (cuBLAS's 70-80% on large shapes),
 * attention at 80% of that with its FLOPs counted in full, element-wise kernels at 80% of the memory
 * bandwidth, the links at their stated bandwidth.
 */
const UNCALIBRATED: GpuCalibration = { matmul: 0.7, flashAttention: 0.7 * 0.8, memory: 0.8, sustained: 1 };
/**
 * The bus bandwidth nccl-tests reports for all-reduce inside a node, as a share of the one-direction
 * NVLink figure (NVIDIA's nccl-tests results on DGX A100, about 230-240 of 300 GB/s, and on DGX H100
 * without NVLink SHARP, about 350-370 of 450 GB/s).
 */
const NVLINK_BUS_EFFICIENCY = 0.78;
/**
 * The same over InfiniBand / RoCE, share of the line rate: nccl-tests across DGX nodes report
 * about 23 GB/s bus bandwidth per 200 Gb/s HDR port and about 45 per 400 Gb/s NDR port.
 */
const NETWORK_BUS_EFFICIENCY = 0.9;
/**
 * Share of the caching allocator's reserved memory that holds no live tensor at the peak (its
 * rounding of block sizes and the free pieces between blocks). PyTorch rounds large blocks to 2 MiB
 * (under 1% of LLM-sized tensors); what stays free between blocks depends on the run: GMLake (Guo et
 * al., ASPLOS 2024) measures 15% on average, up to 33%, on LLM fine-tuning with ZeRO-3, LoRA and
 * recompute, while runs that allocate the same shapes every step stay near the rounding. 0.05 is
 * taken for the capacity check; the validation set's FSDP rows (tools/validate) show where it is low.
 */
const FRAGMENTATION = 0.05;
/**
 * A causal flash-attention kernel computes the score tiles on and below the diagonal: half of
 * them plus the diagonal (FlashAttention-2, Sec. 3.1.1); 0.5 is the long-sequence limit.
 */
const CAUSAL_WORK_FRACTION = 0.5;

/**
 * The built-in profile of a cluster: its GPU's datasheet peaks times the achievable fractions
 * above (GPU_CALIBRATION); matmuls of F FLOPs reach half their large-shape rate at 2 GFLOPs (a
 * kernel of a few microseconds). The collective model is the ring's alpha-beta (Thakur et al.
 * 2005) over the links' nccl-tests bus bandwidth, a group's inter-node bandwidth growing with its
 * ranks per node (NCCL spreads its rings over every network card of a node). Memory reserves: ~0.5-1
 * GiB CUDA context with the kernels' code and cuBLAS workspaces (PyTorch/CUDA 12 measurements;
 * PyTorch's default CUBLAS_WORKSPACE_CONFIG :4096:8 is 32 MiB per stream), NCCL buffers (NCCL_BUFFSIZE
 * 4 MiB x channels x peers, ~256 MiB in practice), the caching allocator's fragmentation
 * (FRAGMENTATION). memory.workspaceBytes is left to measured profiles.
 */
export function builtinHardwareProfile(cluster: ClusterSpec, computeDtype: 'fp16' | 'bf16' | 'fp32' = 'fp16'): HardwareProfile {
  const gpu = cluster.gpu;
  const cal = GPU_CALIBRATION[gpu.name] ?? UNCALIBRATED;
  const calibrated = cal !== UNCALIBRATED;
  // NVLink figures are the datasheet's; a PCIe node's intra-node bandwidth is already the achievable share (cluster.ts).
  const intraBus = gpu.nvlinkBandwidth !== null && cluster.intraNode.bandwidth === gpu.nvlinkBandwidth ? NVLINK_BUS_EFFICIENCY : 1;
  return parseHardwareProfile({
    version: 1,
    source: `datasheet:${gpu.name}`,
    machineKind: gpu.name,
    cluster,
    compute: {
      peakFlops: gpu.peakFlops[computeDtype],
      matmulEfficiency: cal.matmul * cal.sustained,
      matmulHalfEfficiencyFlops: 2e9,
      attentionEfficiency: Math.min(1, cal.flashAttention / cal.matmul),
      ...(calibrated ? { attentionWorkFraction: CAUSAL_WORK_FRACTION } : {}),
      memoryBandwidth: gpu.memoryBandwidth,
      memoryEfficiency: cal.memory,
      kernelLaunch: 5e-6,
    },
    links: {
      intraNode: { alpha: cluster.intraNode.latency, beta: 1 / (cluster.intraNode.bandwidth * (calibrated ? intraBus : 1)) },
      interNode: { alpha: cluster.interNode.latency, beta: 1 / (cluster.interNode.bandwidth * (calibrated ? NETWORK_BUS_EFFICIENCY : 1)) },
      hostToDevice: { alpha: 10e-6, beta: 1 / (gpu.pcieBandwidth * 0.8) },
      interNodeScaling: 'ranksPerNode',
    },
    overlap: { commSlowdown: 1.1, offloadSlowdown: 1.05 },
    memory: { cudaContextBytes: 0.75 * GiB, ncclBufferBytes: 256 * MiB, fragmentation: FRAGMENTATION },
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
 * Refuses a measured profile of CPU devices taken on another kind of machine (its timings would not
 * describe the CPU executor here) unless `force`. Datasheet profiles (source `datasheet:*`), profiles
 * without a machineKind and profiles of GPUs (`mist profile --device cuda`: they describe the GPU
 * host the plan will run on, wherever it is planned) are always accepted. Throws a SpecError naming both kinds.
 */
export function checkProfileMachine(
  profile: HardwareProfile,
  opts: { force?: boolean; machineKind?: string } = {},
): void {
  if (opts.force || profile.source !== 'measured' || !profile.machineKind) return;
  if (!profile.cluster.gpu.name.startsWith('cpu')) return;
  const here = opts.machineKind ?? cpuMachineKind();
  if (profile.machineKind === here) return;
  throw new SpecError('hardware profile', [{
    field: 'machineKind', value: profile.machineKind,
    message: `was measured on another kind of machine; this one is "${here}". Profile this machine with ` +
      '`mist profile --out host.json`, or pass --force to use the foreign profile anyway',
  }]);
}
