// ClusterSpec: nodes x gpusPerNode of one GPU kind and the links between them.
import { z } from 'zod';
import { getGpu, type GpuSpec, GpuSpecSchema, gpuNames } from './gpu';
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
// 8x200 Gb/s HDR InfiniBand (DGX A100 / Selene, Narayanan et al. 2021), H100/H200 with 8x400 Gb/s NDR,
// H800 with 400 Gb/s per GPU (DeepSeek-V3 report, Sec. 3.1), B200 with 8x400 Gb/s (DGX B200 datasheet:
// 8 ConnectX-7). PCIe cards go in general-purpose servers, typically one 200 Gb/s NIC per two GPUs.
const NETWORK_PER_NODE_BYTES: Record<string, number> = {
  l4: 12.5 * GB, a10g: 12.5 * GB, 'v100-16gb': 100 * GB, 'v100-32gb': 100 * GB, 'a100-40gb': 200 * GB, 'a100-80gb': 200 * GB,
  'a100-40gb-pcie': 100 * GB, 'a100-80gb-pcie': 100 * GB, 'h100-sxm': 400 * GB, 'h100-pcie': 100 * GB, h800: 400 * GB,
  h200: 400 * GB, b200: 400 * GB,
};
// Host memory per GPU of typical machines: GCP g2-standard-96 (8 L4, 384 GB), AWS g5.48xlarge (8 A10G,
// 768 GB), DGX-1V (512 GB / 8), DGX A100 (1 TB / 8 for 40GB, 2 TB / 8 for 80GB), DGX H100/H200 (2 TB / 8),
// DGX B200 (2 TB / 8); PCIe servers as the DGX of the same memory size.
const HOST_MEMORY_PER_GPU: Record<string, number> = {
  l4: 48 * GB, a10g: 96 * GB, 'v100-16gb': 64 * GB, 'v100-32gb': 64 * GB, 'a100-40gb': 128 * GB, 'a100-80gb': 256 * GB,
  'a100-40gb-pcie': 128 * GB, 'a100-80gb-pcie': 256 * GB, 'h100-sxm': 256 * GB, 'h100-pcie': 256 * GB, h800: 256 * GB,
  h200: 256 * GB, b200: 256 * GB,
};

const SHORTHAND = /^(\d+)\s*[xX]\s*(\d+)\s*-\s*(.+)$/;

/** What a cluster is built from: its shape and GPU, and what differs from the catalog's defaults. */
export interface ClusterOptions {
  nodes: number;
  gpusPerNode: number;
  /** A catalog GPU name (forgiving: `L4`, `h100`) or a full GpuSpec. */
  gpu: string | GpuSpec;
  /** Default `NODESxGPUS-GPU`. */
  name?: string;
  /** Host memory of one node, bytes (default: the catalog's typical machine for the GPU). */
  hostMemoryPerNode?: number;
  /** Link between GPUs of one node, per GPU, one direction (default: NVLink, else 80% of PCIe). */
  intraNode?: Partial<Link>;
  /** Per-GPU share of the node's network, one direction (default: the catalog's typical network / gpusPerNode). */
  interNode?: Partial<Link>;
}

/** A ClusterSpec of catalog defaults with the given overrides, validated. */
export function buildCluster(o: ClusterOptions): ClusterSpec {
  const gpu = typeof o.gpu === 'string' ? getGpu(o.gpu) : o.gpu;
  const known = gpuNames().includes(gpu.name);
  const need = (what: string, v: number | undefined): number => {
    if (v !== undefined) return v;
    throw new SpecError('cluster', [{ field: what, value: undefined, message: `required: the catalog has no default for GPU ${gpu.name}` }]);
  };
  // Without NVLink, GPUs in a node talk over PCIe through the host; ~80% of the raw rate is achievable.
  const intraBandwidth = gpu.nvlinkBandwidth ?? gpu.pcieBandwidth * 0.8;
  const network = known ? NETWORK_PER_NODE_BYTES[gpu.name] / o.gpusPerNode : undefined;
  const hostPerGpu = known ? HOST_MEMORY_PER_GPU[gpu.name] : undefined;
  return parseClusterSpec({
    name: o.name ?? `${o.nodes}x${o.gpusPerNode}-${gpu.name}`,
    nodes: o.nodes,
    gpusPerNode: o.gpusPerNode,
    gpu,
    intraNode: {
      bandwidth: o.intraNode?.bandwidth ?? intraBandwidth,
      latency: o.intraNode?.latency ?? (gpu.nvlinkBandwidth ? 5e-6 : 10e-6),
    },
    interNode: { bandwidth: need('interNode.bandwidth', o.interNode?.bandwidth ?? network), latency: o.interNode?.latency ?? 20e-6 },
    hostMemoryPerNode: need('hostMemoryPerNode', o.hostMemoryPerNode ?? (hostPerGpu === undefined ? undefined : hostPerGpu * o.gpusPerNode)),
  });
}

/**
 * Parses `NODESxGPUS-GPU`, e.g. `2x8-a100-40gb`, into a ClusterSpec with the catalog's links. The GPU
 * is looked up forgivingly (`1x8-L4`, `1X8-H100`), and the spec is named in the catalog's spelling
 * (`1x8-l4`, `1x8-h100-sxm`), so plans written from it name a cluster every command reads back.
 */
export function parseClusterShorthand(text: string): ClusterSpec {
  const m = SHORTHAND.exec(text.trim());
  if (!m) {
    throw new SpecError('cluster', [
      { field: 'cluster', value: text, message: `expected NODESxGPUS-GPU, e.g. 1x8-l4 or 2x8-a100-40gb (GPUs: ${gpuNames().join(', ')})` },
    ]);
  }
  return buildCluster({ nodes: Number(m[1]), gpusPerNode: Number(m[2]), gpu: m[3] });
}

// A cluster file may name its GPU from the catalog and leave out what the catalog can default:
// `{ nodes: 2, gpusPerNode: 8, gpu: "a100-80gb", hostMemoryPerNode: 2e12 }`.
const ClusterFileSchema = z.strictObject({
  name: z.string().min(1).optional(),
  nodes: z.number().int().positive(),
  gpusPerNode: z.number().int().positive(),
  gpu: z.string().min(1),
  intraNode: LinkSchema.partial().optional(),
  interNode: LinkSchema.partial().optional(),
  hostMemoryPerNode: z.number().positive().optional(),
});

/**
 * A ClusterSpec from a file's contents: the full spec (what `mist cluster` writes), or the short
 * form with a catalog GPU name whose missing links and host memory take the catalog's defaults.
 */
export function clusterFromDocument(data: unknown): ClusterSpec {
  if (data && typeof data === 'object' && typeof (data as { gpu?: unknown }).gpu === 'string') {
    return buildCluster(parseSpec(ClusterFileSchema, data, 'cluster spec'));
  }
  return parseClusterSpec(data);
}

export function parseClusterSpec(data: unknown): ClusterSpec {
  return parseSpec(ClusterSpecSchema, data, 'cluster spec');
}

export function clusterDevices(c: ClusterSpec): number {
  return c.nodes * c.gpusPerNode;
}
