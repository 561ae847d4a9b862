import { describe, expect, it } from 'vitest';
import { compileStageModel } from '@mist/analyzer';
import { cpuMachineKind, getModel, type HardwareProfile, parseHardwareProfile, parseTrainingSpec } from '@mist/core';
import { fitLineRelative, relativeErrors } from './fit';
import { SMOKE_GRID } from './grids';
import { mergeProfiles } from './merge';
import { profileHost } from './profile-host';
import type { ProfileProgress } from './progress';

let measured: Promise<{ profile: HardwareProfile; events: ProfileProgress[] }> | undefined;
function smokeProfile(): Promise<{ profile: HardwareProfile; events: ProfileProgress[] }> {
  measured ??= (async () => {
    const events: ProfileProgress[] = [];
    const profile = await profileHost({ grid: SMOKE_GRID, onProgress: (e) => events.push(e) });
    return { profile, events };
  })();
  return measured;
}

describe('profileHost on a smoke-test grid', () => {
  it('gives a measured profile that core\'s schema accepts, with every table and fit', async () => {
    const { profile: p, events } = await smokeProfile();
    expect(parseHardwareProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(p.source).toBe('measured');
    expect(p.machineKind).toBe(cpuMachineKind());
    expect(Date.parse(p.createdAt ?? '')).toBeGreaterThan(Date.parse('2024-01-01'));
    expect(p.matmulTable).toHaveLength(SMOKE_GRID.matmul.length);
    const ops = new Set(p.opTable?.map((o) => o.op));
    for (const name of ['layernorm', 'rmsnorm', 'gelu', 'swiglu', 'rope', 'embedding', 'cross_entropy', 'dropout_add', 'add', 'attention']) {
      expect(ops.has(name)).toBe(true);
    }
    expect(p.collectiveTable?.map((c) => c.collective).sort()).toEqual(
      ['allGather', 'allReduce', 'reduceScatter', 'sendRecv'].flatMap((k) => [k, k, k]));
    expect(p.copyTable).toHaveLength(SMOKE_GRID.copyBytes.length);
    expect(p.overlap.commSlowdown).toBeGreaterThanOrEqual(1);
    expect(p.overlap.offloadSlowdown).toBeGreaterThanOrEqual(1);
    expect(p.overlapTable?.map((o) => o.beside).sort()).toEqual(['collective', 'copy']);
    for (const k of ['allReduce', 'allGather', 'reduceScatter', 'sendRecv'] as const) {
      expect(p.collectives?.[k].intraNode.beta).toBeGreaterThan(0);
    }
    expect(p.unmeasured?.['links.interNode']).toMatch(/no inter-node link/);
    // The executor probe: the CPU backend's section, a host cost per module pass with one device and (several devices) all busy.
    const b = p.backend;
    if (b?.kind !== 'cpu') throw new Error(`expected the cpu backend section, got ${JSON.stringify(b)}`);
    expect(b.modulePassOverhead).toBeGreaterThan(0);
    expect(b.modulePassOverhead).toBeLessThan(0.05);
    expect(b.fusedIntoForward).toEqual(['cross_entropy']);
    expect(Object.keys(p.compute)).not.toContain('modulePassOverhead');
    if (p.cluster.gpusPerNode > 1) {
      expect(b.allBusy?.kernelSlowdown).toBeGreaterThanOrEqual(1);
      expect(b.allBusy?.modulePassOverhead).toBeGreaterThan(0);
      expect(b.allBusy?.pipelineModulePassOverhead).toBeGreaterThan(0);
    } else {
      expect(b.allBusy).toBeUndefined();
      expect(p.unmeasured?.['backend.allBusy']).toMatch(/one device/);
    }
    expect(String(p.host?.['backend.modulePassOverhead'])).toMatch(/llama-tiny/);
    // Step-to-step noise that ranks do not share: one value per rank and measured data-parallel step.
    if (p.cluster.gpusPerNode > 1) expect(b.stepNoise).toHaveLength(SMOKE_GRID.passSteps * SMOKE_GRID.passRounds * p.cluster.gpusPerNode);
    else expect(b.stepNoise).toBeUndefined();
    if (p.cluster.gpusPerNode > 1) {
      expect(b.p2pWake).toBeGreaterThanOrEqual(0);
      // The wake-up: the message's latency and the receiver's compute after it, both reported.
      expect(String(p.host?.['backend.p2pWake'])).toMatch(/kernel batches of \d+ 256x128x128 matmuls\) \d+ us against \d+ us back to back/);
      // The slowest device's kernels: never faster than one device alone.
      expect(b.allBusy?.kernelSlowdown).toBeGreaterThanOrEqual(1);
    } else {
      expect(p.unmeasured?.['backend.p2pWake']).toMatch(/two local ranks/);
    }
    // Progress: one event per point, ending at the total.
    expect(events.at(-1)?.done).toBe(events.at(-1)?.total);
    expect(events.every((e, i) => e.done === i + 1)).toBe(true);
  });

  it('reports fits that reproduce the real measured points within their reported error', async () => {
    const { profile: p } = await smokeProfile();
    const fits = p.fits ?? {};
    for (const name of ['matmul', 'attention', 'memory:copy', 'link:hostToDevice', 'op:gelu', 'collective:allReduce:intraNode']) {
      const f = fits[name];
      expect(f, name).toBeDefined();
      expect(Number.isFinite(f.maxRelError) && f.maxRelError >= f.medianRelError).toBe(true);
    }
    // The matmul fit is the analyzer's line over the table; recompute its errors from the raw points.
    const pts = (p.matmulTable ?? []).map((m) => ({ x: 2 * m.m * m.n * m.k, y: m.seconds }));
    const line = fitLineRelative(pts)!;
    expect(fits.matmul.c1).toBeCloseTo(line.c1, 20);
    const errs = relativeErrors(pts, (x) => fits.matmul.c0 + fits.matmul.c1 * x);
    expect(Math.max(...errs)).toBeCloseTo(fits.matmul.maxRelError, 12);
    // Collectives: every measured point lies within the reported maximum error of its fit.
    const ar = fits['collective:allReduce:intraNode'];
    for (const c of (p.collectiveTable ?? []).filter((x) => x.collective === 'allReduce')) {
      const fit = 2 * (c.ranks - 1) * ar.c0 + ((2 * (c.ranks - 1)) / c.ranks) * c.bytes * ar.c1;
      expect(Math.abs(fit - c.seconds) / c.seconds).toBeLessThanOrEqual(ar.maxRelError + 1e-12);
    }
  });

  it('drives the analyzer: gpt-tiny stages get finite, positive times', async () => {
    const { profile } = await smokeProfile();
    const training = parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });
    const model = compileStageModel({ model: getModel('gpt-tiny'), training, profile });
    for (const ckptLayers of [0, 2]) {
      const est = model.estimate({
        layers: 2, position: 'first', inFlight: 2, pp: 2, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 2,
        gradAccumSteps: 4, dp: 1, tp: 1, sequenceParallel: false, ckptLayers, zero: 0,
        offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
      });
      expect(Number.isFinite(est.steadyTimeS) && est.steadyTimeS > 0).toBe(true);
      expect(est.time.recompute > 0).toBe(ckptLayers > 0);
      expect(est.fits).toBe(true);
    }
  });

  it('merges host profiles: medians of fits, minimum of capacities, one node per host', async () => {
    const { profile: a } = await smokeProfile();
    const slower = (p: HardwareProfile, f: number, mem: number): HardwareProfile => parseHardwareProfile({
      ...p,
      host: { ...p.host, hostname: `h${f}` },
      cluster: { ...p.cluster, gpu: { ...p.cluster.gpu, memoryBytes: mem } },
      compute: { ...p.compute, kernelLaunch: p.compute.kernelLaunch * f },
      matmulTable: p.matmulTable?.map((m) => ({ ...m, seconds: m.seconds * f })),
      links: { ...p.links, intraNode: { alpha: p.links.intraNode.alpha * f, beta: p.links.intraNode.beta * f } },
    });
    const hosts = [slower(a, 1, 8e9), slower(a, 2, 4e9), slower(a, 4, 16e9)];
    const m = mergeProfiles(hosts);
    expect(m.cluster.nodes).toBe(3);
    expect(m.cluster.gpu.memoryBytes).toBe(4e9);
    expect(m.compute.kernelLaunch).toBeCloseTo(2 * a.compute.kernelLaunch, 15);
    expect(m.links.intraNode.alpha).toBeCloseTo(2 * a.links.intraNode.alpha, 15);
    expect(m.matmulTable?.[0].seconds).toBeCloseTo(2 * (a.matmulTable?.[0].seconds ?? 0), 15);
    expect(m.host?.hostnames).toBe('h1, h2, h4');
    expect(() => mergeProfiles([a, { ...a, machineKind: 'another CPU (64 cores)' }])).toThrow(/different kinds/);
  });
});
