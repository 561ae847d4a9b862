// `mist gpus`: the built-in GPU catalog (datasheet figures).
import { GB, GiB, gpuCatalog } from '@mist/core';
import { type Command, JSON_OPTION } from '../cli/command';
import { renderTable } from '../cli/table';

export const gpusCommand: Command = {
  name: 'gpus',
  summary: 'list the built-in GPU kinds with their datasheet figures',
  usage: 'mist gpus [--json]',
  examples: ['mist gpus', 'mist gpus --json'],
  options: { ...JSON_OPTION },
  async run(values, _positionals, io) {
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
