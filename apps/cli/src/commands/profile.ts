// `mist profile [--quick] --out host.json`: measures this host (matmul, element-wise ops,
// attention, memory streams, host<->device copies, collectives among local ranks, overlap
// slowdowns, the executor's host cost per module pass with one and with every device busy) and writes a HardwareProfile that `mist analyze/tune --profile` use. A progress bar
// on stderr; a summary of the figures and of every fit's error on stdout (the profile with --json).
// `--device cuda` measures the host's GPU (device 0) instead, in `--dtype` (bf16 default): GEMMs,
// attention, element-wise ops, HBM bandwidth, pinned copies and their overlap, launch overhead, the
// executor's step (@mist/profiler profile-cuda.ts); no collectives on one GPU. Without a usable GPU
// it exits 1 with the CUDA probe's reason.
import * as fs from 'node:fs';
import { type AlphaBeta, formatBytes, formatSeconds, type HardwareProfile, type LinkClass } from '@mist/core';
import { cudaProbe, type CudaProbe } from '@mist/native';
import { cudaUnavailableReason, profileCuda, type ProfileCudaOptions, profileHost, type ProfileHostOptions, saveMeasuredProfile } from '@mist/profiler';
import { type Command, enumOpt, intOpt, JSON_OPTION, stringOpt, UsageError } from '../cli/command';
import { ProgressBar } from '../cli/progress';
import { renderTable } from '../cli/table';

type Profiler = (opts: ProfileHostOptions) => Promise<HardwareProfile>;
type CudaProfiler = (opts: ProfileCudaOptions) => Promise<HardwareProfile>;

/** The GPU side of the command: the profiler and the probe that says whether this host has a usable GPU. */
export interface CudaProfiling {
  profile: CudaProfiler;
  probe: () => CudaProbe;
}

const DEVICES = ['cpu', 'cuda'] as const;
const DTYPES = ['fp32', 'bf16', 'fp16'] as const;

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const rate = (flops: number): string => (flops >= 1e12 ? `${(flops / 1e12).toFixed(1)} TFLOP/s` : `${(flops / 1e9).toFixed(1)} GFLOP/s`);
const bandwidth = (bytesPerS: number): string => `${formatBytes(bytesPerS)}/s`;

function summary(p: HardwareProfile, out: string | undefined, elapsed: number, device: 'cpu' | 'cuda'): string {
  const c = p.compute;
  const matmulRate = c.peakFlops * c.matmulEfficiency;
  const lines = [
    `${p.machineKind ?? 'unknown machine'}: ${p.cluster.gpusPerNode} device(s) of ${p.cluster.gpu.name}, measured in ${elapsed.toFixed(1)} s` +
      (device === 'cuda' ? ` (${String(p.host?.dtype ?? '')}, device 0)` : '') + (out ? `, written to ${out}` : ''),
    `compute: ${device === 'cuda' ? 'peak' : 'FMA peak'} ${rate(c.peakFlops)}, matmul ${rate(matmulRate)} (${pct(c.matmulEfficiency)} of peak), ` +
      `attention ${pct(c.attentionEfficiency)} of the matmul rate, kernel ${device === 'cuda' ? 'launch' : 'dispatch'} ${formatSeconds(c.kernelLaunch)}`,
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
  const step = p.host?.['backend.cuda.stepSeconds'];
  if (typeof step === 'number') lines.push(`executor (cuda): ${formatSeconds(step)} per training step of the probe model (host['backend.cuda.executorProbe'])`);
  const collRows = Object.entries(p.collectives ?? {}).map(([kind, byLink]: [string, Record<LinkClass, AlphaBeta>]) => ({ kind, ab: byLink.intraNode }));
  let text = lines.join('\n') + '\n';
  if (collRows.length > 0) {
    text += '\nCollectives (intra-node, alpha-beta):\n';
    text += renderTable(collRows, [
      { header: 'collective', value: (r) => r.kind },
      { header: 'alpha', value: (r) => formatSeconds(r.ab.alpha), align: 'right' },
      { header: 'bandwidth (1/beta)', value: (r) => bandwidth(1 / r.ab.beta), align: 'right' },
    ]);
  } else {
    text += '\nCollectives: not measured (see "Not measured" below)\n';
  }
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

/** The command, with the profilers injectable (tests measure a tiny grid, or a simulated GPU). */
export function makeProfileCommand(profiler: Profiler = profileHost, cuda: CudaProfiling = { profile: profileCuda, probe: cudaProbe }): Command {
  return {
    name: 'profile',
    summary: 'measure this host (its CPU devices, or its GPU with --device cuda) and write a hardware profile for `mist analyze/tune --profile`',
    usage: 'mist profile [--quick] --out HOST.json [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--save] [--threads N] [--json]',
    examples: [
      'mist profile --quick --out host.json', 'mist profile --out host.json', 'mist profile --quick --json > host.json',
      'mist profile --device cuda --out gpu.json', 'mist profile --device cuda --dtype fp16 --quick --out gpu.json',
      'mist profile --device cuda --save --out gpu.json',
    ],
    options: {
      quick: { type: 'boolean', description: 'fewer shapes and repeats, collectives among 2 local ranks only (under a minute)' },
      out: { type: 'string', valueName: 'FILE', description: 'where to write the profile (JSON)' },
      device: { type: 'string', valueName: 'KIND', description: 'what to measure: cpu (the CPU devices, default) or cuda (GPU 0; no collectives on one GPU)', default: 'cpu' },
      dtype: { type: 'string', valueName: 'DTYPE', description: 'with --device cuda: the compute dtype measured, fp32, bf16 (default) or fp16' },
      save: {
        type: 'boolean',
        description: 'with --device cuda: keep the profile as this GPU\'s measured one ($MIST_PROFILE_DIR, default ~/.config/mist/profiles); ' +
          'mist analyze, tune and fit then use it for clusters of that GPU instead of the datasheet profile (--datasheet for that one)',
      },
      threads: { type: 'string', valueName: 'N', description: 'kernel threads of one CPU device (one executor worker); default 1' },
      ...JSON_OPTION,
    },
    async run(values, _positionals, io) {
      const out = stringOpt(values, 'out');
      if (!out && !values.json) throw new UsageError('--out FILE is required (or --json to print the profile)');
      const device = enumOpt(values, 'device', DEVICES, 'cpu');
      const dtypeText = enumOpt(values, 'dtype', DTYPES);
      if (dtypeText !== undefined && device !== 'cuda') throw new UsageError('--dtype needs --device cuda: the CPU kernels compute in fp32');
      if (device === 'cuda' && values.threads !== undefined) throw new UsageError('--threads is for --device cpu (kernel threads of one CPU device)');
      if (values.save === true && device !== 'cuda') throw new UsageError('--save needs --device cuda: a CPU profile describes this host; pass it with --profile');
      let bar: ProgressBar | undefined;
      const onProgress = (e: { done: number; total: number; step: string }): void => {
        bar ??= new ProgressBar(io, 'profile', e.total);
        bar.update(e.done, e.step);
      };
      const started = Date.now();
      let profile: HardwareProfile;
      if (device === 'cuda') {
        const reason = cudaUnavailableReason(cuda.probe());
        if (reason !== null) {
          io.stderr(`mist profile: --device cuda needs a usable GPU; this host has none: ${reason}\n`);
          return 1;
        }
        profile = await cuda.profile({ quick: values.quick === true, dtype: dtypeText ?? 'bf16', onProgress });
      } else {
        profile = await profiler({ quick: values.quick === true, threadsPerDevice: intOpt(values, 'threads', 1), onProgress });
      }
      bar?.done();
      const elapsed = (Date.now() - started) / 1000;
      const json = JSON.stringify(profile, null, 2) + '\n';
      if (out) fs.writeFileSync(out, json);
      if (values.save === true) {
        const kept = saveMeasuredProfile(profile);
        io.stderr(`kept as the measured ${profile.cluster.gpu.name} profile: ${kept} (mist analyze, tune and fit use it for ${profile.cluster.gpu.name} clusters)\n`);
      }
      io.stdout(values.json ? json : summary(profile, out, elapsed, device));
      return 0;
    },
  };
}

export const profileCommand: Command = makeProfileCommand();
