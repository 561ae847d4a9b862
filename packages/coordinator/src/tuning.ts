// Tuning a submitted job: the cluster is the job's (when given) or the shape of the chosen agents'
// free devices; the hardware profile is the job's measured one, or the datasheet profile of the
// cluster's GPU. The tuner runs in a worker thread (@mist/tuner; the event loop stays free; at the
// time limit the search returns its best plan so far, and a cancel asks it to stop) or, when
// configured, as a remote Tuner service.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  builtinHardwareProfile, type ClusterSpec, clusterDevices, type HardwareProfile, parseClusterShorthand, parsePlan, type Plan, profileOnCluster,
} from '@mist/core';
import {
  callUnary, createClient, deadlineIn, type ClientOptions, type Prediction, type TuneOptions__Output,
} from '@mist/rpc';
import type { TuneGap, TuneResult, TuneStop } from '@mist/tuner';
import type { AgentRecord } from './agent-registry';
import type { ValidatedJob } from './job-spec';
import type { TuneWorkerCommand, TuneWorkerInput, TuneWorkerMessage } from './tune-worker';

/** Progress of a tuning, as WatchJob carries it. */
export interface TuningProgress {
  phase: string;
  done: number;
  total: number;
  candidatesEvaluated: number;
  bestIterationTimeS: number | null;
  elapsedS: number;
}

export interface TuningControl {
  /** Seconds the search may take (0: no limit); at it the search returns the best plan found so far. */
  timeLimitS: number;
  /** Aborting stops the search (the job was cancelled). */
  signal: AbortSignal;
  onProgress?: (p: TuningProgress) => void;
  /** After an abort: whether the search answered the stop within the grace (`stopped`) or its thread was terminated. */
  onStopped?: (how: 'stopped' | 'terminated', afterS: number) => void;
}

/** The search was stopped by its signal. */
export class TuningAborted extends Error {
  constructor() {
    super('tuning was stopped');
    this.name = 'TuningAborted';
  }
}

/** A worker thread running tune-worker.ts (from the TypeScript sources through the repository's ts-register in a source checkout). */
function startTuneWorker(input: TuneWorkerInput): Worker {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `tune-worker${ext === '.ts' ? '.ts' : '.js'}`);
  if (ext !== '.ts') return new Worker(entry, { workerData: input });
  const register = path.resolve(__dirname, '../../../tools/scripts/ts-register.js');
  return new Worker(`require(${JSON.stringify(register)}); require(${JSON.stringify(entry)});`, { eval: true, workerData: input });
}

/** Seconds past the time limit after which a tuning thread that has not answered is terminated. */
export const TUNE_HARD_MARGIN_S = 30;
/** Seconds a stopped (cancelled) search gets to wind down before its thread is terminated. */
const STOP_GRACE_S = 5;

/**
 * Runs @mist/tuner in a worker thread. The search itself honours the time limit (it answers with
 * its best plan so far); the thread is terminated only when it has not answered TUNE_HARD_MARGIN_S
 * past it. An abort rejects with TuningAborted at once and asks the search to stop (a message to
 * the thread), terminating the thread if it has not ended STOP_GRACE_S later.
 */
function tuneOffThread(input: TuneWorkerInput, control: TuningControl): Promise<TuneResult> {
  const started = performance.now();
  return new Promise<TuneResult>((resolve, reject) => {
    if (control.signal.aborted) {
      reject(new TuningAborted());
      return;
    }
    const limited = control.timeLimitS > 0;
    const worker = startTuneWorker({ ...input, ...(limited ? { timeLimitS: control.timeLimitS } : {}) });
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let abortedAt: number | null = null;
    const stopped = (how: 'stopped' | 'terminated'): void => {
      if (abortedAt === null) return;
      control.onStopped?.(how, (performance.now() - abortedAt) / 1000);
      abortedAt = null;
    };
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(hardTimer);
      control.signal.removeEventListener('abort', onAbort);
      fn();
    };
    const end = (): void => {
      clearTimeout(killTimer);
      void worker.terminate();
    };
    const onAbort = (): void => finish(() => {
      reject(new TuningAborted());
      abortedAt = performance.now();
      worker.postMessage({ kind: 'stop' } satisfies TuneWorkerCommand);
      // A stopping search must not hold the coordinator's process open.
      worker.unref();
      killTimer = setTimeout(() => {
        stopped('terminated');
        end();
      }, STOP_GRACE_S * 1000);
      killTimer.unref();
    });
    control.signal.addEventListener('abort', onAbort);
    const hardTimer = limited
      ? setTimeout(() => {
        end();
        finish(() => reject(new Error(`the tuning thread did not answer within ${TUNE_HARD_MARGIN_S} s after its time limit of ` +
          `${control.timeLimitS} s and was terminated (raise tune.timeLimit in the job, or the coordinator's --tune-time-limit)`)));
      }, (control.timeLimitS + TUNE_HARD_MARGIN_S) * 1000)
      : undefined;
    worker.on('message', (m: TuneWorkerMessage) => {
      if (m.kind === 'progress') {
        if (!settled) control.onProgress?.({ ...m, elapsedS: (performance.now() - started) / 1000 });
        return;
      }
      stopped('stopped');
      end();
      if (m.kind === 'result') finish(() => resolve(m.result));
      else finish(() => reject(new Error(m.message)));
    });
    worker.on('error', (err) => {
      end();
      finish(() => reject(err));
    });
    worker.on('exit', (code) => {
      clearTimeout(killTimer);
      finish(() => reject(new Error(`the tuning thread exited with code ${code} before it answered`)));
    });
  });
}

export interface TunedPlan {
  plan: Plan;
  predicted: Prediction | null;
  /** Set when the search stopped at its time limit: the plan is the best found, at most `gap` from the optimum. */
  stoppedBy: TuneStop | null;
  gap: TuneGap | null;
}

export interface RemoteTuner {
  address: string;
  client: ClientOptions;
}

/** The devices tuning may use on each agent: free ones, the same count per agent (the smallest), as nodes x gpusPerNode. */
export function agentsShape(agents: Array<{ agent: AgentRecord; free: number }>): { nodes: number; gpusPerNode: number } {
  const usable = agents.filter((a) => a.free > 0);
  return { nodes: usable.length, gpusPerNode: usable.length ? Math.min(...usable.map((a) => a.free)) : 0 };
}

/** The cluster and profile to tune for. Throws a clear error when they cannot be derived. */
export function tuningTarget(job: ValidatedJob, agents: Array<{ agent: AgentRecord; free: number }>): { cluster: ClusterSpec; profile: HardwareProfile } {
  const shape = agentsShape(agents);
  if (shape.nodes === 0) throw new Error('no live agent has a free device to tune for');
  if (job.cluster) {
    const profile = job.profile ?? builtinHardwareProfile(job.cluster, job.training.computeDtype);
    return { cluster: job.cluster, profile: { ...profile, cluster: job.cluster } };
  }
  if (job.profile) {
    // A measured profile describes one host kind; the cluster's shape comes from the agents.
    const cluster = { ...job.profile.cluster, name: `${shape.nodes}x${shape.gpusPerNode}-${job.profile.cluster.gpu.name}`, ...shape };
    return { cluster, profile: profileOnCluster(job.profile, cluster) };
  }
  const kinds = new Set(agents.flatMap((a) => a.agent.devices.map((d) => (d.kind === 'DEVICE_KIND_CUDA' && d.gpu ? d.gpu : `${d.kind}:${d.name}`))));
  const [only] = [...kinds];
  if (kinds.size !== 1 || only.includes(':')) {
    throw new Error(`cannot tune for the agents' devices (${[...kinds].join(', ')}): give the job a cluster (e.g. "1x4-l4") ` +
      'or a hardware profile measured with `mist profile` (CPU devices and unrecognised GPUs have no datasheet profile)');
  }
  const cluster = parseClusterShorthand(`${shape.nodes}x${shape.gpusPerNode}-${only}`);
  return { cluster, profile: builtinHardwareProfile(cluster, job.training.computeDtype) };
}

/**
 * Null when the agents can hold a plan for `cluster` (enough hosts, devices per host, devices in
 * all); else why not. Checked before tuning: a plan for 512 devices cannot run on 4.
 */
export function clusterMismatch(cluster: ClusterSpec, agents: AgentRecord[]): string | null {
  const perHost = agents.map((a) => a.devices.length);
  const total = perHost.reduce((n, d) => n + d, 0);
  const devices = clusterDevices(cluster);
  const have = `the ${agents.length} chosen agent(s) have ${total} device(s)${agents.length ? ` (${agents.map((a) => `${a.hostName}: ${a.devices.length}`).slice(0, 8).join(', ')}${agents.length > 8 ? ', ...' : ''})` : ''}`;
  if (devices > total) return `cluster ${cluster.name} has ${devices} devices (${cluster.nodes} x ${cluster.gpusPerNode}); ${have}`;
  if (cluster.nodes > agents.length) return `cluster ${cluster.name} has ${cluster.nodes} hosts; ${have}`;
  if (cluster.gpusPerNode > Math.max(0, ...perHost)) return `cluster ${cluster.name} has ${cluster.gpusPerNode} devices per host; ${have}`;
  return null;
}

/** The headline figures of a cost-model estimate, as the protos carry them. */
export function predictionOf(p: NonNullable<TuneResult['predicted']>): Prediction {
  return { iterationTime: p.iterationTimeS, tokensPerSecond: p.tokensPerS, mfu: p.mfu, stagePeakMemory: p.stages.map((s) => s.peakMemoryBytes) };
}

/** Runs the tuner for the job; throws with the tuner's reason when no plan fits. */
export async function tuneJob(
  job: ValidatedJob, target: { cluster: ClusterSpec; profile: HardwareProfile }, control: TuningControl, remote?: RemoteTuner,
): Promise<TunedPlan> {
  const options = job.tune!;
  if (remote) {
    const client = createClient('Tuner', remote.address, remote.client);
    control.signal.addEventListener('abort', () => client.close());
    try {
      const res = await callUnary(client, 'tune', {
        model: { specJson: JSON.stringify(job.model) },
        cluster: { specJson: JSON.stringify(target.cluster) },
        trainingJson: JSON.stringify(job.training),
        options: { ...options, timeLimit: control.timeLimitS, skipBaselines: true },
        profileJson: JSON.stringify(target.profile),
      }, { deadline: deadlineIn(control.timeLimitS > 0 ? control.timeLimitS + TUNE_HARD_MARGIN_S : 3600) });
      // TuneResponse carries no gap: a remote search stopped at its limit looks complete here.
      return { plan: parsePlan(JSON.parse(res.planJson), { model: job.model, cluster: target.cluster }), predicted: res.predicted, stoppedBy: null, gap: null };
    } finally {
      client.close();
    }
  }
  const result = await tuneOffThread({ model: job.model, training: job.training, profile: target.profile, cluster: target.cluster, options }, control);
  if (!result.plan || !result.predicted) {
    if (result.stoppedBy === 'time-limit') {
      throw new Error(`tuning stopped at its time limit of ${control.timeLimitS} s before it found a plan that fits ` +
        '(raise tune.timeLimit in the job, or the coordinator\'s --tune-time-limit)');
    }
    const why = result.noFit ? `: ${result.noFit.message}` : '';
    throw new Error(`no plan of the ${result.space} space fits ${job.model.name} on ${target.cluster.name} (${clusterDevices(target.cluster)} devices)${why}`);
  }
  return {
    plan: result.plan,
    predicted: predictionOf(result.predicted),
    stoppedBy: result.stoppedBy ?? null,
    gap: result.gap ?? null,
  };
}
