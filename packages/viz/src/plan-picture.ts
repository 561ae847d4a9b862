// The picture of a plan: the 1F1B timeline of one iteration (left) and the per-stage device memory
// against the GPU capacity (right), with a title and legends, as one standalone SVG document.
import { formatCount, formatSeconds, type Plan } from '@mist/core';
import { type PlanEstimate } from '@mist/analyzer';
import { memorySvg } from './memory-svg';
import { el, esc, legend, text } from './svg';
import { buildTimeline, type Timeline } from './timeline';
import { timelineSvg } from './timeline-svg';

export interface PlanPictureOptions {
  /** First line of the picture, e.g. the model and cluster. */
  title?: string;
  /** Total width in pixels (default 1200). */
  width?: number;
}

export function planPictureSvg(plan: Plan, est: PlanEstimate, opts: PlanPictureOptions = {}): string {
  return renderPicture(buildTimeline(plan, est), est, opts);
}

export function renderPicture(t: Timeline, est: PlanEstimate, opts: PlanPictureOptions = {}): string {
  const width = opts.width ?? 1200;
  const memW = Math.min(340, Math.round(width * 0.3));
  const tl = timelineSvg(t, width - memW - 20, est.stages.map((s) => s.capacityBytes));
  const mem = memorySvg(est, memW);
  const head = 48;
  const title = opts.title ?? `${t.pp}-stage 1F1B pipeline, G=${t.gradAccumSteps}`;
  const summary = `predicted iteration ${formatSeconds(est.iterationTimeS)}, ${formatCount(Math.round(est.tokensPerS))} tokens/s, ` +
    `MFU ${(est.mfu * 100).toFixed(1)}%, bottleneck stage ${est.bottleneckStage}; drawn schedule ends at ${formatSeconds(t.makespanS)}`;
  const timeLegend = legend(4, head + tl.height + 14, [
    ['forward', 'forward'], ['recompute', 'recompute'], ['backward', 'backward'], ['p2p', 'p2p send'],
    ['offload', 'offload copies'], ['first', 'first-only gather'], ['last', 'grad sync + optimizer'], ['memory', 'device memory (line)'],
  ]);
  const memLegend = legend(tl.width + 20, head + tl.height + 14, [
    ['weights', 'weights'], ['grads', 'grads'], ['optim', 'optim'], ['activations', 'activations'], ['transient', 'transient'],
  ]);
  const height = head + Math.max(tl.height, mem.height) + 28;
  const body = text(4, 16, title, { 'font-size': 14, 'font-weight': 'bold' }) + text(4, 34, summary) +
    text(tl.width + 20, 34, 'device memory per GPU (peak) vs usable capacity', { 'font-size': 11 }) +
    el('g', { class: 'timeline', transform: `translate(0,${head})` }, tl.svg) +
    el('g', { class: 'memory-panel', transform: `translate(${tl.width + 20},${head})` }, mem.svg) +
    timeLegend.svg + memLegend.svg;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `role="img" aria-label="${esc(title)}">${el('rect', { width, height, fill: '#ffffff' })}${body}</svg>\n`;
}
