// The executor-specific parts of the time model: host cost per module pass, slowdown with every
// device of a node busy, ops whose backward is fused into the forward, and the wait for the slowest
// rank's step-to-step noise. (The kernel counts come from core's block description: op-graph.test.ts.)
import { builtinHardwareProfile, type CpuBackendProfile, getModel, type HardwareProfile, NO_OFFLOAD, parseClusterShorthand, parsePlan, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { compileStageModel, type StageQuery } from './compile';
import { estimatePlan, stepJitter } from './plan-estimate';

const model = getModel('gpt-tiny');
const training = parseTrainingSpec({ globalBatch: 16, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32', flashAttention: true });
const base = builtinHardwareProfile(parseClusterShorthand('1x4-l4'), 'fp32');
/** `base` with a CPU backend section of `terms` (the profile's other fields from `rest`). */
const withBackend = (terms: Omit<CpuBackendProfile, 'kind'>, rest: Partial<HardwareProfile> = {}): HardwareProfile =>
  ({ ...base, ...rest, backend: { kind: 'cpu', ...terms } });
const estimate = (p: HardwareProfile, over: Partial<StageQuery> = {}) => compileStageModel({ model, training, profile: p }).estimate({
  layers: 4, position: 'only', inFlight: 1, pp: 1, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 4, gradAccumSteps: 4,
  dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD, ...over,
});

describe('host cost per module pass (backend.modulePassOverhead)', () => {
  const pass = 1e-3;
  const plain = estimate(base);
  it('adds one pass per layer, embedding and head to forward and to backward, one per recomputed layer', () => {
    const e = estimate(withBackend({ modulePassOverhead: pass }));
    expect(e.time.forward - plain.time.forward).toBeCloseTo(6 * pass, 12);
    expect(e.time.backward - plain.time.backward).toBeCloseTo(6 * pass, 12);
    const ck = estimate(withBackend({ modulePassOverhead: pass }), { ckptLayers: 3 });
    expect(ck.time.recompute - estimate(base, { ckptLayers: 3 }).time.recompute).toBeCloseTo(3 * pass, 12);
    expect(e.time.optimizer - plain.time.optimizer).toBeCloseTo(pass, 12);
  });

  it('counts three batches per layer pass with tensor parallelism (cut at its two all-reduces)', () => {
    const q = { tp: 2, mesh: { nodes: 1, gpusPerNode: 2 } };
    const e = estimate(withBackend({ modulePassOverhead: pass }), q);
    // 4 layers x 3 + embedding x 2 + head x 2
    expect(e.time.forward - estimate(base, q).time.forward).toBeCloseTo(16 * pass, 12);
  });
});

describe('every device busy (backend.allBusy)', () => {
  const busy = withBackend({ modulePassOverhead: 1e-4, allBusy: { kernelSlowdown: 1.5, modulePassOverhead: 3e-4 } });
  const alone = withBackend({ modulePassOverhead: 1e-4 });
  it('changes nothing for a plan on one device of the node', () => {
    expect(estimate(busy).time.forward).toBeCloseTo(estimate(alone).time.forward, 15);
  });

  it('applies in full when the plan keeps all of the node\'s devices busy, and in part in between', () => {
    const kernelsAndPasses = (p: HardwareProfile, q: Partial<StageQuery>) => estimate(p, q).time.forward;
    const noPasses = withBackend({ modulePassOverhead: 0 });
    const kernels = kernelsAndPasses(noPasses, {}); // forward kernels of one stage, no host cost
    // pp = 4 stages on the node's 4 devices: all busy
    const all = kernelsAndPasses(busy, { pp: 4, position: 'middle' });
    const allKernels = kernelsAndPasses(noPasses, { pp: 4, position: 'middle' });
    expect(all).toBeCloseTo(1.5 * allKernels + 4 * 3e-4, 12);
    // two of the four devices: a third of the way (busy share (2 - 1) / (4 - 1))
    const two = kernelsAndPasses(busy, { pp: 2 });
    expect(two).toBeCloseTo((1 + 0.5 / 3) * kernels + 6 * (1e-4 + (2e-4) / 3), 12);
  });

  it('charges a pipeline stage the pipeline figure, a data-parallel plan the data-parallel one', () => {
    const piped = withBackend({ modulePassOverhead: 1e-4, allBusy: { kernelSlowdown: 1, modulePassOverhead: 2e-4, pipelineModulePassOverhead: 5e-4 } });
    const noPasses = withBackend({ modulePassOverhead: 0 });
    // four stages on the node's four devices: every pass at the pipeline figure (one layer, middle stage)
    const stage = { pp: 4, position: 'middle' as const, layers: 1 };
    expect(estimate(piped, stage).time.forward - estimate(noPasses, stage).time.forward).toBeCloseTo(5e-4, 12);
    // one stage, dp 4: the data-parallel figure (4 layers + embedding + head)
    const dp = { dp: 4, mesh: { nodes: 1, gpusPerNode: 4 } };
    expect(estimate(piped, dp).time.forward - estimate(noPasses, dp).time.forward).toBeCloseTo(6 * 2e-4, 12);
  });
});

describe('ops fused into the forward (backend.fusedIntoForward)', () => {
  it('cost nothing in backward', () => {
    const table = { opTable: [
      { op: 'cross_entropy', elements: 1e4, seconds: 1e-4 }, { op: 'cross_entropy', elements: 1e6, seconds: 1e-2 },
    ] };
    const separate = estimate(withBackend({}, table));
    const fused = estimate(withBackend({ fusedIntoForward: ['cross_entropy'] }, table));
    expect(fused.time.forward).toBe(separate.time.forward);
    // The backward had 1.5x the forward fit: b*s*V = 4*64*256 logits at ~1e-8 s each.
    expect(separate.time.backward - fused.time.backward).toBeCloseTo(1.5 * 4 * 64 * 256 * 1e-8, 6);
  });
});

describe('step jitter (backend.stepNoise)', () => {
  const noise = [-0.002, -0.001, 0, 0.001, 0.002, 0.004, 0.006, 0.010, 0.015]; // median 0.002
  it('is 0 for one rank, or without measured noise', () => {
    expect(stepJitter(withBackend({ stepNoise: noise }), 1)).toBe(0);
    expect(stepJitter(base, 8)).toBe(0);
  });

  it('is the 0.5^(1/ranks) quantile of one rank\'s noise less its median, and grows with the ranks', () => {
    // 2 ranks: quantile sqrt(1/2) of 9 sorted points: position 8 sqrt(1/2) = 5.657, between 0.004 and 0.006
    const pos = 8 * Math.SQRT1_2;
    expect(stepJitter(withBackend({ stepNoise: noise }), 2)).toBeCloseTo(0.004 + (pos - 5) * 0.002 - 0.002, 12);
    const four = stepJitter(withBackend({ stepNoise: noise }), 4), eight = stepJitter(withBackend({ stepNoise: noise }), 8);
    expect(four).toBeGreaterThan(stepJitter(withBackend({ stepNoise: noise }), 2));
    expect(eight).toBeGreaterThan(four);
    expect(eight).toBeLessThanOrEqual(0.015 - 0.002);
  });

  it('is added to the plan\'s iteration time and reported in its breakdown', () => {
    const plan = parsePlan({
      version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 16, gradAccumSteps: 4,
      stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 2, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
    }, { model });
    const quiet = estimatePlan(plan, { model, training, profile: base });
    const noisy = estimatePlan(plan, { model, training, profile: withBackend({ stepNoise: noise }) });
    expect(noisy.breakdown.jitterS).toBeCloseTo(stepJitter(withBackend({ stepNoise: noise }), 2), 15);
    expect(noisy.iterationTimeS - quiet.iterationTimeS).toBeCloseTo(noisy.breakdown.jitterS, 12);
  });
});
