import { describe, expect, it } from 'vitest';
import { parseClusterShorthand } from './cluster';
import {
  builtinGpuCalibration, builtinHardwareProfile, checkProfileMachine, cpuMachineKind, deviceMemoryFootprint, type HardwareProfile, parseHardwareProfile,
  usableDeviceMemory,
} from './hardware-profile';
import { GiB } from './units';
import { SpecError } from './validation';

const datasheet = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
// A measured profile of CPU devices (what `mist profile` writes on the CPU backend).
const measured = (machineKind: string | undefined): HardwareProfile => ({
  ...datasheet, source: 'measured', machineKind, cluster: { ...datasheet.cluster, gpu: { ...datasheet.cluster.gpu, name: 'cpu-1t' } },
});

describe('machine kind of a measured profile', () => {
  it('names the CPU model and the core count', () => {
    expect(cpuMachineKind()).toMatch(/ \(\d+ cores\)$/);
  });

  it('refuses a profile measured on another kind of machine, naming both, unless forced', () => {
    const foreign = measured('Imaginary CPU 9000 (256 cores)');
    expect(() => checkProfileMachine(foreign)).toThrow(SpecError);
    expect(() => checkProfileMachine(foreign)).toThrow(/machineKind: got "Imaginary CPU 9000 \(256 cores\)"; was measured on another kind of machine; this one is ".+ cores\)".*--force/);
    expect(() => checkProfileMachine(foreign, { force: true })).not.toThrow();
  });

  it('accepts a profile of this machine kind, datasheet profiles and profiles that name no machine', () => {
    expect(() => checkProfileMachine(measured(cpuMachineKind()))).not.toThrow();
    expect(() => checkProfileMachine(datasheet)).not.toThrow();
    expect(() => checkProfileMachine(measured(undefined))).not.toThrow();
    expect(() => checkProfileMachine(measured('h100-sxm'), { machineKind: 'h100-sxm' })).not.toThrow();
  });

  it('accepts a measured GPU profile on any host: it describes the GPU host the plan runs on', () => {
    const gpu: HardwareProfile = { ...datasheet, source: 'measured', machineKind: 'NVIDIA H200 (sm_90, 132 SMs)' };
    expect(() => checkProfileMachine(gpu)).not.toThrow();
  });
});

describe('measured profile fields', () => {
  it('accepts the raw tables, fits and the unmeasured notes, and rejects malformed ones', () => {
    const p = parseHardwareProfile({
      ...measured('x'),
      collectiveTable: [{ collective: 'allReduce', linkClass: 'intraNode', ranks: 2, bytes: 4096, seconds: 1e-4 }],
      copyTable: [{ bytes: 4096, seconds: 1e-6 }],
      overlapTable: [{ beside: 'copy', aloneSeconds: 1, besideSeconds: 1.1, ratio: 1.1 }],
      fits: { matmul: { model: 'm', c0: 1e-5, c1: 1e-11, points: 4, maxRelError: 0.2, medianRelError: 0.05 } },
      unmeasured: { 'links.interNode': 'one host' },
    });
    expect(p.fits?.matmul.points).toBe(4);
    expect(() => parseHardwareProfile({ ...p, collectiveTable: [{ collective: 'allReduce', linkClass: 'intraNode', ranks: 1, bytes: 4096, seconds: 1e-4 }] }))
      .toThrow(/collectiveTable\[0\]\.ranks/);
    expect(() => parseHardwareProfile({ ...p, overlapTable: [{ beside: 'disk', aloneSeconds: 1, besideSeconds: 1, ratio: 1 }] }))
      .toThrow(/overlapTable\[0\]\.beside/);
  });
});

describe('built-in (datasheet) profiles', () => {
  it('calibrate each catalog GPU from its published measurements, the uncalibrated ones keeping the uniform figures', () => {
    const a100 = builtinHardwareProfile(parseClusterShorthand('1x8-a100-80gb'), 'bf16');
    const h100 = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'), 'bf16');
    // Best-shape matmul: A100 SXM 86.9%, H100 SXM 80.3% of peak (MAMF); training shapes reach 0.8 of it on
    // the A100 and the share fitted on Megatron-Core's H100 runs (tools/validate/calibrate.js) on Hopper parts.
    expect(a100.compute.matmulEfficiency).toBeCloseTo(0.869 * 0.8, 10);
    expect(h100.compute.matmulEfficiency).toBeCloseTo(0.803 * 0.748, 10);
    expect(builtinGpuCalibration('h200')).toEqual(builtinGpuCalibration('h100-sxm'));
    expect(builtinGpuCalibration('v100-32gb')).toBeNull();
    // Causal flash attention does half the score tiles; FA2 on H100 reaches a smaller share of its peak than on A100.
    expect(a100.compute.attentionWorkFraction).toBe(0.5);
    expect(h100.compute.attentionEfficiency * h100.compute.matmulEfficiency)
      .toBeLessThan(a100.compute.attentionEfficiency * a100.compute.matmulEfficiency);
    expect(a100.links.interNodeScaling).toBe('ranksPerNode');
    // NVLink at the bus bandwidth nccl-tests reports; PCIe cards keep the cluster's achievable PCIe share.
    expect(1 / a100.links.intraNode.beta).toBeCloseTo(0.78 * a100.cluster.intraNode.bandwidth, 0);
    const pcie = builtinHardwareProfile(parseClusterShorthand('1x8-a100-80gb-pcie'));
    expect(1 / pcie.links.intraNode.beta).toBeCloseTo(pcie.cluster.intraNode.bandwidth, 0);
    const v100 = builtinHardwareProfile(parseClusterShorthand('1x8-v100-32gb'));
    expect([v100.compute.matmulEfficiency, v100.compute.attentionWorkFraction]).toEqual([0.7, undefined]);
  });

  it('loads a version-1 profile written before the calibrated fields (all optional, with defaults)', () => {
    const p = builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm'));
    const { attentionWorkFraction: _w, ...compute } = p.compute;
    const { interNodeScaling: _s, ...links } = p.links;
    const old = parseHardwareProfile(JSON.parse(JSON.stringify({ ...p, compute, links })));
    expect([old.compute.attentionWorkFraction, old.links.interNodeScaling, old.memory.workspaceBytes]).toEqual([undefined, undefined, undefined]);
    // A profile that states library workspaces has that much less room for tensors.
    const ws = parseHardwareProfile({ ...p, memory: { ...p.memory, workspaceBytes: 64 * 2 ** 20 } });
    expect(usableDeviceMemory(p) - usableDeviceMemory(ws)).toBe(64 * 2 ** 20);
  });

  it('reads a live-tensor peak as the allocator and nvidia-smi see it; the usable memory is its inverse', () => {
    const p = parseHardwareProfile({ ...builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm')), memory: {
      ...builtinHardwareProfile(parseClusterShorthand('1x8-h100-sxm')).memory, workspaceBytes: 64 * 2 ** 20 } });
    const f = deviceMemoryFootprint(p, 40 * GiB);
    expect(f.allocated).toBe(40 * GiB + (p.memory.workspaceBytes ?? 0));
    expect(f.reserved).toBeCloseTo(f.allocated / (1 - p.memory.fragmentation), 3);
    expect(f.process).toBeCloseTo(f.reserved + p.memory.cudaContextBytes + p.memory.ncclBufferBytes, 3);
    expect(deviceMemoryFootprint(p, usableDeviceMemory(p)).process).toBeCloseTo(p.cluster.gpu.memoryBytes, 3);
  });
});

describe('the backend section', () => {
  const host = { ...builtinHardwareProfile(parseClusterShorthand('1x2-l4'), 'fp32'), source: 'measured' };
  const terms = {
    modulePassOverhead: 1.6e-4,
    allBusy: { kernelSlowdown: 1.07, modulePassOverhead: 2e-4, pipelineModulePassOverhead: 2.7e-4 },
    fusedIntoForward: ['cross_entropy'],
    stepNoise: [-1e-4, 0, 3e-4],
    p2pWake: 2e-4,
  };
  // A CPU profile as `mist profile` wrote it before the section: the terms in compute and at the top level.
  const { modulePassOverhead, allBusy, ...topLevel } = terms;
  const old = JSON.parse(JSON.stringify({ ...host, compute: { ...host.compute, modulePassOverhead, allBusy }, ...topLevel })) as unknown;

  it('is absent from datasheet profiles', () => {
    expect(host.backend).toBeUndefined();
  });

  it('loads a profile written before the section, its terms moved into a cpu section unchanged', () => {
    const p = parseHardwareProfile(old);
    expect(p.backend).toEqual({ kind: 'cpu', ...terms });
    expect(Object.keys(p.compute)).not.toContain('modulePassOverhead');
    expect(Object.keys(p.compute)).not.toContain('allBusy');
    for (const key of ['fusedIntoForward', 'stepNoise', 'p2pWake']) expect(Object.keys(p)).not.toContain(key);
    // What the parser writes loads again as it is.
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(parseHardwareProfile({ ...host, backend: { kind: 'cpu', ...terms } })).toEqual(p);
  });

  it('merges old keys into a section the profile already has, and refuses a term given at both places', () => {
    const p = parseHardwareProfile({ ...host, backend: { kind: 'cpu', stepNoise: terms.stepNoise }, p2pWake: 2e-4 });
    expect(p.backend).toEqual({ kind: 'cpu', stepNoise: terms.stepNoise, p2pWake: 2e-4 });
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'cpu', p2pWake: 1e-4 }, p2pWake: 2e-4 }))
      .toThrow(/p2pWake: got 0\.0002; is also given as backend\.p2pWake; give it once, in backend\.p2pWake/);
  });

  it('names the backend kinds it knows and rejects misplaced or malformed terms', () => {
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'gpu' } })).toThrow(/backend\.kind: got "gpu"; allowed: "cpu"/);
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'gpu' }, p2pWake: 1e-4 }))
      .toThrow(/backend\.kind: got "gpu"; .*p2pWake.*allowed: "cpu", or no backend section/);
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'cpu', modulePassOverhead: -1 } })).toThrow(/backend\.modulePassOverhead/);
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'cpu', allBusy: { kernelSlowdown: 0.5, modulePassOverhead: 0 } } }))
      .toThrow(/backend\.allBusy\.kernelSlowdown/);
    expect(() => parseHardwareProfile({ ...host, backend: { kind: 'cpu', pipelineWake: 1 } })).toThrow(/pipelineWake/);
  });
});
