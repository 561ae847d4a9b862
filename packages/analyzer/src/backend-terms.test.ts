// The backend section through its one adapter: neutral without a section, the CPU executor's terms
// from a profile `mist profile` wrote before the section existed (test/measured-cpu-profile-v1.json,
// measured on a 2-core host, with the terms in compute and at the top level), and the pipeline wake-up.
import * as path from 'node:path';
import {
  builtinHardwareProfile, getModel, type HardwareProfile, loadHardwareProfile, NO_OFFLOAD, parseClusterShorthand, parseHardwareProfile,
  parsePlan, parseTrainingSpec, readSpecFile,
} from '@mist/core';
import { describe, expect, it } from 'vitest';
import { backendTerms } from './backend-terms';
import { compileStageModel, type StageQuery } from './compile';
import { estimatePlan } from './plan-estimate';

const FIXTURE = path.join(__dirname, 'test', 'measured-cpu-profile-v1.json');
const model = getModel('gpt-tiny');
const training = parseTrainingSpec({ globalBatch: 16, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' });

describe('backendTerms', () => {
  it('is neutral for a profile without a backend section (the datasheet profiles)', () => {
    const t = backendTerms(builtinHardwareProfile(parseClusterShorthand('1x8-a100-80gb')));
    expect(t).toEqual({ modulePassOverhead: 0, allBusy: null, fusedIntoForward: new Set(), stepNoise: [], p2pWake: 0 });
  });

  it('reads the CPU executor\'s terms of a profile written before the section, at their old places in the file', () => {
    const raw = readSpecFile(FIXTURE) as { compute: Record<string, unknown>; p2pWake: number; stepNoise: number[] };
    const t = backendTerms(loadHardwareProfile(FIXTURE));
    expect(t.modulePassOverhead).toBe(raw.compute.modulePassOverhead);
    expect(t.allBusy).toEqual(raw.compute.allBusy);
    expect([...t.fusedIntoForward]).toEqual(['cross_entropy']);
    expect(t.stepNoise).toEqual(raw.stepNoise);
    expect(t.p2pWake).toBe(raw.p2pWake);
  });
});

describe('a measured profile in either layout', () => {
  const old = loadHardwareProfile(FIXTURE);
  const rewritten = parseHardwareProfile(JSON.parse(JSON.stringify(old)));
  const { backend: _b, ...withoutSection } = old;
  const plans = {
    'dp 2': [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 2, dp: 2 }],
    'pp 2': [{ layers: [0, 1], microBatchSize: 4 }, { layers: [2, 3], microBatchSize: 4, ckptLayers: 1 }],
  };
  const stage = { mesh: { nodes: 1, gpusPerNode: 1 }, dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD };
  for (const [name, stages] of Object.entries(plans)) {
    const plan = parsePlan({ version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 16, gradAccumSteps: 4, stages: stages.map((s) => ({ ...stage, ...s })) }, { model });
    const est = (profile: HardwareProfile) => estimatePlan(plan, { model, training, profile });
    it(`gives the same estimate of a ${name} plan, with the terms applied`, () => {
      expect(rewritten.backend?.kind).toBe('cpu');
      expect(est(rewritten)).toEqual(est(old));
      // The section changes the estimate: the host cost per pass alone is several ms per step.
      expect(est(old).iterationTimeS - est(withoutSection).iterationTimeS).toBeGreaterThan(1e-3);
    });
  }
});

describe('pipeline wake-up (backend.p2pWake)', () => {
  const base = builtinHardwareProfile(parseClusterShorthand('1x4-l4'), 'fp32');
  const q: StageQuery = {
    layers: 1, position: 'middle', inFlight: 2, pp: 3, mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 4, gradAccumSteps: 4,
    dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD,
  };
  const steady = (p: HardwareProfile, over: Partial<StageQuery> = {}) => compileStageModel({ model, training, profile: p }).estimate({ ...q, ...over }).steadyTimeS;
  const woken = parseHardwareProfile({ ...base, backend: { kind: 'cpu', p2pWake: 1e-3 } });
  it('is added to each send/recv of a pipeline stage: two in a middle stage, one at an end, none alone', () => {
    expect(steady(woken) - steady(base)).toBeCloseTo(2e-3, 12);
    expect(steady(woken, { position: 'first' }) - steady(base, { position: 'first' })).toBeCloseTo(1e-3, 12);
    expect(steady(woken, { position: 'only', pp: 1 })).toBe(steady(base, { position: 'only', pp: 1 }));
  });
});
