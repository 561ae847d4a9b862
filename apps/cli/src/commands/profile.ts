// `mist profile [--quick] --out host.json`: measures this host (matmul, element-wise ops,
// attention, memory streams, host<->device copies, collectives among local ranks, overlap
// slowdowns, the executor's host cost per module pass with one and with every device busy) and writes a HardwareProfile that `mist analyze/tune --profile` use. A progress bar
// on stderr; a summary of the figures and of every fit's error on stdout (the profile with --json).
import * as fs from 'node:fs';
import { type AlphaBeta, formatBytes, formatSeconds, type HardwareProfile, type LinkClass } from '@mist/core';
import { profileHost, type ProfileHostOptions } from '@mist/profiler';
import { type Command, intOpt, JSON_OPTION, stringOpt, UsageError } from '../cli/command';
import { ProgressBar } from '../cli/progress';
import { renderTable } from '../cli/table';

type Profiler = (opts: ProfileHostOptions) => Promise<HardwareProfile>;

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const rate = (flops: number): string => `${(flops / 1e9).toFixed(1)} GFLOP/s`;
const bandwidth = (bytesPerS: number): string => `${formatBytes(bytesPerS)}/s`;

function summary(p: HardwareProfile, out: string | undefined, elapsed: number): string {
  const c = p.compute;
  const matmulRate = c.peakFlops * c.matmulEfficiency;
  const lines = [
    `${p.machineKind ?? 'unknown machine'}: ${p.cluster.gpusPerNode} device(s) of ${p.cluster.gpu.name}, measured in ${elapsed.toFixed(1)} s` +
      (out ? `, written to ${out}` : ''),
    `compute: FMA peak ${rate(c.peakFlops)}, matmul ${rate(matmulRate)} (${pct(c.matmulEfficiency)} of peak), ` +
      `attention ${pct(c.attentionEfficiency)} of the matmul rate, kernel dispatch ${formatSeconds(c.kernelLaunch)}`,
    `memory: ${bandwidth(c.memoryBandwidth)} copy, optimizer step at ${pct(c.memoryEfficiency)} of it; ` +
      `host<->device ${bandwidth(1 / p.links.hostToDevice.beta)} (alpha ${formatSeconds(p.links.hostToDevice.alpha)})`,
    `overlap: compute ${p.overlap.commSlowdown.toFixed(2)}x slower beside a collective, ${p.overlap.offloadSlowdown.toFixed(2)}x beside copies`,
  ];
  const b = p.backend;
  if (b?.kind === 'cpu' && b.modulePassOverhead !== undefined) {
    lines.push(`executor (${b.kind} backend): ${formatSeconds(b.modulePassOverhead)} host time per module pass on one device` +
      (b.allBusy ? `; with every device busy ${formatSeconds(b.allBusy.modulePassOverhead)} per pass` +
        (b.allBusy.pipelineModulePassOverhead === undefined ? '' : ` (${formatSeconds(b.allBusy.pipelineModulePassOverhead)} as a pipeline stage)`) +
        ` and kernels ${b.allBusy.kernelSlowdown.toFixed(2)}x slower` : '') +
      (b.p2pWake === undefined ? '' : `; pipeline message wake-up ${formatSeconds(b.p2pWake)}`));
  }
  const collRows = Object.entries(p.collectives ?? {}).map(([kind, byLink]: [string, Record<LinkClass, AlphaBeta>]) => ({ kind, ab: byLink.intraNode }));
  let text = lines.join('\n') + '\n\nCollectives (intra-node, alpha-beta):\n';
  text += renderTable(collRows, [
    { header: 'collective', value: (r) => r.kind },
    { header: 'alpha', value: (r) => formatSeconds(r.ab.alpha), align: 'right' },
    { header: 'bandwidth (1/beta)', value: (r) => bandwidth(1 / r.ab.beta), align: 'right' },
  ]);
  const fits = Object.entries(p.fits ?? {}).map(([name, f]) => ({ name, ...f }));
  text += '\nFits and their error at the measured points (|fit - measured| / measured):\n';
  text += renderTable(fits, [
    { header: 'fit', value: (f) => f.name },
    { header: 'points', value: (f) => f.points },
    { header: 'median error', value: (f) => pct(f.medianRelError), align: 'right' },
    { header: 'max error', value: (f) => pct(f.maxRelError), align: 'right' },
  ]);
  const unmeasured = Object.entries(p.unmeasured ?? {});
  if (unmeasured.length) text += `\nNot measured:\n${unmeasured.map(([k, why]) => `  ${k}: ${why}`).join('\n')}\n`;
  return text;
}

/** The command, with the profiler injectable (tests measure a tiny grid). */
export function makeProfileCommand(profiler: Profiler = profileHost): Command {
  return {
    name: 'profile',
    summary: 'measure this host and write a hardware profile for `mist analyze/tune --profile`',
    usage: 'mist profile [--quick] --out HOST.json [--threads N] [--json]',
    examples: ['mist profile --quick --out host.json', 'mist profile --out host.json', 'mist profile --quick --json > host.json'],
    options: {
      quick: { type: 'boolean', description: 'fewer shapes and repeats, collectives among 2 local ranks only (under a minute)' },
      out: { type: 'string', valueName: 'FILE', description: 'where to write the profile (JSON)' },
      threads: { type: 'string', valueName: 'N', description: 'kernel threads of one CPU device (one executor worker); default 1' },
      ...JSON_OPTION,
    },
    async run(values, _positionals, io) {
      const out = stringOpt(values, 'out');
      if (!out && !values.json) throw new UsageError('--out FILE is required (or --json to print the profile)');
      const threadsPerDevice = intOpt(values, 'threads', 1);
      let bar: ProgressBar | undefined;
      const started = Date.now();
      const profile = await profiler({
        quick: values.quick === true,
        threadsPerDevice,
        onProgress: (e) => {
          bar ??= new ProgressBar(io, 'profile', e.total);
          bar.update(e.done, e.step);
        },
      });
      bar?.done();
      const elapsed = (Date.now() - started) / 1000;
      const json = JSON.stringify(profile, null, 2) + '\n';
      if (out) fs.writeFileSync(out, json);
      io.stdout(values.json ? json : summary(profile, out, elapsed));
      return 0;
    },
  };
}

export const profileCommand: Command = makeProfileCommand();
