import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NO_OFFLOAD, type Plan } from '@mist/core';
import { callUnary, createClient, type CoordinatorClient, type JobEvent__Output, type JobSpec, readStream, status } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningCoordinator, startCoordinator } from './server';
import { FakeAgent } from './test/fake-agent';

const TOKEN = 'test-token';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function coordinator(o: { stateDir?: string; heartbeatTimeoutS?: number; listen?: string } = {}): Promise<RunningCoordinator> {
  const c = await startCoordinator({ listen: o.listen ?? '127.0.0.1:0', stateDir: o.stateDir ?? ':memory:', token: TOKEN, heartbeatTimeoutS: o.heartbeatTimeoutS ?? 10, stopGraceS: 1 });
  cleanups.push(() => c.stop());
  return c;
}

function jobClient(address: string, token = TOKEN): CoordinatorClient {
  const client = createClient('Coordinator', address, { token });
  cleanups.push(() => client.close());
  return client;
}

async function agent(address: string, host: string, devices: number, ports = { first: 40000, count: 100 }): Promise<FakeAgent> {
  const a = new FakeAgent(address, TOKEN, host, devices, ports);
  cleanups.push(() => a.close());
  await a.register();
  a.watch();
  return a;
}

/** gpt-tiny on pp=2 stages, each dp=2 (4 devices). */
function plan(): Plan {
  const stage = (layers: [number, number]) => ({
    layers, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0 as const,
    offload: { ...NO_OFFLOAD },
  });
  return { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 4, stages: [stage([0, 1]), stage([2, 3])] };
}

function spec(p: unknown = plan(), extra: Partial<JobSpec> = {}): JobSpec {
  return {
    name: 'tiny', model: { name: 'gpt-tiny' }, trainingJson: JSON.stringify({ globalBatch: 8, seqLen: 64 }), planJson: JSON.stringify(p),
    run: { steps: 3, seed: 1, dataPath: 'corpus', checkpointDir: '/tmp/ckpt' }, ...extra,
  };
}

/** Collects a job's events until the stream ends (the job reached a terminal state). */
function watchAll(client: CoordinatorClient, jobId: string): Promise<JobEvent__Output[]> {
  return (async () => {
    const out: JobEvent__Output[] = [];
    for await (const e of readStream(client.watchJob({ jobId, replay: true, includeLogs: true }))) out.push(e);
    return out;
  })();
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutS = 10): Promise<T> {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const assignOf = (a: FakeAgent) => a.next((c) => c.command === 'assign').then((c) => c.assign!);
const stopOf = (a: FakeAgent) => a.next((c) => c.command === 'stop').then((c) => c.stop!);

async function startedJob(c: RunningCoordinator) {
  const a = await agent(c.address, 'host-a', 2);
  const b = await agent(c.address, 'host-b', 2);
  const client = jobClient(c.address);
  const job = await callUnary(client, 'submitJob', { spec: spec() });
  const [ja, jb] = await Promise.all([assignOf(a), assignOf(b)]);
  return { a, b, client, job, ja, jb };
}

describe('coordinator: agents', () => {
  it('registers agents with their devices, keeps them alive on heartbeats, and marks a silent one lost', async () => {
    const c = await coordinator({ heartbeatTimeoutS: 0.6 });
    const a = await agent(c.address, 'host-a', 2);
    const b = await agent(c.address, 'host-b', 3);
    const client = jobClient(c.address);
    const beating = setInterval(() => void a.heartbeat(), 100);
    cleanups.push(() => clearInterval(beating));
    const listed = await callUnary(client, 'listAgents', {});
    expect(listed.agents.map((x) => [x.hostName, x.devices.length, x.state]).sort()).toEqual([
      ['host-a', 2, 'AGENT_STATE_ALIVE'], ['host-b', 3, 'AGENT_STATE_ALIVE'],
    ]);
    const lost = await until('host-b lost', async () => {
      const agents = (await callUnary(client, 'listAgents', {})).agents;
      return agents.find((x) => x.hostName === 'host-b' && x.state === 'AGENT_STATE_LOST') ? agents : undefined;
    });
    expect(lost.find((x) => x.hostName === 'host-a')?.state).toBe('AGENT_STATE_ALIVE');
    expect(await b.heartbeat()).toEqual({ reregister: true });
    expect(await b.register()).toBe(b.id);
    expect(await b.heartbeat()).toEqual({ reregister: false });
  });

  it('refuses a wrong token with UNAUTHENTICATED, for jobs and for agents', async () => {
    const c = await coordinator();
    const bad = jobClient(c.address, 'wrong-token');
    await expect(callUnary(bad, 'listJobs', {})).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(callUnary(bad, 'submitJob', { spec: spec() })).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const intruder = new FakeAgent(c.address, 'wrong-token', 'evil', 1);
    cleanups.push(() => intruder.close());
    await expect(intruder.register()).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    expect((await callUnary(jobClient(c.address), 'listAgents', {})).agents).toEqual([]);
  });
});

describe('coordinator: submission', () => {
  it('rejects a malformed plan naming the field, and a plan the devices cannot hold, and starts nothing', async () => {
    const c = await coordinator();
    const a = await agent(c.address, 'host-a', 2);
    const client = jobClient(c.address);
    const broken = { ...plan(), stages: [{ ...plan().stages[0], tp: 3 }, plan().stages[1]] };
    const err1 = await callUnary(client, 'submitJob', { spec: spec(broken) }).catch((e: unknown) => e);
    expect(err1).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((err1 as Error).message).toMatch(/plan\.stages\[0\]\.tp/);
    const err2 = await callUnary(client, 'submitJob', { spec: spec(plan(), { trainingJson: '{"globalBatch": 8}' }) }).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/training\.seqLen: got nothing; expected number/);
    const err3 = await callUnary(client, 'submitJob', { spec: spec() }).catch((e: unknown) => e);
    expect(err3).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((err3 as Error).message).toMatch(/cannot place the plan: the plan needs 4 devices; the 1 agent\(s\) have 2 free/);
    expect((await callUnary(client, 'listJobs', {})).jobs).toEqual([]);
    expect(a.commands).toEqual([]);
  });

  it('places pp=2 x dp=2 on two agents, hands out the CPU rendezvous, streams metrics and succeeds', async () => {
    const c = await coordinator();
    const { a, b, client, job, ja, jb } = await startedJob(c);
    expect(job.state).toBe('JOB_STATE_STARTING');
    const events = watchAll(client, job.id);
    // Stage 0 on one host, stage 1 on the other; every rank has its own address.
    expect(ja.ranks.map((r) => [r.rank, r.stage])).toEqual([[0, 0], [1, 0]]);
    expect(jb.ranks.map((r) => [r.rank, r.stage])).toEqual([[2, 1], [3, 1]]);
    const peers = ja.rendezvous!.cpu!.peers;
    expect(jb.rendezvous!.cpu!.peers).toEqual(peers);
    expect(new Set(peers).size).toBe(4);
    expect(peers.every((p) => /^127\.0\.0\.1:4\d{4}$/.test(p))).toBe(true);
    expect(ja.worldSize).toBe(4);
    expect(JSON.parse(ja.planJson)).toEqual(plan());

    const ev = (agentRanks: number[], body: object) => agentRanks.map((rank) => ({ jobId: job.id, attempt: 0, rank, ...body }));
    await a.report(ev([0, 1], { started: { pid: 1 } }));
    await b.report(ev([2, 3], { started: { pid: 2 } }));
    await until('running', async () => (await callUnary(client, 'getJob', { jobId: job.id })).state === 'JOB_STATE_RUNNING');
    await b.report(ev([2], { metrics: { step: 1, loss: 5.5, stepTime: 0.1, tokensPerSecond: 100, stage: 1 } }));
    await b.report(ev([2], { metrics: { step: 2, loss: 4.25, stepTime: 0.1, tokensPerSecond: 100, stage: 1 } }));
    await a.report(ev([0], { log: { stream: 'LOG_STREAM_STDOUT', text: 'hello from rank 0' } }));
    await a.report(ev([0, 1], { exited: { exitCode: 0 } }));
    await b.report(ev([2, 3], { exited: { exitCode: 0 } }));
    const all = await events;
    const states = all.filter((e) => e.event === 'state').map((e) => e.state!.state);
    expect(states).toEqual(['JOB_STATE_QUEUED', 'JOB_STATE_STARTING', 'JOB_STATE_STARTING', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED']);
    expect(all.filter((e) => e.worker?.event === 'metrics').map((e) => e.worker!.metrics!.loss)).toEqual([5.5, 4.25]);
    expect(all.some((e) => e.worker?.log?.text === 'hello from rank 0')).toBe(true);
    const done = await callUnary(client, 'getJob', { jobId: job.id });
    expect(done).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', step: 2, loss: 4.25 });
    expect(done.workers.map((w) => [w.rank, w.hostName, w.state])).toEqual([
      [0, 'host-a', 'WORKER_STATE_EXITED'], [1, 'host-a', 'WORKER_STATE_EXITED'], [2, 'host-b', 'WORKER_STATE_EXITED'], [3, 'host-b', 'WORKER_STATE_EXITED'],
    ]);
    // The devices are free again: the same job fits once more.
    const again = await callUnary(client, 'submitJob', { spec: spec() });
    expect(again.state).toBe('JOB_STATE_STARTING');
  });

  it('fails the job when a worker exits non-zero, naming the rank, and stops the other workers', async () => {
    const c = await coordinator();
    const { a, b, client, job } = await startedJob(c);
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    const events = watchAll(client, job.id);
    await b.report([{ jobId: job.id, attempt: 0, rank: 3, exited: { exitCode: 3, message: 'out of memory' } }]);
    const [sa, sb] = await Promise.all([stopOf(a), stopOf(b)]);
    expect(sa).toMatchObject({ jobId: job.id, attempt: 0, gracePeriod: 1 });
    expect(sb.reason).toMatch(/rank 3/);
    const last = (await events).at(-1)!;
    expect(last.state).toMatchObject({ state: 'JOB_STATE_FAILED' });
    expect(last.state!.message).toMatch(/^rank 3 \(stage 1\) on agent host-b-\w+ \(host host-b\) exited with code 3: out of memory$/);
  });

  it('fails the job within the heartbeat timeout when an agent is lost, and stops the other agent\'s workers', async () => {
    const c = await coordinator({ heartbeatTimeoutS: 0.6 });
    const { a, b, client, job } = await startedJob(c);
    const beating = setInterval(() => void a.heartbeat(), 100);
    cleanups.push(() => clearInterval(beating));
    const t0 = Date.now();
    const events = await watchAll(client, job.id);
    const last = events.at(-1)!.state!;
    expect(last.state).toBe('JOB_STATE_FAILED');
    expect(last.message).toContain(`agent ${b.id} (host host-b) lost`);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await stopOf(a)).jobId).toBe(job.id);
  });

  it('cancels: CANCELLING, a stop to every agent, CANCELLED once the workers are gone', async () => {
    const c = await coordinator();
    const { a, b, client, job } = await startedJob(c);
    const cancelling = await callUnary(client, 'cancelJob', { jobId: job.id, reason: 'enough' });
    expect(cancelling.state).toBe('JOB_STATE_CANCELLING');
    await Promise.all([stopOf(a), stopOf(b)]);
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, exited: { exitCode: -1, signal: 'SIGTERM' } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, exited: { exitCode: -1, signal: 'SIGTERM' } })));
    const done = await callUnary(client, 'getJob', { jobId: job.id });
    expect(done.state).toBe('JOB_STATE_CANCELLED');
    expect(done.message).toMatch(/^enough; every worker stopped$/);
  });
});

describe('coordinator: restart', () => {
  it('keeps a running job through a restart: the agents come back, their heartbeats give the true step and checkpoint, the job ends normally', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-coord-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const first = await coordinator({ stateDir: dir });
    const { a, b, client, job } = await startedJob(first);
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, checkpoint: { step: 2, dir: '/tmp/ckpt' } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, checkpoint: { step: 2, dir: '/tmp/ckpt' } })));
    await until('running', async () => (await callUnary(client, 'getJob', { jobId: job.id })).state === 'JOB_STATE_RUNNING');
    await first.stop();

    const second = await coordinator({ stateDir: dir, listen: `127.0.0.1:${first.port}` });
    expect(second.interrupted).toEqual([]);
    expect(second.recovered).toEqual([job.id]);
    const client2 = jobClient(second.address);
    // The agents come back with the same ids; their heartbeats list the job's workers, which trained on.
    for (const ag of [a, b]) {
      ag.commands.length = 0;
      expect(await ag.heartbeat()).toEqual({ reregister: true });
      await ag.register();
      ag.watch();
    }
    await a.heartbeat([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, pid: 1, step: 7, checkpointStep: 6 })));
    await b.heartbeat([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, pid: 1, step: 7, checkpointStep: 6, loss: 1.5 })));
    const now = await callUnary(client2, 'getJob', { jobId: job.id });
    expect(now).toMatchObject({ state: 'JOB_STATE_RUNNING', attempt: 0, step: 7, checkpointStep: 6, loss: 1.5 });
    expect([...a.commands, ...b.commands].filter((c) => c.command === 'stop')).toEqual([]);
    // Their exits (held by the agents during the outage) end the job as usual.
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, exited: { exitCode: 0, signal: '', message: '' } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, exited: { exitCode: 0, signal: '', message: '' } })));
    expect((await callUnary(client2, 'getJob', { jobId: job.id })).state).toBe('JOB_STATE_SUCCEEDED');
  });

  it('resumes a job by itself (maxRestarts) when its workers were gone when the coordinator came back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-coord-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const first = await coordinator({ stateDir: dir, heartbeatTimeoutS: 1 });
    const a = await agent(first.address, 'host-a', 2);
    const b = await agent(first.address, 'host-b', 2);
    const client = jobClient(first.address);
    const job = await callUnary(client, 'submitJob', { spec: spec(plan(), { maxRestarts: 1 }) });
    await Promise.all([assignOf(a), assignOf(b)]);
    await a.report([0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    await b.report([2, 3].map((rank) => ({ jobId: job.id, attempt: 0, rank, started: { pid: 1 } })));
    await first.stop();

    const second = await coordinator({ stateDir: dir, listen: `127.0.0.1:${first.port}`, heartbeatTimeoutS: 1 });
    expect(second.recovered).toEqual([job.id]);
    const client2 = jobClient(second.address);
    for (const ag of [a, b]) {
      ag.commands.length = 0;
      await ag.register();
      ag.watch();
    }
    // host-a still runs its ranks; host-b's workers died during the outage.
    const beating = setInterval(() => {
      void a.heartbeat(a.commands.some((c) => c.command === 'stop') ? [] : [0, 1].map((rank) => ({ jobId: job.id, attempt: 0, rank, pid: 1 })));
      void b.heartbeat([]);
    }, 100);
    cleanups.push(() => clearInterval(beating));
    expect(await stopOf(a)).toMatchObject({ jobId: job.id, attempt: 0 });
    const ra = await a.next((x) => x.command === 'assign' && x.assign!.attempt === 1);
    expect(ra.assign!.run).toMatchObject({ resume: true, checkpointDir: '/tmp/ckpt' });
    const states: string[][] = [];
    const call = client2.watchJob({ jobId: job.id, replay: true, includeLogs: false });
    for await (const e of readStream(call)) {
      if (e.state) states.push([e.state.state, e.state.message]);
      if (e.state?.state === 'JOB_STATE_STARTING' && e.state.attempt === 1) break;
    }
    call.cancel();
    expect(states.find(([st]) => st === 'JOB_STATE_FAILED')?.[1]).toMatch(/^rank\(s\) 2, 3 \(agent\(s\) host-b-\w+\) were gone when the coordinator came back; resuming by itself \(restart 1 of 1\)$/);
    expect((await callUnary(client2, 'getJob', { jobId: job.id })).attempt).toBe(1);
  });
});

/** State events replayed so far, up to the first event of `state` after an INTERRUPTED one. */
async function watchAllUntil(client: CoordinatorClient, jobId: string, state: string): Promise<JobEvent__Output[]> {
  const call = client.watchJob({ jobId, replay: true, includeLogs: false });
  const out: JobEvent__Output[] = [];
  let interrupted = false;
  for await (const e of readStream(call)) {
    if (e.event !== 'state') continue;
    out.push(e);
    if (e.state!.state === 'JOB_STATE_INTERRUPTED') interrupted = true;
    if (interrupted && e.state!.state === state) break;
  }
  call.cancel();
  return out;
}
