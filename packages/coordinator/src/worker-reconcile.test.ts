// A job whose workers have all exited is never left running, even when their exit
// events never arrive (an agent's event pipeline was wedged): the agent's heartbeats, which list
// the workers alive on its host, settle it within a heartbeat timeout.
import { NO_OFFLOAD, type Plan } from '@mist/core';
import { callUnary, createClient, readStream } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator } from './server';
import { FakeAgent } from './test/fake-agent';

const TOKEN = 'test-token';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function onePlan(): Plan {
  return {
    version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 8,
    stages: [{ layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 1 }, microBatchSize: 1, dp: 1, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: { ...NO_OFFLOAD } }],
  };
}

describe('heartbeat reconciliation of running workers', () => {
  it('fails a running job whose worker its agent no longer lists, naming the rank, within the heartbeat timeout', async () => {
    const c = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, heartbeatTimeoutS: 1, stopGraceS: 1 });
    cleanups.push(() => c.stop());
    const agent = new FakeAgent(c.address, TOKEN, 'host-a', 1);
    cleanups.push(() => agent.close());
    await agent.register();
    agent.watch();
    const client = createClient('Coordinator', c.address, { token: TOKEN });
    cleanups.push(() => client.close());
    const job = await callUnary(client, 'submitJob', {
      spec: { name: 'one', model: { name: 'gpt-tiny' }, trainingJson: JSON.stringify({ globalBatch: 8, seqLen: 64 }), planJson: JSON.stringify(onePlan()), run: { steps: 3, seed: 1 } },
    });
    await agent.next((cmd) => cmd.command === 'assign');
    await agent.report([{ jobId: job.id, attempt: 0, rank: 0, started: { pid: 4242 } }]);
    await agent.heartbeat([{ jobId: job.id, attempt: 0, rank: 0, pid: 4242 }]);
    expect((await callUnary(client, 'getJob', { jobId: job.id })).state).toBe('JOB_STATE_RUNNING');
    // The worker is gone; its exit event never comes. The agent keeps heartbeating without it.
    const gone = Date.now();
    const beating = setInterval(() => void agent.heartbeat([]), 100);
    cleanups.push(() => clearInterval(beating));
    const states: Array<{ state: string; message: string }> = [];
    for await (const e of readStream(client.watchJob({ jobId: job.id, replay: false }))) if (e.state) states.push(e.state);
    expect(states.at(-1)).toMatchObject({ state: 'JOB_STATE_FAILED' });
    expect(states.at(-1)!.message).toMatch(/^rank 0 \(stage 0\) on agent host-a-\w+ \(host host-a\): its worker is gone but its exit was never reported$/);
    expect(Date.now() - gone).toBeLessThan(5000);
  });
});
