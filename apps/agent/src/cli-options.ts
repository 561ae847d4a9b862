// The command line of the agent, shared by its own process entry (main.ts) and `mist agent`.
import * as fs from 'node:fs';
import { type ClientTlsOptions, createLogger, type Logger, LOG_FORMATS, LOG_LEVELS, parseLogFormat, parseLogLevel, splitHostPort } from '@mist/rpc';
import type { AgentOptions } from './agent';

export interface CliOption {
  type: 'string' | 'boolean';
  description: string;
  valueName?: string;
}

export const AGENT_CLI_OPTIONS: Record<string, CliOption> = {
  coordinator: { type: 'string', valueName: 'HOST:PORT', description: 'the coordinator to register with (default: $MIST_COORDINATOR or 127.0.0.1:7070)' },
  token: { type: 'string', valueName: 'TOKEN', description: 'shared RPC token (default: $MIST_TOKEN)' },
  'agent-token': { type: 'string', valueName: 'TOKEN', description: 'the agents\' token when the coordinator has one (--agent-token there; default: $MIST_AGENT_TOKEN); used instead of --token' },
  'cpu-devices': { type: 'string', valueName: 'N', description: 'offer N CPU devices (hosts without GPUs)' },
  devices: { type: 'string', valueName: 'LIST', description: 'CUDA ordinals to offer, e.g. 0,1 (default: every GPU nvidia-smi lists)' },
  address: { type: 'string', valueName: 'HOST', description: 'address at which other hosts reach this host\'s workers (default: the host name)' },
  'host-name': { type: 'string', valueName: 'NAME', description: 'name to register under (default: the host name)' },
  'worker-ports': { type: 'string', valueName: 'FIRST:COUNT', description: 'ports for the workers\' rendezvous (default 29500:512)' },
  'checkpoint-root': { type: 'string', valueName: 'DIR', description: 'jobs may write checkpoints only under DIR (default: any absolute path)' },
  'worker-script': { type: 'string', valueName: 'FILE', description: 'executor worker entry to fork (default: @mist/executor\'s)' },
  'tls-cert': { type: 'string', valueName: 'PEM', description: 'client certificate chain (mutual TLS, with --tls-key and --tls-ca)' },
  'tls-key': { type: 'string', valueName: 'PEM', description: 'client private key' },
  'tls-ca': { type: 'string', valueName: 'PEM', description: 'CA certificate that signed the coordinator\'s certificate' },
  'tls-server-name': { type: 'string', valueName: 'NAME', description: 'name in the coordinator\'s certificate, when not its address' },
  'metrics-listen': { type: 'string', valueName: 'HOST:PORT', description: 'serve Prometheus metrics at http://HOST:PORT/metrics (no token: bind it to the monitoring network; default: none)' },
  'log-format': { type: 'string', valueName: LOG_FORMATS.join('|'), description: 'text: the usual lines (default); json: one JSON object per line with level, time and job/rank/agent ids' },
  'log-level': { type: 'string', valueName: LOG_LEVELS.join('|'), description: 'least severe level written (default info)' },
};

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag}: got "${text}"; expected a positive integer`);
  return n;
}

/** Reads --tls-cert/--tls-key/--tls-ca (all three or none). */
export function tlsFromArgs(values: Values): { cert: Buffer; key: Buffer; ca: Buffer } | undefined {
  const names = ['tls-cert', 'tls-key', 'tls-ca'];
  const given = names.filter((n) => str(values, n) !== undefined);
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new Error(`mutual TLS needs --tls-cert, --tls-key and --tls-ca (got ${given.map((g) => `--${g}`).join(', ')})`);
  const read = (n: string): Buffer => {
    try {
      return fs.readFileSync(str(values, n)!);
    } catch (err) {
      throw new Error(`--${n}: cannot read ${str(values, n)} (${(err as Error).message})`);
    }
  };
  return { cert: read('tls-cert'), key: read('tls-key'), ca: read('tls-ca') };
}

export function tokenFromArgs(values: Values, env: NodeJS.ProcessEnv): string {
  const token = str(values, 'token') ?? env.MIST_TOKEN;
  if (!token) throw new Error('a token is required: --token TOKEN or the MIST_TOKEN environment variable');
  return token;
}

/** The token of the agent's calls: --agent-token / MIST_AGENT_TOKEN when given, else the shared token. */
export function agentTokenFromArgs(values: Values, env: NodeJS.ProcessEnv): string {
  const agentToken = str(values, 'agent-token') ?? env.MIST_AGENT_TOKEN;
  if (agentToken !== undefined) {
    if (agentToken === '') throw new Error('--agent-token: got an empty token');
    return agentToken;
  }
  const token = str(values, 'token') ?? env.MIST_TOKEN;
  if (!token) throw new Error('a token is required: --agent-token TOKEN (or $MIST_AGENT_TOKEN), or --token TOKEN (or $MIST_TOKEN) when the coordinator has no agent token');
  return token;
}

export function agentOptionsFromArgs(values: Values, env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const o: AgentOptions = {
    coordinator: str(values, 'coordinator') ?? env.MIST_COORDINATOR ?? '127.0.0.1:7070',
    token: agentTokenFromArgs(values, env),
  };
  const cpu = str(values, 'cpu-devices');
  if (cpu !== undefined) o.cpuDevices = positiveInt(cpu, 'cpu-devices');
  const devices = str(values, 'devices');
  if (devices !== undefined) {
    if (cpu !== undefined) throw new Error('--devices and --cpu-devices exclude each other');
    o.devices = devices.split(',').map((d) => {
      const n = Number(d.trim());
      if (!Number.isInteger(n) || n < 0) throw new Error(`--devices: got "${d}"; expected CUDA ordinals like 0,1`);
      return n;
    });
  }
  const address = str(values, 'address');
  if (address) o.address = address;
  const hostName = str(values, 'host-name');
  if (hostName) o.hostName = hostName;
  const ports = str(values, 'worker-ports');
  if (ports !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(ports);
    const first = m ? Number(m[1]) : NaN;
    const count = m ? Number(m[2]) : NaN;
    if (!m || first < 1 || count < 1 || first + count > 65536) throw new Error(`--worker-ports: got "${ports}"; expected FIRST:COUNT inside 1..65535, e.g. 29500:512`);
    o.portRange = { first, count };
  }
  const root = str(values, 'checkpoint-root');
  if (root !== undefined) {
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`--checkpoint-root: ${root} is not a directory`);
    o.checkpointRoot = fs.realpathSync(root);
  }
  const script = str(values, 'worker-script');
  if (script) o.workerScript = script;
  const metricsListen = str(values, 'metrics-listen');
  if (metricsListen !== undefined) {
    splitHostPort(metricsListen);
    o.metricsListen = metricsListen;
  }
  const tls = tlsFromArgs(values);
  if (tls) {
    const serverName = str(values, 'tls-server-name');
    const clientTls: ClientTlsOptions = { rootCert: tls.ca, certChain: tls.cert, privateKey: tls.key };
    if (serverName) clientTls.serverName = serverName;
    o.tls = clientTls;
  }
  return o;
}

/** The agent's log as `--log-format` and `--log-level` ask; JSON lines carry the agent's id once it has one. */
export function agentLoggerFromArgs(values: Values, write: (line: string) => void, agentId: () => string | null): Logger {
  return createLogger({
    format: parseLogFormat(str(values, 'log-format')), level: parseLogLevel(str(values, 'log-level')), name: 'agent', write,
    base: () => {
      const id = agentId();
      return id ? { agent: id } : {};
    },
  });
}
