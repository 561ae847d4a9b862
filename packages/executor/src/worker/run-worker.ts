// What one worker process does with its assignment: join the world communicator (the CPU backend
// over TCP, or NCCL on this worker's GPU), build its rank's runtime on the matching device (the CPU
// kernels, or the GPU in the training spec's compute dtype), resume from the newest complete
// checkpoint when asked, train `run.steps` iterations (the step count to reach), report metrics,
// save sharded checkpoints.
import {
  type CommBuffer, createCommunicator, type CudaTensor, deviceCores, kernelThreads, listenCpu, type Communicator, DEFAULT_TIMEOUT_MS, ncclGetUniqueId,
  pinProcessToCores, startKernelTrace, stopKernelTrace,
} from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import { cudaDevice } from '../device/cuda-device';
import type { Device } from '../device/device';
import { loadCheckpoint, resumeCheckpoint, saveCheckpoint } from '../checkpoint';
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
  if (a.backend !== 'cpu' || a.rendezvous.kind !== 'cpu') throw new Error(`the CPU world needs backend 'cpu' and a cpu rendezvous, got '${a.backend}'`);
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
 * The NCCL world of a GPU worker: the rendezvous' unique id, or (with NCCL_COMM_ID set by the agent
 * to the root's address) the one every rank derives from it. The worker's GPU is the one the agent
 * pinned it to (CUDA_VISIBLE_DEVICES, MIST_CUDA_DEVICE), else the assignment's device index.
 */
async function joinNcclWorld(a: WorkerAssignment, io: WorkerIo, gpu: number): Promise<Communicator<CudaTensor>> {
  if (a.rendezvous.kind !== 'nccl') throw new Error(`backend 'nccl' needs an nccl rendezvous, got '${a.rendezvous.kind}'`);
  const uniqueId = a.rendezvous.uniqueId ? Uint8Array.from(a.rendezvous.uniqueId) : ncclGetUniqueId();
  io.send({ type: 'ready', rank: a.rank, pid: process.pid });
  const comm = await createCommunicator({ backend: 'nccl', rank: a.rank, worldSize: a.worldSize, uniqueId, device: gpu, timeoutMs: a.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  return comm as Communicator<CudaTensor>;
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

/** What is not finite in a step's figures, or null (the loss only exists on last-stage ranks). */
function nonFinite(loss: number | null, gradNorm: number | undefined): string | null {
  if (loss !== null && !Number.isFinite(loss)) return `the loss is ${loss} (not finite)`;
  if (gradNorm !== undefined && !Number.isFinite(gradNorm)) return `the gradient norm is ${gradNorm} (not finite)`;
  return null;
}

/**
 * Loads the newest checkpoint of this job that verifies (job id, model and plan fingerprints,
 * shard checksums), after checking that every rank chose the same step: the ranks read one shared
 * directory, and a rank that saw another (a host with a private directory) must not train on.
 */
async function resume<F extends CommBuffer, I>(rt: RankRuntime<F, I>, world: Communicator<F>, device: Device<F, I>, a: WorkerAssignment, io: WorkerIo): Promise<void> {
  const dir = a.run.checkpointDir!;
  let choice: ReturnType<typeof resumeCheckpoint> | null = null;
  let error: Error | null = null;
  try {
    choice = resumeCheckpoint(dir, { jobId: a.jobId, model: a.model, plan: a.plan, anyPlan: a.run.resumeAnyPlan === true });
  } catch (err) {
    error = err as Error;
  }
  const step = choice?.checkpoint?.manifest.step ?? (error ? -1 : 0);
  const agreedOnDevice = device.upload(Float32Array.of(step, -step), 'fp32');
  await world.allReduce(agreedOnDevice, 'max');
  const agreed = device.read(agreedOnDevice);
  if (error) throw error;
  if (agreed[0] !== -agreed[1]) {
    throw new Error(`the ranks found different checkpoints to resume from in ${dir} (steps ${-agreed[1]} to ${agreed[0]}; -1: none verifies): ` +
      'checkpointDir must be one directory shared by every host');
  }
  for (const s of choice!.skipped) io.send({ type: 'log', rank: a.rank, level: 'warn', text: `not resuming from ${s.dir}: ${s.reason}` });
  const ck = choice!.checkpoint;
  if (!ck) {
    io.send({ type: 'log', rank: a.rank, level: 'info', text: `no checkpoint of job ${a.jobId} in ${dir}: starting from step 0` });
    return;
  }
  await loadCheckpoint(rt, ck);
  io.send({ type: 'log', rank: a.rank, level: 'info', text: `resumed from ${ck.dir} (step ${ck.manifest.step})` });
  io.send({ type: 'resumed', rank: a.rank, step: ck.manifest.step, dir: ck.dir });
}

export async function runWorker(a: WorkerAssignment, io: WorkerIo): Promise<void> {
  if (a.backend === 'nccl') {
    const gpu = Number(process.env.MIST_CUDA_DEVICE ?? a.deviceIndex);
    process.env.MIST_CUDA_DEVICE = String(gpu);
    // The device first: NCCL then runs on its communication stream.
    const device = cudaDevice(a.training.computeDtype);
    io.send({ type: 'log', rank: a.rank, level: 'info', text: `training on CUDA device ${gpu} in ${a.training.computeDtype}` });
    return train(a, io, await joinNcclWorld(a, io, gpu), device);
  }
  pinToDeviceCores(a, io);
  return train(a, io, await joinWorld(a, io), cpuDevice);
}

async function train<F extends CommBuffer, I>(a: WorkerAssignment, io: WorkerIo, world: Communicator<F>, device: Device<F, I>): Promise<void> {
  const { run } = a;
  // The plan's attention variant, else the training spec's (what the submit check and the analyzer read).
  const plan = { ...a.plan, flashAttention: a.plan.flashAttention ?? a.training.flashAttention };
  const rt = await RankRuntime.create<F, I>({
    plan, model: a.model, rank: a.rank, world, device, seed: run.seed,
    lr: (step) => learningRate(step, run.scheduleSteps ?? run.steps, run.lr, run.warmupSteps ?? 0),
    data: new TokenSource(run.data, run.seed, a.model.vocab, a.plan.globalBatch, a.plan.seqLen), hyper: run.adamw,
  });
  try {
    if (run.resume && run.checkpointDir) await resume(rt, world, device, a, io);
    const every = run.metricsEvery ?? 1;
    let finalLoss: number | null = null;
    let lastSaved = rt.stepsDone;
    /** Set once a step's all-reduced gradient norm was not finite: the weights may hold NaN from then on. */
    let poisonedAt = 0;
    const save = async (step: number): Promise<void> => {
      // The gradient norm is all-reduced over the world, so every rank takes the same decision here.
      if (poisonedAt > 0) {
        io.send({ type: 'log', rank: a.rank, level: 'warn', text: `no checkpoint at step ${step}: the state is not finite since step ${poisonedAt}` });
        return;
      }
      const dir = await saveCheckpoint(rt, world, run.checkpointDir!, a, run.keepCheckpoints ?? 0);
      lastSaved = step;
      io.send({ type: 'checkpoint', rank: a.rank, step, dir });
    };
    while (rt.stepsDone < run.steps) {
      const stop = io.stopRequested();
      if (stop) throw new Error(`stopped by the parent: ${stop}`);
      // The kernel trace counts the CPU kernels (the GPU's run asynchronously on its stream).
      const trace = run.traceKernels === true && device.kind === 'cpu';
      if (trace) startKernelTrace();
      const m = await rt.step();
      if (trace) {
        const trace = stopKernelTrace().filter((e) => e.op !== '(batch)');
        m.kernels = { seconds: trace.reduce((n, e) => n + e.seconds, 0), calls: trace.reduce((n, e) => n + e.calls, 0) };
      }
      finalLoss = m.loss;
      if (m.step % every === 0 || m.step === run.steps) io.send({ type: 'metrics', rank: a.rank, metrics: m });
      // An fp16 step skipped on overflow has no finite norm by design (the loss scale backs off).
      const bad = nonFinite(m.loss, m.skipped ? undefined : m.gradNorm);
      if (bad) {
        if (!run.allowNonFiniteLoss) {
          throw new Error(`step ${m.step}: ${bad}; the run stops here and this state is not checkpointed (run.allowNonFiniteLoss lets it go on)`);
        }
        if (poisonedAt === 0 && m.gradNorm !== undefined && !Number.isFinite(m.gradNorm)) poisonedAt = m.step;
        io.send({ type: 'log', rank: a.rank, level: 'warn', text: `step ${m.step}: ${bad} (going on: run.allowNonFiniteLoss)` });
      }
      const n = run.checkpointEvery ?? 0;
      if (run.checkpointDir && ((n > 0 && m.step % n === 0) || m.step === run.steps)) await save(m.step);
    }
    if (run.checkpointDir && lastSaved !== rt.stepsDone) await save(rt.stepsDone);
    io.send({ type: 'done', rank: a.rank, steps: rt.stepsDone, finalLoss });
  } finally {
    await rt.destroy().catch(() => undefined);
    await world.destroy().catch(() => undefined);
  }
}
