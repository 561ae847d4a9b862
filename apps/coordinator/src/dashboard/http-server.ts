// The coordinator's web dashboard (`mist coordinator --http-listen HOST:PORT`): an HTTP server that
// reads the coordinator through its own gRPC API with the user token, so it shows exactly what a
// user may see, and only to a holder of that token (auth.ts). Pages are rendered on the server
// (pages.ts); /api/* serve JSON for the client script's polling; /static/* serve the client script
// and uPlot from node_modules (nothing is fetched from elsewhere).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import { CoordinatorCallError, CoordinatorConnection } from '@mist/coordinator';
import { type AgentInfo__Output, AuthThrottle, type Job__Output, splitHostPort, status } from '@mist/rpc';
import { bearerToken, DashboardAuth } from './auth';
import { CLIENT_SCRIPT } from './client-script';
import { compareStages, jobPictureSvg, jobPlan, type JobPlan } from './job-plan';
import { JobSeriesStore } from './job-series';
import { agentRows, errorPage, jobPage, jobRows, loginPage, overviewPage, stageRows } from './pages';
import { agentSummary, isTerminal, jobSummary } from './views';

export interface DashboardOptions {
  /** `host:port` to serve on; port 0 picks a free one. */
  listen: string;
  /** `host:port` of the coordinator's gRPC API (a wildcard host is reached on the loopback). */
  coordinator: string;
  /** The coordinator's user token: the dashboard's password and its credential for the API. */
  token: string;
  log?: (line: string) => void;
}

export interface RunningDashboard {
  /** `host:port` as bound. */
  address: string;
  /** http://host:port/ */
  url: string;
  close(): Promise<void>;
}

function staticFile(rel: string): Buffer {
  return fs.readFileSync(require.resolve(`uplot/${rel}`));
}

const STATIC: Record<string, { type: string; body: () => Buffer }> = {
  '/static/uplot.iife.min.js': { type: 'text/javascript; charset=utf-8', body: () => staticFile('dist/uPlot.iife.min.js') },
  '/static/uplot.min.css': { type: 'text/css; charset=utf-8', body: () => staticFile('dist/uPlot.min.css') },
  '/static/dashboard.js': { type: 'text/javascript; charset=utf-8', body: () => Buffer.from(CLIENT_SCRIPT) },
};

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY',
    'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:", ...headers,
  });
  res.end(body);
}

const html = (res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void =>
  send(res, status, 'text/html; charset=utf-8', body, headers);
const json = (res: http.ServerResponse, status: number, value: unknown): void => send(res, status, 'application/json', JSON.stringify(value));

function readBody(req: http.IncomingMessage, limit = 4096): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
      if (body.length > limit) {
        reject(new Error('request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** The gRPC address to dial: a wildcard listen address is reached on the loopback. */
export function dialAddress(address: string): string {
  const { host, port } = splitHostPort(address, '--listen');
  return host === '0.0.0.0' || host === '::' || host === '' ? `127.0.0.1:${port}` : address;
}

export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  const { host, port } = splitHostPort(o.listen, '--http-listen');
  const conn = new CoordinatorConnection(dialAddress(o.coordinator), { token: o.token });
  const auth = new DashboardAuth(o.token);
  // Token guesses are throttled per host as on the gRPC API (same rule and back-off, rpc auth-throttle.ts).
  const throttle = new AuthThrottle({ log: (line) => (o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`dashboard: ${line}`) });
  const series = new JobSeriesStore(conn);
  // The estimate of a job's plan, by job id and plan (a plan does not change while the job runs).
  const plans = new Map<string, { planJson: string; result: JobPlan | Error }>();
  const planOf = (job: Job__Output, agents: AgentInfo__Output[]): JobPlan | Error | null => {
    if (!job.planJson) return null;
    const cached = plans.get(job.id);
    if (cached && cached.planJson === job.planJson) return cached.result;
    let result: JobPlan | Error;
    try {
      result = jobPlan(job, agents);
    } catch (err) {
      // Without workers the profile is not known yet: try again on the next request.
      if (job.workers.length === 0) return err as Error;
      result = err as Error;
    }
    plans.set(job.id, { planJson: job.planJson, result });
    return result;
  };

  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const p = url.pathname;
    const stat = STATIC[p];
    if (stat && req.method === 'GET') return send(res, 200, stat.type, stat.body(), { 'Cache-Control': 'max-age=3600' });
    if (p === '/login' && req.method === 'GET') return html(res, 200, loginPage(false));
    const peer = req.socket.remoteAddress ?? 'unknown';
    const presentsToken = (p === '/login' && req.method === 'POST') || bearerToken(req) !== null;
    if (presentsToken) {
      const verdict = throttle.verdict(peer);
      if (verdict.throttled) {
        const wait = String(Math.ceil(verdict.retryAfterS));
        return send(res, 429, 'text/plain; charset=utf-8', `too many wrong tokens from ${peer}; retry in ${wait} s\n`, { 'Retry-After': wait });
      }
    }
    if (p === '/login' && req.method === 'POST') {
      const token = new URLSearchParams(await readBody(req)).get('token') ?? '';
      const session = auth.login(token);
      if (!session) {
        throttle.refused(peer, 'dashboard login', 'user token');
        return html(res, 401, loginPage(true));
      }
      res.writeHead(303, { Location: '/', 'Set-Cookie': auth.cookie(session, false) });
      return void res.end();
    }
    if (!auth.allowed(req)) {
      if (presentsToken) throttle.refused(peer, `dashboard ${p}`, 'user token');
      if (p.startsWith('/api/')) return json(res, 401, { error: 'log in: POST /login with the token, or send Authorization: Bearer TOKEN' });
      res.writeHead(303, { Location: '/login' });
      return void res.end();
    }
    if (p === '/logout' && req.method === 'POST') {
      auth.logout(req);
      res.writeHead(303, { Location: '/login', 'Set-Cookie': DashboardAuth.clearCookie() });
      return void res.end();
    }
    if (req.method !== 'GET') return html(res, 405, errorPage(405, `${req.method} is not served here`));
    if (p === '/' || p === '/api/overview') {
      const [agents, listed] = await Promise.all([conn.agents(), conn.list([], 200)]);
      // The list carries summaries; the jobs still going are read whole for their steps and prediction.
      const jobs = await Promise.all(listed.map((x, i) => (i < 50 && !isTerminal(jobSummary(x).state) ? conn.get(x.id).catch(() => x) : x)));
      const a = agents.map(agentSummary);
      const j = jobs.map(jobSummary);
      if (p === '/') return html(res, 200, overviewPage(a, j));
      return json(res, 200, { agents: a, jobs: j, html: { agents: agentRows(a), jobs: jobRows(j) } });
    }
    const m = /^\/(api\/)?jobs\/([^/]+)(\/plan\.svg)?$/.exec(p);
    if (!m) return html(res, 404, errorPage(404, `no page ${p}`));
    const jobId = decodeURIComponent(m[2]);
    const job = await conn.get(jobId);
    series.ensure(jobId);
    if (m[3]) {
      const plan = planOf(job, await conn.agents());
      if (plan === null) return html(res, 404, errorPage(404, `job ${jobId} has no plan yet`));
      if (plan instanceof Error) return html(res, 409, errorPage(409, `no picture of job ${jobId}'s plan: ${plan.message}`));
      return send(res, 200, 'image/svg+xml', jobPictureSvg(job, plan));
    }
    const summary = jobSummary(job);
    if (!m[1]) return html(res, 200, jobPage(summary));
    const since = Number(url.searchParams.get('since') ?? 0) || 0;
    const logSince = Number(url.searchParams.get('log') ?? 0) || 0;
    const data = series.read(jobId, since, logSince);
    const plan = planOf(job, await conn.agents());
    const ok = plan !== null && !(plan instanceof Error);
    return json(res, 200, {
      job: summary, terminal: isTerminal(summary.state), points: data.points, logs: data.logs, nextLog: data.nextLog, watchError: data.error,
      planAvailable: ok, planError: plan instanceof Error ? plan.message : null,
      stages: ok ? compareStages(plan, data.stages) : null, stagesHtml: ok ? stageRows(compareStages(plan, data.stages)) : null,
    });
  };

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: Error) => {
      const notFound = err instanceof CoordinatorCallError && err.code === status.NOT_FOUND;
      if (res.headersSent) return void res.end();
      if (req.url?.startsWith('/api/')) json(res, notFound ? 404 : 502, { error: err.message });
      else html(res, notFound ? 404 : 502, errorPage(notFound ? 404 : 502, err.message));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const address = `${shown}:${bound.port}`;
  return {
    address,
    url: `http://${address}/`,
    close: async () => {
      series.close();
      conn.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
