import { getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec, builtinHardwareProfile, totalParams, usableDeviceMemory } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, readStageEstimate, readStageQuery, type StageQuery, writeStageQuery } from './compile';
import { INPUT_WIDTH, OUTPUT_WIDTH } from './layout';

const model = getModel('gpt3-1.3b');
const profile = builtinHardwareProfile(parseClusterShorthand('2x8-a100-40gb'));
const training = parseTrainingSpec({ globalBatch: 64, seqLen: 2048, flashAttention: false });
const compiled = compileStageModel({ model, training, profile });

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: model.layers, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 2, gradAccumSteps: 4, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: NO_OFFLOAD, ...over,
  };
}

describe('model states (Rajbhandari et al. 2020), one-stage plan', () => {
  const psi = totalParams(model);
  const states = (q: StageQuery): number => {
    const m = compiled.estimate(q).memory;
    return m.weights + m.grads + m.optim;
  };
  it('mixed-precision Adam: 16 Psi without ZeRO', () => {
    expect(states(query({ zero: 0 }))).toBe(16 * psi);
  });
  it('ZeRO-1: 4 Psi + 12 Psi / Nd', () => {
    for (const dp of [2, 8, 16]) {
      expect(states(query({ zero: 1, dp, mesh: { nodes: dp / 8 > 1 ? 2 : 1, gpusPerNode: Math.min(dp, 8) } })) / (4 * psi + (12 * psi) / dp))
        .toBeCloseTo(1, 12);
    }
  });
  it('ZeRO-2: 2 Psi + 14 Psi / Nd', () => {
    expect(states(query({ zero: 2 })) / (2 * psi + (14 * psi) / 8)).toBeCloseTo(1, 12);
  });
  it('ZeRO-3: 16 Psi / Nd', () => {
    expect(states(query({ zero: 3 })) / ((16 * psi) / 8)).toBeCloseTo(1, 12);
  });
});

describe('activations of a stage', () => {
  it('are layers x sbh(34 + 5as/h) per in-flight micro-batch, and 2sbh per recomputed layer', () => {
    const s = training.seqLen;
    const h = model.hidden;
    const a = model.heads;
    const b = 2;
    const perLayer = s * b * h * (34 + (5 * a * s) / h);
    const mid = compiled.estimate(query({ position: 'middle', pp: 4, inFlight: 3, layers: 6, microBatchSize: b }));
    expect(mid.memory.activations).toBe(3 * 6 * perLayer);
    const ck = compiled.estimate(query({ position: 'middle', pp: 4, inFlight: 3, layers: 6, ckptLayers: 6, microBatchSize: b }));
    expect(ck.memory.activations).toBe(3 * 6 * 2 * s * b * h);
  });
});

describe('capacity and fit', () => {
  it('checks the peak against usableDeviceMemory(profile) and reports both', () => {
    const e = compiled.estimate(query());
    expect(e.capacityBytes).toBe(usableDeviceMemory(profile));
    expect(e.capacityBytes).toBeLessThan(profile.cluster.gpu.memoryBytes);
    expect(e.peakMemoryBytes).toBe(Math.max(e.memory.peakForward, e.memory.peakBackward));
    expect(e.peakMemoryBytes).toBeCloseTo(e.memory.weights + e.memory.grads + e.memory.optim + e.memory.activations + e.memory.transient, 0);
    expect(e.fits).toBe(e.peakMemoryBytes <= e.capacityBytes);
    const huge = compiled.estimate(query({ microBatchSize: 64, gradAccumSteps: 1 }));
    expect(huge.fits).toBe(false);
  });
});

describe('batch kernel', () => {
  it('gives the same numbers as estimate()', () => {
    const qs = [query(), query({ zero: 3, tp: 2, dp: 4, sequenceParallel: true, ckptLayers: 5 }),
      query({ position: 'first', pp: 2, inFlight: 2, layers: 12, offload: { weights: 0.5, grads: 0.2, optim: 1, activations: 0.3 } })];
    const input = new Float64Array(qs.length * INPUT_WIDTH);
    const output = new Float64Array(qs.length * OUTPUT_WIDTH);
    qs.forEach((q, i) => writeStageQuery(q, input, i));
    compiled.evaluateBatch(input, output, qs.length);
    qs.forEach((q, i) => expect(readStageEstimate(output, compiled.capacityBytes, i)).toEqual(compiled.estimate(q)));
  });

  it('reads back every query it writes (readStageQuery inverts writeStageQuery)', () => {
    const qs = [query({ cp: 1, ep: 1, selectiveRecompute: false, opRecompute: false }),
      query({ position: 'middle', pp: 3, inFlight: 2, tp: 2, dp: 2, cp: 2, ep: 2, selectiveRecompute: true, opRecompute: false, zero: 2 }),
      query({ position: 'last', pp: 4, offload: { weights: 0.25, grads: 0.5, optim: 1, activations: 0.125 }, cp: 1, ep: 1, selectiveRecompute: false, opRecompute: true })];
    const input = new Float64Array(qs.length * INPUT_WIDTH);
    qs.forEach((q, i) => writeStageQuery(q, input, i));
    qs.forEach((q, i) => expect(readStageQuery(input, i)).toEqual(q));
  });

  it('rejects an inconsistent query in estimate()', () => {
    expect(() => compiled.estimate(query({ ckptLayers: 30 }))).toThrow(/ckptLayers/);
    expect(() => compiled.estimate(query({ offload: { ...NO_OFFLOAD, grads: 2 } }))).toThrow(/offload.grads/);
  });
});

describe('time', () => {
  it('has a steady micro-batch of forward + backward + recompute, and first >= steady', () => {
    const e = compiled.estimate(query({ ckptLayers: 24 }));
    expect(e.time.recompute).toBeGreaterThan(0);
    // (up to rounding: the compiled kernel adds the terms in another order)
    expect(e.steadyTimeS).toBeGreaterThanOrEqual((e.time.forward + e.time.backward + e.time.recompute) * (1 - 1e-12));
    expect(e.firstTimeS).toBeGreaterThanOrEqual(e.steadyTimeS);
    expect(e.lastTimeS).toBeGreaterThan(0); // gradient all-reduce + optimizer step
    expect(e.time.optimizer).toBeGreaterThan(0);
    expect(e.time.dpComm).toBeGreaterThan(0);
    expect(e.time.tpComm).toBe(0); // tp = 1
  });

  it('charges TP collectives with tp > 1 and pipeline sends on a middle stage', () => {
    const e = compiled.estimate(query({ tp: 4, dp: 2, position: 'middle', pp: 3, inFlight: 2, layers: 8 }));
    expect(e.time.tpComm).toBeGreaterThan(0);
    expect(e.time.ppComm).toBeGreaterThan(0);
  });

  it('spreads the forward compute over TP ranks', () => {
    const one = compiled.estimate(query({ tp: 1, dp: 8 }));
    const four = compiled.estimate(query({ tp: 4, dp: 2 }));
    expect(four.time.forward).toBeLessThan(one.time.forward / 2.5);
  });
});

describe('explain', () => {
  it('prints simplified formulas with the free strategy symbols and named parts', () => {
    const ex = compiled.explain({ position: 'only', pp: 1, inFlight: 1, mesh: { nodes: 1, gpusPerNode: 8 }, tp: 1, sequenceParallel: false, zero: 1, offload: NO_OFFLOAD });
    expect(ex.time).toMatch(/^steady \[s\] = /);
    expect(ex.time).toMatch(/layerF = .*b/);
    expect(ex.memory).toContain('optim [B] = 12*Pr*ro');
    expect(ex.memory).toContain('ro = 1/dp');
    expect(ex.memory).toMatch(/Pr = 50358272\*L \+ /);
    const bound = compiled.explain(query());
    expect(bound.memory).toContain(`peak [B] (capacity ${compiled.capacityBytes} B) = ${compiled.estimate(query()).peakMemoryBytes}`);
  });
});
