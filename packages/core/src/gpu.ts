// GpuSpec: datasheet figures of one accelerator. Dense (no sparsity) peak FLOP/s; bandwidths in
// bytes/s per direction. Sources:
//  - L4: NVIDIA L4 datasheet (24 GB GDDR6, 300 GB/s, FP16 tensor 121 TFLOPS dense, FP32 30.3 TFLOPS, PCIe Gen4 x16).
//  - A10G: AWS G5 / NVIDIA A10G figures (24 GB GDDR6, 600 GB/s, FP32 31.2 TFLOPS, FP16 tensor ~70 TFLOPS dense
//    as commonly measured for the A10G's lower clocks than A10's 125 TFLOPS), PCIe Gen4.
//  - V100 32GB SXM2: NVIDIA V100 datasheet (900 GB/s HBM2, 125 TFLOPS tensor, 15.7 FP32, NVLink 300 GB/s total).
//  - A100 40/80GB SXM: NVIDIA A100 datasheet (1555 / 2039 GB/s, BF16/FP16 312 TFLOPS dense, FP32 19.5,
//    NVLink 600 GB/s total, PCIe Gen4).
//  - H100 SXM: NVIDIA H100 datasheet (80 GB HBM3 3.35 TB/s, BF16 989 TFLOPS dense, FP32 67, NVLink 900 GB/s total, PCIe Gen5).
//  - H200: NVIDIA H200 datasheet (141 GB HBM3e 4.8 TB/s, BF16 989 TFLOPS dense, FP32 67, NVLink 900 GB/s, PCIe Gen5).
// NVLink totals are bidirectional; we store half of it (one direction) as `nvlinkBandwidth`.
import { z } from 'zod';
import { GB, GiB } from './units';
import { resolveName } from './names';
import { parseSpec } from './validation';

export const GpuSpecSchema = z.strictObject({
  name: z.string().min(1),
  memoryBytes: z.number().positive(),
  peakFlops: z.strictObject({ fp16: z.number().positive(), bf16: z.number().positive(), fp32: z.number().positive() }),
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
  { name: 'l4', memoryBytes: 24 * GB, peakFlops: { fp16: 121e12, bf16: 121e12, fp32: 30.3e12 }, memoryBandwidth: 300 * GB,
    nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a10g', memoryBytes: 24 * GB, peakFlops: { fp16: 70e12, bf16: 70e12, fp32: 31.2e12 }, memoryBandwidth: 600 * GB,
    nvlinkBandwidth: null, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'v100-32gb', memoryBytes: 32 * GiB, peakFlops: { fp16: 125e12, bf16: 125e12, fp32: 15.7e12 },
    memoryBandwidth: 900 * GB, nvlinkBandwidth: 150 * GB, pcieGen: 3, pcieBandwidth: PCIE[3] },
  { name: 'a100-40gb', memoryBytes: 40 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12 },
    memoryBandwidth: 1555 * GB, nvlinkBandwidth: 300 * GB, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'a100-80gb', memoryBytes: 80 * GiB, peakFlops: { fp16: 312e12, bf16: 312e12, fp32: 19.5e12 },
    memoryBandwidth: 2039 * GB, nvlinkBandwidth: 300 * GB, pcieGen: 4, pcieBandwidth: PCIE[4] },
  { name: 'h100-sxm', memoryBytes: 80 * GiB, peakFlops: { fp16: 989e12, bf16: 989e12, fp32: 67e12 },
    memoryBandwidth: 3350 * GB, nvlinkBandwidth: 450 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
  { name: 'h200', memoryBytes: 141 * GB, peakFlops: { fp16: 989e12, bf16: 989e12, fp32: 67e12 },
    memoryBandwidth: 4800 * GB, nvlinkBandwidth: 450 * GB, pcieGen: 5, pcieBandwidth: PCIE[5] },
].map((g) => parseSpec(GpuSpecSchema, g, 'GPU spec'));

export function gpuCatalog(): GpuSpec[] {
  return [...GPUS];
}

export function gpuNames(): string[] {
  return GPUS.map((g) => g.name);
}

// Product names that differ from the catalog's beyond case and separators (keys compacted: lower
// case without -, _ and spaces): the H100 SXM module is sold as "H100 SXM5"; "H200 SXM" is the H200.
const GPU_ALIASES: Record<string, string> = { h100sxm5: 'h100-sxm', h200sxm: 'h200', v10032g: 'v100-32gb' };

/**
 * The catalog name a user's spelling means: `L4`, `NVIDIA A100-80GB`, `h100` (the only H100 in the
 * catalog is the SXM one). `a100` is refused as ambiguous (40 GB or 80 GB).
 */
export function resolveGpuName(name: string): string {
  return resolveName(name, {
    what: 'GPU', field: 'gpu', names: gpuNames(), aliases: GPU_ALIASES, acceptVariant: true, strip: { prefixes: ['nvidia'] },
  });
}

/** A GPU of the catalog by (forgiving) name; throws a SpecError naming the nearest and allowed names. */
export function getGpu(name: string): GpuSpec {
  const resolved = resolveGpuName(name);
  const gpu = GPUS.find((g) => g.name === resolved);
  if (!gpu) throw new Error(`GPU catalog has no ${resolved}`);
  return gpu;
}
