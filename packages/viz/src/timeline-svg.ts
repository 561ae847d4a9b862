// The timeline as SVG: one row (<g class="stage" data-stage="i">) per stage, one <rect class="box KIND">
// per box of buildTimeline, a grey row background so that the bubbles (where no box covers it)
// show, and a time axis. Returns the SVG fragment and its size, to be placed by plan-picture.ts.
import { formatBytes, formatSeconds } from '@mist/core';
import { COLORS, el, esc, n, rect, text } from './svg';
import { type MemoryPoint, type Timeline, type TimelineBox } from './timeline';

export const ROW_HEIGHT = 52;
const LANE = 22;
const COPY_LANE = 6;
const MEMORY_LANE = 16;
const LABEL_WIDTH = 64;

function boxTitle(b: TimelineBox): string {
  const what = b.kind === 'first' ? 'first micro-batch extra (weight gather / fetch)'
    : b.kind === 'last' ? 'after the last micro-batch (gradient sync, optimizer step)'
      : b.kind === 'offload' ? `offload copies beside micro-batch ${b.microBatch}`
        : `${b.kind} of micro-batch ${b.microBatch}${b.chunk === undefined ? '' : ` (model chunk ${b.chunk})`}`;
  return `stage ${b.stage}: ${what}, ${formatSeconds(b.durationS)} from ${formatSeconds(b.startS)}`;
}

/** A round step for the axis: 1, 2 or 5 times a power of ten, about `span / 8`. */
function tickStep(span: number): number {
  const raw = span / 8;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** The stage's device memory over the iteration as a step line in its own lane, 0 at the bottom and `top` bytes at the top. */
function memoryLane(points: MemoryPoint[], x: (s: number) => number, end: number, y: number, top: number, capacity: number): string {
  const yOf = (bytes: number): number => y + MEMORY_LANE - (Math.min(bytes, top) / top) * MEMORY_LANE;
  let d = `M${n(x(0))},${n(yOf(points[0].bytes))}`;
  for (let i = 1; i < points.length; i++) d += `H${n(x(points[i].t))}V${n(yOf(points[i].bytes))}`;
  d += `H${n(x(end))}`;
  const peak = Math.max(...points.map((p) => p.bytes));
  return el('rect', { x: x(0), y, width: x(end) - x(0), height: MEMORY_LANE, fill: '#fafafa' }) +
    el('line', { class: 'capacity', x1: x(0), y1: yOf(capacity), x2: x(end), y2: yOf(capacity), stroke: '#d62728', 'stroke-width': 0.6, 'stroke-dasharray': '3 2' }) +
    el('path', { class: 'memory-over-time', d, fill: 'none', stroke: '#333333', 'stroke-width': 1 },
      `<title>${esc(`device memory over the iteration: peak ${formatBytes(peak)} of ${formatBytes(capacity)} usable`)}</title>`);
}

export function timelineSvg(t: Timeline, width: number, capacities: number[]): { svg: string; width: number; height: number } {
  const plotW = width - LABEL_WIDTH - 10;
  const span = Math.max(t.makespanS, t.predictedIterationS, 1e-12);
  const x = (s: number): number => LABEL_WIDTH + (s / span) * plotW;
  const memTop = Math.max(...capacities, ...t.memory.flatMap((m) => m.map((p) => p.bytes)), 1);
  let svg = '';
  for (const st of t.stages) {
    const y = 4 + st.index * ROW_HEIGHT;
    let row = rect({ class: 'lane', x: x(0), y, width: plotW, height: LANE, fill: '#eeeeee' },
      `stage ${st.index}: idle (bubbles) ${formatSeconds(st.idleS)} of ${formatSeconds(t.makespanS)}`);
    row += text(4, y + 15, `stage ${st.index}`);
    for (const b of t.boxes) {
      if (b.stage !== st.index) continue;
      const by = b.lane === 'compute' ? y : y + LANE + 1;
      row += rect({
        class: `box ${b.kind}`, 'data-mb': b.microBatch, 'data-chunk': b.chunk, x: x(b.startS), y: by, width: Math.max(0.5, x(b.startS + b.durationS) - x(b.startS)),
        height: b.lane === 'compute' ? LANE : COPY_LANE, fill: COLORS[b.kind], stroke: b.lane === 'compute' ? '#ffffff' : undefined, 'stroke-width': 0.5,
      }, boxTitle(b));
    }
    row += memoryLane(t.memory[st.index], x, span, y + LANE + COPY_LANE + 3, memTop, capacities[st.index]);
    svg += el('g', { class: 'stage', 'data-stage': st.index }, row);
  }
  const axisY = 4 + t.pp * ROW_HEIGHT + 2;
  let axis = el('line', { x1: x(0), y1: axisY, x2: x(span), y2: axisY, stroke: '#555555' });
  const step = tickStep(span);
  for (let s = 0; s <= span * 1.0001; s += step) {
    axis += el('line', { x1: x(s), y1: axisY, x2: x(s), y2: axisY + 4, stroke: '#555555' }) +
      text(x(s), axisY + 15, formatSeconds(s), { 'text-anchor': 'middle', 'font-size': 10 });
  }
  const pred = x(t.predictedIterationS);
  axis += el('line', { class: 'predicted', x1: pred, y1: 0, x2: pred, y2: axisY, stroke: '#333333', 'stroke-dasharray': '4 3' }) +
    text(Math.min(pred, x(span) - 4), axisY + 28, `analyzer's iteration ${formatSeconds(t.predictedIterationS)}`, { 'text-anchor': 'end', 'font-size': 10 });
  svg += el('g', { class: 'axis' }, axis);
  return { svg, width, height: axisY + 34 };
}
