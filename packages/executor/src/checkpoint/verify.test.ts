// A resume trusts only its own job's checkpoints that verify. Real worker
// processes (the local launcher forks the built worker entry), a shared checkpoint directory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getModel, parseTrainingSpec } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { launchLocal, LaunchError } from '../launch/launch-local';
import { singleHostPlan } from '../launch/single-host-plan';
import type { RunOptions, WorkerToParent } from '../worker/protocol';
import { latestCheckpoint, readCheckpoint, resumeCheckpoint } from './load';
import { pruneCheckpoints } from './prune';

const model = getModel('gpt-tiny');
const SEQ = 16, BATCH = 8;
const training = parseTrainingSpec({ globalBatch: BATCH, seqLen: SEQ, paramDtype: 'fp32', computeDtype: 'fp32' });
const plan = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 2 }, [{ layers: [0, 1] }, { layers: [2, 3] }]);
const run = (steps: number, extra: Partial<RunOptions> = {}): RunOptions => ({ steps, seed: 3, lr: 3e-3, data: 'synthetic', ...extra });

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-verify-'));
  dirs.push(d);
  return d;
}
const logsOf = (messages: WorkerToParent[]): string[] => messages.flatMap((m) => (m.type === 'log' ? [m.text] : []));

describe('checkpoint verification on resume (real worker processes)', () => {
  it('resumes from its own job\'s checkpoint, not a newer one another job left in the directory', async () => {
    const dir = tmp();
    await launchLocal({ plan, model, training, jobId: 'job-a', run: run(4, { checkpointDir: dir, checkpointEvery: 2 }) });
    await launchLocal({ plan, model, training, jobId: 'job-b', run: run(9, { checkpointDir: dir, checkpointEvery: 3 }) });
    expect(latestCheckpoint(dir)?.manifest).toMatchObject({ step: 9, jobId: 'job-b' });
    const messages: WorkerToParent[] = [];
    const res = await launchLocal({ plan, model, training, jobId: 'job-a', run: run(6, { checkpointDir: dir, resume: true }), onMessage: (m) => messages.push(m) });
    expect(res.steps.map((s) => s.step)).toEqual([5, 6]);
    expect(messages.filter((m) => m.type === 'resumed').map((m) => (m as { step: number }).step)).toEqual([4, 4]);
    expect(logsOf(messages).filter((t) => /not resuming from .*step-00000009: written by job job-b, not job-a/.test(t))).toHaveLength(2);
  }, 60_000);

  it('skips a shard overwritten with random bytes (same size), and refuses when none of the job\'s checkpoints verifies', async () => {
    const dir = tmp();
    await launchLocal({ plan, model, training, jobId: 'job-c', run: run(4, { checkpointDir: dir, checkpointEvery: 2 }) });
    const shard = path.join(dir, 'step-00000004', 'rank-00000.bin');
    fs.writeFileSync(shard, Buffer.from(Array.from({ length: fs.statSync(shard).size }, () => Math.floor(Math.random() * 256))));
    expect(readCheckpoint(path.dirname(shard))).not.toBeNull(); // complete by size: only the checksum tells
    const owner = { jobId: 'job-c', model, plan };
    const choice = resumeCheckpoint(dir, owner);
    expect(choice.checkpoint?.manifest.step).toBe(2);
    expect(choice.skipped[0].reason).toMatch(/rank 0: rank-00000\.bin does not match its SHA-256/);
    const res = await launchLocal({ plan, model, training, jobId: 'job-c', run: run(5, { checkpointDir: dir, resume: true }) });
    expect(res.steps[0].step).toBe(3);
    expect(res.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    // Every checkpoint of the job damaged: a clear refusal, not a silent start from scratch.
    for (const d of ['step-00000002', 'step-00000004', 'step-00000005']) {
      const f = path.join(dir, d, 'rank-00001.bin');
      if (fs.existsSync(f)) fs.writeFileSync(f, Buffer.alloc(fs.statSync(f).size, 7));
    }
    const err = await launchLocal({ plan, model, training, jobId: 'job-c', run: run(6, { checkpointDir: dir, resume: true }) }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(LaunchError);
    expect((err as LaunchError).message).toMatch(/cannot resume job job-c: none of its 3 checkpoint\(s\) .* verifies/);
  }, 60_000);

  it('refuses a checkpoint of another plan unless the run accepts re-sharding', () => {
    const dir = tmp();
    return launchLocal({ plan, model, training, jobId: 'job-d', run: run(2, { checkpointDir: dir }) }).then(() => {
      const other = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 2 }, [{ layers: [0, 3], dp: 2 }]);
      expect(() => resumeCheckpoint(dir, { jobId: 'job-d', model, plan: other })).toThrow(/plan fingerprint .* differs from the job's plan/);
      expect(resumeCheckpoint(dir, { jobId: 'job-d', model, plan: other, anyPlan: true }).checkpoint?.manifest.step).toBe(2);
    });
  }, 60_000);

  it('fails the run at the first non-finite loss and writes no checkpoint of it; with the opt-out it goes on, still writing none', async () => {
    const dir = tmp();
    // A learning rate of 1e30: AdamW moves every weight by about lr in the first step, and the
    // second step's logits overflow float32.
    const err = await launchLocal({ plan, model, training, jobId: 'job-nan', run: run(6, { lr: 1e30, checkpointDir: dir, checkpointEvery: 1 }) }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(LaunchError);
    expect((err as LaunchError).message).toMatch(/step (\d+): the (loss|gradient norm) is (NaN|Infinity|-Infinity) \(not finite\); the run stops here/);
    const failedAt = Number(/step (\d+): the/.exec((err as LaunchError).message)![1]);
    expect(latestCheckpoint(dir)?.manifest.step ?? 0).toBeLessThan(failedAt);

    const dir2 = tmp();
    const messages: WorkerToParent[] = [];
    const res = await launchLocal({
      plan, model, training, jobId: 'job-nan-ok', run: run(4, { lr: 1e30, checkpointDir: dir2, checkpointEvery: 1, allowNonFiniteLoss: true }), onMessage: (m) => messages.push(m),
    });
    expect(res.steps).toHaveLength(4);
    expect(logsOf(messages).some((t) => /no checkpoint at step \d+: the state is not finite since step \d+/.test(t))).toBe(true);
    expect(latestCheckpoint(dir2)?.manifest.step ?? 0).toBeLessThan(4);
  }, 60_000);

  it('keeps only the newest K checkpoints of the job, never touching another job\'s', async () => {
    const dir = tmp();
    await launchLocal({ plan, model, training, jobId: 'job-x', run: run(3, { checkpointDir: dir, checkpointEvery: 3 }) });
    await launchLocal({ plan, model, training, jobId: 'job-k', run: run(8, { checkpointDir: dir, checkpointEvery: 2, keepCheckpoints: 2 }) });
    expect(fs.readdirSync(dir).sort()).toEqual(['step-00000003', 'step-00000006', 'step-00000008']);
    expect(readCheckpoint(path.join(dir, 'step-00000003'))?.manifest.jobId).toBe('job-x');
    expect(pruneCheckpoints(dir, 'job-k', 1)).toEqual([path.join(dir, 'step-00000006')]);
  }, 60_000);
});
