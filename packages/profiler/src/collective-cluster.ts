// Local ranks for the collective and overlap measurements: forks `ranks` worker processes on
// 127.0.0.1, gathers their listen addresses and connects them into one CPU communicator, waiting on
// messages only. A worker that dies fails every pending request with its exit code.
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConnectResult, WorkerMessage, WorkerRequest } from './worker-protocol';

/** The worker entry: compiled JavaScript beside this file, or the TypeScript source with a require hook. */
function workerEntry(): { file: string; execArgv: string[] } {
  const js = path.join(__dirname, 'collective-worker.js');
  if (fs.existsSync(js)) return { file: js, execArgv: [] };
  return { file: path.join(__dirname, 'collective-worker.ts'), execArgv: ['-r', path.resolve(__dirname, '../../../tools/scripts/ts-register.js')] };
}

class WorkerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor() {
    const { file, execArgv } = workerEntry();
    this.child = fork(file, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('exit', (code, signal) => {
        this.failure = new Error(`profiler worker exited (${code ?? signal})`);
        reject(this.failure);
        for (const w of this.waiting.values()) w.reject(this.failure);
        this.waiting.clear();
      });
      this.child.on('message', (msg: WorkerMessage) => {
        if ('ready' in msg) return resolve();
        const entry = this.waiting.get(msg.id);
        if (!entry) return;
        this.waiting.delete(msg.id);
        if (msg.ok) entry.resolve(msg.value);
        else entry.reject(new Error(`profiler worker: ${msg.error}`));
      });
    });
  }

  request<T>(req: WorkerRequest): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, ...req });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    await this.exited;
  }
}

export class CollectiveCluster {
  private constructor(private readonly workers: WorkerProcess[], readonly connect: ConnectResult[]) {}

  get ranks(): number {
    return this.workers.length;
  }

  /** Forks and connects `ranks` local ranks, each with `threads` kernel threads. */
  static async start(ranks: number, threads: number): Promise<CollectiveCluster> {
    const workers = Array.from({ length: ranks }, () => new WorkerProcess());
    try {
      await Promise.all(workers.map((w) => w.ready));
      const peers = await Promise.all(workers.map((w) => w.request<string>({ cmd: 'listen' })));
      const connect = await Promise.all(workers.map((w, rank) =>
        w.request<ConnectResult>({ cmd: 'connect', rank, worldSize: ranks, peers, threads })));
      return new CollectiveCluster(workers, connect);
    } catch (err) {
      await Promise.all(workers.map((w) => w.stop()));
      throw err;
    }
  }

  /** Sends the same request to every rank; resolves with the per-rank replies. */
  all<T>(req: WorkerRequest): Promise<T[]> {
    return Promise.all(this.workers.map((w) => w.request<T>(req)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
