// One local rank of the profiler's collective and overlap measurements, forked by
// collective-cluster.ts: it runs the CPU collectives backend and the kernels like an executor worker.
// Requests arrive as { id, ...WorkerRequest } over IPC; replies are WorkerReply. Exits when the
// parent disconnects.
import type { CollectiveKind } from '@mist/core';
import {
  type Communicator, type CpuListener, createCommunicator, deviceCores, KernelBatch, listenCpu, pinProcessToCores, setKernelThreads,
} from '@mist/native';
import type { MatmulShape } from './grids';
import { nowSeconds } from './timing';
import type { BesideResult, ConnectResult, WakeRound, WorkerRequest } from './worker-protocol';

let listener: CpuListener | undefined;
let comm: Communicator<Float32Array> | undefined;
const baseRss = process.memoryUsage().rss;

function communicator(): Communicator<Float32Array> {
  if (!comm) throw new Error('collective worker: not connected');
  return comm;
}

function fill(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 7) % 13) - 6;
  return a;
}

/** One collective of `bytes` (the full tensor, as the analyzer counts it) on this rank. */
function collectiveRunner(kind: CollectiveKind, bytes: number): () => Promise<void> {
  const c = communicator();
  const n = bytes / 4;
  const w = c.worldSize;
  switch (kind) {
    case 'allReduce': {
      const buf = fill(n);
      return () => c.allReduce(buf);
    }
    case 'allGather': {
      const input = fill(n / w), output = new Float32Array(n);
      return () => c.allGather(input, output);
    }
    case 'reduceScatter': {
      const input = fill(n), output = new Float32Array(n / w);
      return () => c.reduceScatter(input, output);
    }
    case 'sendRecv': {
      // Ping-pong between ranks 0 and 1; one transfer is half the round trip (the caller halves it).
      const buf = fill(n);
      if (c.rank === 0) return async () => { await c.send(buf, 1); await c.recv(buf, 1); };
      if (c.rank === 1) return async () => { await c.recv(buf, 0); await c.send(buf, 0); };
      return async () => {};
    }
  }
}

async function timeCollective(kind: CollectiveKind, bytes: number, warmup: number, repeats: number): Promise<number[]> {
  const c = communicator();
  const run = collectiveRunner(kind, bytes);
  for (let i = 0; i < warmup; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    await c.barrier();
    const t0 = nowSeconds();
    await run();
    const dt = nowSeconds() - t0;
    samples.push(kind === 'sendRecv' ? dt / 2 : dt);
  }
  return samples;
}

function computeBatch(shape: MatmulShape, count: number): () => Promise<void> {
  const { m, n, k } = shape;
  const a = fill(m * k), b = fill(k * n), c = new Float32Array(m * n);
  const batch = new KernelBatch();
  return async () => {
    for (let i = 0; i < count; i++) batch.matmul({ c, a, b, m, n, k });
    await batch.run();
  };
}

async function computeAlone(shape: MatmulShape, count: number, warmup: number, repeats: number): Promise<number[]> {
  const run = computeBatch(shape, count);
  for (let i = 0; i < warmup; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = nowSeconds();
    await run();
    samples.push(nowSeconds() - t0);
  }
  return samples;
}

/**
 * Compute samples while `commCount` all-reduces of `commBytes` run back to back beside them (the
 * same count on every rank, so the ranks stay matched). Only samples that ended before the last
 * all-reduce did count.
 */
async function computeBeside(shape: MatmulShape, count: number, repeats: number, commBytes: number, commCount: number): Promise<BesideResult> {
  const c = communicator();
  const run = computeBatch(shape, count);
  await run(); // warm
  const buf = fill(commBytes / 4);
  await c.barrier();
  let running = true;
  const chain = (async () => {
    for (let i = 0; i < commCount; i++) await c.allReduce(buf);
  })().finally(() => {
    running = false;
  });
  const samples: number[] = [];
  for (let i = 0; i < repeats && running; i++) {
    const t0 = nowSeconds();
    await run();
    const dt = nowSeconds() - t0;
    if (running) samples.push(dt);
  }
  await chain;
  return { samples };
}

/** See WorkerRequest 'p2pAfterWait'. Ranks other than 0 and 1 only join the barriers. */
async function p2pAfterWait(req: Extract<WorkerRequest, { cmd: 'p2pAfterWait' }>): Promise<WakeRound[]> {
  const c = communicator();
  const buf = fill(req.bytes / 4);
  const { shape, count, batches } = req.after;
  const run = computeBatch(shape, count);
  const compute = async (): Promise<void> => {
    for (let b = 0; b < batches; b++) await run();
  };
  await compute(); // warm
  const rounds: WakeRound[] = [];
  const stamp = (): string => process.hrtime.bigint().toString();
  for (let i = 0; i < req.rounds; i++) {
    const sender = i % 2;
    if (c.rank === sender) {
      const end = nowSeconds() + req.busyMs / 1000;
      while (nowSeconds() < end) {
        // busy: the sender computes while its peer waits
      }
      const sent = stamp();
      await c.send(buf, 1 - sender);
      rounds.push({ sent });
    } else if (c.rank === 1 - sender) {
      await c.recv(buf, sender);
      const arrived = stamp();
      await compute();
      rounds.push({ arrived, done: stamp() });
    } else {
      rounds.push({});
    }
    await c.barrier();
    // The same compute on a process that did not wait: back to back after another run.
    await compute();
    const t0 = nowSeconds();
    await compute();
    rounds[i].hotSeconds = nowSeconds() - t0;
    await c.barrier();
  }
  return rounds;
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'listen':
      listener = await listenCpu({ host: '127.0.0.1', port: 0 });
      return listener.address;
    case 'connect': {
      setKernelThreads(req.threads);
      // Rank r is CPU device r, on its own cores, as the executor's workers pin themselves.
      if (process.env.MIST_PIN_CORES !== '0') {
        try {
          pinProcessToCores(deviceCores(req.rank, req.threads));
        } catch {
          // unsupported platform: measure unpinned, as the executor will run
        }
      }
      const before = process.memoryUsage().rss;
      comm = await createCommunicator({ backend: 'cpu', rank: req.rank, worldSize: req.worldSize, peers: req.peers, listener });
      await comm.allReduce(fill(1024));
      const result: ConnectResult = { baseRssBytes: baseRss, commRssBytes: Math.max(0, process.memoryUsage().rss - before) };
      return result;
    }
    case 'collective':
      return timeCollective(req.kind, req.bytes, req.warmup, req.repeats);
    case 'computeAlone':
      return computeAlone(req.shape, req.count, req.warmup, req.repeats);
    case 'computeBeside':
      return computeBeside(req.shape, req.count, req.repeats, req.commBytes, req.commCount);
    case 'p2pAfterWait':
      return p2pAfterWait(req);
  }
}

process.on('message', (msg: { id: number } & WorkerRequest) => {
  handle(msg).then(
    (value) => process.send?.({ id: msg.id, ok: true, value }),
    (err: unknown) => process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => {
  void (comm ? comm.destroy() : Promise.resolve()).finally(() => process.exit(0));
});
process.send?.({ ready: true });
