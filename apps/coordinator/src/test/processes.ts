// Real coordinator and agent processes for the apps/coordinator tests (TypeScript sources through
// the agent's ts-run.js test helper): start one, wait for its readiness line, and clean everything
// up after each test (processes killed, folders removed, connections closed).
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { CoordinatorConnection } from '@mist/coordinator';

export const ROOT = path.resolve(__dirname, '../../../..');
export const TS_RUN = path.join(ROOT, 'apps/agent/src/test/ts-run.js');
export const FIXTURE_WORKER = path.join(ROOT, 'apps/agent/src/test/fixture-worker.js');

export interface Proc {
  child: ChildProcess;
  /** The readiness line's match (group 1: the address or id it printed). */
  match: RegExpExecArray;
  /** The exit code, or the signal that ended it. */
  exited: Promise<number | string | null>;
  stderr: string[];
}

export class ProcessHarness {
  private readonly cleanups: Array<() => unknown> = [];

  /** `token`: the user token every process and connection uses; `prefix`: of the temporary folders. */
  constructor(readonly token: string, private readonly prefix: string) {}

  /** Runs `fn` at cleanup (last deferred first). */
  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** For afterEach. */
  async cleanup(): Promise<void> {
    for (const c of this.cleanups.splice(0).reverse()) await c();
  }

  tmpDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), this.prefix));
    this.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Starts a TypeScript entry as a process; resolves at the first stdout line matching `ready`, rejects if it exits first. */
  start(entry: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
    const child = spawn(process.execPath, [TS_RUN, entry, ...args], { env: { ...process.env, MIST_TOKEN: this.token, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
    const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    this.defer(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    return new Promise((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        const match = ready.exec(line);
        if (match) resolve({ child, match, exited, stderr });
      });
      void exited.then((code) => reject(Object.assign(new Error(`${entry} exited (${code}) before it was ready:\n${stderr.join('\n')}`), { code })));
    });
  }

  /** A coordinator process on an ephemeral port of 127.0.0.1 (match[1]: its address). */
  coordinatorProcess(state: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
    return this.start('apps/coordinator/src/main.ts', ['--listen', '127.0.0.1:0', '--state', state, ...extra], /^coordinator listening on (\S+)$/, env);
  }

  /** An agent process with `devices` CPU devices and the fixture worker (match[1]: its id). */
  agentProcess(address: string, host: string, devices: number, env: NodeJS.ProcessEnv = {}, extra: string[] = []): Promise<Proc> {
    return this.start('apps/agent/src/main.ts', ['--coordinator', address, '--cpu-devices', String(devices), '--host-name', host, '--address', '127.0.0.1',
      '--worker-script', FIXTURE_WORKER, ...extra], /^agent (\S+) registered$/, env);
  }

  /** A client connection with the harness's token, closed at cleanup. */
  connection(address: string, timeoutS = 30): CoordinatorConnection {
    const c = new CoordinatorConnection(address, { token: this.token }, timeoutS);
    this.defer(() => c.close());
    return c;
  }
}
