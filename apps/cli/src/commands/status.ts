// `mist status [JOB]` and `mist agents`: what the coordinator knows about jobs and agents. Also the
// connection flags every client command shares (--coordinator, --token, mutual TLS).
import * as fs from 'node:fs';
import { CoordinatorConnection } from '@mist/coordinator';
import type { AgentInfo__Output, Job__Output, JobState } from '@mist/rpc';
import { formatBytes } from '@mist/core';
import { type Command, intOpt, JSON_OPTION, type OptionSpec, type ParsedValues, stringOpt, UsageError } from '../cli/command';
import { renderTable } from '../cli/table';

export const CONNECTION_OPTIONS: Record<string, OptionSpec> = {
  coordinator: { type: 'string', valueName: 'HOST:PORT', description: 'the coordinator (default: $MIST_COORDINATOR or 127.0.0.1:7070)' },
  token: { type: 'string', valueName: 'TOKEN', description: 'shared RPC token (default: $MIST_TOKEN)' },
  'tls-cert': { type: 'string', valueName: 'PEM', description: 'client certificate chain (mutual TLS, with --tls-key and --tls-ca)' },
  'tls-key': { type: 'string', valueName: 'PEM', description: 'client private key' },
  'tls-ca': { type: 'string', valueName: 'PEM', description: 'CA certificate that signed the coordinator\'s certificate' },
};

/** A connection to the coordinator from the shared flags (token from --token or MIST_TOKEN). */
export function connect(values: ParsedValues, env: NodeJS.ProcessEnv = process.env): CoordinatorConnection {
  const address = stringOpt(values, 'coordinator') ?? env.MIST_COORDINATOR ?? '127.0.0.1:7070';
  const token = stringOpt(values, 'token') ?? env.MIST_TOKEN;
  if (!token) throw new UsageError('a token is required: --token TOKEN or the MIST_TOKEN environment variable');
  const files = ['tls-cert', 'tls-key', 'tls-ca'].map((n) => stringOpt(values, n));
  if (files.some((f) => f !== undefined) && files.some((f) => f === undefined)) {
    throw new UsageError('mutual TLS needs --tls-cert, --tls-key and --tls-ca together');
  }
  const read = (f: string): Buffer => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new UsageError(`cannot read ${f} (${(err as Error).message})`);
    }
  };
  const tls = files[0] ? { certChain: read(files[0]), privateKey: read(files[1]!), rootCert: read(files[2]!) } : undefined;
  return new CoordinatorConnection(address, { token, tls });
}

/** Runs `fn` with a connection and closes it after. */
export async function withConnection<T>(values: ParsedValues, fn: (c: CoordinatorConnection) => Promise<T>): Promise<T> {
  const c = connect(values);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** The job states `--state` takes (the proto's JOB_STATE_* names in lower case). */
const JOB_STATE_NAMES = ['queued', 'tuning', 'starting', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled', 'interrupted'];

export const shortState = (s: string): string => s.replace(/^(JOB|AGENT|WORKER)_STATE_/, '').toLowerCase();

function when(seconds: number): string {
  return seconds > 0 ? new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** One line per stage of a plan: layers, mesh, dp x tp, micro-batch, checkpointing, ZeRO. */
export function planSummary(planJson: string): string[] {
  if (!planJson) return [];
  const plan = JSON.parse(planJson) as {
    gradAccumSteps: number; globalBatch: number;
    stages: Array<{ layers: [number, number]; mesh: { nodes: number; gpusPerNode: number }; dp: number; tp: number; microBatchSize: number; ckptLayers: number; zero: number }>;
  };
  return [
    `plan: ${plan.stages.length} stage(s), global batch ${plan.globalBatch}, ${plan.gradAccumSteps} micro-batches per iteration`,
    ...plan.stages.map((s, i) => `  stage ${i}: layers ${s.layers[0]}-${s.layers[1]}, mesh ${s.mesh.nodes}x${s.mesh.gpusPerNode}, dp ${s.dp} x tp ${s.tp}, ` +
      `micro-batch ${s.microBatchSize}, ckpt ${s.ckptLayers}, zero ${s.zero}`),
  ];
}

export function describeJob(j: Job__Output): string {
  const lines = [
    `job ${j.id} (${j.spec?.name || '-'}): ${shortState(j.state)}${j.message ? ` — ${j.message}` : ''}`,
    `attempt ${j.attempt}, step ${j.step}${j.loss !== undefined ? `, loss ${j.loss.toFixed(4)}` : ''}` +
      `${j.checkpointStep ? `, last checkpoint at step ${j.checkpointStep}` : ''}`,
    `submitted ${when(j.submitTime)}, started ${when(j.startTime)}, ended ${when(j.endTime)}`,
    ...planSummary(j.planJson),
  ];
  if (j.predicted) lines.push(`predicted: ${j.predicted.iterationTime.toFixed(4)} s/iteration, ${j.predicted.tokensPerSecond.toFixed(0)} tokens/s`);
  if (j.workers.length > 0) {
    lines.push('', renderTable(j.workers, [
      { header: 'rank', value: (w) => w.rank },
      { header: 'stage', value: (w) => w.stage },
      { header: 'agent', value: (w) => w.agentId },
      { header: 'host', value: (w) => w.hostName },
      { header: 'device', value: (w) => w.deviceIndex },
      { header: 'state', value: (w) => shortState(w.state) },
      { header: 'exit', value: (w) => (w.state === 'WORKER_STATE_EXITED' ? String(w.exitCode) : '') },
    ]).trimEnd());
  }
  return lines.join('\n') + '\n';
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'list the coordinator\'s jobs, or show one job: state, plan, workers',
  usage: 'mist status [JOB] [--limit N] [--state STATE] [--page TOKEN] [--coordinator HOST:PORT] [--token TOKEN] [--json]',
  examples: [
    'MIST_TOKEN=secret mist status', 'mist status job-1a2b3c4d --coordinator 10.0.0.1:7070 --token secret', 'mist status --state running --limit 200',
    'mist status --json',
  ],
  positionals: { min: 0, max: 1, names: 'at most one job id' },
  options: {
    limit: { type: 'string', valueName: 'N', description: 'newest N jobs, 1 to 1000 (default 50); the next page\'s token is printed after them' },
    state: { type: 'string', valueName: 'STATE', description: `only jobs in this state (${JOB_STATE_NAMES.join(', ')}); repeat with commas` },
    page: { type: 'string', valueName: 'TOKEN', description: 'the page after a previous listing (its "next page" token)' },
    ...CONNECTION_OPTIONS, ...JSON_OPTION,
  },
  async run(values, positionals, io) {
    return withConnection(values, async (c) => {
      if (positionals[0]) {
        const job = await c.get(positionals[0]);
        io.stdout(values.json ? `${JSON.stringify(job, null, 2)}\n` : describeJob(job));
        return 0;
      }
      const limit = intOpt(values, 'limit', 50)!;
      if (limit > 1000) throw new UsageError(`--limit: got ${limit}; at most 1000 (page on with --page)`);
      const states = (stringOpt(values, 'state') ?? '').split(',').filter(Boolean).map((s) => {
        const name = s.trim().toLowerCase();
        if (!JOB_STATE_NAMES.includes(name)) throw new UsageError(`--state: got "${s}"; allowed: ${JOB_STATE_NAMES.join(', ')}`);
        return `JOB_STATE_${name.toUpperCase()}` as JobState;
      });
      const page = await c.listPage({ states, pageSize: limit, pageToken: stringOpt(values, 'page') ?? '' });
      const jobs = page.jobs;
      if (values.json) {
        io.stdout(`${JSON.stringify(page, null, 2)}\n`);
        return 0;
      }
      if (jobs.length === 0) {
        io.stdout('no jobs\n');
        return 0;
      }
      const more = page.nextPageToken ? `(newest first; more: mist status --limit ${limit} --page ${page.nextPageToken})\n` : '';
      io.stdout(renderTable(jobs, [
        { header: 'id', value: (j) => j.id },
        { header: 'name', value: (j) => j.spec?.name || '-' },
        { header: 'state', value: (j) => shortState(j.state) },
        { header: 'attempt', value: (j) => j.attempt },
        { header: 'step', value: (j) => j.step },
        { header: 'loss', value: (j) => (j.loss !== undefined ? j.loss.toFixed(4) : '-'), align: 'right' },
        { header: 'ranks', value: (j) => j.ranks || j.workers.length },
        { header: 'submitted', value: (j) => when(j.submitTime) },
        { header: 'message', value: (j) => (j.message.length > 60 ? `${j.message.slice(0, 57)}...` : j.message) },
      ]) + more);
      return 0;
    });
  },
};

function agentRow(a: AgentInfo__Output): Record<string, string | number> {
  const kinds = [...new Set(a.devices.map((d) => (d.kind === 'DEVICE_KIND_CUDA' ? (d.gpu || d.name) : 'cpu')))].join(',');
  return {
    id: a.agentId, host: a.hostName, address: a.address, state: shortState(a.state), devices: `${a.devices.length} ${kinds}`,
    memory: formatBytes(a.devices.reduce((n, d) => n + d.memoryBytes, 0)),
    backends: a.backends.filter((b) => b.available).map((b) => b.backend.replace('BACKEND_', '').toLowerCase()).join(','),
    jobs: a.jobIds.join(',') || '-',
    heartbeat: a.lastHeartbeatTime > 0 ? `${Math.max(0, Date.now() / 1000 - a.lastHeartbeatTime).toFixed(1)} s ago` : '-',
  };
}

export const agentsCommand: Command = {
  name: 'agents',
  summary: 'list the agents registered with the coordinator: devices, backends, jobs, last heartbeat',
  usage: 'mist agents [--coordinator HOST:PORT] [--token TOKEN] [--json]',
  examples: ['MIST_TOKEN=secret mist agents', 'mist agents --coordinator 10.0.0.1:7070 --token secret --json'],
  options: { ...CONNECTION_OPTIONS, ...JSON_OPTION },
  async run(values, _positionals, io) {
    return withConnection(values, async (c) => {
      const agents = await c.agents();
      if (values.json) {
        io.stdout(`${JSON.stringify(agents, null, 2)}\n`);
        return 0;
      }
      if (agents.length === 0) {
        io.stdout('no agents registered\n');
        return 0;
      }
      const rows = agents.map(agentRow);
      io.stdout(renderTable(rows, ['id', 'host', 'address', 'state', 'devices', 'memory', 'backends', 'jobs', 'heartbeat']
        .map((k) => ({ header: k, value: (r: Record<string, string | number>) => String(r[k]) }))));
      return 0;
    });
  },
};
