// One executor worker process per assigned rank: forked with an IPC channel, given its assignment,
// its messages and output lines turned into WorkerEvents, stopped with SIGTERM then SIGKILL after
// a grace period, and its exit (code, signal, last error) reported.
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import type { JobAssignment__Output, LogStream, RunningWorker, WorkerEvent } from '@mist/rpc';
import { workerAssignments } from './assignment';
import { DEFAULT_MAX_LINE_BYTES } from './event-reporter';
import { splitLines } from './line-splitter';
import type { WorkerToParent } from '@mist/executor';

interface Worker {
  jobId: string;
  attempt: number;
  rank: number;
  child: ChildProcess | null;
  pid: number;
  lastError: string;
  stopReason: string;
  killTimer: NodeJS.Timeout | null;
  exited: Promise<void>;
  /** Progress seen in its messages, for the heartbeat (a restarted coordinator learns it there). */
  step: number;
  checkpointStep: number;
  loss: number | null;
}

export interface SupervisorOptions {
  /** The worker entry (.js) to fork. */
  workerScript: string;
  /** Node flags of the workers (default: none, not the agent's own). */
  execArgv?: string[];
  /** Extra environment of the workers. */
  env?: Record<string, string>;
  emit: (event: WorkerEvent) => void;
  /** Longest output line kept (bytes); the rest is cut with a visible marker. */
  maxLineBytes?: number;
  /** Checkpoints only under this directory (`mist agent --checkpoint-root`). */
  checkpointRoot?: string;
}

/** Seconds an exited worker's output may take to drain before its exit is reported. */
const OUTPUT_DRAIN_S = 5;

const key = (jobId: string, attempt: number): string => `${jobId}#${attempt}`;

export class WorkerSupervisor {
  private readonly jobs = new Map<string, Worker[]>();
  /** Every (job, attempt) started here, finished or not: a re-sent assignment must not run twice. */
  private readonly seen = new Set<string>();

  constructor(private readonly o: SupervisorOptions) {}

  private event(w: { jobId: string; attempt: number; rank: number }, body: Omit<WorkerEvent, 'jobId' | 'attempt' | 'rank' | 'time'>): void {
    this.o.emit({ jobId: w.jobId, attempt: w.attempt, rank: w.rank, time: Date.now() / 1000, ...body });
  }

  /** True when this (job, attempt) was started here (assignments are re-sent on reconnection). */
  has(jobId: string, attempt: number): boolean {
    return this.seen.has(key(jobId, attempt));
  }

  /** Starts the assignment's workers; a malformed assignment is reported as every rank failing. */
  start(a: JobAssignment__Output): void {
    if (this.has(a.jobId, a.attempt)) return;
    this.seen.add(key(a.jobId, a.attempt));
    if (this.seen.size > 10_000) this.seen.delete(this.seen.values().next().value as string);
    const list: Worker[] = [];
    this.jobs.set(key(a.jobId, a.attempt), list);
    let ranks;
    try {
      if (!fs.existsSync(this.o.workerScript)) throw new Error(`the worker script ${this.o.workerScript} does not exist`);
      ranks = workerAssignments(a, { checkpointRoot: this.o.checkpointRoot });
      // A GPU worker's device must be one this agent sees (checked before any worker starts).
      for (const r of ranks) if (r.assignment.backend === 'nccl') pinnedGpuEnv(r.rank.deviceIndex, process.env.CUDA_VISIBLE_DEVICES);
    } catch (err) {
      for (const r of a.ranks) {
        this.event({ jobId: a.jobId, attempt: a.attempt, rank: r.rank }, { exited: { exitCode: -1, signal: '', message: `cannot start: ${(err as Error).message}` } });
      }
      return;
    }
    for (const { rank, assignment } of ranks) {
      const env: Record<string, string> = { ...process.env as Record<string, string>, ...this.o.env, MIST_JOB_ID: a.jobId, MIST_RANK: String(rank.rank) };
      if (assignment.rendezvous.kind === 'nccl' && assignment.rendezvous.rootAddress) env.NCCL_COMM_ID = assignment.rendezvous.rootAddress;
      if (assignment.backend === 'nccl') Object.assign(env, pinnedGpuEnv(rank.deviceIndex, process.env.CUDA_VISIBLE_DEVICES));
      const child = fork(this.o.workerScript, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env, execArgv: this.o.execArgv ?? [] });
      let resolveExit!: () => void;
      const w: Worker = {
        jobId: a.jobId, attempt: a.attempt, rank: rank.rank, child, pid: child.pid ?? 0, lastError: '', stopReason: '', killTimer: null,
        step: 0, checkpointStep: 0, loss: null,
        exited: new Promise<void>((resolve) => { resolveExit = resolve; }),
      };
      list.push(w);
      const output = Promise.all([this.pipeLines(w, child.stdout, 'LOG_STREAM_STDOUT'), this.pipeLines(w, child.stderr, 'LOG_STREAM_STDERR')]);
      child.on('spawn', () => {
        w.pid = child.pid ?? 0;
        this.event(w, { started: { pid: w.pid } });
        child.send({ type: 'start', assignment }, (err) => {
          if (err) w.lastError ||= `cannot send the assignment: ${err.message}`;
        });
      });
      child.on('message', (m: WorkerToParent) => this.onMessage(w, m));
      child.on('error', (err) => {
        w.lastError ||= err.message;
      });
      child.on('exit', (code, signal) => {
        if (w.killTimer) clearTimeout(w.killTimer);
        // The exit goes after the worker's last output lines (its pipes may still hold some), but
        // waits at most OUTPUT_DRAIN_S: a grandchild could keep the pipes open.
        let drained: NodeJS.Timeout | undefined;
        void Promise.race([output, new Promise<void>((r) => { drained = setTimeout(r, OUTPUT_DRAIN_S * 1000); })]).then(() => {
          clearTimeout(drained);
          w.child = null;
          const message = w.lastError || (w.stopReason ? `stopped: ${w.stopReason}` : '');
          this.event(w, { exited: { exitCode: code ?? -1, signal: signal ?? '', message } });
          resolveExit();
          const rest = this.jobs.get(key(w.jobId, w.attempt));
          if (rest && rest.every((x) => x.child === null)) this.jobs.delete(key(w.jobId, w.attempt));
        });
      });
    }
  }

  private pipeLines(w: Worker, stream: NodeJS.ReadableStream | null, which: LogStream): Promise<void> {
    if (!stream) return Promise.resolve();
    return splitLines(stream, this.o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, (text) => this.event(w, { log: { stream: which, text } }));
  }

  private onMessage(w: Worker, m: WorkerToParent): void {
    switch (m.type) {
      case 'ready':
        this.event(w, { log: { stream: 'LOG_STREAM_SYSTEM', text: `rank ${w.rank} ready (pid ${m.pid})` } });
        break;
      case 'metrics': {
        const x = m.metrics;
        w.step = Math.max(w.step, x.step);
        if (x.loss !== null && x.loss !== undefined) w.loss = x.loss;
        this.event(w, {
          metrics: {
            step: x.step, stepTime: x.stepTimeS, tokensPerSecond: x.tokensPerS, computeTime: x.computeS, waitTime: x.waitS,
            memoryPeaks: Object.entries(x.peakBytes ?? {}).map(([pool, bytes]) => ({ pool, bytes })),
            ...(x.loss !== null && x.loss !== undefined ? { loss: x.loss } : {}),
          },
        });
        break;
      }
      case 'log':
        this.event(w, { log: { stream: m.level === 'info' ? 'LOG_STREAM_STDOUT' : 'LOG_STREAM_STDERR', text: m.level === 'info' ? m.text : `[${m.level}] ${m.text}` } });
        break;
      case 'checkpoint':
        w.checkpointStep = Math.max(w.checkpointStep, m.step);
        this.event(w, { checkpoint: { step: m.step, dir: m.dir } });
        break;
      case 'resumed':
        w.step = Math.max(w.step, m.step);
        w.checkpointStep = Math.max(w.checkpointStep, m.step);
        this.event(w, { checkpoint: { step: m.step, dir: m.dir, resumed: true } });
        break;
      case 'done':
        this.event(w, { log: { stream: 'LOG_STREAM_SYSTEM', text: `rank ${w.rank} done after ${m.steps} steps${m.finalLoss !== null ? `, final loss ${m.finalLoss}` : ''}` } });
        break;
      case 'failed':
        w.lastError = m.error;
        this.event(w, { log: { stream: 'LOG_STREAM_STDERR', text: `[failed] ${m.error}` } });
        break;
      default:
        break;
    }
  }

  /** Stops a job attempt's workers: a stop message and SIGTERM now, SIGKILL after `graceS`. Resolves when they are gone. */
  stop(jobId: string, attempt: number, graceS: number, reason: string): Promise<void> {
    const list = this.jobs.get(key(jobId, attempt)) ?? [];
    for (const w of list) {
      const child = w.child;
      if (!child || w.stopReason) continue;
      w.stopReason = reason || 'stopped';
      if (child.connected) child.send({ type: 'stop', reason: w.stopReason }, () => undefined);
      child.kill('SIGTERM');
      w.killTimer = setTimeout(() => {
        if (w.child) w.child.kill('SIGKILL');
      }, Math.max(0, graceS) * 1000);
    }
    return Promise.all(list.map((w) => w.exited)).then(() => undefined);
  }

  /** Stops every worker; resolves when all are gone. */
  async stopAll(graceS: number, reason: string): Promise<void> {
    const all = [...this.jobs.values()].flat();
    await Promise.all([...new Set(all.map((w) => key(w.jobId, w.attempt)))].map((k) => {
      const [jobId, attempt] = [k.slice(0, k.lastIndexOf('#')), Number(k.slice(k.lastIndexOf('#') + 1))];
      return this.stop(jobId, attempt, graceS, reason);
    }));
  }

  /** The workers alive now, for the heartbeat. */
  running(): RunningWorker[] {
    return [...this.jobs.values()].flat().filter((w) => w.child !== null)
      .map((w) => ({
        jobId: w.jobId, attempt: w.attempt, rank: w.rank, pid: w.pid, step: w.step, checkpointStep: w.checkpointStep,
        ...(w.loss !== null && Number.isFinite(w.loss) ? { loss: w.loss } : {}),
      }));
  }
}

/**
 * The environment that pins a GPU worker to its device: CUDA_VISIBLE_DEVICES names that one GPU (of
 * the agent's own visible set, when the agent was started with one), so the worker's CUDA device and
 * NCCL see it as device 0, which MIST_CUDA_DEVICE tells the worker.
 */
export function pinnedGpuEnv(deviceIndex: number, agentVisible: string | undefined): Record<string, string> {
  const visible = agentVisible?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (visible && visible.length > 0 && deviceIndex >= visible.length) {
    throw new Error(`GPU ${deviceIndex} is not among the agent's CUDA_VISIBLE_DEVICES=${agentVisible}`);
  }
  return { CUDA_VISIBLE_DEVICES: visible && visible.length > 0 ? visible[deviceIndex] : String(deviceIndex), MIST_CUDA_DEVICE: '0' };
}
