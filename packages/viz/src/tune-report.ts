// `mist tune --report out.html`: the chosen plan's picture, the searches side by side (the main
// search with its ablation flags and the Megatron-LM / DeepSpeed baselines under the same cost
// model), each found plan's picture, and what the search kept of its per-stage Pareto frontiers.
import { formatCount, formatSeconds, type Plan } from '@mist/core';
import { type PlanEstimate } from '@mist/analyzer';
import { htmlPage, htmlTable, stageTable, TIMELINE_NOTE } from './html-page';
import { planPictureSvg } from './plan-picture';
import { esc } from './svg';

export interface TuneReportRow {
  /** E.g. `mist (best)`, `megatron`, `deepspeed`, `your plan`. */
  label: string;
  plan: Plan | null;
  estimate: PlanEstimate | null;
  /** Speedup of the best plan over this one (null: nothing to compare). */
  speedupOfBest: number | null;
  tuningTimeS?: number;
  candidatesEvaluated?: number;
  /** Pareto points kept over all stage groups, and the number of stage groups searched. */
  frontierPoints?: number;
  stageGroups?: number;
}

export interface TuneReportInput {
  title: string;
  /** The search's settings that differ from the full space (the ablations), e.g. `--no-offload`. */
  ablations: string[];
  /** The first row is the chosen plan. */
  rows: TuneReportRow[];
  notes: string[];
}

const cell = (x: number | undefined, f: (v: number) => string): string => (x === undefined ? '-' : f(x));

export function tuneReportHtml(r: TuneReportInput): string {
  const [best] = r.rows;
  let body = `<p>Searches: ${esc(r.rows.map((x) => x.label).join(', '))}. Ablations of the main search: ` +
    `${r.ablations.length > 0 ? esc(r.ablations.join(' ')) : 'none (the full space)'}.</p>`;
  body += '<h2>Side by side (same cost model)</h2>' + htmlTable([
    ['search', 'iteration', 'tokens/s', 'MFU', 'stages', 'G', 'fits', 'speedup of best', 'tuning', 'candidates', 'frontier points', 'stage groups'],
    ...r.rows.map((x) => [
      x.label, x.estimate ? formatSeconds(x.estimate.iterationTimeS) : 'nothing fits', x.estimate ? formatCount(Math.round(x.estimate.tokensPerS)) : '-',
      x.estimate ? `${(x.estimate.mfu * 100).toFixed(1)}%` : '-', x.plan ? x.plan.stages.length : '-', x.plan ? x.plan.gradAccumSteps : '-',
      x.estimate ? (x.estimate.allFit ? 'yes' : 'no') : '-', x === best ? '1.00x' : (x.speedupOfBest === null ? '-' : `${x.speedupOfBest.toFixed(2)}x`),
      cell(x.tuningTimeS, (v) => `${v.toFixed(2)} s`), cell(x.candidatesEvaluated, formatCount), cell(x.frontierPoints, String), cell(x.stageGroups, String),
    ]),
  ], 'comparison');
  body += '<p class="note">The tuner returns the size of the Pareto frontiers it kept (frontier points over all stage groups), ' +
    'not the frontier points themselves, so the frontiers are summarised by their counts here.</p>';
  for (const x of r.rows) {
    body += `<h2>${esc(x.label)}</h2>`;
    if (!x.plan || !x.estimate) {
      body += '<p>No plan of this space fits.</p>';
      continue;
    }
    body += `<div class="picture">${planPictureSvg(x.plan, x.estimate, { title: `${x.label}: ${x.plan.stages.length}-stage plan, G=${x.plan.gradAccumSteps}` })}</div>`;
    body += stageTable(x.plan, x.estimate);
  }
  body += `<p class="note">${esc(TIMELINE_NOTE)}</p>`;
  for (const n of r.notes) body += `<p class="note">note: ${esc(n)}</p>`;
  return htmlPage(r.title, body);
}
