// `mist coordinator`: the coordinator server with its command-line options, until SIGINT/SIGTERM.
import * as fs from 'node:fs';
import { type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import { SpecError } from '@mist/core';
import { createLogger, type Logger, LOG_FORMATS, LOG_LEVELS, parseLogFormat, parseLogLevel, splitHostPort } from '@mist/rpc';
import { type RunningDashboard, startDashboard } from './dashboard/http-server';
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
  'agent-token': { type: 'string', valueName: 'TOKEN', description: 'token of the agents\' calls (default: $MIST_AGENT_TOKEN); with it, the --token of users cannot act as an agent, nor this one as a user' },
  'auth-max-failures': { type: 'string', valueName: 'N', description: 'calls with a wrong token from one host within 60 s after which it is throttled, 1 to 1000000 (default 10)' },
  'auth-backoff': { type: 'string', valueName: 'SECONDS', description: 'first throttling of such a host (it doubles on each repeat, up to 300 s or this if larger), 0.1 to 3600 (default 5)' },
  init: { type: 'boolean', description: 'start with an empty job database although --state holds a coordinator\'s files (its database was lost)' },
  'heartbeat-timeout': { type: 'string', valueName: 'SECONDS', description: 'silence after which an agent is lost, 0.5 to 3600 (default 10)' },
  'stop-grace': { type: 'string', valueName: 'SECONDS', description: 'time stopped workers get between SIGTERM and SIGKILL, 0 to 3600 (default 5)' },
  'tune-time-limit': { type: 'string', valueName: 'SECONDS', description: 'longest tuning of a job that sets no tune.timeLimit, 0 (none) to 604800 (default 1800)' },
  'log-max-bytes': { type: 'string', valueName: 'BYTES', description: 'cap of one job\'s log files under --state/logs, rotated at half of it, 1 MiB to 64 GiB (default 64 MiB)' },
  'retain-jobs': { type: 'string', valueName: 'N', description: 'keep the newest N jobs; older finished ones are removed (default 0: all)' },
  'retain-days': { type: 'string', valueName: 'DAYS', description: 'remove finished jobs that ended more than DAYS ago (default 0: never)' },
  tuner: { type: 'string', valueName: 'HOST:PORT', description: 'a remote Tuner service to use instead of tuning in-process' },
  'tls-cert': { type: 'string', valueName: 'PEM', description: 'server certificate chain (turns on mutual TLS with --tls-key and --tls-ca)' },
  'tls-key': { type: 'string', valueName: 'PEM', description: 'server private key' },
  'tls-ca': { type: 'string', valueName: 'PEM', description: 'CA certificate that signs the clients\' (agents\', CLI\'s) certificates' },
  'metrics-listen': { type: 'string', valueName: 'HOST:PORT', description: 'serve Prometheus metrics at http://HOST:PORT/metrics (no token: bind it to the monitoring network; default: none)' },
  'http-listen': {
    type: 'string', valueName: 'HOST:PORT',
    description: 'serve the web dashboard at http://HOST:PORT/ (jobs, agents, live charts, logs, plan pictures; log in with the user token; default: none)',
  },
  'log-format': { type: 'string', valueName: LOG_FORMATS.join('|'), description: 'text: the usual lines (default); json: one JSON object per line with level, time and job/agent ids' },
  'log-level': { type: 'string', valueName: LOG_LEVELS.join('|'), description: 'least severe level written (default info)' },
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

/** A numeric option in [min, max]; a SpecError (exit 2) naming it otherwise. */
function bounded(values: Values, name: string, fallback: number, min: number, max: number, what: string, integer = false): number {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new SpecError('option', [{ field: `--${name}`, value: v, message: `expected ${what} in [${min}, ${max}]` }]);
  }
  return n;
}

/** `--auth-max-failures` and `--auth-backoff`; the other limits keep @mist/rpc's defaults. */
function authThrottleOptions(values: Values): { maxFailures?: number; backoffS?: number; maxBackoffS?: number } {
  const out: { maxFailures?: number; backoffS?: number; maxBackoffS?: number } = {};
  if (str(values, 'auth-max-failures') !== undefined) out.maxFailures = bounded(values, 'auth-max-failures', 10, 1, 1e6, 'a call count', true);
  if (str(values, 'auth-backoff') !== undefined) {
    out.backoffS = bounded(values, 'auth-backoff', 5, 0.1, 3600, 'seconds');
    out.maxBackoffS = Math.max(300, out.backoffS);
  }
  return out;
}

/** Shortest shared token accepted: 12 characters (12 random base64 characters carry 72 bits). */
const MIN_TOKEN_CHARS = 12;

function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** A SpecError (exit 2) from a parser's error about `--name`. */
function optionError(name: string, value: string, parse: () => void): void {
  try {
    parse();
  } catch (err) {
    throw new SpecError('option', [{ field: `--${name}`, value, message: (err as Error).message.replace(/^--[\w-]+: got "[^"]*"; /, '') }]);
  }
}

/** The process log as `--log-format` and `--log-level` ask (a SpecError naming a bad value). */
export function loggerFromArgs(values: Values, write: (line: string) => void): Logger {
  const format = str(values, 'log-format');
  const level = str(values, 'log-level');
  optionError('log-format', format ?? '', () => parseLogFormat(format));
  optionError('log-level', level ?? '', () => parseLogLevel(level));
  return createLogger({ format: parseLogFormat(format), level: parseLogLevel(level), name: 'coordinator', write });
}

/** Starts the coordinator from command-line values (throws on a bad option). */
export async function startFromArgs(values: Values, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<RunningCoordinator> {
  const stateDir = str(values, 'state');
  if (!stateDir) throw new Error('--state DIR is required (the job database lives there)');
  const token = str(values, 'token') ?? env.MIST_TOKEN;
  if (!token) throw new Error('a token is required: --token TOKEN or the MIST_TOKEN environment variable');
  if (token.length < MIN_TOKEN_CHARS) {
    throw new SpecError('option', [{ field: '--token', value: `${token.length} characters`, message: `at least ${MIN_TOKEN_CHARS} characters (e.g. \`openssl rand -base64 24\`)` }]);
  }
  const agentToken = str(values, 'agent-token') ?? env.MIST_AGENT_TOKEN;
  if (agentToken !== undefined && agentToken.length < MIN_TOKEN_CHARS) {
    throw new SpecError('option', [{ field: '--agent-token', value: `${agentToken.length} characters`, message: `at least ${MIN_TOKEN_CHARS} characters` }]);
  }
  if (agentToken !== undefined && agentToken === token) {
    throw new SpecError('option', [{ field: '--agent-token', value: '(same as --token)', message: 'must differ from the user token' }]);
  }
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
  const listen = str(values, 'listen') ?? '0.0.0.0:7070';
  const metricsListen = str(values, 'metrics-listen');
  if (metricsListen !== undefined) optionError('metrics-listen', metricsListen, () => splitHostPort(metricsListen));
  const options = {
    heartbeatTimeoutS: bounded(values, 'heartbeat-timeout', 10, 0.5, 3600, 'seconds'),
    stopGraceS: bounded(values, 'stop-grace', 5, 0, 3600, 'seconds'),
    tuneTimeLimitS: bounded(values, 'tune-time-limit', 1800, 0, 604800, 'seconds'),
    logMaxBytes: bounded(values, 'log-max-bytes', 64 * 1024 * 1024, 1024 * 1024, 64 * 1024 ** 3, 'bytes', true),
    authThrottle: authThrottleOptions(values),
    retention: {
      maxJobs: bounded(values, 'retain-jobs', 0, 0, 1e9, 'a job count', true),
      maxAgeS: bounded(values, 'retain-days', 0, 0, 36500, 'days') * 86400,
    },
  };
  if (!tls && !isLoopback(listen)) {
    log(`WARNING: serving on ${listen} without TLS: the token and the jobs travel in plaintext; use --tls-cert/--tls-key/--tls-ca off a trusted network`);
  }
  return startCoordinator({
    listen,
    stateDir,
    token,
    ...(agentToken !== undefined ? { agentToken } : {}),
    tls,
    init: values.init === true,
    ...options,
    tuner: tuner ? { address: tuner, client: { token, tls } } : undefined,
    log,
    extraServices: addPlanningServices,
    ...(metricsListen !== undefined ? { metricsListen } : {}),
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
  const logger = loggerFromArgs(o.values, o.err);
  const env = o.env ?? process.env;
  const httpListen = str(o.values, 'http-listen');
  if (httpListen !== undefined) {
    optionError('http-listen', httpListen, () => splitHostPort(httpListen, '--http-listen'));
    if (str(o.values, 'tls-cert') !== undefined) {
      throw new Error('--http-listen with mutual TLS is not implemented yet: the dashboard would need a client certificate of its own');
    }
  }
  const c = await startFromArgs(o.values, env, (line) => logger.line(line));
  let dashboard: RunningDashboard | undefined;
  if (httpListen !== undefined) {
    try {
      dashboard = await startDashboard({ listen: httpListen, coordinator: c.address, token: (str(o.values, 'token') ?? env.MIST_TOKEN)!, log: (l) => logger.line(l) });
    } catch (err) {
      await c.stop();
      throw err;
    }
    if (!isLoopback(httpListen)) logger.line(`WARNING: the dashboard on ${httpListen} is plain HTTP: the token travels in plaintext; keep it on a trusted network`);
  }
  // The readiness line stays plain text on stdout in both formats: scripts and tests wait for it.
  o.out(`coordinator listening on ${c.address}`);
  if (c.metricsAddress) o.out(`coordinator metrics on http://${c.metricsAddress}/metrics`);
  if (dashboard) o.out(`coordinator dashboard on ${dashboard.url}`);
  logger.log('info', `listening on ${c.address}${c.metricsAddress ? `, metrics on ${c.metricsAddress}` : ''}${dashboard ? `, dashboard on ${dashboard.url}` : ''}`);
  const why = await (o.until ?? signalled());
  logger.line(`${why}: stopping`);
  await dashboard?.close();
  await c.stop();
}
