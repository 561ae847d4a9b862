// Test helpers: agent processes started through ts-run.js (real processes, TypeScript sources),
// waiting on their readiness line; free port ranges; checks that processes are gone.
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const FIXTURE_WORKER = path.join(__dirname, 'fixture-worker.js');
const TS_RUN = path.join(__dirname, 'ts-run.js');

export interface AgentProcess {
  child: ChildProcess;
  id: string;
  /** Every stderr line so far (the agent's log). */
  log: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `mist agent`'s process entry and resolves once it has registered. */
export function spawnAgent(coordinator: string, token: string, args: string[], env: Record<string, string> = {}): Promise<AgentProcess> {
  const child = spawn(process.execPath, [TS_RUN, 'apps/agent/src/main.ts', '--coordinator', coordinator, '--worker-script', FIXTURE_WORKER, ...args], {
    env: { ...process.env, MIST_TOKEN: token, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => log.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^agent (\S+) registered$/.exec(line);
      if (m) resolve({ child, id: m[1], log, exited });
    });
    void exited.then(({ code, signal }) => reject(new Error(`agent exited before registering (${code ?? signal}): ${log.join('\n')}`)));
  });
}

/**
 * A range of `count` ports on 127.0.0.1 that are free now: a random base (so parallel test files
 * rarely meet) below Linux's ephemeral range (32768+), where port-0 servers and outgoing
 * connections would otherwise take them.
 */
export async function freePortRange(count: number): Promise<{ first: number; count: number }> {
  for (;;) {
    const first = 10000 + Math.floor(Math.random() * (32000 - 10000 - count));
    let ok = true;
    for (let p = first; p < first + count && ok; p++) ok = await portFree(p);
    if (ok) return { first, count };
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
