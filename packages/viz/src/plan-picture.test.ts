// The SVG timeline checked structurally: one row per stage, as many boxes of each kind as the schedule has.
import { describe, expect, it } from 'vitest';
import { planPictureHtml } from './html-page';
import { planPictureSvg } from './plan-picture';
import { pipelinePlan } from './test-plans';

/** The inner SVG of each `<g class="CLS" data-stage="i">` group. */
function groups(svg: string, cls: string): string[] {
  return [...svg.matchAll(new RegExp(`<g class="${cls}" data-stage="(\\d+)">(.*?)</g>`, 'g'))].map((m) => m[2]);
}
const count = (s: string, kind: string): number => (s.match(new RegExp(`class="box ${kind}"`, 'g')) ?? []).length;

describe('planPictureSvg', () => {
  for (const [pp, G, ckpt] of [[4, 8, 0], [4, 8, 2], [2, 3, 6], [1, 4, 1]]) {
    it(`pp=${pp} G=${G} ckpt=${ckpt}: one row per stage with G forwards, G backwards${ckpt > 0 ? ' and G recomputes' : ''}`, () => {
      const { plan, analysis } = pipelinePlan(pp, G, ckpt);
      const svg = planPictureSvg(plan, analysis);
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      const rows = groups(svg, 'stage');
      expect(rows).toHaveLength(pp);
      for (const row of rows) {
        expect(count(row, 'forward')).toBe(G);
        expect(count(row, 'backward')).toBe(G);
        expect(count(row, 'recompute')).toBe(ckpt > 0 ? G : 0);
        expect(row).toContain('class="memory-over-time"');
      }
      // p2p sends: G per neighbour direction.
      const p2p = rows.map((r) => count(r, 'p2p'));
      expect(p2p).toEqual(Array.from({ length: pp }, (_, i) => G * ((i > 0 ? 1 : 0) + (i < pp - 1 ? 1 : 0))));
      const mem = groups(svg, 'memory');
      expect(mem).toHaveLength(pp);
      for (const m of mem) {
        for (const part of ['weights', 'grads', 'optim', 'activations', 'transient']) expect(m).toContain(`class="mem ${part}"`);
        expect(m).toContain('class="capacity"');
      }
    });
  }

  it('escapes the title and embeds the SVG in a self-contained page', () => {
    const { plan, analysis } = pipelinePlan(2, 2, 0);
    const html = planPictureHtml(plan, analysis, { title: 'a <b> & "c"' });
    expect(html).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });
});
