// The intra-stage branch and bound is exact only if the analyzer behaves as it assumes; these tests
// check those properties on a real model, on random strategies.
import { compileStageModel, type StageQuery } from '@mist/analyzer';
import { builtinHardwareProfile, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from './test/random-instance';

const cluster = parseClusterShorthand('2x4-a100-40gb');
const ctx = { model: getModel('gpt3-1.3b'), training: parseTrainingSpec({ globalBatch: 64, seqLen: 2048 }), profile: builtinHardwareProfile(cluster) };
const model = compileStageModel(ctx);

function randomQuery(rnd: () => number): StageQuery {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const layers = 1 + Math.floor(rnd() * 24);
  const [mesh, tp] = pick([[{ nodes: 1, gpusPerNode: 1 }, 1], [{ nodes: 1, gpusPerNode: 2 }, 2], [{ nodes: 1, gpusPerNode: 4 }, 2], [{ nodes: 2, gpusPerNode: 4 }, 4]] as const);
  const dp = (mesh.nodes * mesh.gpusPerNode) / tp;
  const r = (): number => pick([0, 0.25, 0.5, 0.75, 1]);
  return {
    layers, position: pick(['first', 'middle', 'last', 'only'] as const), inFlight: 1 + Math.floor(rnd() * 6), pp: 8, mesh,
    microBatchSize: pick([1, 2, 4]), gradAccumSteps: 8, dp, tp, sequenceParallel: tp > 1 && rnd() < 0.5,
    ckptLayers: Math.floor(rnd() * (layers + 1)), zero: pick([0, 1, 2, 3] as const),
    offload: { weights: r(), grads: r(), optim: r(), activations: r() },
  };
}

describe('analyzer properties the intra-stage search relies on', () => {
  it('times do not depend on the in-flight count; peak memory grows by activations / inFlight per micro-batch', () => {
    const rnd = mulberry32(7);
    for (let k = 0; k < 300; k++) {
      const q = randomQuery(rnd);
      const a = model.estimate(q);
      const b = model.estimate({ ...q, inFlight: q.inFlight + 3 });
      expect(b.steadyTimeS).toBe(a.steadyTimeS);
      expect(b.firstTimeS + b.lastTimeS).toBe(a.firstTimeS + a.lastTimeS);
      const predicted = a.peakMemoryBytes + 3 * (a.memory.activations / q.inFlight);
      expect(Math.abs(b.peakMemoryBytes - predicted)).toBeLessThanOrEqual(1e-9 * predicted);
    }
  });

  it('more checkpointing or offloading never uses more memory; more offloading (and more checkpointing without activation offload) is never faster', () => {
    const rnd = mulberry32(11);
    const bump = (q: StageQuery, dim: number): StageQuery | null => {
      const o = { ...q.offload };
      if (dim === 0) return q.ckptLayers < q.layers ? { ...q, ckptLayers: q.ckptLayers + 1 } : null;
      const key = (['weights', 'grads', 'optim', 'activations'] as const)[dim - 1];
      if (o[key] >= 1) return null;
      o[key] = Math.min(1, o[key] + 0.25);
      return { ...q, offload: o };
    };
    let checked = 0;
    for (let k = 0; k < 600; k++) {
      const q0 = randomQuery(rnd);
      const dim = Math.floor(rnd() * 5);
      // Checkpointing shrinks offloaded activation traffic, so time is monotone in ckpt only without it.
      const q = dim === 0 && rnd() < 0.7 ? { ...q0, offload: { ...q0.offload, activations: 0 } } : q0;
      const timeMonotone = dim !== 0 || q.offload.activations === 0;
      const q2 = bump(q, dim);
      if (!q2) continue;
      const a = model.estimate(q);
      const b = model.estimate(q2);
      const tol = 1e-12;
      if (timeMonotone) {
        expect(b.steadyTimeS, `dim ${dim}`).toBeGreaterThanOrEqual(a.steadyTimeS * (1 - tol));
        expect(b.firstTimeS + b.lastTimeS, `dim ${dim}`).toBeGreaterThanOrEqual((a.firstTimeS + a.lastTimeS) * (1 - tol));
      }
      expect(b.peakMemoryBytes, `dim ${dim}`).toBeLessThanOrEqual(a.peakMemoryBytes * (1 + tol));
      checked++;
    }
    expect(checked).toBeGreaterThan(300);
  });

  it('host memory: more offload or in-flight uses more, more checkpointing less; it is hostStates(ow, og, oo) + inFlight * oa * saved(ckpt)', () => {
    // The search bounds a box's host memory from below by the corner (ckpt hi, offloads lo) and
    // computes that corner from the lo corner's states and the hi corner's activations.
    const rnd = mulberry32(13);
    const tol = 1e-12;
    for (let k = 0; k < 300; k++) {
      const q = randomQuery(rnd);
      const a = model.estimate(q);
      const states = a.hostMemoryBytes - a.hostActivationBytes;
      // More of any offload ratio: at least as much host memory.
      for (const key of ['weights', 'grads', 'optim', 'activations'] as const) {
        if (q.offload[key] >= 1) continue;
        const b = model.estimate({ ...q, offload: { ...q.offload, [key]: Math.min(1, q.offload[key] + 0.25) } });
        expect(b.hostMemoryBytes, key).toBeGreaterThanOrEqual(a.hostMemoryBytes * (1 - tol));
      }
      // States do not depend on ckpt or the activation ratio; activations are linear in inFlight and oa.
      const ck = Math.floor(rnd() * (q.layers + 1));
      const oa = [0, 0.25, 0.5, 0.75, 1][Math.floor(rnd() * 5)];
      const c = model.estimate({ ...q, ckptLayers: ck, inFlight: q.inFlight + 2, offload: { ...q.offload, activations: oa } });
      expect(Math.abs(c.hostMemoryBytes - c.hostActivationBytes - states)).toBeLessThanOrEqual(tol * Math.max(1, states));
      const full = model.estimate({ ...q, ckptLayers: ck, inFlight: 1, offload: { ...q.offload, activations: 1 } });
      const predicted = (q.inFlight + 2) * oa * full.hostActivationBytes;
      expect(Math.abs(c.hostActivationBytes - predicted)).toBeLessThanOrEqual(tol * Math.max(1, predicted));
      // More checkpointing: no more host memory.
      if (q.ckptLayers < q.layers) {
        expect(model.estimate({ ...q, ckptLayers: q.ckptLayers + 1 }).hostMemoryBytes).toBeLessThanOrEqual(a.hostMemoryBytes * (1 + tol));
      }
      // Offloading never uses more device memory, so the two fits pull in opposite directions.
      expect(a.fits).toBe(a.deviceFits && a.hostFits);
    }
  });

  it('device peak + host memory is at least states + activations of the corner (ckpt all, no offload): offloading moves bytes, never drops them', () => {
    // bounds.ts drops a configuration whose corner (ckpt all, no offload) holds more states and
    // activations than the device and the host together.
    const rnd = mulberry32(17);
    for (let k = 0; k < 400; k++) {
      const q = randomQuery(rnd);
      const a = model.estimate(q);
      const corner = model.estimate({ ...q, ckptLayers: q.layers, offload: { weights: 0, grads: 0, optim: 0, activations: 0 } });
      const least = corner.memory.weights + corner.memory.grads + corner.memory.optim + corner.memory.activations;
      expect(a.peakMemoryBytes + a.hostMemoryBytes).toBeGreaterThanOrEqual(least * (1 - 1e-12));
    }
  });
});
