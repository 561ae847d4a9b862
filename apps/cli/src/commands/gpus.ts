// `mist gpus`: the built-in GPU catalog (datasheet figures); `mist gpus --local`: this host's GPUs as
// the CUDA driver reports them and whether the native addon's CUDA compute backend can run here
// (and if not, why), with the addon build that is loaded.
import { GB, GiB, gpuCatalog } from '@mist/core';
import { addonVariant, backends, cudaProbe, type CudaProbe } from '@mist/native';
import { type Command, JSON_OPTION } from '../cli/command';
import { renderTable } from '../cli/table';

interface LocalReport {
  addon: string;
  cuda: CudaProbe;
  collectives: Array<{ name: string; available: boolean; reason?: string }>;
}

function localReport(): LocalReport {
  return {
    addon: addonVariant(),
    cuda: cudaProbe(),
    collectives: backends().filter((b) => b.name !== 'cuda').map(({ name, available, reason }) => ({ name, available, ...(reason ? { reason } : {}) })),
  };
}

function renderLocal(r: LocalReport): string {
  const lines: string[] = [];
  const c = r.cuda;
  if (c.devices.length > 0) {
    lines.push(renderTable(c.devices, [
      { header: 'ordinal', value: (d) => String(d.ordinal), align: 'right' },
      { header: 'name', value: (d) => d.name },
      { header: 'memory GiB', value: (d) => (d.memoryBytes / GiB).toFixed(1), align: 'right' },
      { header: 'compute capability', value: (d) => `${Math.floor(d.computeCapability / 10)}.${d.computeCapability % 10}`, align: 'right' },
      { header: 'SMs', value: (d) => String(d.multiprocessors), align: 'right' },
    ]).trimEnd());
  } else {
    lines.push('no CUDA GPU visible to the driver');
  }
  const driver = c.driverVersion ? ` (driver CUDA ${Math.floor(c.driverVersion / 1000)}.${(c.driverVersion % 1000) / 10}, ${c.library})` : '';
  lines.push(`CUDA compute backend: ${c.available ? 'available' : `unavailable: ${c.reason}`}${driver}`);
  lines.push(`  kernels: ${c.kernels.files.length > 0 ? `${c.kernels.files.length} fatbinaries in ${c.kernels.directory}` : c.kernels.reason}`);
  lines.push(`  cuBLASLt: ${c.cublasLt.available ? `${c.cublasLt.path}` : `not used: ${c.cublasLt.reason}`}`);
  for (const b of r.collectives) lines.push(`collectives ${b.name}: ${b.available ? 'available' : `unavailable: ${b.reason}`}`);
  lines.push(`native addon build: ${r.addon}`);
  return lines.join('\n') + '\n';
}

export const gpusCommand: Command = {
  name: 'gpus',
  summary: 'list the built-in GPU kinds with their datasheet figures, or (--local) this host\'s GPUs and CUDA backend',
  usage: 'mist gpus [--local] [--json]',
  examples: ['mist gpus', 'mist gpus --local', 'mist gpus --json'],
  options: {
    ...JSON_OPTION,
    local: { type: 'boolean', description: "this host's GPUs as the CUDA driver reports them, and whether the CUDA compute backend can run here (or why not)" },
  },
  async run(values, _positionals, io) {
    if (values.local) {
      const report = localReport();
      io.stdout(values.json ? JSON.stringify(report, null, 2) + '\n' : renderLocal(report));
      return 0;
    }
    const gpus = gpuCatalog();
    if (values.json) {
      io.stdout(JSON.stringify(gpus, null, 2) + '\n');
      return 0;
    }
    io.stdout(
      renderTable(gpus, [
        { header: 'name', value: (g) => g.name },
        { header: 'memory GiB', value: (g) => (g.memoryBytes / GiB).toFixed(1), align: 'right' },
        { header: 'fp16 TFLOP/s', value: (g) => (g.peakFlops.fp16 / 1e12).toFixed(1), align: 'right' },
        { header: 'fp32 TFLOP/s', value: (g) => (g.peakFlops.fp32 / 1e12).toFixed(1), align: 'right' },
        { header: 'HBM GB/s', value: (g) => (g.memoryBandwidth / GB).toFixed(0), align: 'right' },
        { header: 'NVLink GB/s/dir', value: (g) => (g.nvlinkBandwidth ? (g.nvlinkBandwidth / GB).toFixed(0) : 'none'), align: 'right' },
        { header: 'PCIe', value: (g) => `gen${g.pcieGen} ${(g.pcieBandwidth / GB).toFixed(0)} GB/s`, align: 'right' },
      ]),
    );
    return 0;
  },
};
