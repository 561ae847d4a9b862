import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const tiny = path.resolve(__dirname, '../../../../examples/plans/gpt-tiny-2-stages.json');

describe('mist analyze --timeline', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-timeline-'));

  it('writes the SVG picture: two stage rows of G=4 forwards and backwards, recompute only where ckpt > 0', async () => {
    const out = path.join(dir, 'plan.svg');
    const res = await runCli(['analyze', '--plan', tiny, '--cluster', '1x4-l4', '--timeline', out]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain(`timeline written to ${out}`);
    const svg = fs.readFileSync(out, 'utf8');
    const rows = [...svg.matchAll(/<g class="stage" data-stage="(\d)">(.*?)<\/g>/g)].map((m) => m[2]);
    expect(rows).toHaveLength(2);
    const count = (row: string, kind: string): number => (row.match(new RegExp(`class="box ${kind}"`, 'g')) ?? []).length;
    expect(rows.map((r) => [count(r, 'forward'), count(r, 'backward'), count(r, 'recompute')])).toEqual([[4, 4, 4], [4, 4, 0]]);
  });

  it('writes a self-contained HTML page for an .html name', async () => {
    const out = path.join(dir, 'plan.html');
    const res = await runCli(['analyze', '--plan', tiny, '--cluster', '1x4-l4', '--timeline', out]);
    expect(res.code).toBe(0);
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
  });

  it('refuses another extension or a missing folder before analysing', async () => {
    const bad = await runCli(['analyze', '--plan', tiny, '--cluster', '1x4-l4', '--timeline', path.join(dir, 'plan.png')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--timeline .*plan\.png: the file name must end in \.svg or \.html/);
    const missing = await runCli(['analyze', '--plan', tiny, '--cluster', '1x4-l4', '--timeline', path.join(dir, 'nope', 'plan.svg')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/the folder .*nope does not exist/);
  });
});
