import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpuDevices, runAgent } from '@mist/app-agent';
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { NO_OFFLOAD } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

// The agent's test fixture worker (speaks the executor's IPC protocol; joins the CPU rendezvous).
const FIXTURE_WORKER = path.resolve(__dirname, '../../../agent/src/test/fixture-worker.js');
const TOKEN = 'cli-test-token';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cluster(mode: string): Promise<string> {
  const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
  cleanups.push(() => coord.stop());
  for (const host of ['host-a', 'host-b']) {
    const agent = await runAgent({
      coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
      portRange: await freePortRange(16), workerScript: FIXTURE_WORKER,
      workerEnv: { MIST_FIXTURE_MODE: mode },
    });
    cleanups.push(() => agent.stop(1));
    await agent.registered;
  }
  return coord.address;
}

/** 16 ports free now, at a random base below the ephemeral range (32768+) so parallel tests rarely meet. */
async function freePortRange(count: number): Promise<{ first: number; count: number }> {
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (;;) {
    const first = 10000 + Math.floor(Math.random() * (32000 - 10000 - count));
    let ok = true;
    for (let p = first; p < first + count && ok; p++) ok = await free(p);
    if (ok) return { first, count };
  }
}

function jobFile(steps: number, plan: unknown = 'plan.json'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-launch-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stage = (layers: [number, number]) => ({
    layers, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD,
  });
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify({
    version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 4, stages: [stage([0, 1]), stage([2, 3])],
  }));
  const file = path.join(dir, 'job.json');
  fs.writeFileSync(file, JSON.stringify({
    name: 'cli-tiny', model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, plan, backend: 'cpu', run: { steps, data: 'corpus' },
  }));
  return file;
}

describe('mist launch / status / logs / agents / cancel', () => {
  it('launches a job file, follows it to success, and status, logs and agents show it', async () => {
    const address = await cluster('succeed');
    const conn = ['--coordinator', address, '--token', TOKEN];
    const launched = await runCli(['launch', jobFile(3), ...conn]);
    expect(launched.stderr).toMatch(/\[running\] all 4 workers started/);
    expect(launched.code).toBe(0);
    const id = launched.stdout.split('\n')[0];
    expect(id).toMatch(/^job-[0-9a-f]{8}$/);
    expect(launched.stdout).toMatch(new RegExp(`job ${id} \\(cli-tiny\\): succeeded`));
    expect(launched.stdout).toMatch(/stage 1: layers 2-3, mesh 1x2, dp 2 x tp 1/);
    expect(launched.stderr).toMatch(/train 3\/3 .*loss 2\.5000/);

    const status = await runCli(['status', ...conn]);
    expect(status.stdout).toMatch(new RegExp(`${id}\\s+cli-tiny\\s+succeeded\\s+0\\s+3\\s+2\\.5000\\s+4`));
    const one = JSON.parse((await runCli(['status', id, '--json', ...conn])).stdout) as { state: string; workers: unknown[] };
    expect(one.state).toBe('JOB_STATE_SUCCEEDED');
    expect(one.workers).toHaveLength(4);
    const logs = await runCli(['logs', id, ...conn]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toMatch(/\[rank 3\] rank 3 joined the rendezvous of 4/);
    expect(logs.stdout).toMatch(/\[rank 2\] exited with code 0/);
    const agents = await runCli(['agents', ...conn]);
    expect(agents.stdout).toMatch(/host-a\s+127\.0\.0\.1\s+alive\s+2 cpu/);
    expect(agents.stdout).toMatch(/host-b/);
  });

  it('detaches, then cancels: the job ends cancelled', async () => {
    const address = await cluster('hang');
    const conn = ['--coordinator', address, '--token', TOKEN];
    const launched = await runCli(['launch', jobFile(100), '--detach', ...conn]);
    expect(launched.code).toBe(0);
    const id = launched.stdout.trim();
    const cancelled = await runCli(['cancel', id, '--reason', 'from the test', ...conn]);
    expect(cancelled.stdout).toMatch(new RegExp(`job ${id}: cancelling — from the test`));
    const followed = await runCli(['logs', '-f', id, ...conn]);
    expect(followed.stderr).toMatch(/\[cancelled\] from the test; every worker stopped/);
    expect(followed.code).toBe(1);
  });

  it('refuses a bad job file naming the field, a wrong token, and a plan the agents cannot hold', async () => {
    const address = await cluster('succeed');
    const conn = ['--coordinator', address, '--token', TOKEN];
    const bad = await runCli(['launch', jobFile(0), ...conn]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/run\.steps: got 0; must be > 0/);
    const wrong = await runCli(['status', '--coordinator', address, '--token', 'nope']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/refused the token/);
    const stage = { layers: [0, 3], mesh: { nodes: 1, gpusPerNode: 8 }, microBatchSize: 1, dp: 8, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0, offload: NO_OFFLOAD };
    const big = await runCli(['launch', jobFile(3, { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 1, stages: [stage] }), ...conn]);
    expect(big.code).toBe(1);
    expect(big.stderr).toMatch(/cannot place the plan: the plan needs 8 devices; the 2 agent\(s\) have 4 free/);
    const c = new CoordinatorConnection(address, { token: TOKEN });
    cleanups.push(() => c.close());
    expect(await c.list()).toEqual([]);
  });

  it('shows help with a working example for every command', async () => {
    for (const name of ['coordinator', 'agent', 'launch', 'status', 'logs', 'cancel', 'agents']) {
      const help = await runCli([name, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`Examples:\\n  (MIST_TOKEN=secret )?mist ${name}`));
    }
    const noState = await runCli(['coordinator', '--token', 't']);
    expect(noState.code).toBe(2);
    expect(noState.stderr).toMatch(/--state DIR is required/);
  });
});
