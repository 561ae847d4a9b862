// `mist cluster`: writes a ClusterSpec file (core's schema) from a shape, a catalog GPU and what differs
// from the catalog's defaults (host memory, network, NVLink/PCIe link), for `--cluster FILE` in
// tune, analyze, validate and job files. Sizes and bandwidths take units (1TiB, 768GB, 400Gbps, 25GB/s).
import * as fs from 'node:fs';
import {
  buildCluster, type ClusterOptions, type ClusterSpec, formatBytes, GB, loadCluster, parseBandwidth, parseBytes, parseDuration, resolveGpuName,
} from '@mist/core';
import { type Command, intOpt, JSON_OPTION, stringOpt, UsageError } from '../cli/command';
import { renderTable } from '../cli/table';

function rate(bytesPerS: number): string {
  return `${(bytesPerS / GB).toFixed(2)} GB/s (${((bytesPerS * 8) / GB).toFixed(1)} Gb/s)`;
}

function latency(s: number): string {
  return `${(s * 1e6).toFixed(1)} us`;
}

export function clusterTable(c: ClusterSpec): string {
  const rows: Array<[string, string]> = [
    ['name', c.name],
    ['nodes x GPUs per node', `${c.nodes} x ${c.gpusPerNode} = ${c.nodes * c.gpusPerNode} GPUs`],
    ['GPU', `${c.gpu.name}, ${formatBytes(c.gpu.memoryBytes)}, ${(c.gpu.peakFlops.bf16 / 1e12).toFixed(0)} TFLOP/s bf16`],
    ['host memory per node', `${formatBytes(c.hostMemoryPerNode)} (${formatBytes(c.hostMemoryPerNode / c.gpusPerNode)} per GPU)`],
    ['intra-node link per GPU', `${rate(c.intraNode.bandwidth)}, latency ${latency(c.intraNode.latency)}`],
    ['inter-node link per GPU', `${rate(c.interNode.bandwidth)}, latency ${latency(c.interNode.latency)}`],
    ['network per node', rate(c.interNode.bandwidth * c.gpusPerNode)],
  ];
  return renderTable(rows, [
    { header: 'field', value: (r) => r[0] },
    { header: 'value', value: (r) => r[1] },
  ]);
}

function optional<T>(values: Record<string, unknown>, name: string, parse: (text: string, field: string) => T): T | undefined {
  const v = values[name];
  return typeof v === 'string' ? parse(v, `--${name}`) : undefined;
}

export const clusterCommand: Command = {
  name: 'cluster',
  summary: 'write a cluster file (ClusterSpec) from nodes, GPUs, host memory and network, for --cluster FILE',
  usage: 'mist cluster --nodes N --gpus-per-node N --gpu NAME [--host-memory SIZE] [--inter-node BW] [--intra-node BW] ' +
    '[--inter-node-latency T] [--intra-node-latency T] [--name NAME] [--from SHORTHAND|FILE] [--out cluster.json] [--json]',
  examples: [
    'mist cluster --nodes 4 --gpus-per-node 8 --gpu a100-80gb --host-memory 1TiB --inter-node 400Gbps --out cluster.json',
    'mist tune --model gpt3-6.7b --cluster cluster.json --global-batch 128 --seq 2048',
    'mist cluster --from 1x8-l4 --host-memory 768GB --json',
  ],
  options: {
    nodes: { type: 'string', valueName: 'N', description: 'number of nodes (hosts)' },
    'gpus-per-node': { type: 'string', valueName: 'N', description: 'GPUs in each node' },
    gpu: { type: 'string', valueName: 'NAME', description: 'GPU kind from `mist gpus` (any case: L4, h100, A100-80GB)' },
    from: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'start from this cluster (e.g. 1x8-l4) and change what the other options give' },
    'host-memory': { type: 'string', valueName: 'SIZE', description: 'host memory of one node, e.g. 1TiB, 768GB (default: the GPU\'s typical machine)' },
    'inter-node': {
      type: 'string', valueName: 'BW',
      description: 'network bandwidth of one node, one direction, all NICs together, shared by its GPUs: 400Gbps, 8x200Gbps, 50GB/s',
    },
    'intra-node': { type: 'string', valueName: 'BW', description: 'GPU-to-GPU bandwidth inside a node, per GPU, one direction (default: NVLink, else 80% of PCIe)' },
    'inter-node-latency': { type: 'string', valueName: 'T', description: 'latency per message between nodes, e.g. 20us' },
    'intra-node-latency': { type: 'string', valueName: 'T', description: 'latency per message inside a node, e.g. 5us' },
    name: { type: 'string', valueName: 'NAME', description: 'the cluster\'s name (default: NODESxGPUS-GPU, with -custom when it differs from that shorthand)' },
    out: { type: 'string', valueName: 'FILE', description: 'write the ClusterSpec as JSON to FILE' },
    ...JSON_OPTION,
  },
  async run(values, _positionals, io) {
    const fromRef = stringOpt(values, 'from');
    const base = fromRef ? loadCluster(fromRef) : undefined;
    const nodes = intOpt(values, 'nodes') ?? base?.nodes;
    const gpusPerNode = intOpt(values, 'gpus-per-node') ?? base?.gpusPerNode;
    const gpu = stringOpt(values, 'gpu') ?? base?.gpu;
    if (nodes === undefined) throw new UsageError('--nodes is required (or --from a cluster)');
    if (gpusPerNode === undefined) throw new UsageError('--gpus-per-node is required (or --from a cluster)');
    if (gpu === undefined) throw new UsageError('--gpu is required (or --from a cluster); GPUs: see `mist gpus`');
    // A shape or GPU other than the base's changes what the base's per-GPU links and memory mean: only
    // the base's values that stay valid are kept (host memory per node and latencies), the rest default.
    const sameShape = base !== undefined && base.gpusPerNode === gpusPerNode && (typeof gpu !== 'string' || resolveGpuName(gpu) === base.gpu.name);
    const network = optional(values, 'inter-node', parseBandwidth);
    const opts: ClusterOptions = {
      nodes,
      gpusPerNode,
      gpu,
      hostMemoryPerNode: optional(values, 'host-memory', parseBytes) ?? (sameShape ? base.hostMemoryPerNode : undefined),
      intraNode: {
        bandwidth: optional(values, 'intra-node', parseBandwidth) ?? (sameShape ? base.intraNode.bandwidth : undefined),
        latency: optional(values, 'intra-node-latency', parseDuration) ?? base?.intraNode.latency,
      },
      interNode: {
        bandwidth: network !== undefined ? network / gpusPerNode : sameShape ? base.interNode.bandwidth : undefined,
        latency: optional(values, 'inter-node-latency', parseDuration) ?? base?.interNode.latency,
      },
    };
    // A cluster that differs from its shorthand's defaults must not be named like it: a plan tuned on it
    // records the name, and reading that name back as a shorthand would silently drop the changes.
    const plain = buildCluster({ nodes, gpusPerNode, gpu });
    const built = buildCluster(opts);
    const changed = JSON.stringify({ ...built, name: '' }) !== JSON.stringify({ ...plain, name: '' });
    const cluster = { ...built, name: stringOpt(values, 'name') ?? (changed ? `${plain.name}-custom` : plain.name) };
    const out = stringOpt(values, 'out');
    if (out) {
      try {
        fs.writeFileSync(out, JSON.stringify(cluster, null, 2) + '\n');
      } catch (err) {
        throw new UsageError(`--out: cannot write ${out} (${(err as Error).message})`);
      }
    }
    if (values.json) {
      io.stdout(JSON.stringify(cluster, null, 2) + '\n');
      return 0;
    }
    io.stdout(clusterTable(cluster));
    if (out) io.stdout(`wrote ${out}; use it with --cluster ${out}\n`);
    return 0;
  },
};
