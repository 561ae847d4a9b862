// Context parallelism in the stage model: cp 1 is the model without it, a rank of a cp group keeps
// 1/cp of the activations and computes 1/cp of the attention, the K/V ring hides behind attention
// when the attention step is longer than the transfer, and gradients sync over dp * cp.
import { builtinHardwareProfile, getModel, NO_OFFLOAD, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { evaluate, num, substitute } from './expr';
import { CostModel } from './hardware-cost';
import { layerOps } from './op-graph';
import { ringAttention } from './ring-attention';
import { modelBindings } from './stage-model';

const model = getModel('gpt3-1.3b');
const profile = builtinHardwareProfile(parseClusterShorthand('2x8-a100-80gb'));

function query(over: Partial<StageQuery> = {}): StageQuery {
  return {
    layers: 24, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 1, gpusPerNode: 8 },
    microBatchSize: 1, gradAccumSteps: 8, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 1,
    offload: NO_OFFLOAD, ...over,
  };
}

describe('context parallelism in the stage model', () => {
  const training = parseTrainingSpec({ globalBatch: 64, seqLen: 8192, flashAttention: true });
  const stage = compileStageModel({ model, profile, training });

  it('is the model without it at cp 1', () => {
    expect(stage.estimate(query({ cp: 1 }))).toEqual(stage.estimate(query()));
  });

  it('halves the activation memory at cp 2 and adds the ring buffers to the peak', () => {
    const one = stage.estimate(query());
    const two = stage.estimate(query({ dp: 4, cp: 2 }));
    expect(two.memory.activations).toBeCloseTo(one.memory.activations / 2, 0);
    expect(two.peakMemoryBytes).toBeLessThan(one.peakMemoryBytes);
    // Same weights: ZeRO-1 shards the optimizer states over dp * cp = 8 ranks either way.
    expect(two.memory.optim).toBe(one.memory.optim);
  });

  it('syncs gradients over dp * cp', () => {
    const one = stage.estimate(query());
    const two = stage.estimate(query({ dp: 4, cp: 2 }));
    expect(two.time.dpComm).toBeCloseTo(one.time.dpComm, 12);
  });

  it('splits the compute: a cp 2 rank runs about half of the layers\' forward', () => {
    const one = stage.estimate(query());
    const two = stage.estimate(query({ dp: 4, cp: 2 }));
    expect(two.time.forward).toBeLessThan(one.time.forward * 0.55);
    expect(two.time.forward).toBeGreaterThan(one.time.forward * 0.45);
  });
});

describe('the K/V ring', () => {
  const cost = new CostModel(profile);
  const layer = layerOps(model, { actBytes: 2 });
  const ring = ringAttention(model, layer, cost, num(1), 2);
  const exposed = (seqLen: number, cp: number, gpn: number): { forward: number; backward: number } => {
    const binds = modelBindings(model, parseTrainingSpec({ globalBatch: 8, seqLen, flashAttention: true }));
    const env = { b: 1 / cp, t: 1, sp: 0, cp, gpn }; // the stage model reads b as b/cp samples
    return {
      forward: evaluate(substitute(ring.forward, binds), env),
      backward: evaluate(substitute(ring.backward, binds), env),
    };
  };

  it('costs nothing at cp 1', () => {
    expect(exposed(8192, 1, 8)).toEqual({ forward: 0, backward: 0 });
  });

  it('hides behind the attention steps of long sequences on NVLink', () => {
    expect(exposed(32768, 4, 8)).toEqual({ forward: 0, backward: 0 });
  });

  it('shows the part of each transfer longer than its attention step when it crosses nodes', () => {
    // tp * cp = 4 > 1 GPU per node: the ring crosses the network; short sequences have short steps.
    const across = exposed(2048, 4, 1);
    expect(across.forward).toBeGreaterThan(0);
    expect(across.backward).toBeGreaterThan(across.forward);
    // Less than three whole transfers (cp - 1 = 3): each one overlaps its step.
    const kvBytes = 2 * 2 * (2048 / 4) * model.hidden;
    const transfer = evaluate(substitute(cost.collective('sendRecv', num(kvBytes), num(2), { interWeight: num(1) }), {}), {});
    expect(across.forward).toBeLessThan(3 * transfer);
  });
});
