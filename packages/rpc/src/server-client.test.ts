// A real server on 127.0.0.1:0 with real services of the protos: unary and server-streaming calls
// with the right token, refusals with a wrong or missing token.
import * as grpc from '@grpc/grpc-js';
import { getModel, parseClusterShorthand, parsePlan, planDevices, SpecError } from '@mist/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  addService, type AgentControlHandlers, type AnalyzerHandlers, callUnary, type CoordinatorHandlers, createClient,
  createServer, deadlineIn, isRpcError, type JobEvent, readStream, rpcError, type RpcServer, serviceClientConstructor,
  startServer, status, stopServer, waitForReady,
} from './index';

const TOKEN = 'test-token-3f9a';
// Every call here takes milliseconds; fail fast instead of waiting for the global 60 s.
vi.setConfig({ testTimeout: 10_000 });

// Analyzer stand-in: validates the plan against the model and cluster with @mist/core and reports
// what it can know without a cost model (the devices the plan uses).
const handlersCalled: string[] = [];
const analyzer: AnalyzerHandlers = {
  Analyze(call, callback) {
    handlersCalled.push('Analyze');
    const req = call.request;
    try {
      if (req.model?.source !== 'name' || req.cluster?.source !== 'shorthand') {
        callback(rpcError(status.INVALID_ARGUMENT, 'this test server takes a model name and a cluster shorthand'));
        return;
      }
      const model = getModel(req.model.name ?? '');
      const cluster = parseClusterShorthand(req.cluster.shorthand ?? '');
      const plan = parsePlan(JSON.parse(req.planJson), { model, cluster });
      callback(null, { estimateJson: JSON.stringify({ devices: planDevices(plan), stages: plan.stages.length }) });
    } catch (err) {
      if (err instanceof SpecError) callback(rpcError(status.INVALID_ARGUMENT, err.message));
      else callback(rpcError(status.INTERNAL, (err as Error).message));
    }
  },
};

// Coordinator stand-in: WatchJob replays a short job history and ends the stream.
function jobHistory(jobId: string): JobEvent[] {
  return [
    { jobId, time: 1000, state: { state: 'JOB_STATE_RUNNING', attempt: 0 } },
    { jobId, time: 1001, worker: { jobId, rank: 1, time: 1001, metrics: { step: 1, loss: 10.5, stepTime: 0.25, stage: 1,
      memoryPeaks: [{ pool: 'device', bytes: 3 * 2 ** 32 }] } } },
    { jobId, time: 1002, worker: { jobId, rank: 0, time: 1002, log: { stream: 'LOG_STREAM_STDOUT', text: 'hello' } } },
    { jobId, time: 1003, state: { state: 'JOB_STATE_SUCCEEDED', message: 'done' } },
  ];
}
function notImplemented(name: string) {
  return (_call: unknown, callback: (err: grpc.ServiceError) => void) =>
    callback(rpcError(status.UNIMPLEMENTED, `${name} is not part of this test server`));
}
const coordinator: CoordinatorHandlers = {
  WatchJob(call) {
    handlersCalled.push('WatchJob');
    if (!call.request.jobId) {
      // grpc-js ends a server stream with a status when the handler emits 'error' on it.
      call.emit('error', rpcError(status.INVALID_ARGUMENT, 'jobId is required'));
      return;
    }
    for (const ev of jobHistory(call.request.jobId)) call.write(ev);
    call.end();
  },
  SubmitJob: notImplemented('SubmitJob'),
  GetJob: notImplemented('GetJob'),
  ListJobs: notImplemented('ListJobs'),
  CancelJob: notImplemented('CancelJob'),
  ListAgents: notImplemented('ListAgents'),
  DeleteJob: notImplemented('DeleteJob'),
};

// AgentControl stand-in: one assignment with an NCCL unique id (bytes) on the assignment stream.
const uniqueId = Buffer.from(Array.from({ length: 128 }, (_, i) => (i * 37) & 0xff));
const agentControl: AgentControlHandlers = {
  WatchAssignments(call) {
    call.write({
      assign: {
        jobId: 'job-1', attempt: 2, worldSize: 4, planJson: '{}', backend: 'BACKEND_NCCL',
        rendezvous: { nccl: { uniqueId } }, ranks: [{ rank: 2, stage: 1, deviceIndex: 0 }, { rank: 3, stage: 1, deviceIndex: 1 }],
        run: { steps: 2 ** 40 },
      },
    });
    call.write({ stop: { jobId: 'job-1', attempt: 2, reason: 'cancelled', gracePeriod: 5 } });
    call.end();
  },
  Register: notImplemented('Register'),
  Heartbeat: notImplemented('Heartbeat'),
  ReportWorkerEvents: notImplemented('ReportWorkerEvents'),
};

const plan = {
  version: 1, model: 'gpt3-1.3b', seqLen: 2048, globalBatch: 32, gradAccumSteps: 4,
  stages: [0, 1].map((i) => ({
    layers: [i * 12, i * 12 + 11], mesh: { nodes: 1, gpusPerNode: 4 }, microBatchSize: 4, dp: 2, tp: 2,
    sequenceParallel: false, ckptLayers: 0, zero: 1, offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
  })),
};

let server: RpcServer;
let address: string;

beforeAll(async () => {
  server = createServer({ token: TOKEN });
  addService(server, 'Analyzer', analyzer);
  addService(server, 'Coordinator', coordinator);
  addService(server, 'AgentControl', agentControl);
  const port = await startServer(server, '127.0.0.1:0');
  expect(port).toBeGreaterThan(0);
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await stopServer(server, 1);
});

describe('with the right token', () => {
  it('makes a unary call (Analyzer.Analyze)', async () => {
    const client = createClient('Analyzer', address, { token: TOKEN });
    await waitForReady(client, 10);
    const res = await callUnary(client, 'analyze', {
      model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x8-l4' }, planJson: JSON.stringify(plan),
    }, { deadline: deadlineIn(10) });
    expect(JSON.parse(res.estimateJson)).toEqual({ devices: 8, stages: 2 });
    // --defaults: unset message fields arrive as null, not undefined.
    expect(res.predicted).toBeNull();
    client.close();
  });

  it('passes a handler error through with its status code and message', async () => {
    const client = createClient('Analyzer', address, { token: TOKEN });
    const bad = { ...plan, stages: [{ ...plan.stages[0], tp: 3 }, plan.stages[1]] };
    const err = await callUnary(client, 'analyze', {
      model: { name: 'gpt3-1.3b' }, cluster: { shorthand: '1x8-l4' }, planJson: JSON.stringify(bad),
    }).catch((e: unknown) => e);
    expect(isRpcError(err, status.INVALID_ARGUMENT)).toBe(true);
    expect((err as grpc.ServiceError).details).toMatch(/stages\[0\]\.tp/);
    client.close();
  });

  it('makes a server-streaming call (Coordinator.WatchJob)', async () => {
    const client = createClient('Coordinator', address, { token: TOKEN });
    const events: JobEvent[] = [];
    for await (const ev of readStream(client.watchJob({ jobId: 'job-7', includeLogs: true }))) events.push(ev);
    expect(events.map((e) => e.event)).toEqual(['state', 'worker', 'worker', 'state']);
    expect(events[0].state?.state).toBe('JOB_STATE_RUNNING');
    expect(events[3].state).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', message: 'done' });
    const metrics = events[1].worker?.metrics;
    expect(events[1].worker?.event).toBe('metrics');
    // uint64 arrives as a number (longs: Number), the optional loss with its presence marker.
    expect(metrics).toMatchObject({ step: 1, loss: 10.5, _loss: 'loss', stepTime: 0.25, stage: 1 });
    expect(metrics?.memoryPeaks).toEqual([{ pool: 'device', bytes: 3 * 2 ** 32 }]);
    expect(events[2].worker?.log).toEqual({ stream: 'LOG_STREAM_STDOUT', text: 'hello' });
    client.close();
  });

  it('ends a stream with the handler\'s error', async () => {
    const client = createClient('Coordinator', address, { token: TOKEN });
    const err = await (async () => {
      for await (const _ of readStream(client.watchJob({ jobId: '' }))) { /* none expected */ }
    })().catch((e: unknown) => e);
    expect(isRpcError(err, status.INVALID_ARGUMENT)).toBe(true);
    client.close();
  });

  it('carries bytes, enums, 64-bit integers and oneofs of the agent protocol intact', async () => {
    const client = createClient('AgentControl', address, { token: TOKEN });
    const commands = [];
    for await (const cmd of readStream(client.watchAssignments({ agentId: 'a1' }))) commands.push(cmd);
    expect(commands.map((c) => c.command)).toEqual(['assign', 'stop']);
    const a = commands[0].assign;
    expect(a?.rendezvous?.kind).toBe('nccl');
    expect(Buffer.compare(a?.rendezvous?.nccl?.uniqueId ?? Buffer.alloc(0), uniqueId)).toBe(0);
    expect(a?.backend).toBe('BACKEND_NCCL');
    expect(a?.run?.steps).toBe(2 ** 40);
    expect(a?.run?.learningRate).toBeUndefined();
    expect(a?.ranks).toEqual([{ rank: 2, stage: 1, deviceIndex: 0 }, { rank: 3, stage: 1, deviceIndex: 1 }]);
    expect(commands[1].stop).toEqual({ jobId: 'job-1', attempt: 2, reason: 'cancelled', gracePeriod: 5 });
    client.close();
  });
});

describe('authentication', () => {
  it('refuses a unary call with a wrong token before the handler runs', async () => {
    const before = handlersCalled.length;
    const client = createClient('Analyzer', address, { token: 'not-the-token' });
    const err = await callUnary(client, 'analyze', { planJson: '{}' }).catch((e: unknown) => e);
    expect(isRpcError(err, status.UNAUTHENTICATED)).toBe(true);
    expect(handlersCalled.length).toBe(before);
    client.close();
  });

  it('refuses a server-streaming call with a wrong token', async () => {
    const before = handlersCalled.length;
    const client = createClient('Coordinator', address, { token: `${TOKEN}x` });
    const received: JobEvent[] = [];
    const err = await (async () => {
      for await (const ev of readStream(client.watchJob({ jobId: 'job-7' }))) received.push(ev);
    })().catch((e: unknown) => e);
    expect(isRpcError(err, status.UNAUTHENTICATED)).toBe(true);
    expect(received).toEqual([]);
    expect(handlersCalled.length).toBe(before);
    client.close();
  });

  it('refuses a call without a token', async () => {
    // A bare grpc-js client of the same service, without the auth interceptor.
    const Ctor = serviceClientConstructor('Analyzer');
    const bare = new Ctor(address, grpc.credentials.createInsecure());
    const err = await new Promise<unknown>((resolve) => {
      bare.makeUnaryRequest('/mist.v1.Analyzer/Analyze', () => Buffer.alloc(0), (b: Buffer) => b, {},
        (e) => resolve(e));
    });
    expect(isRpcError(err, status.UNAUTHENTICATED)).toBe(true);
    bare.close();
  });

  it('refuses to create a server or client without a usable token', () => {
    expect(() => createServer({ token: '' })).toThrow(/token is required/);
    expect(() => createClient('Tuner', address, { token: 'has space' })).toThrow(/printable ASCII/);
  });
});
