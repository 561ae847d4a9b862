// Types of the test helper test-cluster.js (forked worker processes of the CPU collectives), so that
// the tests that use it are type-checked.
import type { ChildProcess } from 'node:child_process';

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  request(cmd: string, args?: Record<string, unknown>): Promise<unknown>;
  run(scenario: string, args?: Record<string, unknown>): Promise<unknown>;
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startWorkers(count: number): Promise<WorkerProcess[]>;
export function connect(workers: WorkerProcess[], worldSize: number, timeoutMs?: number): Promise<WorkerProcess[]>;
export function runAll(ranks: WorkerProcess[], scenario: string, args?: Record<string, unknown>): Promise<unknown[]>;
export function stopWorkers(workers: WorkerProcess[]): Promise<void>;
