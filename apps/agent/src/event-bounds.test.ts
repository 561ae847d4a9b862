// A burst of worker output must not wedge the agent's event pipeline. Real
// coordinator (in this process, over gRPC), two in-process agents and fixture worker processes.
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { rpcError, status, type WorkerEvent } from '@mist/rpc';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent } from './agent';
import { cpuDevices } from './devices';
import { cutLine, EventReporter } from './event-reporter';
import { splitLines } from './line-splitter';
import { FIXTURE_WORKER, freePortRange } from './test/helpers';
import { follow, lastState, TOKEN, tinySpec } from './test/jobs';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function burstJob(print: string): Promise<{ state: string; logs: string[] }> {
  const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1 });
  cleanups.push(() => coord.stop());
  for (const host of ['host-a', 'host-b']) {
    const agent = await runAgent({
      coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
      portRange: await freePortRange(16), workerScript: FIXTURE_WORKER, workerEnv: { MIST_FIXTURE_MODE: 'succeed', MIST_FIXTURE_PRINT: print },
    });
    cleanups.push(() => agent.stop(1));
    await agent.registered;
  }
  const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
  cleanups.push(() => conn.close());
  const job = await conn.submit(tinySpec(3));
  const events = await follow(conn, job.id);
  return { state: lastState(events).state, logs: events.filter((e) => e.worker?.log && e.worker.rank === 0).map((e) => e.worker!.log!.text) };
}

describe('worker output bursts (real coordinator, agents and worker processes)', () => {
  it('one 5 MB line: the job succeeds and the line arrives cut with a visible marker', async () => {
    const { state, logs } = await burstJob(`1x${5 * 1024 * 1024}`);
    expect(state).toBe('JOB_STATE_SUCCEEDED');
    const big = logs.find((l) => l.startsWith('xxx'))!;
    expect(big).toMatch(/^x+\[\.\.\. \d+ bytes cut\]$/);
    const kept = big.indexOf('[');
    expect(kept + Number(/(\d+) bytes cut/.exec(big)![1])).toBe(5 * 1024 * 1024);
  }, 60_000);

  it('600 lines of 10 KB: every line delivered, the job succeeds', async () => {
    const { state, logs } = await burstJob(`600x${10 * 1024}`);
    expect(state).toBe('JOB_STATE_SUCCEEDED');
    expect(logs.filter((l) => l.length === 10 * 1024 && l.startsWith('x'))).toHaveLength(600);
  }, 60_000);
});

describe('EventReporter', () => {
  const ev = (rank: number, body: Partial<WorkerEvent>): WorkerEvent => ({ jobId: 'j', attempt: 0, rank, time: 1, ...body });

  it('bounds batches by bytes as well as count', async () => {
    const sizes: number[] = [];
    const r = new EventReporter(async (events) => {
      sizes.push(events.reduce((n, e) => n + (e.log?.text?.length ?? 0), 0));
    }, { batchS: 0, maxBatchBytes: 100_000, maxLineBytes: 40_000 });
    for (let i = 0; i < 10; i++) r.push(ev(0, { log: { stream: 'LOG_STREAM_STDOUT', text: 'y'.repeat(30_000) } }));
    while (r.pending > 0) await r.flush();
    expect(sizes.every((s) => s <= 100_000)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(300_000);
    r.dispose();
  });

  it('never retries an event the coordinator refuses for good, and what follows it gets through', async () => {
    const calls: number[] = [];
    const delivered: WorkerEvent[] = [];
    const dropped: WorkerEvent[] = [];
    const r = new EventReporter(async (events) => {
      calls.push(events.length);
      if (events.some((e) => e.log?.text === 'poison')) throw rpcError(status.RESOURCE_EXHAUSTED, 'Received message larger than max');
      delivered.push(...events);
    }, { batchS: 0, onDropped: (e) => dropped.push(e) });
    r.push(ev(0, { log: { stream: 'LOG_STREAM_STDOUT', text: 'before' } }));
    r.push(ev(0, { log: { stream: 'LOG_STREAM_STDOUT', text: 'poison' } }));
    r.push(ev(1, { exited: { exitCode: 0, signal: '', message: '' } }));
    while (r.pending > 0) await r.flush();
    await r.flush();
    expect(dropped.map((e) => e.log?.text)).toEqual(['poison']);
    expect(delivered.map((e) => e.log?.text ?? 'exit')).toEqual(['before', 'exit']);
    const before = calls.length;
    await r.flush();
    expect(calls.length).toBe(before); // nothing left to retry
    r.dispose();
  });

  it('keeps events through a transient failure and sends them once the coordinator is back', async () => {
    let up = false;
    const delivered: string[] = [];
    const r = new EventReporter(async (events) => {
      if (!up) throw rpcError(status.UNAVAILABLE, 'connection refused');
      delivered.push(...events.map((e) => e.log?.text ?? ''));
    }, { batchS: 0, retryS: 0.01 });
    r.push(ev(0, { log: { stream: 'LOG_STREAM_STDOUT', text: 'a' } }));
    await r.flush();
    expect(r.pending).toBe(1);
    up = true;
    await r.flush();
    expect(delivered).toEqual(['a']);
    r.dispose();
  });

  it('cuts long lines on a character boundary with the count of bytes cut', () => {
    expect(cutLine('abc', 10)).toBe('abc');
    expect(cutLine('é'.repeat(20), 35)).toBe('é[... 38 bytes cut]');
    expect(Buffer.byteLength(cutLine('y'.repeat(100_000), 1000))).toBeLessThanOrEqual(1000);
  });

  it('splits a stream into lines holding at most the cap of each, cutting inside no character', async () => {
    const input = new PassThrough();
    const lines: string[] = [];
    const done = splitLines(input, 40, (l) => lines.push(l));
    input.write('short\r\n' + 'é'.repeat(30));
    input.write('é'.repeat(30) + '\nlast');
    input.end();
    await done;
    expect(lines[0]).toBe('short');
    expect(lines[1]).toMatch(/^(é)+\[\.\.\. \d+ bytes cut\]$/);
    const kept = Buffer.byteLength(lines[1].slice(0, lines[1].indexOf('[')));
    expect(kept + Number(/(\d+) bytes cut/.exec(lines[1])![1])).toBe(120);
    expect(Buffer.byteLength(lines[1])).toBeLessThanOrEqual(40);
    expect(lines[2]).toBe('last');
  });
});
