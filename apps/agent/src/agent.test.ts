import { CoordinatorConnection, type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import type { JobEvent__Output } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent, type RunningAgent } from './agent';
import { cpuDevices } from './devices';
import { alive, FIXTURE_WORKER, freePortRange } from './test/helpers';
import { follow, lastState, pidsOf, TOKEN, tinySpec, until } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cluster(mode: string, o: { stopGraceS?: number } = {}): Promise<{ coord: RunningCoordinator; conn: CoordinatorConnection; agents: RunningAgent[] }> {
  const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: o.stopGraceS ?? 2 });
  cleanups.push(() => coord.stop());
  const agents: RunningAgent[] = [];
  for (const host of ['host-a', 'host-b']) {
    const agent = await runAgent({
      coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
      portRange: await freePortRange(16), workerScript: FIXTURE_WORKER, workerEnv: { MIST_FIXTURE_MODE: mode },
    });
    cleanups.push(() => agent.stop(1));
    await agent.registered;
    agents.push(agent);
  }
  const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
  cleanups.push(() => conn.close());
  return { coord, conn, agents };
}

/** An event handler that cancels the job once its 4 workers have joined the rendezvous (their signal handlers are set then). */
function cancelWhenAllJoined(conn: CoordinatorConnection, jobId: string, reason: string): (e: JobEvent__Output) => void {
  let joined = 0;
  return (e) => {
    if (/joined the rendezvous/.test(e.worker?.log?.text ?? '') && ++joined === 4) void conn.cancel(jobId, reason);
  };
}

describe('agent (in-process) with fixture workers', () => {
  it('runs a pp=2 x dp=2 job on two agents to success, streaming metrics and logs', async () => {
    const { conn } = await cluster('succeed');
    const job = await conn.submit(tinySpec(4));
    const events = await follow(conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED' });
    // Only the last stage (ranks 2, 3) reports a loss: 10 / (step + 1) in the fixture.
    const losses = events.filter((e) => e.worker?.metrics?.loss !== undefined).map((e) => [e.worker!.rank, e.worker!.metrics!.step, e.worker!.metrics!.loss]);
    expect(losses.filter(([rank]) => rank === 2)).toEqual([[2, 1, 5], [2, 2, 10 / 3], [2, 3, 2.5], [2, 4, 2]]);
    expect(losses.every(([rank]) => rank === 2 || rank === 3)).toBe(true);
    const joined = events.filter((e) => /joined the rendezvous of 4/.test(e.worker?.log?.text ?? ''));
    expect(joined.map((e) => e.worker!.rank).sort()).toEqual([0, 1, 2, 3]);
    const done = await conn.get(job.id);
    expect(done).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', step: 4, loss: 2 });
    expect(pidsOf(events).every((pid) => !alive(pid))).toBe(true);
  });

  it('fails the job when a worker exits non-zero and stops every other worker', async () => {
    const { conn } = await cluster('fail-rank-1');
    const job = await conn.submit(tinySpec(1000));
    const events = await follow(conn, job.id);
    const end = lastState(events);
    expect(end.state).toBe('JOB_STATE_FAILED');
    expect(end.message).toMatch(/^rank 1 \(stage 0\) on agent host-a-\w+ \(host host-a\) exited with code 3: fixture failure on purpose$/);
    const pids = pidsOf(events);
    expect(pids).toHaveLength(4);
    await until('every worker gone', () => pids.every((pid) => !alive(pid)), 10);
  });

  it('cancels a running job: every worker stopped, the job CANCELLED', async () => {
    const { conn } = await cluster('hang');
    const job = await conn.submit(tinySpec(10));
    const events = await follow(conn, job.id, cancelWhenAllJoined(conn, job.id, 'test cancel'));
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_CANCELLED', message: 'test cancel; every worker stopped' });
    const exits = events.filter((e) => e.worker?.exited).map((e) => e.worker!.exited!.signal);
    expect(exits).toEqual(['SIGTERM', 'SIGTERM', 'SIGTERM', 'SIGTERM']);
    expect(pidsOf(events).every((pid) => !alive(pid))).toBe(true);
  });

  it('kills a worker that ignores SIGTERM once the grace period is over', async () => {
    const { conn } = await cluster('ignore-term', { stopGraceS: 0.3 });
    const job = await conn.submit(tinySpec(10));
    const events = await follow(conn, job.id, cancelWhenAllJoined(conn, job.id, ''));
    expect(lastState(events).state).toBe('JOB_STATE_CANCELLED');
    expect(events.filter((e) => e.worker?.exited).map((e) => e.worker!.exited!.signal)).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGKILL']);
  });

  it('reports an assignment it cannot run (missing worker script) as failed ranks', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN });
    cleanups.push(() => coord.stop());
    const agent = await runAgent({
      coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(4), hostName: 'h', address: '127.0.0.1',
      portRange: await freePortRange(8), workerScript: '/nonexistent/worker.js',
    });
    cleanups.push(() => agent.stop(1));
    await agent.registered;
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    const job = await conn.submit(tinySpec(2));
    const end = lastState(await follow(conn, job.id));
    expect(end.state).toBe('JOB_STATE_FAILED');
    expect(end.message).toMatch(/rank 0 .* exited with code -1: cannot start: the worker script \/nonexistent\/worker\.js does not exist/);
  });
});
