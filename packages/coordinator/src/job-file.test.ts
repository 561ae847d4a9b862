import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NO_OFFLOAD } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { jobSpecFromDocument, loadJobFile } from './job-file';
import { validateJobSpec } from './job-spec';

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
    expect(spec.tune).toMatchObject({ space: 'SEARCH_SPACE_MEGATRON', solver: 'SOLVER_UNSPECIFIED' });
    expect(() => jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8 }, plan: 'tune', run: { steps: 1 } }, '.'))
      .toThrow(/training\.seqLen: got nothing; expected number/);
    expect(() => jobSpecFromDocument({ model: 'gpt-huge', training: { globalBatch: 8, seqLen: 64 }, plan: 'tune', run: { steps: 1 } }, '.'))
      .toThrow(/\n  - model: got "gpt-huge";.*allowed: /);
    expect(() => jobSpecFromDocument({ model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan: { ...plan, gradAccumSteps: 3 }, run: { steps: 1 } }, '.'))
      .toThrow(/plan\.stages\[0\]\.microBatchSize/);
  });
});
