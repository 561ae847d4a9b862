// Standalone launch on one host (like `torchrun --standalone`): one worker process per device of
// the plan on 127.0.0.1, the CPU ring addresses gathered from the workers' 'ready' messages (each
// listens on port 0), every message relayed to the caller, per-step lines combined across ranks.
// Resolves when every worker is done; rejects when any fails, after giving the others the
// collectives' timeout to report their own error, then stopping those still running.
import { type ChildProcess, fork } from 'node:child_process';
import type { ModelSpec, Plan, TrainingSpec } from '@mist/core';
import { worldSize } from '../topology';
import { workerEntryPath } from '../worker/entry-path';
import type { RunOptions, StepMetrics, WorkerAssignment, WorkerToParent } from '../worker/protocol';

export interface LaunchLocalOptions {
  plan: Plan;
  model: ModelSpec;
  training: TrainingSpec;
  run: RunOptions;
  backend?: 'cpu';
  /** Collective timeout of the workers (default 30 s). */
  timeoutMs?: number;
  jobId?: string;
  /** Every message of every worker, as it arrives. */
  onMessage?: (msg: WorkerToParent) => void;
  /** One line per reported step, once every rank has reported it. */
  onStep?: (s: LocalStep) => void;
  /** Worker entry to fork (default workerEntryPath()). */
  entry?: string;
  /** Kernel threads per worker (its device's cores); default MIST_NUM_THREADS or every core. */
  kernelThreads?: number;
}

/** A step of the whole job: the loss of the global batch and the slowest rank's time. */
export interface LocalStep {
  step: number;
  loss: number;
  stepTimeS: number;
  tokensPerS: number;
  /** Per rank, in rank order. */
  ranks: StepMetrics[];
}

export interface LaunchResult {
  steps: LocalStep[];
  finalLoss: number | null;
}

export class LaunchError extends Error {
  constructor(message: string, readonly failures: Array<{ rank: number; error: string }>) {
    super(message);
    this.name = 'LaunchError';
  }
}

export function launchLocal(o: LaunchLocalOptions): Promise<LaunchResult> {
  const n = worldSize(o.plan);
  if (o.kernelThreads !== undefined && !(Number.isInteger(o.kernelThreads) && o.kernelThreads >= 1)) {
    throw new RangeError(`kernelThreads must be a positive integer, got ${o.kernelThreads}`);
  }
  const timeoutMs = o.timeoutMs ?? 30_000;
  const children: ChildProcess[] = [];
  const addresses = new Map<number, string>();
  const done = new Set<number>();
  const exited = new Set<number>();
  const failures: Array<{ rank: number; error: string }> = [];
  const pending = new Map<number, StepMetrics[]>();
  const steps: LocalStep[] = [];
  let finalLoss: number | null = null;
  let gathered = false;
  let graceTimer: NodeJS.Timeout | null = null;

  return new Promise<LaunchResult>((resolve, reject) => {
    const settleIfAllExited = (): void => {
      if (exited.size < n) return;
      if (graceTimer) clearTimeout(graceTimer);
      if (failures.length > 0 || done.size < n) {
        const lines = failures.map((f) => `rank ${f.rank}: ${f.error}`).join('; ');
        reject(new LaunchError(`local launch failed (${failures.length} of ${n} ranks): ${lines || 'workers exited early'}`, failures));
      } else {
        resolve({ steps, finalLoss });
      }
    };
    const fail = (rank: number, error: string): void => {
      if (!failures.some((f) => f.rank === rank)) failures.push({ rank, error });
      // Peers of a dead rank fail on their own within the collectives' timeout; stop any that
      // have not by then.
      if (!graceTimer) {
        graceTimer = setTimeout(() => {
          children.forEach((c, r) => {
            if (!exited.has(r)) {
              if (!failures.some((f) => f.rank === r)) failures.push({ rank: r, error: 'stopped by the launcher after a peer failed' });
              c.kill('SIGKILL');
            }
          });
        }, timeoutMs + 5000);
      }
    };
    const onStepMetrics = (rank: number, m: StepMetrics): void => {
      const got = pending.get(m.step) ?? new Array<StepMetrics>(n);
      got[rank] = m;
      pending.set(m.step, got);
      if (got.filter((x) => x !== undefined).length < n) return;
      pending.delete(m.step);
      const withLoss = got.find((x) => x.loss !== null);
      const stepTimeS = Math.max(...got.map((x) => x.stepTimeS));
      const line: LocalStep = {
        step: m.step, loss: withLoss?.loss ?? NaN, stepTimeS, tokensPerS: (o.plan.globalBatch * o.plan.seqLen) / stepTimeS, ranks: got,
      };
      steps.push(line);
      o.onStep?.(line);
    };

    for (let rank = 0; rank < n; rank++) {
      const env = o.kernelThreads === undefined ? process.env : { ...process.env, MIST_NUM_THREADS: String(o.kernelThreads) };
      const child = fork(o.entry ?? workerEntryPath(), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], env });
      children.push(child);
      child.on('message', (msg: WorkerToParent) => {
        o.onMessage?.(msg);
        if (msg.type === 'ready' && msg.address) {
          addresses.set(rank, msg.address);
          if (!gathered && addresses.size === n) {
            gathered = true;
            const peers = Array.from({ length: n }, (_, r) => addresses.get(r) as string);
            children.forEach((c) => c.connected && c.send({ type: 'peers', peers }));
          }
        } else if (msg.type === 'metrics') {
          onStepMetrics(rank, msg.metrics);
        } else if (msg.type === 'done') {
          done.add(rank);
          if (msg.finalLoss !== null) finalLoss = msg.finalLoss;
        } else if (msg.type === 'failed') {
          fail(rank, msg.error);
        }
      });
      child.on('error', (err) => fail(rank, `worker process error: ${err.message}`));
      child.on('exit', (code, signal) => {
        exited.add(rank);
        if (!done.has(rank) && !failures.some((f) => f.rank === rank)) fail(rank, `worker exited (${signal ?? `code ${code}`}) before finishing`);
        settleIfAllExited();
      });
      const assignment: WorkerAssignment = {
        jobId: o.jobId ?? `local-${process.pid}`, attempt: 0, rank, worldSize: n, plan: o.plan, model: o.model, training: o.training,
        run: o.run, backend: o.backend ?? 'cpu', rendezvous: { kind: 'cpu', peers: [] }, deviceIndex: rank, timeoutMs,
      };
      child.send({ type: 'start', assignment });
    }
  });
}
