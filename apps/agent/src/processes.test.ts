// Multi-process: a coordinator (in this process) and two real agent processes, each forking
// fixture workers. Everything waits on readiness lines and job events, never on sleeps.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoordinatorConnection, type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, type AgentProcess, freePortRange, spawnAgent } from './test/helpers';
import { follow, lastState, pidsOf, TOKEN, tinySpec, until } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function coordinator(o: { stateDir?: string; port?: number; heartbeatTimeoutS?: number } = {}): Promise<{ coord: RunningCoordinator; conn: CoordinatorConnection }> {
  const coord = await startCoordinator({
    listen: `127.0.0.1:${o.port ?? 0}`, stateDir: o.stateDir ?? ':memory:', token: TOKEN, heartbeatTimeoutS: o.heartbeatTimeoutS ?? 10, stopGraceS: 2,
  });
  cleanups.push(() => coord.stop());
  const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
  cleanups.push(() => conn.close());
  return { coord, conn };
}

async function agents(address: string, mode: string): Promise<AgentProcess[]> {
  const started = await Promise.all(['host-a', 'host-b'].map(async (host) => {
    const ports = await freePortRange(16);
    return spawnAgent(address, TOKEN, ['--cpu-devices', '2', '--host-name', host, '--address', '127.0.0.1', '--worker-ports', `${ports.first}:${ports.count}`],
      { MIST_FIXTURE_MODE: mode });
  }));
  for (const a of started) {
    cleanups.push(async () => {
      if (a.child.exitCode === null && a.child.signalCode === null) {
        a.child.kill('SIGTERM');
        await a.exited;
      }
    });
  }
  return started;
}

describe('coordinator + two agent processes', () => {
  it('trains a pp=2 x dp=2 job to success with metrics streamed, and the job lists as succeeded', async () => {
    const { coord, conn } = await coordinator();
    await agents(coord.address, 'succeed');
    expect((await conn.agents()).map((a) => [a.hostName, a.devices.length, a.state]).sort()).toEqual([
      ['host-a', 2, 'AGENT_STATE_ALIVE'], ['host-b', 2, 'AGENT_STATE_ALIVE'],
    ]);
    const job = await conn.submit(tinySpec(5));
    const events = await follow(conn, job.id);
    expect(lastState(events).state).toBe('JOB_STATE_SUCCEEDED');
    expect(events.filter((e) => e.worker?.metrics).length).toBe(4 * 5);
    const listed = await conn.list();
    expect(listed.map((j) => [j.id, j.state, j.step, j.loss])).toEqual([[job.id, 'JOB_STATE_SUCCEEDED', 5, 10 / 6]]);
  });

  it('fails the job within 15 s when an agent is killed, naming it, and leaves no worker behind', async () => {
    const { coord, conn } = await coordinator({ heartbeatTimeoutS: 2 });
    const [a, b] = await agents(coord.address, 'hang');
    const job = await conn.submit(tinySpec(10));
    let killedAt = 0;
    let joined = 0;
    const events = await follow(conn, job.id, (e) => {
      if (/joined the rendezvous/.test(e.worker?.log?.text ?? '') && ++joined === 4) {
        killedAt = Date.now();
        b.child.kill('SIGKILL');
      }
    });
    const end = lastState(events);
    expect(end.state).toBe('JOB_STATE_FAILED');
    expect(end.message).toMatch(new RegExp(`^agent ${b.id} \\(host host-b\\) lost: no heartbeat for [\\d.]+ s; its rank\\(s\\) 2, 3 are gone$`));
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    const pids = pidsOf(events);
    expect(pids).toHaveLength(4);
    await until('no worker left on either host', () => pids.every((pid) => !alive(pid)), 10);
    expect(a.child.exitCode).toBeNull(); // the surviving agent keeps serving
  });

  it('survives a coordinator restart: agents reconnect under their ids and keep the job\'s workers, which the new coordinator adopts', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-restart-'));
    cleanups.push(() => fs.rmSync(stateDir, { recursive: true, force: true }));
    const first = await coordinator({ stateDir });
    const procs = await agents(first.coord.address, 'hang');
    const job = await first.conn.submit(tinySpec(10, { checkpointDir: path.join(stateDir, 'ckpt') }));
    let joined = 0;
    const pids: number[] = [];
    for await (const e of first.conn.watch(job.id, { replay: true, includeLogs: true })) {
      if (e.worker?.started) pids.push(e.worker.started.pid);
      if (/joined the rendezvous/.test(e.worker?.log?.text ?? '') && ++joined === 4) break;
    }
    first.conn.close();
    await first.coord.stop();

    const second = await coordinator({ stateDir, port: first.coord.port });
    expect(second.coord.interrupted).toEqual([]);
    expect(second.coord.recovered).toEqual([job.id]);
    await until('both agents back', async () => (await second.conn.agents()).filter((a) => a.state === 'AGENT_STATE_ALIVE').length === 2);
    expect((await second.conn.agents()).map((a) => a.agentId).sort()).toEqual(procs.map((p) => p.id).sort());
    await until('the agents list the job\'s workers', async () => (await second.conn.agents()).every((a) => a.jobIds.includes(job.id)));
    expect((await second.conn.get(job.id)).state).toBe('JOB_STATE_RUNNING');
    expect(pids.every(alive)).toBe(true); // nobody stopped them
    await second.conn.cancel(job.id, 'done');
    const events = await follow(second.conn, job.id);
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_CANCELLED', attempt: 0 });
    await until('the workers gone', () => pids.every((pid) => !alive(pid)), 15);
  });
});
