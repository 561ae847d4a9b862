// HiGHS (the WebAssembly build of the `highs` package), run in a worker thread of its own. The
// WebAssembly build can abort (`RuntimeError: Aborted()`, "null function or function signature
// mismatch") on some inter-stage MILPs and leaves its heap unusable afterwards (highs-js issues #41,
// #45); in a worker such a failure, or a solve that runs past its deadline, costs the worker only:
// it is terminated, the caller gets a HighsFailure, and the next solve starts a fresh one.
// Note: highs-js reads the solution from the solver's own printout, so `output_flag` must stay on;
// nothing is printed to the console unless `log_to_console` is set.
import { Worker } from 'node:worker_threads';

export interface HighsColumn {
  Primal?: number;
}

export interface HighsSolution {
  Status: string;
  ObjectiveValue?: number;
  Columns: Record<string, HighsColumn>;
}

export type HighsOptions = Record<string, number | string | boolean>;

/** HiGHS could not solve a model: it aborted, its worker died, or the deadline passed. */
export class HighsFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HighsFailure';
  }
}

// The worker's whole program: load HiGHS once, then answer { id, lp, options } with { id, solution } or { id, error }.
function workerSource(highsPath: string): string {
  return `
const { parentPort } = require('node:worker_threads');
const loading = require(${JSON.stringify(highsPath)})();
parentPort.on('message', (req) => {
  loading.then((highs) => {
    try {
      const s = highs.solve(req.lp, req.options);
      parentPort.postMessage({ id: req.id, solution: { Status: s.Status, ObjectiveValue: s.ObjectiveValue, Columns: s.Columns } });
    } catch (err) {
      parentPort.postMessage({ id: req.id, error: String(err && err.message ? err.message : err), fatal: true });
    }
  }, (err) => parentPort.postMessage({ id: req.id, error: 'loading HiGHS: ' + String(err && err.message ? err.message : err), fatal: true }));
});
`;
}

interface Pending {
  resolve: (s: HighsSolution) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

class HighsWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  dead = false;

  constructor() {
    this.worker = new Worker(workerSource(require.resolve('highs')), { eval: true });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; solution?: HighsSolution; error?: string; fatal?: boolean }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.settle(m.id);
      if (m.solution) p.resolve(m.solution);
      else {
        if (m.fatal) this.kill();
        p.reject(new HighsFailure(m.error ?? 'HiGHS failed'));
      }
    });
    const die = (why: string): void => {
      this.dead = true;
      for (const [id, p] of [...this.pending]) {
        this.settle(id);
        p.reject(new HighsFailure(why));
      }
    };
    this.worker.on('error', (err) => die(`HiGHS worker crashed: ${err.message}`));
    this.worker.on('exit', (code) => die(`HiGHS worker exited (code ${code})`));
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    this.pending.delete(id);
  }

  kill(): void {
    this.dead = true;
    void this.worker.terminate();
  }

  solve(lp: string, options: HighsOptions, deadlineMs: number | null): Promise<HighsSolution> {
    const id = this.nextId++;
    return new Promise<HighsSolution>((resolve, reject) => {
      const timer = deadlineMs === null ? null : setTimeout(() => {
        this.settle(id);
        this.kill();
        reject(new HighsFailure(`HiGHS did not finish within ${(deadlineMs / 1000).toFixed(1)} s`));
      }, deadlineMs);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, lp, options });
    });
  }
}

let current: HighsWorker | null = null;

/**
 * Solves an LP/MILP in CPLEX LP format. `deadlineS` bounds the wall time of the call (the worker is
 * terminated past it); HiGHS's own `time_limit` option, when given, stops the search earlier with
 * its best solution. Throws a HighsFailure when HiGHS cannot produce an answer.
 */
export async function solveWithHighs(lp: string, options: HighsOptions = {}, deadlineS: number | null = null): Promise<HighsSolution> {
  if (!current || current.dead) current = new HighsWorker();
  return current.solve(lp, options, deadlineS === null ? null : Math.max(1, deadlineS * 1000));
}

/** Terminates the solver's worker (the next solve starts a new one). */
export function stopHighs(): void {
  current?.kill();
  current = null;
}
