// End to end with the real executor and a coordinator restart: a pp=2 x dp=2 gpt-tiny job saves
// checkpoints; the coordinator stops once one is complete and a new one starts on the same port
// and state directory. The agents reconnect, the job is reported interrupted (its old workers
// stopped), `resume` continues it from the newest complete checkpoint, and it ends with the losses,
// step for step after the resume point, of the executor's local launcher run without interruption.
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

describe('coordinator restart mid-job with real executor workers', () => {
  it('reports the job interrupted, resumes it from the last checkpoint, and ends with the uninterrupted final loss', async () => {
    const steps = 8;
    const lr = 3e-3;
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-e2e-resume-'));
    cleanups.push(() => fs.rmSync(stateDir, { recursive: true, force: true }));
    const first = await coordinator(stateDir);
    for (const host of ['host-a', 'host-b']) {
      const agent = await runAgent({
        coordinator: first.coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
        portRange: await freePortRange(16), backoff: { initialS: 0.05, maxS: 0.5 },
      });
      cleanups.push(() => agent.stop(1));
      await agent.registered;
    }

    const spec = tinySpec(steps, { learningRate: lr, checkpointDir: path.join(stateDir, 'ckpt'), checkpointInterval: 2 });
    const job = await first.conn.submit(spec);
    const pids: number[] = [];
    for await (const e of first.conn.watch(job.id, { replay: true, includeLogs: true })) {
      if (e.worker?.started) pids.push(e.worker.started.pid);
      // The stream reports each rank's shard; the job record shows when a checkpoint is complete.
      if (e.worker?.checkpoint && Number((await first.conn.get(job.id)).checkpointStep) > 0) break;
    }
    // A gpt-tiny step takes well under the time a restart and the agents' reconnection take, and an
    // agent keeps its workers running while the coordinator is away: freeze the first attempt's
    // workers so that it is still mid-job when the new coordinator stops it (SIGTERM stays pending
    // on a stopped process; the agent's SIGKILL after the grace period ends it).
    expect(pids).toHaveLength(4);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    cleanups.push(() => pids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
    const checkpointed = Number((await first.conn.get(job.id)).checkpointStep);
    expect(checkpointed).toBeGreaterThan(0);
    expect(checkpointed).toBeLessThan(steps);
    first.conn.close();
    await first.coord.stop();

    const second = await coordinator(stateDir, first.coord.port);
    expect(second.coord.interrupted).toEqual([job.id]);
    // The in-process agents' channels share grpc-js's subchannel to this address, which may still
    // be in its reconnect back-off: poll until the new server answers.
    await until('the restarted coordinator answering', () => second.conn.get(job.id).then(() => true, () => false));
    expect(await second.conn.get(job.id)).toMatchObject({ state: 'JOB_STATE_INTERRUPTED', checkpointStep: checkpointed });
    await until('both agents back', async () => (await second.conn.agents()).filter((a) => a.state === 'AGENT_STATE_ALIVE').length === 2);
    await until('the first attempt\'s workers gone', () => pids.every((pid) => !alive(pid)), 15);
    await until('the agents report no workers', async () => (await second.conn.agents()).every((a) => a.jobIds.length === 0));

    const resumed = await second.conn.resume(job.id);
    expect(resumed).toMatchObject({ attempt: 1 });
    const events = await follow(second.conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', attempt: 1 });
    // Every rank restarts from one and the same complete checkpoint, at or after the one reported.
    const from = events
      .map((e) => (e.worker?.attempt === 1 ? /^resumed from .* \(step (\d+)\)$/.exec(e.worker.log?.text ?? '') : null))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    expect(from).toHaveLength(4);
    expect(new Set(from).size).toBe(1);
    const resumeStep = from[0];
    expect(resumeStep).toBeGreaterThanOrEqual(checkpointed);
    expect(resumeStep).toBeLessThan(steps);
    const after = lossesOf(events, 1);
    expect([...after.keys()]).toEqual(Array.from({ length: steps - resumeStep }, (_, i) => resumeStep + 1 + i));

    const local = await launchLocal({
      plan: tinyPlan(), model: getModel('gpt-tiny'),
      training: parseTrainingSpec({ globalBatch: 8, seqLen: 64, paramDtype: 'fp32', computeDtype: 'fp32' }),
      run: { steps, seed: 1, lr, data: 'corpus' },
    });
    for (const [step, loss] of after) {
      const ref = local.steps.find((s) => s.step === step)!.loss;
      expect(Math.abs(loss - ref) / ref).toBeLessThan(1e-5);
    }
    const final = await second.conn.get(job.id);
    expect(final).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', step: steps });
    const uninterrupted = local.steps.at(-1)!;
    expect(uninterrupted.step).toBe(steps);
    expect(Math.abs((final.loss as number) - uninterrupted.loss) / uninterrupted.loss).toBeLessThan(1e-5);
    expect(pidsOf(events).every((pid) => !alive(pid))).toBe(true);
  }, 90_000);
});
