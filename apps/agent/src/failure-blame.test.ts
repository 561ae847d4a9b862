// When an agent dies, the job's failure message names the dead host, not only
// the surviving rank whose collective broke. Real coordinator, two agent processes running real
// executor workers; agent host-b is killed with SIGKILL mid-job.
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { workerEntryPath } from '@mist/executor';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentProcess, freePortRange, spawnAgent } from './test/helpers';
import { follow, lastState, TOKEN, tinySpec } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('failure attribution when an agent dies', () => {
  it('names the dead agent\'s host in the failure message', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, heartbeatTimeoutS: 10, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    const procs: AgentProcess[] = [];
    for (const host of ['host-a', 'host-b']) {
      const ports = await freePortRange(16);
      const p = await spawnAgent(coord.address, TOKEN, ['--cpu-devices', '2', '--host-name', host, '--address', '127.0.0.1',
        '--worker-ports', `${ports.first}:${ports.count}`, '--worker-script', workerEntryPath()]);
      cleanups.push(async () => {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGTERM');
          await p.exited;
        }
      });
      procs.push(p);
    }
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    const job = await conn.submit(tinySpec(100_000));
    let killed = false;
    const events = await follow(conn, job.id, (e) => {
      if (!killed && e.worker?.metrics && Number(e.worker.metrics.step) >= 2) {
        killed = true;
        procs[1].child.kill('SIGKILL');
      }
    });
    const end = lastState(events);
    expect(end.state).toBe('JOB_STATE_FAILED');
    // Either the agent was declared lost, or a surviving rank failed first: then the dead host is named.
    expect(end.message).toMatch(new RegExp(`(agent ${procs[1].id} \\(host host-b\\) lost|peer rank [23] ran on agent ${procs[1].id} \\(host host-b\\): last heard [\\d.]+ s ago)`));
  }, 60_000);
});
