// End to end with the real executor and a coordinator restart: a pp=2 x dp=2
// gpt-tiny job saves checkpoints; the coordinator stops once one is complete and a new one starts on
// the same port and state directory. (1) The agents keep their workers through the outage and
// reconcile on reconnection: the job goes on with no resume and ends with the loss of an
// uninterrupted run of the executor's local launcher. (2) Workers killed during the outage: the job
// (maxRestarts 1) resumes itself from its newest verified checkpoint and ends with the same loss.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getModel, parseTrainingSpec } from '@mist/core';
import { CoordinatorConnection, type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import { launchLocal } from '@mist/executor';
import type { JobEvent__Output } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from './agent';
import { cpuDevices } from './devices';
import { alive, freePortRange } from './test/helpers';
import { follow, lastState, pidsOf, TOKEN, tinyPlan, tinySpec, until } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function coordinator(stateDir: string, port = 0): Promise<{ coord: RunningCoordinator; conn: CoordinatorConnection }> {
  const coord = await startCoordinator({ listen: `127.0.0.1:${port}`, stateDir, token: TOKEN, stopGraceS: 2 });
  cleanups.push(() => coord.stop());
  const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
  cleanups.push(() => conn.close());
  return { coord, conn };
}

/** The last stage's (rank 2's) loss per step of one attempt. */
function lossesOf(events: JobEvent__Output[], attempt: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of events) {
    const m = e.worker?.metrics;
    if (e.worker?.attempt === attempt && e.worker.rank === 2 && m && m.loss !== undefined) out.set(Number(m.step), m.loss as number);
  }
  return out;
}

async function twoAgents(address: string): Promise<void> {
  for (const host of ['host-a', 'host-b']) {
    const agent = await runAgent({
      coordinator: address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
      portRange: await freePortRange(16), backoff: { initialS: 0.05, maxS: 0.5 },
    });
    cleanups.push(() => agent.stop(1));
    await agent.registered;
  }
}

async function uninterruptedLoss(steps: number, lr: number): Promise<number> {
  const local = await launchLocal({
    plan: tinyPlan(), model: getModel('gpt-tiny'),
    training: parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' }),
    run: { steps, seed: 1, lr, data: 'corpus' },
  });
  expect(local.steps.at(-1)!.step).toBe(steps);
  return local.steps.at(-1)!.loss;
}

/** Follows the job until its first complete checkpoint; returns the workers' pids. */
async function untilCheckpoint(conn: CoordinatorConnection, jobId: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of conn.watch(jobId, { replay: true, includeLogs: true })) {
    if (e.worker?.started) pids.push(e.worker.started.pid);
    if (e.worker?.checkpoint && Number((await conn.get(jobId)).checkpointStep) > 0) break;
  }
  return pids;
}

describe('coordinator restart mid-job with real executor workers', () => {
  it('keeps the job running through the restart: no resume, true step, the uninterrupted final loss', async () => {
    const steps = 40;
    const lr = 3e-3;
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-e2e-restart-'));
    cleanups.push(() => fs.rmSync(stateDir, { recursive: true, force: true }));
    const first = await coordinator(stateDir);
    await twoAgents(first.coord.address);
    const job = await first.conn.submit(tinySpec(steps, { learningRate: lr, checkpointDir: path.join(stateDir, 'ckpt'), checkpointInterval: 5 }));
    const pids = await untilCheckpoint(first.conn, job.id);
    expect(pids).toHaveLength(4);
    first.conn.close();
    await first.coord.stop();

    const second = await coordinator(stateDir, first.coord.port);
    expect(second.coord.recovered).toEqual([job.id]);
    expect(second.coord.interrupted).toEqual([]);
    await until('the restarted coordinator answering', () => second.conn.get(job.id).then(() => true, () => false));
    const events = await follow(second.conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', attempt: 0 });
    expect(events.some((e) => /resumed from/.test(e.worker?.log?.text ?? ''))).toBe(false);
    const final = await second.conn.get(job.id);
    expect(final).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', attempt: 0, step: steps, checkpointStep: steps });
    const ref = await uninterruptedLoss(steps, lr);
    expect(Math.abs((final.loss as number) - ref) / ref).toBeLessThan(1e-5);
    await until('no worker left', () => pids.every((pid) => !alive(pid)), 10);
  }, 120_000);

  it('resumes the job by itself from its newest verified checkpoint when its workers died during the outage', async () => {
    const steps = 8;
    const lr = 3e-3;
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-e2e-resume-'));
    cleanups.push(() => fs.rmSync(stateDir, { recursive: true, force: true }));
    const first = await coordinator(stateDir);
    await twoAgents(first.coord.address);
    const job = await first.conn.submit({ ...tinySpec(steps, { learningRate: lr, checkpointDir: path.join(stateDir, 'ckpt'), checkpointInterval: 2 }), maxRestarts: 1 });
    const pids = await untilCheckpoint(first.conn, job.id);
    // Frozen first (a gpt-tiny step is quicker than a restart), then killed while the coordinator is down.
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    cleanups.push(() => pids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
    const checkpointed = Number((await first.conn.get(job.id)).checkpointStep);
    expect(checkpointed).toBeGreaterThan(0);
    expect(checkpointed).toBeLessThan(steps);
    first.conn.close();
    await first.coord.stop();
    for (const pid of pids) process.kill(pid, 'SIGKILL');

    const second = await coordinator(stateDir, first.coord.port);
    expect(second.coord.recovered).toEqual([job.id]);
    await until('the restarted coordinator answering', () => second.conn.get(job.id).then(() => true, () => false));
    // The watch ends at the failed attempt 0; the job's own resume starts attempt 1.
    expect(lastState(await follow(second.conn, job.id)).state).toBe('JOB_STATE_FAILED');
    await until('the job resumed by itself', async () => Number((await second.conn.get(job.id)).attempt) === 1, 30);
    const events = await follow(second.conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', attempt: 1 });
    const failed = events.filter((e) => e.state?.state === 'JOB_STATE_FAILED').map((e) => e.state!.message);
    expect(failed[0]).toMatch(/SIGKILL.*; resuming by itself \(restart 1 of 1\)$/);
    // Every rank restarts from one and the same verified checkpoint; the coordinator says the same.
    const from = events
      .map((e) => (e.worker?.attempt === 1 ? /^resumed from .* \(step (\d+)\)$/.exec(e.worker.log?.text ?? '') : null))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    expect(from).toHaveLength(4);
    expect(new Set(from).size).toBe(1);
    expect(from[0]).toBeGreaterThanOrEqual(checkpointed);
    expect(events.some((e) => e.worker?.log?.text === `the workers verified and resumed from the checkpoint of step ${from[0]} (${path.join(stateDir, 'ckpt', `step-${String(from[0]).padStart(8, '0')}`)})`)).toBe(true);
    const after = lossesOf(events, 1);
    expect([...after.keys()]).toEqual(Array.from({ length: steps - from[0] }, (_, i) => from[0] + 1 + i));
    const final = await second.conn.get(job.id);
    expect(final).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', step: steps });
    const ref = await uninterruptedLoss(steps, lr);
    expect(Math.abs((final.loss as number) - ref) / ref).toBeLessThan(1e-5);
    expect(pidsOf(events).every((pid) => !alive(pid))).toBe(true);
  }, 120_000);
});
