// What one worker process does with its assignment: join the world communicator (CPU backend over
// TCP), build its rank's runtime, resume from the newest complete checkpoint when asked, train
// `run.steps` iterations (the step count to reach), report metrics, save sharded checkpoints.
import {
  createCommunicator, deviceCores, kernelThreads, listenCpu, type Communicator, DEFAULT_TIMEOUT_MS, pinProcessToCores, startKernelTrace, stopKernelTrace,
} from '@mist/native';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint';
import { TokenSource } from '../runtime/data';
import { learningRate } from '../train';
import { RankRuntime } from '../runtime/rank-runtime';
import type { WorkerAssignment, WorkerToParent } from './protocol';

export interface WorkerIo {
  send(msg: WorkerToParent): void;
  /** Resolves with the peers' addresses when the parent gathers them (cpu rendezvous without peers). */
  peers(): Promise<string[]>;
  /** Set when the parent asked to stop: the worker ends after the current step. */
  stopRequested(): string | null;
}

function parseHostPort(address: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`malformed peer address '${address}' (expected host:port)`);
  return { host: m[1], port: Number(m[2]) };
}

async function joinWorld(a: WorkerAssignment, io: WorkerIo): Promise<Communicator<Float32Array>> {
  if (a.backend !== 'cpu' || a.rendezvous.kind !== 'cpu') {
    // The runtime computes with the CPU kernels on host Float32Arrays; NCCL moves device buffers.
    throw new Error(`not implemented: backend '${a.backend}' in the executor (the compute kernels are CPU-only; use backend 'cpu')`);
  }
  const timeoutMs = a.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let peers = a.rendezvous.peers;
  if (peers.length === 0) {
    const listener = await listenCpu();
    io.send({ type: 'ready', rank: a.rank, pid: process.pid, address: listener.address });
    peers = await io.peers();
    return createCommunicator({ backend: 'cpu', rank: a.rank, worldSize: a.worldSize, peers, listener, timeoutMs });
  }
  if (peers.length !== a.worldSize) throw new Error(`rendezvous lists ${peers.length} peers for a world of ${a.worldSize}`);
  const listener = await listenCpu(parseHostPort(peers[a.rank]));
  io.send({ type: 'ready', rank: a.rank, pid: process.pid, address: listener.address });
  return createCommunicator({ backend: 'cpu', rank: a.rank, worldSize: a.worldSize, peers, listener, timeoutMs });
}

/**
 * A CPU device is a fixed set of cores: device d with T kernel threads owns T cores counted down
 * from the last (deviceCores; wrapping when devices outnumber cores). Pinning before the communicator starts its threads pins
 * them too. MIST_PIN_CORES=0 turns it off.
 */
function pinToDeviceCores(a: WorkerAssignment, io: WorkerIo): void {
  if (a.backend !== 'cpu' || process.env.MIST_PIN_CORES === '0') return;
  const cores = deviceCores(a.deviceIndex, kernelThreads());
  try {
    const threads = pinProcessToCores(cores);
    io.send({ type: 'log', rank: a.rank, level: 'info', text: `pinned ${threads} threads to core${cores.length > 1 ? 's' : ''} ${cores.join(',')} (device ${a.deviceIndex})` });
  } catch (err) {
    io.send({ type: 'log', rank: a.rank, level: 'warn', text: `running unpinned: ${err instanceof Error ? err.message : String(err)}` });
  }
}

export async function runWorker(a: WorkerAssignment, io: WorkerIo): Promise<void> {
  pinToDeviceCores(a, io);
  const world = await joinWorld(a, io);
  const { run } = a;
  const rt = await RankRuntime.create({
    plan: a.plan, model: a.model, rank: a.rank, world, seed: run.seed,
    lr: (step) => learningRate(step, run.scheduleSteps ?? run.steps, run.lr, run.warmupSteps ?? 0),
    data: new TokenSource(run.data, run.seed, a.model.vocab, a.plan.globalBatch, a.plan.seqLen), hyper: run.adamw,
  });
  try {
    if (run.resume && run.checkpointDir) {
      const ck = latestCheckpoint(run.checkpointDir);
      if (ck) {
        await loadCheckpoint(rt, ck);
        io.send({ type: 'log', rank: a.rank, level: 'info', text: `resumed from ${ck.dir} (step ${ck.manifest.step})` });
      }
    }
    const every = run.metricsEvery ?? 1;
    let finalLoss: number | null = null;
    let lastSaved = rt.stepsDone;
    while (rt.stepsDone < run.steps) {
      const stop = io.stopRequested();
      if (stop) throw new Error(`stopped by the parent: ${stop}`);
      if (run.traceKernels) startKernelTrace();
      const m = await rt.step();
      if (run.traceKernels) {
        const trace = stopKernelTrace().filter((e) => e.op !== '(batch)');
        m.kernels = { seconds: trace.reduce((n, e) => n + e.seconds, 0), calls: trace.reduce((n, e) => n + e.calls, 0) };
      }
      finalLoss = m.loss;
      if (m.step % every === 0 || m.step === run.steps) io.send({ type: 'metrics', rank: a.rank, metrics: m });
      const n = run.checkpointEvery ?? 0;
      if (run.checkpointDir && ((n > 0 && m.step % n === 0) || m.step === run.steps)) {
        const dir = await saveCheckpoint(rt, world, run.checkpointDir, a);
        lastSaved = m.step;
        io.send({ type: 'checkpoint', rank: a.rank, step: m.step, dir });
      }
    }
    if (run.checkpointDir && lastSaved !== rt.stepsDone) {
      const dir = await saveCheckpoint(rt, world, run.checkpointDir, a);
      io.send({ type: 'checkpoint', rank: a.rank, step: rt.stepsDone, dir });
    }
    io.send({ type: 'done', rank: a.rank, steps: rt.stepsDone, finalLoss });
  } finally {
    await rt.destroy().catch(() => undefined);
    await world.destroy().catch(() => undefined);
  }
}
