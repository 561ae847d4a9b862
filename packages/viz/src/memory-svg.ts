// Per-stage device memory as SVG: one stacked bar per stage (<g class="memory" data-stage="i">) of
// the analyzer's parts of the peak (weights, grads, optimizer states, saved activations, transient
// buffers) against the GPU's usable capacity (a dashed line), rows aligned with the timeline's.
import { formatBytes } from '@mist/core';
import { type PlanEstimate } from '@mist/analyzer';
import { COLORS, el, rect, text } from './svg';
import { ROW_HEIGHT } from './timeline-svg';

export const MEMORY_PARTS = ['weights', 'grads', 'optim', 'activations', 'transient'] as const;

export function memorySvg(est: PlanEstimate, width: number): { svg: string; width: number; height: number } {
  const plotW = width - 90;
  const top = Math.max(...est.stages.map((s) => Math.max(s.capacityBytes, s.peakMemoryBytes)), 1);
  const x = (bytes: number): number => (bytes / top) * plotW;
  let svg = '';
  for (const s of est.stages) {
    const y = 4 + s.index * ROW_HEIGHT;
    let row = '';
    let at = 0;
    for (const part of MEMORY_PARTS) {
      const bytes = Math.max(0, s.memory[part]);
      row += rect({ class: `mem ${part}`, x: x(at), y, width: x(bytes), height: 22, fill: COLORS[part] },
        `stage ${s.index} ${part}: ${formatBytes(bytes)}`);
      at += bytes;
    }
    const cap = x(s.capacityBytes);
    row += el('line', { class: 'capacity', x1: cap, y1: y - 2, x2: cap, y2: y + 24, stroke: s.deviceFits ? '#333333' : '#d62728', 'stroke-width': 1.5, 'stroke-dasharray': '3 2' },
      `<title>usable device memory ${formatBytes(s.capacityBytes)}</title>`);
    row += text(plotW + 6, y + 10, formatBytes(s.peakMemoryBytes), { 'font-size': 10 }) +
      text(plotW + 6, y + 21, s.deviceFits ? `of ${formatBytes(s.capacityBytes)}` : 'over capacity', { 'font-size': 10, fill: s.deviceFits ? '#555555' : '#d62728' });
    svg += el('g', { class: 'memory', 'data-stage': s.index }, row);
  }
  return { svg, width, height: 4 + est.stages.length * ROW_HEIGHT };
}
