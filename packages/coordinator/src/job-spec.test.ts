// Submit-time refusal of what the executor's cpu backend cannot run (core's backend table).
import { describe, expect, it } from 'vitest';
import { getModel, NO_OFFLOAD, type Plan, SpecError } from '@mist/core';
import type { JobSpec__Output } from '@mist/rpc';
import { validateJobSpec } from './job-spec';

function planOf(model: string, layers: number, tp: number, extra: Partial<Plan['stages'][number]> = {}): Plan {
  return {
    version: 1, model, seqLen: 64, globalBatch: 8, gradAccumSteps: 1,
    stages: [{ layers: [0, layers - 1], mesh: { nodes: 1, gpusPerNode: tp }, microBatchSize: 8, dp: 1, tp, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD, ...extra }],
  };
}

function spec(extra: Partial<JobSpec__Output> & { training?: Record<string, unknown> }): JobSpec__Output {
  const { training, ...rest } = extra;
  return {
    name: 'j', model: { name: 'gpt-tiny', source: 'name' }, trainingJson: JSON.stringify(training ?? { globalBatch: 8, seqLen: 64 }),
    planJson: JSON.stringify(planOf('gpt-tiny', 4, 1)), planSource: 'planJson', run: { steps: 1, seed: 0, checkpointInterval: 0, metricsInterval: 0, checkpointDir: '', dataPath: '', dataDtype: '' }, backend: 'BACKEND_CPU',
    ...rest,
  } as unknown as JobSpec__Output;
}

function issues(s: JobSpec__Output): Array<{ field: string; message: string }> {
  try {
    validateJobSpec(s);
  } catch (err) {
    if (err instanceof SpecError) return err.issues.map((i) => ({ field: i.field, message: i.message }));
    throw err;
  }
  return [];
}

describe('validateJobSpec against the cpu backend', () => {
  it('accepts a plan the executor runs (dtypes left to the backend)', () => {
    expect(issues(spec({}))).toEqual([]);
    expect(issues(spec({ backend: 'BACKEND_UNSPECIFIED' } as Partial<JobSpec__Output>))).toEqual([]);
  });

  it('refuses fp16/bf16 training specs, naming the field and the feature', () => {
    const got = issues(spec({ training: { globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'fp32' } }));
    expect(got).toEqual([{ field: 'training.paramDtype', message: expect.stringMatching(/^bf16 training: not supported by the executor's cpu backend .*fp32 only/) }]);
  });

  it('refuses tp above the key/value heads and ALiBi; runs attention that keeps its scores (flashAttention false)', () => {
    const llama = getModel('llama-tiny');
    const tooWide = spec({ model: { name: 'llama-tiny', source: 'name' }, planJson: JSON.stringify(planOf('llama-tiny', llama.layers, 4)) } as Partial<JobSpec__Output>);
    expect(issues(tooWide)).toEqual([{ field: 'plan.stages[0].tp', message: expect.stringMatching(/replicated key\/value heads/) }]);
    const alibi = { ...getModel('gpt-tiny'), name: 'gpt-alibi', positional: 'alibi' };
    const a = spec({ model: { specJson: JSON.stringify(alibi), source: 'specJson' }, planJson: JSON.stringify(planOf('gpt-alibi', 4, 1)) } as Partial<JobSpec__Output>);
    expect(issues(a).map((i) => i.field)).toEqual(['model.positional']);
    expect(issues(spec({ training: { globalBatch: 8, seqLen: 64, flashAttention: false } }))).toEqual([]);
  });

  it('checks an nccl job against the executor\'s cuda backend: bf16, fp16 and fp32 run, MoE does not', () => {
    const nccl = (o: Partial<JobSpec__Output> & { training?: object } = {}): JobSpec__Output => spec({ backend: 'BACKEND_NCCL', ...o } as Partial<JobSpec__Output>);
    expect(issues(nccl({ training: { globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'bf16' } }))).toEqual([]);
    // Dtypes left unset: the job trains in the cuda backend's bf16 (not the schema's fp16 default).
    expect(validateJobSpec(nccl({ training: { globalBatch: 8, seqLen: 64 } })).training).toMatchObject({ paramDtype: 'bf16', computeDtype: 'bf16' });
    expect(issues(nccl({ training: { globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' } }))).toEqual([]);
    expect(issues(nccl({ training: { globalBatch: 8, seqLen: 64, paramDtype: 'bf16', computeDtype: 'fp16' } }))).toEqual([]);
    const moe = { ...getModel('gpt-tiny'), name: 'gpt-moe-tiny', moe: { experts: 4, topK: 2 } };
    const m = nccl({ model: { specJson: JSON.stringify(moe), source: 'specJson' }, planJson: JSON.stringify(planOf(moe.name, moe.layers, 1)) } as Partial<JobSpec__Output>);
    expect(issues(m).map((i) => i.message).join('\n')).toMatch(/mixture of experts.*cuda backend/i);
  });

  it('refuses Megatron-Core\'s communication overlaps on either backend, naming the training field', () => {
    for (const backend of ['BACKEND_CPU', 'BACKEND_NCCL']) {
      const got = issues(spec({ backend, training: { globalBatch: 8, seqLen: 64, tpCommOverlap: true, paramGatherOverlap: true } } as Partial<JobSpec__Output>));
      expect(got.map((i) => i.field)).toEqual(['training.tpCommOverlap', 'training.paramGatherOverlap']);
      expect(got[0].message).toMatch(/--tp-comm-overlap.*not supported by the executor's (cpu|cuda) backend/);
      expect(got[1].message).toMatch(/--overlap-param-gather.*not supported by the executor's (cpu|cuda) backend/);
    }
    expect(issues(spec({ training: { globalBatch: 8, seqLen: 64, tpCommOverlap: false, paramGatherOverlap: false } }))).toEqual([]);
  });
});
