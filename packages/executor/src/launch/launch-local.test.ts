// Real worker processes on 127.0.0.1 (the built dist/worker/entry.js), started by launchLocal:
// the same losses as single-process training, resume from the newest complete checkpoint onto
// another plan, and a clear failure of every peer when one worker is killed mid-run.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getModel, parseTrainingSpec } from '@mist/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { latestCheckpoint } from '../checkpoint';
import { singleHostPlan } from './single-host-plan';
import { trainSingleProcess } from '../train';
import type { RunOptions, WorkerToParent } from '../worker/protocol';
import { LaunchError, launchLocal } from './launch-local';

const root = path.resolve(__dirname, '../../../..');
const model = getModel('gpt-tiny');
const SEQ = 16, BATCH = 8, SEED = 11, LR = 3e-3;
const training = parseTrainingSpec({ globalBatch: BATCH, seqLen: SEQ, paramDtype: 'fp32', computeDtype: 'fp32' });

beforeAll(() => {
  // The workers run the compiled package.
  execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-b', 'packages/executor'], { cwd: root, stdio: 'inherit' });
}, 120_000);

async function singleProcess(steps: number): Promise<number[]> {
  const r = await trainSingleProcess({ model, steps, seed: SEED, lr: LR, globalBatch: BATCH, seq: SEQ, data: 'synthetic', warmupSteps: 2 });
  return r.steps.map((s) => s.loss);
}

const run = (steps: number, extra: Partial<RunOptions> = {}): RunOptions =>
  ({ steps, seed: SEED, lr: LR, data: 'synthetic', warmupSteps: 2, ...extra });

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((l, i) => expect(Math.abs(l - expected[i]) / expected[i], `step ${i + 1}: ${l} vs ${expected[i]}`).toBeLessThan(1e-4));
}

describe('launchLocal: one worker process per device', () => {
  it('trains a pp=2 plan (dp=2 then tp=2) with the losses of single-process training', async () => {
    const plan = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 2 }, [{ layers: [0, 1], dp: 2, zero: 1 }, { layers: [2, 3], tp: 2, ckpt: 1 }]);
    const messages: WorkerToParent[] = [];
    const r = await launchLocal({ plan, model, training, run: run(4, { traceKernels: true }), onMessage: (m) => messages.push(m) });
    expectClose(r.steps.map((s) => s.loss), await singleProcess(4));
    expect(messages.filter((m) => m.type === 'done')).toHaveLength(4);
    const last = r.steps[3].ranks;
    for (const m of last) {
      expect(m.peakBytes.weights).toBeGreaterThan(0);
      expect(m.peakBytes.activations).toBeGreaterThan(0);
      expect(m.stepTimeS).toBeGreaterThanOrEqual(m.computeS);
      // Phases are spans inside the step; the traced kernels ran inside them.
      const p = m.phases!;
      expect(p.forward > 0 && p.backward > 0 && p.optimizer > 0).toBe(true);
      expect(p.forward + p.backward + p.optimizer).toBeLessThanOrEqual(m.stepTimeS);
      expect(m.kernels!.calls).toBeGreaterThan(0);
      expect(m.kernels!.seconds).toBeLessThanOrEqual(p.forward + p.backward + p.optimizer);
    }
    // Every CPU worker pinned itself to its device's cores (Linux).
    if (os.platform() === 'linux') {
      const pinned = messages.filter((m) => m.type === 'log' && /^pinned \d+ threads to cores? /.test(m.text));
      expect(pinned).toHaveLength(4);
    }
  });

  it('resumes from the newest complete checkpoint onto another plan, skipping a half-written one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-ckpt-'));
    try {
      const planA = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 2 }, [{ layers: [0, 3], dp: 2, zero: 3 }]);
      const a = await launchLocal({ plan: planA, model, training, run: run(6, { checkpointDir: dir, checkpointEvery: 3, scheduleSteps: 10 }) });
      expect(latestCheckpoint(dir)?.manifest.step).toBe(6);
      // A save that died before its manifest: never loaded.
      fs.rmSync(path.join(dir, 'step-00000006', 'manifest.json'));
      expect(latestCheckpoint(dir)?.manifest.step).toBe(3);
      // The new plan's last stage splits sequences over cp=2 (ring attention; ZeRO shards over dp * cp).
      const planB = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 4 }, [{ layers: [0, 2], tp: 2 }, { layers: [3, 3], cp: 2, zero: 2 }]);
      const b = await launchLocal({ plan: planB, model, training, run: run(10, { checkpointDir: dir, resume: true, resumeAnyPlan: true, scheduleSteps: 10 }) });
      const ref = await trainSingleProcess({ model, steps: 10, seed: SEED, lr: LR, globalBatch: BATCH, seq: SEQ, data: 'synthetic', warmupSteps: 2 });
      const refLoss = ref.steps.map((s) => s.loss);
      expectClose(a.steps.map((s) => s.loss), refLoss.slice(0, 6));
      expect(b.steps.map((s) => s.step)).toEqual([4, 5, 6, 7, 8, 9, 10]);
      expectClose(b.steps.map((s) => s.loss), refLoss.slice(3));
      expect(latestCheckpoint(dir)?.manifest.step).toBe(10);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a worker killed mid-run makes its peers fail with a clear error within the collectives timeout', async () => {
    const plan = singleHostPlan(model, { seq: SEQ, globalBatch: BATCH, G: 2 }, [{ layers: [0, 1], dp: 2 }, { layers: [2, 3] }]);
    const pids = new Map<number, number>();
    let killedAt = 0;
    const timeoutMs = 3000;
    const err = await launchLocal({
      plan, model, training, run: run(1000), timeoutMs,
      onMessage: (m) => {
        if (m.type === 'ready') pids.set(m.rank, m.pid);
        if (m.type === 'metrics' && m.rank === 2 && killedAt === 0) {
          killedAt = Date.now();
          process.kill(pids.get(1) as number, 'SIGKILL');
        }
      },
    }).then(() => null, (e: unknown) => e);
    const elapsed = Date.now() - killedAt;
    expect(err).toBeInstanceOf(LaunchError);
    const failures = (err as LaunchError).failures;
    expect(failures.find((f) => f.rank === 1)?.error).toMatch(/SIGKILL/);
    for (const r of [0, 2]) {
      const f = failures.find((x) => x.rank === r);
      expect(f?.error, `rank ${r}`).toBeDefined();
      expect(f?.error).not.toMatch(/stopped by the launcher/);
      expect(f?.error).toMatch(/peer rank \d/);
    }
    expect(elapsed).toBeLessThan(timeoutMs + 4000);
  });
});
