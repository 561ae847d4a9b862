// GpuSpec: datasheet figures of one accelerator. Dense (no sparsity) peak FLOP/s; bandwidths in
// bytes/s per direction. Sources:
//  - L4: NVIDIA L4 datasheet (24 GB GDDR6, 300 GB/s, FP16 tensor 121 TFLOPS dense, FP32 30.3 TFLOPS, PCIe Gen4 x16).
//  - A10G: AWS G5 / NVIDIA A10G figures (24 GB GDDR6, 600 GB/s, FP32 31.2 TFLOPS, FP16 tensor ~70 TFLOPS dense
//    as commonly measured for the A10G's lower clocks than A10's 125 TFLOPS), PCIe Gen4.
//  - V100 16/32GB SXM2: NVIDIA V100 datasheet (16 or 32 GB HBM2 at 900 GB/s, 125 TFLOPS FP16 tensor, 15.7
//    FP32, NVLink 300 GB/s total, PCIe Gen3). Volta has no bf16 tensor cores (the datasheet lists none);
//    frameworks run bf16 matmuls on it at about the FP32 rate, which is what bf16 states here.
//  - A100 40/80GB SXM4 and PCIe: NVIDIA A100 datasheet (BF16/FP16 312 TFLOPS dense, FP32 19.5; HBM2
//    1555 GB/s for both 40GB parts, HBM2e 2039 GB/s SXM4 80GB and 1935 GB/s PCIe 80GB; SXM4: NVLink
//    600 GB/s total; PCIe: PCIe Gen4, an NVLink bridge joins at most two GPUs, so no NVLink between a node's GPUs).
//  - H100 SXM: NVIDIA H100 datasheet (80 GB HBM3 3.35 TB/s, BF16 989 TFLOPS dense, FP32 67, NVLink 900 GB/s total, PCIe Gen5).
//  - H100 PCIe: NVIDIA H100 datasheet, PCIe column (80 GB HBM2e 2.0 TB/s, BF16 756 TFLOPS dense (1513 with
//    sparsity), FP32 51, PCIe Gen5 128 GB/s total; NVLink bridge of two GPUs only).
//  - H800 SXM: the H100 SXM with NVLink cut to 400 GB/s total (NVIDIA H800 product brief; DeepSeek-V3
//    technical report, arXiv:2412.19437, Sec. 3.1: 400 GB/s NVLink, 400 Gb/s InfiniBand per GPU).
//  - H200: NVIDIA H200 datasheet (141 GB HBM3e 4.8 TB/s, BF16 989 TFLOPS dense, FP32 67, NVLink 900 GB/s, PCIe Gen5).
//  - B200: NVIDIA HGX B200 datasheet (8 GPUs: 1.4 TB HBM3e = 180 GB each, 64 TB/s = 8 TB/s each, FP16/BF16
//    36 PFLOPS with sparsity = 2.25 PFLOPS dense each, FP32 600 TFLOPS = 75 each, NVLink 5 1.8 TB/s total
//    per GPU, PCIe Gen5 to the host).
// fp8 (E4M3/E5M2) tensor-core peaks, dense (the datasheets print them with 2:4 sparsity, twice these):
//  - L4: 485 TFLOPS with sparsity (NVIDIA L4 datasheet) = 242.5 dense (Ada has fp8 tensor cores).
//  - H100 SXM 3958 and H100 PCIe 3026 with sparsity (NVIDIA H100 datasheet) = 1979 and 1513 dense;
//    H800 SXM the H100 SXM's (the same GH100 compute, NVIDIA H800 product brief); H200 3958 with
//    sparsity (NVIDIA H200 datasheet) = 1979; B200: HGX B200 datasheet FP8 72 PFLOPS with sparsity for
//    8 GPUs = 4500 dense each. The same dense figures: ml-engineering, compute/accelerator/README.md,
//    "TFLOPS comparison table" (fp8 column).
//  - A10G, V100, A100: no fp8 tensor cores (Ampere and Volta datasheets list none): null.
// NVLink totals are bidirectional; we store half of it (one direction) as `nvlinkBandwidth`.
import { z } from 'zod';
import { GB, GiB } from './units';
import { resolveName } from './names';
import { parseSpec } from './validation';

export const GpuSpecSchema = z.strictObject({
  name: z.string().min(1),
  memoryBytes: z.number().positive(),
  peakFlops: z.strictObject({
    fp16: z.number().positive(), bf16: z.number().positive(), fp32: z.number().positive(),
    /** Dense fp8 tensor-core peak; null or absent when the GPU has no fp8 tensor cores. */
    fp8: z.number().positive().nullable().optional(),
  }),
  memoryBandwidth: z.number().positive(),
  /** One-direction NVLink bandwidth per GPU, bytes/s; null when the GPU has none. */
  nvlinkBandwidth: z.number().positive().nullable(),
  pcieGen: z.number().int().min(3).max(6),
  /** One-direction PCIe x16 bandwidth, bytes/s. */
  pcieBandwidth: z.number().positive(),
});
export type GpuSpec = z.output<typeof GpuSpecSchema>;

// PCIe x16 one-direction raw bandwidth per generation (PCI-SIG): Gen3 ~16 GB/s, Gen4 ~32, Gen5 ~64.
const PCIE = { 3: 16 * GB, 4: 32 * GB, 5: 64 * GB } as const;

const GPUS: GpuSpec[] = [
  { name: 'l4', memoryBytes: 24 * GB, peakFlops: { fp16: 121e12, bf16: 121e12, fp32: 30.3e12, fp8: 242.5e12 }, memoryBandwidth: 300 * GB,
    nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a10g', memoryBytes: 24 * GB, peakFlops: { fp16: 70e12, bf16: 70e12, fp32: 31.2e12, fp8: null }, memoryBandwidth: 600 * GB,
    nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'v100-16gb', memoryBytes: 16 * GiB, peakFlops: { fp16: 125e12, bf16: 15.7e12, fp32: 15.7e12, fp8: null },
    memoryBandwidth: 900 * GB, nvlinkBandwidth: 150 * GB, pcieGen: 3, pcieBandwidth: PCIE[3] },
  { name: 'v100-32gb', memoryBytes: 32 * GiB, peakFlops: { fp16: 125e12, bf16: 15.7e12, fp32: 15.7e12, fp8: null },
    memoryBandwidth: 900 * GB, nvlinkBandwidth: 150 * GB, pcieGen: 3, pcieBandwidth: PCIE[3] },
  { name: 'a100-40gb', memoryBytes: 40 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12, fp8: null },
    memoryBandwidth: 1555 * GB, nvlinkBandwidth: 300 * GB, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a100-80gb', memoryBytes: 80 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12, fp8: null },
    memoryBandwidth: 2039 * GB, nvlinkBandwidth: 300 * GB, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a100-40gb-pcie', memoryBytes: 40 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12, fp8: null },
    memoryBandwidth: 1555 * GB, nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a100-80gb-pcie', memoryBytes: 80 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12, fp8: null },
    memoryBandwidth: 1935 * GB, nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'h100-sxm', memoryBytes: 80 * GiB, peakFlops: { fp16: 989e12, bf16: 989e12, fp32: 67e12, fp8: 1979e12 },
    memoryBandwidth: 3350 * GB, nvlinkBandwidth: 450 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
  { name: 'h100-pcie', memoryBytes: 80 * GiB, peakFlops: { fp16: 756e12, bf16: 756e12, fp32: 51e12, fp8: 1513e12 },
    memoryBandwidth: 2000 * GB, nvlinkBandwidth: null, pcieGen: 5, pcieBandwidth: PCIE[5] },
  { name: 'h800', memoryBytes: 80 * GiB, peakFlops: { fp16: 989e12, bf16: 989e12, fp32: 67e12, fp8: 1979e12 },
    memoryBandwidth: 3350 * GB, nvlinkBandwidth: 200 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
  { name: 'h200', memoryBytes: 141 * GB, peakFlops: { fp16: 989e12, bf16: 989e12, fp32: 67e12, fp8: 1979e12 },
    memoryBandwidth: 4800 * GB, nvlinkBandwidth: 450 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
  { name: 'b200', memoryBytes: 180 * GB, peakFlops: { fp16: 2250e12, bf16: 2250e12, fp32: 75e12, fp8: 4500e12 },
    memoryBandwidth: 8000 * GB, nvlinkBandwidth: 900 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
].map((g) => parseSpec(GpuSpecSchema, g, 'GPU spec'));

export function gpuCatalog(): GpuSpec[] {
  return [...GPUS];
}

export function gpuNames(): string[] {
  return GPUS.map((g) => g.name);
}

// Product names that differ from the catalog's beyond case and separators (keys compacted: lower
// case without -, _ and spaces): the H100 SXM module is sold as "H100 SXM5" and is what a bare "H100"
// means (training clusters are SXM; the PCIe card is `h100-pcie`); "H200 SXM" is the H200; the A100
// SXM4 modules are `a100-40gb` / `a100-80gb` however nvidia-smi or a vendor spells them; "H800 SXM5"
// is the H800.
const GPU_ALIASES: Record<string, string> = {
  h100: 'h100-sxm', h100sxm5: 'h100-sxm', h10080gbhbm3: 'h100-sxm', h100pcie80gb: 'h100-pcie', h80080gbhbm3: 'h800',
  h800sxm: 'h800', h800sxm5: 'h800', h200sxm: 'h200', b200sxm: 'b200', v10032g: 'v100-32gb', v10016g: 'v100-16gb',
  v100sxm232gb: 'v100-32gb', v100sxm216gb: 'v100-16gb',
  a10040gbsxm: 'a100-40gb', a100sxm40gb: 'a100-40gb', a100sxm440gb: 'a100-40gb', a10040gbsxm4: 'a100-40gb',
  a10080gbsxm: 'a100-80gb', a100sxm80gb: 'a100-80gb', a100sxm480gb: 'a100-80gb', a10080gbsxm4: 'a100-80gb',
  a100pcie40gb: 'a100-40gb-pcie', a100pcie80gb: 'a100-80gb-pcie',
};

/**
 * The catalog name a user's spelling means: `L4`, `NVIDIA A100-80GB`, `A100-SXM4-80GB`, `h100` (the SXM
 * module; `h100-pcie` is the card). `a100` and `v100` are refused as ambiguous (which memory size).
 */
export function resolveGpuName(name: string): string {
  return resolveName(name, {
    what: 'GPU', field: 'gpu', names: gpuNames(), aliases: GPU_ALIASES, acceptVariant: true, strip: { prefixes: ['nvidia', 'tesla'] },
  });
}

/** The GPU's dense fp8 tensor-core peak, FLOP/s, or null when it has none (absent in older cluster files: none). */
export function fp8PeakFlops(gpu: GpuSpec): number | null {
  return gpu.peakFlops.fp8 ?? null;
}

/** A GPU of the catalog by (forgiving) name; throws a SpecError naming the nearest and allowed names. */
export function getGpu(name: string): GpuSpec {
  const resolved = resolveGpuName(name);
  const gpu = GPUS.find((g) => g.name === resolved);
  if (!gpu) throw new Error(`GPU catalog has no ${resolved}`);
  return gpu;
}
