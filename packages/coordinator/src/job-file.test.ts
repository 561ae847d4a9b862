import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NO_OFFLOAD } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { jobSpecFromDocument, loadJobFile } from './job-file';
import { validateJobSpec } from './job-spec';
import { knobsFromOptions, tunerSpaceFromOptions } from './tune-knobs';
import { getModel } from '@mist/core';
import { searchKnobsFromFlags, spaceFromKnobs } from '@mist/tuner';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const plan = {
  version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 8,
  stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD }],
};

describe('job files', () => {
  it('turn into a JobSpec the coordinator accepts, with the plan file read relative to the job file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-jobfile-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan));
    fs.writeFileSync(path.join(dir, 'job.yaml'), 'model: gpt-tiny\ntraining: {globalBatch: 8, seqLen: 64}\nplan: plan.json\nrun: {steps: 10, data: corpus, checkpointDir: ckpt, checkpointEvery: 5}\n');
    const spec = loadJobFile(path.join(dir, 'job.yaml'));
    expect(spec).toMatchObject({ model: { name: 'gpt-tiny' }, backend: 'BACKEND_UNSPECIFIED', run: { steps: 10, dataPath: 'corpus', checkpointDir: path.join(dir, 'ckpt'), checkpointInterval: 5 } });
    expect(JSON.parse(spec.planJson!)).toEqual(plan);
    const job = validateJobSpec(spec as Parameters<typeof validateJobSpec>[0]);
    expect(job.plan?.stages).toHaveLength(1);
  });

  it('ask for tuning with "tune", and name the bad field otherwise', () => {
    const spec = jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan: 'tune', tune: { space: 'megatron' }, run: { steps: 1 } }, '.');
    expect(spec.tune).toMatchObject({ space: 'SEARCH_SPACE_UNSPECIFIED', solver: 'SOLVER_UNSPECIFIED' });
    expect(JSON.parse(spec.tune!.knobsJson!)).toEqual({ space: 'megatron' });
    expect(() => jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8 }, plan: 'tune', run: { steps: 1 } }, '.'))
      .toThrow(/training\.seqLen: got nothing; expected number/);
    expect(() => jobSpecFromDocument({ model: 'gpt-huge', training: { globalBatch: 8, seqLen: 64 }, plan: 'tune', run: { steps: 1 } }, '.'))
      .toThrow(/\n  - model: got "gpt-huge";.*allowed: /);
    expect(() => jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan: { ...plan, gradAccumSteps: 3 }, run: { steps: 1 } }, '.'))
      .toThrow(/plan\.stages\[0\]\.microBatchSize/);
  });

  it('take the same search knobs as `mist tune`, checked at submit with the field named', () => {
    const doc = (tune: unknown) => ({ model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan: 'tune', tune, run: { steps: 1 } });
    const knobs = { maxTp: 2, zero: [1, 0], offload: false, ckpt: 'all-or-none', uniformMesh: true, timeLimit: 30, solver: 'dp', maxStages: 2 };
    const job = validateJobSpec(jobSpecFromDocument(doc(knobs), '.') as Parameters<typeof validateJobSpec>[0]);
    const flags = searchKnobsFromFlags({ 'max-tp': '2', zero: '0,1', 'no-offload': true, ckpt: 'all-or-none', 'uniform-mesh': true, 'time-limit': '30', solver: 'dp', 'max-stages': '2' });
    // A coordinator job runs on the executor's cpu backend: the search covers what it runs, in fp32.
    expect(knobsFromOptions(job.tune)).toEqual({ ...flags, target: 'cpu' });
    expect(tunerSpaceFromOptions(job.tune, getModel('gpt-tiny'))).toEqual(spaceFromKnobs({ ...flags, target: 'cpu' }, getModel('gpt-tiny')));
    expect(job.training.computeDtype).toBe('fp32');
    // The time limit knob reaches the job's typed field, which the job manager reads.
    expect(job.tune?.timeLimit).toBe(30);
    // Older job files wrote the tuner's choice as solver "auto" and maxStages 0.
    expect(JSON.parse(jobSpecFromDocument(doc({ solver: 'auto', maxStages: 0 }), '.').tune!.knobsJson!)).toEqual({});
    expect(() => jobSpecFromDocument(doc({ maxTP: 2 }), '.')).toThrow(/tune\.maxTP: got 2; unknown search knob; allowed: space, target/);
    expect(() => jobSpecFromDocument(doc({ zero: [5] }), '.')).toThrow(/tune\.zero: got \[5\]; expected a list of ZeRO levels/);
  });

  it('refuse, at submit, knobs that are not valid or disagree with the typed fields', () => {
    const base = jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan: 'tune', run: { steps: 1 } }, '.');
    const spec = (tune: Record<string, unknown>) => ({ ...base, tune: { ...base.tune, ...tune } }) as Parameters<typeof validateJobSpec>[0];
    expect(() => validateJobSpec(spec({ knobsJson: '{"maxTp": "x"}' }))).toThrow(/tune\.knobsJson\.maxTp: got "x"; expected a positive integer/);
    expect(() => validateJobSpec(spec({ knobsJson: '{maxTp' }))).toThrow(/tune\.knobsJson: got .*not JSON/);
    expect(() => validateJobSpec(spec({ maxStages: 4, knobsJson: '{"maxStages": 2}' }))).toThrow(/tune\.knobsJson\.maxStages: got 2; disagrees with tune\.maxStages = 4/);
    expect(() => validateJobSpec(spec({ knobsJson: '{"target": "tpu"}' }))).toThrow(/tune\.knobsJson\.target: got "tpu"; expected one of megatron, .*cpu/);
    expect(tunerSpaceFromOptions(validateJobSpec(spec({ knobsJson: '{"target": "cpu"}' })).tune, getModel('gpt-tiny')).name).toBe('cpu');
    expect(knobsFromOptions(validateJobSpec(spec({ maxStages: 2, knobsJson: '{"maxTp": 1}' })).tune)).toEqual({ maxStages: 2, maxTp: 1, target: 'cpu' });
    expect(() => validateJobSpec(spec({ knobsJson: '{"target": "megatron"}' }))).toThrow(/tune\.target: got "megatron"; the job runs on the executor's cpu backend; allowed: cpu/);
  });
});
