// `mist coordinator`: the coordinator server with its command-line options, until SIGINT/SIGTERM.
import * as fs from 'node:fs';
import { type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import { addPlanningServices } from './services/planning-services';

export interface CliOption {
  type: 'string' | 'boolean';
  description: string;
  valueName?: string;
}

export const COORDINATOR_CLI_OPTIONS: Record<string, CliOption> = {
  listen: { type: 'string', valueName: 'HOST:PORT', description: 'address to serve on (default 0.0.0.0:7070; port 0 picks a free one)' },
  state: { type: 'string', valueName: 'DIR', description: 'directory of the job database (SQLite), created when missing (required)' },
  token: { type: 'string', valueName: 'TOKEN', description: 'shared RPC token every call must carry (default: $MIST_TOKEN)' },
  'heartbeat-timeout': { type: 'string', valueName: 'SECONDS', description: 'silence after which an agent is lost (default 10)' },
  'stop-grace': { type: 'string', valueName: 'SECONDS', description: 'time stopped workers get between SIGTERM and SIGKILL (default 5)' },
  tuner: { type: 'string', valueName: 'HOST:PORT', description: 'a remote Tuner service to use instead of tuning in-process' },
  'tls-cert': { type: 'string', valueName: 'PEM', description: 'server certificate chain (turns on mutual TLS with --tls-key and --tls-ca)' },
  'tls-key': { type: 'string', valueName: 'PEM', description: 'server private key' },
  'tls-ca': { type: 'string', valueName: 'PEM', description: 'CA certificate that signs the clients\' (agents\', CLI\'s) certificates' },
};

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface RunCoordinatorOptions {
  values: Values;
  env?: NodeJS.ProcessEnv;
  /** Where the readiness line and the coordinator's log go. */
  out: (line: string) => void;
  err: (line: string) => void;
  /** Resolves when the coordinator must stop (default: SIGINT or SIGTERM). */
  until?: Promise<string>;
}

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function seconds(values: Values, name: string, fallback: number): number {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: got "${v}"; expected seconds > 0`);
  return n;
}

/** Starts the coordinator from command-line values (throws on a bad option). */
export async function startFromArgs(values: Values, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<RunningCoordinator> {
  const stateDir = str(values, 'state');
  if (!stateDir) throw new Error('--state DIR is required (the job database lives there)');
  const token = str(values, 'token') ?? env.MIST_TOKEN;
  if (!token) throw new Error('a token is required: --token TOKEN or the MIST_TOKEN environment variable');
  const tlsNames = ['tls-cert', 'tls-key', 'tls-ca'].filter((n) => str(values, n) !== undefined);
  if (tlsNames.length !== 0 && tlsNames.length !== 3) throw new Error('mutual TLS needs --tls-cert, --tls-key and --tls-ca together');
  const read = (n: string): Buffer => {
    try {
      return fs.readFileSync(str(values, n)!);
    } catch (e) {
      throw new Error(`--${n}: cannot read ${str(values, n)} (${(e as Error).message})`);
    }
  };
  const tls = tlsNames.length === 3 ? { certChain: read('tls-cert'), privateKey: read('tls-key'), rootCert: read('tls-ca') } : undefined;
  const tuner = str(values, 'tuner');
  return startCoordinator({
    listen: str(values, 'listen') ?? '0.0.0.0:7070',
    stateDir,
    token,
    tls,
    heartbeatTimeoutS: seconds(values, 'heartbeat-timeout', 10),
    stopGraceS: seconds(values, 'stop-grace', 5),
    tuner: tuner ? { address: tuner, client: { token, tls } } : undefined,
    log,
    extraServices: addPlanningServices,
  });
}

function signalled(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/** Runs until `until` (or a signal); prints `coordinator listening on HOST:PORT` when ready. */
export async function runCoordinator(o: RunCoordinatorOptions): Promise<void> {
  const c = await startFromArgs(o.values, o.env ?? process.env, (line) => o.err(`[coordinator] ${line}`));
  o.out(`coordinator listening on ${c.address}`);
  const why = await (o.until ?? signalled());
  o.err(`[coordinator] ${why}: stopping`);
  await c.stop();
}
