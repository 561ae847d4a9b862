// The dashboard's server-rendered pages: the login form, the overview (agents and their devices,
// jobs with state and progress) and a job (charts, predicted vs measured per stage, plan picture,
// logs). The first render carries the data; the client script (client-script.ts) keeps it live.
import { formatBytes, formatSeconds } from '@mist/core';
import { type AgentSummary, type JobSummary } from './views';

export function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:0;color:#222}header{background:#263238;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff}main{padding:1em 1.2em}table{border-collapse:collapse;font-size:.9em;margin:.4em 0 1.2em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{border:1px solid #ddd;padding:.3em}pre#logs{background:#111;color:#ddd;height:22em;overflow:auto;padding:.5em;font-size:.8em}
.state-running{color:#1565c0}.state-succeeded{color:#2e7d32}.state-failed,.state-interrupted{color:#c62828}.err{color:#c62828}form.inline{display:inline;margin-left:auto}`;

function page(title: string, body: string, opts: { nav?: boolean; script?: boolean } = {}): string {
  const nav = opts.nav === false ? '' : '<a href="/">jobs and agents</a><form class="inline" method="post" action="/logout"><button>log out</button></form>';
  const scripts = opts.script ? '<link rel="stylesheet" href="/static/uplot.min.css"><script src="/static/uplot.iife.min.js"></script><script src="/static/dashboard.js" defer></script>' : '';
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} - Mist</title>` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style>${scripts}</head>` +
    `<body><header><strong>Mist coordinator</strong>${nav}</header><main>${body}</main></body></html>\n`;
}

export function loginPage(failed: boolean): string {
  return page('log in', `<h1>Log in</h1><p>Give the coordinator's user token (the one <code>mist launch</code> uses, MIST_TOKEN).</p>` +
    (failed ? '<p class="err" id="login-error">Wrong token.</p>' : '') +
    '<form method="post" action="/login"><input type="password" name="token" id="token" autocomplete="current-password" size="40" autofocus> ' +
    '<button type="submit" id="login">log in</button></form>', { nav: false });
}

function progress(j: JobSummary): string {
  return j.steps > 0 ? `<progress max="${j.steps}" value="${j.step}"></progress> ${j.step} / ${j.steps}` : String(j.step);
}

export function jobRows(jobs: JobSummary[]): string {
  return jobs.map((j) => `<tr data-job="${esc(j.id)}"><td><a href="/jobs/${encodeURIComponent(j.id)}">${esc(j.id)}</a></td><td>${esc(j.name)}</td>` +
    `<td class="state-${esc(j.state)}">${esc(j.state)}</td><td>${progress(j)}</td><td>${j.loss === null ? '-' : j.loss.toFixed(4)}</td>` +
    `<td>${j.predictedIterationS === null ? '-' : esc(formatSeconds(j.predictedIterationS))}</td><td>${esc(j.message)}</td></tr>`).join('');
}

export function agentRows(agents: AgentSummary[]): string {
  return agents.map((a) => `<tr data-agent="${esc(a.id)}"><td>${esc(a.host)}</td><td>${esc(a.id)}</td><td>${esc(a.state)}</td><td>${esc(a.address)}</td>` +
    `<td>${a.devices.map((d) => esc(`${d.kind}:${d.index} ${d.gpu || d.name}${d.memoryBytes > 0 ? ` (${formatBytes(d.memoryBytes)})` : ''}`)).join('<br>')}</td>` +
    `<td>${a.jobs.map(esc).join(', ') || '-'}</td></tr>`).join('');
}

export function overviewPage(agents: AgentSummary[], jobs: JobSummary[]): string {
  return page('overview', '<h1>Jobs</h1><table id="jobs"><thead><tr><th>job</th><th>name</th><th>state</th><th>progress</th><th>loss</th>' +
    `<th>predicted iteration</th><th>message</th></tr></thead><tbody>${jobRows(jobs)}</tbody></table>` +
    '<h1>Agents</h1><table id="agents"><thead><tr><th>host</th><th>agent</th><th>state</th><th>address</th><th>devices</th><th>jobs</th></tr></thead>' +
    `<tbody>${agentRows(agents)}</tbody></table>`, { script: true }).replace('<main>', '<main data-page="overview">');
}

export function jobPage(j: JobSummary): string {
  const body = `<h1>Job ${esc(j.id)} <small>${esc(j.name)}</small></h1>` +
    `<p>state <span id="job-state" class="state-${esc(j.state)}">${esc(j.state)}</span>, step <span id="job-step">${j.step}</span>` +
    ` of ${j.steps}, loss <span id="job-loss">${j.loss === null ? '-' : j.loss.toFixed(4)}</span>` +
    `${j.predictedIterationS === null ? '' : `, predicted ${esc(formatSeconds(j.predictedIterationS))}/iteration`}; <span id="job-message">${esc(j.message)}</span></p>` +
    '<div class="charts"><div class="chart" id="chart-loss" data-points="0"></div><div class="chart" id="chart-tokens" data-points="0"></div>' +
    '<div class="chart" id="chart-step" data-points="0"></div></div>' +
    '<h2>Predicted and measured per stage</h2><p id="stages-note">The analyzer\'s figures for the job\'s plan beside what its ranks report.</p>' +
    '<table id="stages"><thead><tr><th>stage</th><th>predicted iteration</th><th>measured step</th><th>predicted compute/it</th><th>measured compute/it</th>' +
    '<th>predicted bubbles/it</th><th>predicted peak memory</th><th>measured device peak</th></tr></thead><tbody></tbody></table>' +
    `<h2>Plan</h2><p><a id="plan-link" href="/jobs/${encodeURIComponent(j.id)}/plan.svg" target="_blank">open the plan picture</a> ` +
    '(one iteration of the 1F1B schedule with the predicted durations, and the memory per stage)</p><div id="plan"></div>' +
    '<h2>Logs</h2><label><input type="checkbox" id="follow" checked> follow</label><pre id="logs"></pre>';
  return page(`job ${j.id}`, body, { script: true }).replace('<main>', `<main data-page="job" data-job="${esc(j.id)}">`);
}

export function errorPage(status: number, message: string): string {
  return page(String(status), `<h1>${status}</h1><p class="err">${esc(message)}</p>`);
}

/** Rows of the per-stage table: predicted (analyzer) beside measured (the ranks' reports). */
export function stageRows(rows: Array<{
  stage: number; predictedStepS: number; measuredStepS: number | null; predictedComputeS: number; measuredComputeS: number | null;
  predictedIdleS: number; predictedPeakBytes: number; measuredPeakBytes: number | null;
}>): string {
  const t = (x: number | null): string => (x === null ? '-' : esc(formatSeconds(x)));
  const b = (x: number | null): string => (x === null ? '-' : esc(formatBytes(x)));
  return rows.map((r) => `<tr data-stage="${r.stage}"><td>${r.stage}</td><td>${t(r.predictedStepS)}</td><td>${t(r.measuredStepS)}</td>` +
    `<td>${t(r.predictedComputeS)}</td><td>${t(r.measuredComputeS)}</td><td>${t(r.predictedIdleS)}</td><td>${b(r.predictedPeakBytes)}</td>` +
    `<td>${b(r.measuredPeakBytes)}</td></tr>`).join('');
}
