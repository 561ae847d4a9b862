import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

describe('mist tune --report', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-report-'));

  it('writes the best plan\'s picture and the searches side by side, with the ablation flags', async () => {
    const out = path.join(dir, 'report.html');
    const res = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x4-l4', '--global-batch', '16', '--seq', '1024',
      '--no-offload', '--no-cache', '--report', out]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain(`report written to ${out}`);
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('--no-offload');
    const table = /<table class="comparison">(.*?)<\/table>/.exec(html)![1];
    for (const label of ['mist (best)', 'megatron', 'deepspeed']) expect(table).toContain(`<td>${label}</td>`);
    // One picture per search that found a plan, each with its stage rows.
    const pictures = html.match(/<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/g) ?? [];
    expect(pictures.length).toBeGreaterThanOrEqual(1);
    expect(html).toMatch(/<g class="stage" data-stage="0">/);
  });

  it('refuses a report folder that does not exist before searching', async () => {
    const res = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x4-l4', '--global-batch', '16', '--seq', '1024',
      '--report', path.join(dir, 'missing', 'r.html')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--report .*r\.html: the folder .*missing does not exist/);
  });
});
