import { describe, expect, it } from 'vitest';
import { parseClusterShorthand } from './cluster';
import {
  builtinHardwareProfile, checkProfileMachine, cpuMachineKind, type HardwareProfile, parseHardwareProfile,
} from './hardware-profile';
import { SpecError } from './validation';

const datasheet = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
const measured = (machineKind: string | undefined): HardwareProfile => ({ ...datasheet, source: 'measured', machineKind });

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
