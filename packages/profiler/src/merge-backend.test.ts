import { builtinHardwareProfile, type CpuBackendProfile, parseClusterShorthand, parseHardwareProfile } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { mergeProfiles } from './merge';
import { mergeBackendSections } from './merge-backend';

const host = (pass: number, slowdown: number, noise: number[], fused = ['cross_entropy']): CpuBackendProfile => ({
  kind: 'cpu', modulePassOverhead: pass, allBusy: { kernelSlowdown: slowdown, modulePassOverhead: 2 * pass }, fusedIntoForward: fused, stepNoise: noise,
  p2pWake: pass / 10,
});

describe('merging the hosts\' backend sections', () => {
  it('medians of the per-host figures, the fused ops every host fuses, every host\'s noise samples', () => {
    const m = mergeBackendSections([host(1e-4, 1.2, [0, 1e-3]), host(3e-4, 1.6, [2e-3], ['cross_entropy', 'gelu']), host(2e-4, 1.4, [-1e-3])]);
    expect(m.unmeasured).toBeUndefined();
    expect(m.backend).toEqual({
      kind: 'cpu', modulePassOverhead: 2e-4, allBusy: { kernelSlowdown: 1.4, modulePassOverhead: 4e-4 }, fusedIntoForward: ['cross_entropy'],
      stepNoise: [-1e-3, 0, 1e-3, 2e-3], p2pWake: 2e-5,
    });
  });

  it('a section only some hosts have is left out and named; none at all is nothing', () => {
    expect(mergeBackendSections([host(1e-4, 1.2, [0]), undefined])).toEqual({ unmeasured: '1 of 2 hosts have no backend section; it is left out' });
    expect(mergeBackendSections([undefined, undefined])).toEqual({});
  });

  it('mergeProfiles keeps the merged section in the cluster profile (it used to drop it)', () => {
    const base = builtinHardwareProfile(parseClusterShorthand('1x2-l4'));
    const a = parseHardwareProfile({ ...base, machineKind: 'test host', backend: host(1e-4, 1.2, [0]) });
    const b = parseHardwareProfile({ ...base, machineKind: 'test host', backend: host(3e-4, 1.6, [1e-3]) });
    const merged = mergeProfiles([a, b]);
    expect(merged.backend).toMatchObject({ kind: 'cpu', stepNoise: [0, 1e-3] });
    expect((merged.backend as CpuBackendProfile).modulePassOverhead).toBeCloseTo(2e-4, 15);
    expect(mergeProfiles([a, { ...b, backend: undefined }]).unmeasured?.backend).toMatch(/1 of 2 hosts/);
  });
});
