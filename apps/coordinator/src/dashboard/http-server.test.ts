// The dashboard over HTTP against an in-process coordinator: no data without the user token, the
// login form and its cookie, the bearer token, the JSON endpoints, the static assets from
// node_modules, the picture of a job's plan (estimated for the job's cluster) and the series of the
// metrics its (fake) agent reports.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CoordinatorConnection, type RunningCoordinator, startCoordinator } from '@mist/coordinator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeAgent } from '../../../../packages/coordinator/src/test/fake-agent';
import { type RunningDashboard, startDashboard } from './http-server';

const TOKEN = 'dashboard-test-token';
const PLAN = path.resolve(__dirname, '../../../../examples/plans/gpt-tiny-2-stages.json');

describe('the coordinator dashboard over HTTP', () => {
  let coordinator: RunningCoordinator;
  let dashboard: RunningDashboard;
  let jobId: string;
  let agent: FakeAgent;
  const bearer = { Authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    coordinator = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN });
    dashboard = await startDashboard({ listen: '127.0.0.1:0', coordinator: coordinator.address, token: TOKEN });
    agent = new FakeAgent(coordinator.address, TOKEN, 'test-host', 4);
    await agent.register();
    agent.watch();
    const conn = new CoordinatorConnection(coordinator.address, { token: TOKEN });
    const job = await conn.submit({
      name: 'two-stages', model: { name: 'gpt-tiny' }, trainingJson: JSON.stringify({ globalBatch: 16, seqLen: 64 }),
      planJson: fs.readFileSync(PLAN, 'utf8'), cluster: { shorthand: '1x4-l4' }, run: { steps: 10 }, backend: 'BACKEND_CPU',
    });
    jobId = job.id;
    conn.close();
  });

  afterAll(async () => {
    await dashboard?.close();
    agent?.close();
    await coordinator?.stop();
  });

  it('sends a browser without a session to the login form and refuses the API', async () => {
    const page = await fetch(dashboard.url, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login');
    const api = await fetch(`${dashboard.url}api/overview`);
    expect(api.status).toBe(401);
    expect(await api.text()).not.toContain(jobId);
    const wrongBearer = await fetch(`${dashboard.url}api/overview`, { headers: { Authorization: 'Bearer not-the-token' } });
    expect(wrongBearer.status).toBe(401);
    const plan = await fetch(`${dashboard.url}jobs/${jobId}/plan.svg`, { redirect: 'manual' });
    expect(plan.status).toBe(303);
  });

  it('logs in with the token: an HttpOnly SameSite=Strict session cookie opens the pages; a wrong token does not', async () => {
    const wrong = await fetch(`${dashboard.url}login`, { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const ok = await fetch(`${dashboard.url}login`, { method: 'POST', body: new URLSearchParams({ token: TOKEN }), redirect: 'manual' });
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^mist_session=[\w-]+; HttpOnly; SameSite=Strict; Path=\//);
    const session = cookie.split(';')[0];
    const page = await fetch(dashboard.url, { headers: { cookie: session } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`data-job="${jobId}"`);
    expect(html).toContain('<script src="/static/uplot.iife.min.js">');
    // Logging out ends the session.
    await fetch(`${dashboard.url}logout`, { method: 'POST', headers: { cookie: session }, redirect: 'manual' });
    expect((await fetch(`${dashboard.url}api/overview`, { headers: { cookie: session } })).status).toBe(401);
  });

  it('serves the overview and the job as JSON with the bearer token, with the predicted figures per stage of the job\'s plan', async () => {
    const overview = await (await fetch(`${dashboard.url}api/overview`, { headers: bearer })).json() as {
      jobs: Array<{ id: string; name: string; steps: number }>; agents: Array<{ host: string; devices: Array<{ kind: string }> }>;
    };
    expect(overview.agents.map((a) => [a.host, a.devices.map((d) => d.kind).join(',')])).toEqual([['test-host', 'cpu,cpu,cpu,cpu']]);
    expect(overview.jobs.map((j) => [j.id, j.name, j.steps])).toEqual([[jobId, 'two-stages', 10]]);
    const job = await (await fetch(`${dashboard.url}api/jobs/${jobId}`, { headers: bearer })).json() as {
      job: { id: string }; planAvailable: boolean; stages: Array<{ stage: number; predictedPeakBytes: number; measuredStepS: number | null }>;
    };
    expect(job.job.id).toBe(jobId);
    expect(job.planAvailable).toBe(true);
    expect(job.stages.map((s) => s.stage)).toEqual([0, 1]);
    expect(job.stages.every((s) => s.predictedPeakBytes > 0 && s.measuredStepS === null)).toBe(true);
    const missing = await fetch(`${dashboard.url}api/jobs/job-00000000`, { headers: bearer });
    expect(missing.status).toBe(404);
  });

  it('follows the metrics and logs the ranks report: loss series from the last stage, measured figures per stage', async () => {
    const ranks = [[0, 0], [1, 0], [2, 1], [3, 1]]; // the plan: stage 0 dp=2, stage 1 tp=2
    const reports = [];
    for (const step of [1, 2, 3]) {
      for (const [rank, stage] of ranks) {
        reports.push({ jobId, attempt: 0, rank, metrics: {
          step, stage, stepTime: 0.1 * step, tokensPerSecond: 1000 * step, computeTime: 0.05, waitTime: 0.05,
          memoryPeaks: [{ pool: 'total', bytes: 1000 * (rank + 1) }], ...(stage === 1 ? { loss: 5 - step } : {}),
        } });
      }
    }
    reports.push({ jobId, attempt: 0, rank: 2, log: { stream: 'LOG_STREAM_STDOUT' as const, text: 'hello from rank 2' } });
    await agent.report(reports);
    type JobJson = { points: Array<{ step: number; loss: number }>; logs: Array<{ text: string }>; nextLog: number; stages: Array<{ measuredStepS: number | null; measuredPeakBytes: number | null }> };
    const read = async (q = ''): Promise<JobJson> => (await fetch(`${dashboard.url}api/jobs/${jobId}${q}`, { headers: bearer })).json() as Promise<JobJson>;
    // The dashboard follows the job's event stream: poll its endpoint as the page does until the events arrive.
    let j = await read();
    for (const until = Date.now() + 10_000; (j.points.length < 3 || j.logs.length < 1) && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 50));
      j = await read();
    }
    expect(j.points.map((p) => [p.step, p.loss])).toEqual([[1, 4], [2, 3], [3, 2]]);
    expect(j.logs.map((l) => l.text)).toEqual(['hello from rank 2']);
    expect(j.stages.map((s) => s.measuredStepS)).toEqual([0.2, 0.2]);
    expect(j.stages.map((s) => s.measuredPeakBytes)).toEqual([2000, 4000]);
    // Only what is new after `since` (a step) and `log` (a log index).
    const next = await read(`?since=2&log=${j.nextLog}`);
    expect(next.points.map((p) => p.step)).toEqual([3]);
    expect(next.logs).toEqual([]);
  });

  it('draws the job\'s plan: two stage rows of the plan\'s G=4 forwards', async () => {
    const res = await fetch(`${dashboard.url}jobs/${jobId}/plan.svg`, { headers: bearer });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/svg+xml');
    const svg = await res.text();
    const rows = [...svg.matchAll(/<g class="stage" data-stage="\d">(.*?)<\/g>/g)].map((m) => m[1]);
    expect(rows.map((r) => (r.match(/class="box forward"/g) ?? []).length)).toEqual([4, 4]);
  });

  it('serves uPlot from node_modules and its own client script, without a session', async () => {
    const js = await fetch(`${dashboard.url}static/uplot.iife.min.js`);
    expect(js.status).toBe(200);
    expect(await js.text()).toContain('uPlot');
    const css = await fetch(`${dashboard.url}static/uplot.min.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    const client = await (await fetch(`${dashboard.url}static/dashboard.js`)).text();
    expect(client).toContain('/api/jobs/');
  });

  it('throttles token guesses per host as the gRPC API does: after 10 wrong tokens even the right one waits (429, Retry-After)', async () => {
    const lines: string[] = [];
    const own = await startDashboard({ listen: '127.0.0.1:0', coordinator: coordinator.address, token: TOKEN, log: (l) => lines.push(l) });
    try {
      const login = (token: string) => fetch(`${own.url}login`, { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
      for (let i = 0; i < 10; i++) expect((await login(`guess-${i}`)).status).toBe(401);
      const blocked = await login(TOKEN);
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await fetch(`${own.url}api/overview`, { headers: bearer })).status).toBe(429);
      expect(lines.some((l) => /^dashboard: refused dashboard login from .*: missing or wrong user token/.test(l))).toBe(true);
    } finally {
      await own.close();
    }
  });
});
