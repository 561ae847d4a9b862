import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, cpuMachineKind, parseClusterShorthand, parseHardwareProfile } from '@mist/core';
import { cudaProbe } from '@mist/native';
import {
  CUDA_SMOKE_GRID, profileCuda, type ProfileCudaOptions, type ProfileHostOptions, profileHost, profilerTesting, SMOKE_GRID,
} from '@mist/profiler';
import { runCli } from '../test/run-cli';
import { makeProfileCommand } from './profile';
import { scratchDir } from '../test/scratch';

const tmp = (): string => scratchDir('profile');
const plan = path.resolve(__dirname, '../../../../examples/plans/gpt3-1.3b-1x2-l4.json');

describe('mist profile', () => {
  it('measures, shows progress on stderr, writes a profile core accepts and prints every fit\'s error', async () => {
    const seen: ProfileHostOptions[] = [];
    // The real profiler on the smoke-test grid (seconds instead of a minute).
    const cmd = makeProfileCommand((o) => {
      seen.push(o);
      return profileHost({ ...o, grid: SMOKE_GRID });
    });
    const out = path.join(tmp(), 'host.json');
    let stdout = '', stderr = '';
    const io = { stdout: (t: string) => { stdout += t; }, stderr: (t: string) => { stderr += t; }, isTTY: false };
    expect(await cmd.run({ quick: true, out, threads: '1' }, [], io)).toBe(0);
    expect(seen[0]).toMatchObject({ quick: true, threadsPerDevice: 1 });
    const profile = parseHardwareProfile(JSON.parse(fs.readFileSync(out, 'utf8')));
    expect(profile.machineKind).toBe(cpuMachineKind());
    expect(stderr).toMatch(/profile (\d+)\/\1 \(100%\)/);
    expect(stdout).toContain(`written to ${out}`);
    expect(stdout).toMatch(/Fits and their error/);
    expect(stdout).toMatch(/matmul\s+4\s+[\d.]+%\s+[\d.]+%/);
    expect(stdout).toMatch(/allReduce/);
  });

  it('asks for --out (or --json)', async () => {
    const res = await runCli(['profile', '--quick']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--out FILE is required/);
  });
});

describe('mist profile --device cuda', () => {
  const io = () => {
    const o = { stdout: '', stderr: '' };
    return { o, io: { stdout: (t: string) => { o.stdout += t; }, stderr: (t: string) => { o.stderr += t; }, isTTY: false } };
  };

  it('measures the GPU in the dtype asked for and writes a profile core accepts (a simulated GPU)', async () => {
    const seen: ProfileCudaOptions[] = [];
    const rt = profilerTesting.simulatedCudaRuntime();
    const cmd = makeProfileCommand(undefined, {
      probe: rt.probe,
      profile: (o) => {
        seen.push(o);
        return profileCuda({ ...o, grid: CUDA_SMOKE_GRID, runtime: rt });
      },
    });
    const out = path.join(tmp(), 'gpu.json');
    const { o, io: cli } = io();
    expect(await cmd.run({ device: 'cuda', dtype: 'fp16', quick: true, out }, [], cli)).toBe(0);
    expect(seen[0]).toMatchObject({ quick: true, dtype: 'fp16' });
    const profile = parseHardwareProfile(JSON.parse(fs.readFileSync(out, 'utf8')));
    expect(profile.machineKind).toBe('NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)');
    expect(profile.host?.dtype).toBe('fp16');
    expect(o.stderr).toMatch(/profile (\d+)\/\1 \(100%\)/);
    expect(o.stdout).toMatch(/h100-sxm, measured in [\d.]+ s \(fp16, device 0\), written to/);
    expect(o.stdout).toMatch(/Collectives: not measured/);
    expect(o.stdout).toMatch(/collectives: one GPU runs no collective/);
    expect(o.stdout).toMatch(/executor \(cuda\): [\d.]+ ms per training step/);
    // bf16 when --dtype is left out.
    expect(await cmd.run({ device: 'cuda', json: true }, [], io().io)).toBe(0);
    expect(seen[1]).toMatchObject({ quick: false, dtype: 'bf16' });
  });

  it('exits 1 with the probe\'s reason on a host without a usable GPU', async () => {
    const cmd = makeProfileCommand(undefined, {
      probe: () => ({ available: false, reason: 'libcuda.so.1: cannot open shared object file', driverAvailable: false, devices: [], kernels: { directory: '', files: [] }, cublasLt: { available: false } }),
      profile: () => { throw new Error('must not measure'); },
    });
    const { o, io: cli } = io();
    expect(await cmd.run({ device: 'cuda', out: path.join(tmp(), 'gpu.json') }, [], cli)).toBe(1);
    expect(o.stderr).toMatch(/--device cuda needs a usable GPU; this host has none: libcuda\.so\.1: cannot open shared object file/);
  });

  it.skipIf(cudaProbe().available)('exits 1 naming why on this host (no GPU here)', async () => {
    const res = await runCli(['profile', '--device', 'cuda', '--out', path.join(tmp(), 'gpu.json')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`this host has none: ${cudaProbe().reason}`);
  });

  it('checks --device and --dtype', async () => {
    const bad = await runCli(['profile', '--device', 'tpu', '--json']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--device: got "tpu"; allowed: cpu, cuda/);
    const dtype = await runCli(['profile', '--dtype', 'bf16', '--json']);
    expect(dtype.code).toBe(2);
    expect(dtype.stderr).toMatch(/--dtype needs --device cuda/);
    const unknown = await runCli(['profile', '--device', 'cuda', '--dtype', 'fp8', '--json']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--dtype: got "fp8"; allowed: fp32, bf16, fp16/);
  });
});

describe('mist analyze --profile checks the machine kind of a CPU profile', () => {
  // A measured profile of CPU devices (`mist profile` on the CPU backend names its devices cpu-<threads>t).
  const write = (machineKind: string, gpuName = 'cpu-1t'): string => {
    const file = path.join(tmp(), 'p.json');
    const base = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
    fs.writeFileSync(file, JSON.stringify({ ...base, source: 'measured', machineKind, cluster: { ...base.cluster, gpu: { ...base.cluster.gpu, name: gpuName } } }));
    return file;
  };

  it('refuses a profile from another kind of machine with a clear message, and takes it with --force', async () => {
    const foreign = write('Imaginary CPU 9000 (256 cores)');
    const refused = await runCli(['analyze', '--plan', plan, '--profile', foreign]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/measured on another kind of machine; this one is ".*cores\)".*--force/);
    const forced = await runCli(['analyze', '--plan', plan, '--profile', foreign, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/gpt3-1\.3b on 1x2-l4 \(measured\)/);
  });

  it('accepts a profile of this machine kind, and a GPU profile measured on any host', async () => {
    const res = await runCli(['analyze', '--plan', plan, '--profile', write(cpuMachineKind())]);
    expect(res.code).toBe(0);
    const gpu = await runCli(['analyze', '--plan', plan, '--profile', write('NVIDIA L4 (sm_89, 58 SMs)', 'l4')]);
    expect(gpu.code, gpu.stderr).toBe(0);
  });
});
