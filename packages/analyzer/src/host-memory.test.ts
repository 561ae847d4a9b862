// Host memory of a stage: the offloaded bytes, the host capacity per GPU, and the fit that needs both.
import {
  builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseHardwareProfile, parsePlan, parseTrainingSpec,
  type StageStrategy,
} from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, readStageEstimate, type StageQuery, writeStageQuery } from './compile';
import { DEFAULT_HOST_RESERVE_FRACTION, usableHostMemoryPerGpu } from './host-memory';
import { INPUT_WIDTH, OUT, OUTPUT_WIDTH } from './layout';
import { estimatePlan } from './plan-estimate';
import { analyzePlan } from './report';

const training = parseTrainingSpec({ globalBatch: 64, seqLen: 2048 });
const l4x8 = builtinHardwareProfile(parseClusterShorthand('1x8-l4'));
const small = compileStageModel({ model: getModel('gpt3-1.3b'), training, profile: l4x8 });

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 12, position: 'first', inFlight: 3, pp: 4, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 2,
    gradAccumSteps: 8, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 4, zero: 1, offload: NO_OFFLOAD, ...over,
  };
}

describe('host memory of a stage', () => {
  it('is the offloaded share of each state (as ZeRO shards it) plus the offloaded activations of every in-flight micro-batch', () => {
    for (const zero of [0, 1, 2, 3] as const) {
      const base = small.estimate(query({ zero }));
      expect(base.hostMemoryBytes).toBe(0);
      const offload = { weights: 0.25, grads: 0.5, optim: 0.75, activations: 0.625 };
      const e = small.estimate(query({ zero, offload }));
      const m = base.memory;
      const expected = 0.25 * m.weights + 0.5 * m.grads + 0.75 * m.optim + 0.625 * m.activations;
      expect(e.hostMemoryBytes / expected).toBeCloseTo(1, 12);
      expect(e.hostActivationBytes / (0.625 * m.activations)).toBeCloseTo(1, 12);
      // Bytes move between the memories, none appear or vanish.
      const dev = e.memory;
      expect((dev.weights + dev.grads + dev.optim + dev.activations + e.hostMemoryBytes) / (m.weights + m.grads + m.optim + m.activations))
        .toBeCloseTo(1, 12);
    }
  });

  it('has a capacity of hostMemoryPerNode / gpusPerNode less the reserve (10% by default, or the profile\'s)', () => {
    const c = l4x8.cluster;
    expect(DEFAULT_HOST_RESERVE_FRACTION).toBe(0.1);
    expect(small.hostCapacityBytes).toBeCloseTo((c.hostMemoryPerNode / c.gpusPerNode) * 0.9, 3);
    expect(small.estimate(query()).hostCapacityBytes).toBe(small.hostCapacityBytes);
    const reserved = parseHardwareProfile({ ...l4x8, memory: { ...l4x8.memory, hostReserveFraction: 0.25 } });
    expect(usableHostMemoryPerGpu(reserved)).toBeCloseTo((c.hostMemoryPerNode / c.gpusPerNode) * 0.75, 3);
    expect(compileStageModel({ model: getModel('gpt3-1.3b'), training, profile: reserved }).hostCapacityBytes)
      .toBe(usableHostMemoryPerGpu(reserved));
  });

  it('appends its columns to the batch output, FITS = FITS_DEVICE * FITS_HOST, and estimate reads them', () => {
    expect([OUT.STEADY, OUT.PEAK_MEMORY, OUT.FITS]).toEqual([0, 3, 19]);
    expect([OUT.HOST_MEMORY, OUT.HOST_CAPACITY, OUT.HOST_ACTIVATIONS, OUT.FITS_DEVICE, OUT.FITS_HOST]).toEqual([20, 21, 22, 23, 24]);
    // The live-tensor peak is appended after them.
    expect(OUT.MEM_PEAK_LIVE).toBe(25);
    expect(OUTPUT_WIDTH).toBe(26);
    const qs = [query(), query({ offload: { weights: 1, grads: 1, optim: 1, activations: 1 } }), query({ microBatchSize: 64, ckptLayers: 0 })];
    const input = new Float64Array(qs.length * INPUT_WIDTH);
    qs.forEach((q, i) => writeStageQuery(q, input, i));
    const output = new Float64Array(qs.length * OUTPUT_WIDTH);
    small.evaluateBatch(input, output, qs.length);
    qs.forEach((q, i) => {
      const r = i * OUTPUT_WIDTH;
      expect(output[r + OUT.FITS]).toBe(output[r + OUT.FITS_DEVICE] * output[r + OUT.FITS_HOST]);
      expect(readStageEstimate(output, small.capacityBytes, i)).toEqual(small.estimate(q));
    });
  });
});

describe('a stage that offloads more than the host holds', () => {
  // gpt3-6.7b on one L4 with everything offloaded: ~100 GiB of model states on a 40 GiB host share.
  const cluster = parseClusterShorthand('1x1-l4');
  const profile = builtinHardwareProfile(cluster);
  const model = getModel('gpt3-6.7b');
  const t = parseTrainingSpec({ globalBatch: 8, seqLen: 2048 });
  const strategy: StageStrategy = {
    layers: [0, model.layers - 1], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, tp: 1, sequenceParallel: false,
    ckptLayers: model.layers, zero: 0, offload: { weights: 1, grads: 1, optim: 1, activations: 1 },
  };
  const planDoc = { version: 1, model: model.name, cluster: cluster.name, seqLen: 2048, globalBatch: 8, gradAccumSteps: 8, stages: [strategy] };

  it('fits on the device but not on the host, so it does not fit; the host figures are reported', () => {
    const est = estimatePlan(parsePlan(planDoc, { model, cluster }), { model, training: t, profile });
    const [s] = est.stages;
    expect(s.deviceFits).toBe(true);
    expect(s.peakMemoryBytes).toBeLessThanOrEqual(s.capacityBytes);
    expect(s.hostFits).toBe(false);
    expect(s.fits).toBe(false);
    expect(est.allFit).toBe(false);
    expect(s.hostCapacityBytes).toBeCloseTo(usableHostMemoryPerGpu(profile), 3);
    expect(s.hostMemoryBytes).toBeGreaterThan(16 * 6.5e9); // every mixed-precision Adam state byte
    expect(s.hostMemoryBytes).toBeGreaterThan(s.hostCapacityBytes);
  });

  it('analyzePlan reports the host overflow and no device overflow', () => {
    const { analysis } = analyzePlan({ model, plan: planDoc, profile });
    const [s] = analysis.stages;
    expect(analysis.allFit).toBe(false);
    expect(s.overflowBytes).toBe(0);
    expect(s.hostOverflowBytes).toBeCloseTo(s.hostMemoryBytes - s.hostCapacityBytes, 0);
    expect(s.hostOverflowBytes).toBeGreaterThan(0);
  });

  it('fits once the host has room for it', () => {
    const big = parseClusterShorthand('1x1-l4');
    const roomy = builtinHardwareProfile({ ...big, hostMemoryPerNode: 512e9 });
    const est = estimatePlan(parsePlan(planDoc, { model, cluster: big }), { model, training: t, profile: roomy });
    expect(est.stages[0].hostFits).toBe(true);
    expect(est.allFit).toBe(true);
  });
});
