// Self-contained HTML pages (inline CSS, SVG embedded; nothing fetched) for the plan picture and the
// tune report: they open from a file in any browser.
import { formatBytes, formatSeconds, type Plan } from '@mist/core';
import { type PlanEstimate } from '@mist/analyzer';
import { planPictureSvg, type PlanPictureOptions } from './plan-picture';
import { esc } from './svg';

const STYLE = `body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:.9em}.picture{overflow-x:auto}`;

export function htmlPage(title: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>` +
    `<body><h1>${esc(title)}</h1>\n${body}\n</body></html>\n`;
}

/** A table from rows of cells (already formatted); the first row is the header. */
export function htmlTable(rows: Array<Array<string | number>>, cls?: string): string {
  const [head, ...rest] = rows;
  return `<table${cls ? ` class="${esc(cls)}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    rest.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') + '</tbody></table>';
}

/** Per stage: strategy, predicted times and memory (the figures the picture is drawn from). */
export function stageTable(plan: Plan, est: PlanEstimate): string {
  return htmlTable([
    ['stage', 'layers', 'mesh', 'dp x tp', 'b', 'ckpt', 'zero', 'forward', 'backward', 'recompute', 'p2p', 'steady', 'first', 'last', 'peak memory', 'capacity'],
    ...plan.stages.map((s, i) => {
      const e = est.stages[i];
      return [i, `${s.layers[0]}-${s.layers[1]}`, `${s.mesh.nodes}x${s.mesh.gpusPerNode}`, `${s.dp} x ${s.tp}${s.sequenceParallel ? ' sp' : ''}`,
        s.microBatchSize, s.ckptLayers, s.zero, formatSeconds(e.time.forward), formatSeconds(e.time.backward), formatSeconds(e.time.recompute),
        formatSeconds(e.time.ppComm), formatSeconds(e.steadyTimeS), formatSeconds(e.firstTimeS), formatSeconds(e.lastTimeS),
        formatBytes(e.peakMemoryBytes), formatBytes(e.capacityBytes)];
    }),
  ], 'stages');
}

export const TIMELINE_NOTE = 'Boxes are the analyzer\'s predicted durations: forward, recompute and backward are the stage\'s compute times ' +
  'scaled so that one micro-batch with its p2p sends takes the predicted steady micro-batch (the scale carries exposed tensor-parallel ' +
  'communication and overlapped ZeRO/offload traffic); offload copies (thin bars) are the stage\'s per-iteration copy time spread over ' +
  'its passes. Grey is idle: the pipeline bubbles. The dashed line is the analyzer\'s iteration time, which adds every stage\'s ' +
  'first and last extras in series (Mist\'s closed form, an upper bound); the drawing runs each stage\'s own extras on that stage. ' +
  'The line under each row is the stage\'s device memory over the iteration (model states, the saved activations of the micro-batches ' +
  'in flight, the transient of the running pass; it reaches the predicted peak) against the usable capacity (red dashes).';

/** `mist analyze --timeline out.html`: the picture, its note and the per-stage figures. */
export function planPictureHtml(plan: Plan, est: PlanEstimate, opts: PlanPictureOptions = {}): string {
  const title = opts.title ?? 'Plan timeline';
  return htmlPage(title, `<div class="picture">${planPictureSvg(plan, est, { ...opts, title })}</div>` +
    `<p class="note">${esc(TIMELINE_NOTE)}</p>${stageTable(plan, est)}`);
}
