// The "nothing fits" report names the binding memory: the device, or the host when candidates fit
// on the device only by offloading more than the host holds.
import { builtinHardwareProfile, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { megatronSpace, mistSpace, uniformOffloadLevels } from './search-space';
import { tinyContext } from './test/tiny-context';
import { tune } from './tuner';

describe('no-fit report', () => {
  it('names host memory when every candidate that fits on the device overflows the host', async () => {
    // gpt-tiny needs offloading to fit 1 MB of device memory, and the host holds only 10 kB per GPU.
    const ctx = tinyContext('1x2-l4', 1e6, 8, 64, 10e3);
    const space = mistSpace({ offload: uniformOffloadLevels(0.5) });
    const r = await tune(ctx, { space });
    expect(r.plan).toBeNull();
    const nf = r.noFit!;
    expect(nf.binding).toBe('host');
    expect(nf.hostCapacityBytes).toBe(10e3);
    expect(nf.deviceShortfallBytes).toBe(0);
    expect(nf.hostShortfallBytes).toBeGreaterThan(0);
    expect(nf.shortfallBytes).toBe(nf.hostShortfallBytes);
    expect(nf.hostMemoryBytes! - nf.hostCapacityBytes).toBeCloseTo(nf.hostShortfallBytes!, 3);
    expect(nf.message).toMatch(/host memory is the limit/);
    expect(nf.hints[0]).toMatch(/host memory/);
    expect(nf.hints.join('\n')).not.toMatch(/allow offloading/);
    // With room on the host the same search finds a plan that offloads.
    const roomy = await tune(tinyContext('1x2-l4', 1e6, 8), { space });
    expect(roomy.plan).not.toBeNull();
    expect(roomy.plan!.stages.some((s) => Object.values(s.offload).some((x) => x > 0))).toBe(true);
  });

  it('names the device when no candidate fits on the device', async () => {
    const ctx = tinyContext('1x2-l4', 100e3, 8, 64, 10e3);
    const r = await tune(ctx, { space: megatronSpace() });
    expect(r.plan).toBeNull();
    expect(r.noFit!.binding).toBe('device');
    expect(r.noFit!.message).toMatch(/closest candidate needs/);
  });

  it('gpt3-175b on one L4: nothing fits, and host memory is the limit (offloading everything still overflows it)', async () => {
    const ctx = {
      model: getModel('gpt3-175b'), training: parseTrainingSpec({ globalBatch: 8, seqLen: 2048 }),
      profile: builtinHardwareProfile(parseClusterShorthand('1x1-l4')),
    };
    const r = await tune(ctx);
    expect(r.plan).toBeNull();
    const nf = r.noFit!;
    expect(nf.binding).toBe('host');
    // The model states alone (16 bytes per parameter) exceed the host share by terabytes.
    expect(nf.hostShortfallBytes!).toBeGreaterThan(16 * 170e9 - nf.hostCapacityBytes - nf.capacityBytes);
    expect(nf.message).toMatch(/host memory/);
  });

  it('reports what the closest whole plan lacks, not a stage candidate (llama2-70b on 1x8-l4 lacked "20 KiB")', async () => {
    // The 2026-12-04 newcomer review, C.2 violation 2: host memory binds; the old report said 20 KiB
    // more host memory per GPU, yet doubling the host memory still fitted nothing.
    const base = parseClusterShorthand('1x8-l4');
    const ctxWith = (hostPerNode: number) => ({
      model: getModel('llama2-70b'), training: parseTrainingSpec({ globalBatch: 64, seqLen: 4096 }),
      profile: builtinHardwareProfile({ ...base, hostMemoryPerNode: hostPerNode }),
    });
    const r = await tune(ctxWith(base.hostMemoryPerNode));
    expect(r.plan).toBeNull();
    const nf = r.noFit!;
    expect(nf.binding).toBe('host');
    // Twice the host memory still fits nothing, so more than the whole host share is missing.
    const doubled = await tune(ctxWith(2 * base.hostMemoryPerNode));
    expect(doubled.plan).toBeNull();
    expect(nf.hostShortfallBytes!).toBeGreaterThan(nf.hostCapacityBytes);
    // And the report is a real plan's need: with that much more host memory per GPU a plan fits.
    const reserve = nf.hostCapacityBytes / (base.hostMemoryPerNode / base.gpusPerNode);
    const enough = base.hostMemoryPerNode + (nf.hostShortfallBytes! / reserve + 1e6) * base.gpusPerNode;
    const fits = await tune(ctxWith(enough));
    expect(fits.plan).not.toBeNull();
  }, 120_000);
});
