// ClusterSpec: nodes x gpusPerNode of one GPU kind and the links between them.
import { z } from 'zod';
import { getGpu, GpuSpecSchema, gpuNames } from './gpu';
import { GB } from './units';
import { parseSpec, SpecError } from './validation';

export const LinkSchema = z.strictObject({
  /** One-direction bandwidth per GPU, bytes/s. */
  bandwidth: z.number().positive(),
  /** Latency per message, seconds. */
  latency: z.number().nonnegative(),
});
export type Link = z.output<typeof LinkSchema>;

export const ClusterSpecSchema = z.strictObject({
  name: z.string().min(1),
  nodes: z.number().int().positive(),
  gpusPerNode: z.number().int().positive(),
  gpu: GpuSpecSchema,
  intraNode: LinkSchema,
  /** Per-GPU share of the node's network bandwidth. */
  interNode: LinkSchema,
  hostMemoryPerNode: z.number().positive(),
});
export type ClusterSpec = z.output<typeof ClusterSpecSchema>;

// Network per node commonly deployed with each GPU kind (per-GPU share used for inter-node links):
// cloud L4/A10G instances with 100 Gb/s (GCP g2, AWS g5), V100 DGX-2 style 8x100 Gb/s, A100 with
// 8x200 Gb/s HDR InfiniBand (DGX A100 / Selene, Narayanan et al. 2021), H100/H200 with 8x400 Gb/s NDR.
const NETWORK_PER_NODE_BYTES: Record<string, number> = {
  l4: 12.5 * GB, a10g: 12.5 * GB, 'v100-32gb': 100 * GB, 'a100-40gb': 200 * GB, 'a100-80gb': 200 * GB,
  'h100-sxm': 400 * GB, h200: 400 * GB,
};
// Host memory per GPU of typical machines: GCP g2-standard-96 (8 L4, 384 GB), AWS g5.48xlarge (8 A10G,
// 768 GB), DGX-1V (512 GB / 8), DGX A100 (1 TB / 8 for 40GB, 2 TB / 8 for 80GB), DGX H100/H200 (2 TB / 8).
const HOST_MEMORY_PER_GPU: Record<string, number> = {
  l4: 48 * GB, a10g: 96 * GB, 'v100-32gb': 64 * GB, 'a100-40gb': 128 * GB, 'a100-80gb': 256 * GB,
  'h100-sxm': 256 * GB, h200: 256 * GB,
};

const SHORTHAND = /^(\d+)x(\d+)-(.+)$/;

/** Parses `NODESxGPUS-GPU`, e.g. `2x8-a100-40gb`, into a ClusterSpec with the catalog's links. */
export function parseClusterShorthand(text: string): ClusterSpec {
  const m = SHORTHAND.exec(text.trim());
  if (!m) {
    throw new SpecError('cluster', [
      { field: 'cluster', value: text, message: `expected NODESxGPUS-GPU, e.g. 1x8-l4 or 2x8-a100-40gb (GPUs: ${gpuNames().join(', ')})` },
    ]);
  }
  const nodes = Number(m[1]);
  const gpusPerNode = Number(m[2]);
  const gpu = getGpu(m[3]);
  // Without NVLink, GPUs in a node talk over PCIe through the host; ~80% of the raw rate is achievable.
  const intraBandwidth = gpu.nvlinkBandwidth ?? gpu.pcieBandwidth * 0.8;
  return parseClusterSpec({
    name: text.trim(),
    nodes,
    gpusPerNode,
    gpu,
    intraNode: { bandwidth: intraBandwidth, latency: gpu.nvlinkBandwidth ? 5e-6 : 10e-6 },
    interNode: { bandwidth: NETWORK_PER_NODE_BYTES[gpu.name] / gpusPerNode, latency: 20e-6 },
    hostMemoryPerNode: HOST_MEMORY_PER_GPU[gpu.name] * gpusPerNode,
  });
}

export function parseClusterSpec(data: unknown): ClusterSpec {
  return parseSpec(ClusterSpecSchema, data, 'cluster spec');
}

export function clusterDevices(c: ClusterSpec): number {
  return c.nodes * c.gpusPerNode;
}
