// The executor worker process (one per device): the parent (agent, launcher) forks this file and
// sends {type: 'start', assignment}; the worker reports over IPC (protocol.ts) and exits 0 after
// 'done', 1 after 'failed'.
import type { ParentToWorker, WorkerToParent } from './protocol';
import { runWorker } from './run-worker';

let stopReason: string | null = null;
let peersResolve: ((p: string[]) => void) | null = null;
const peersPromise = new Promise<string[]>((resolve) => {
  peersResolve = resolve;
});
let started = false;

function send(msg: WorkerToParent): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

function finish(code: number): void {
  process.exitCode = code;
  if (process.connected) process.disconnect();
}

process.on('message', (msg: ParentToWorker) => {
  if (msg.type === 'stop') stopReason = msg.reason;
  else if (msg.type === 'peers') peersResolve?.(msg.peers);
  else if (msg.type === 'start' && !started) {
    started = true;
    const a = msg.assignment;
    runWorker(a, { send: (m) => void send(m), peers: () => peersPromise, stopRequested: () => stopReason }).then(
      async () => {
        await send({ type: 'log', rank: a.rank, level: 'info', text: 'worker finished' });
        finish(0);
      },
      async (err: unknown) => {
        await send({ type: 'failed', rank: a.rank, error: err instanceof Error ? err.message : String(err) });
        finish(1);
      },
    );
  }
});

// The parent went away: nothing to report to, stop.
process.on('disconnect', () => {
  if (!started || process.exitCode === undefined) process.exit(process.exitCode ?? 1);
});
