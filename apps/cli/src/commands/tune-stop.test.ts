// `mist tune --time-limit` and SIGINT: the best plan so far is printed with its proven gap.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const root = path.resolve(__dirname, '../../../..');

describe('mist tune, stopped early', () => {
  it('--time-limit prints the best plan so far and the gap', async () => {
    // 512 GPUs: the search alone takes about 5 s here, the whole comparison more; stopped after 1 s.
    const res = await runCli(['tune', '--model', 'gpt3-175b', '--cluster', '64x8-a100-80gb', '--global-batch', '1536', '--seq', '2048',
      '--time-limit', '1', '--no-cache', '--json']);
    const j = JSON.parse(res.stdout);
    expect(j.stoppedBy).toBe('time-limit');
    expect(j.gap).not.toBeNull();
    // Stopped before the bounds of every G were computed, the proven bound may be the trivial 0.
    expect(j.gap.lowerBoundS).toBeGreaterThanOrEqual(0);
    if (j.plan) expect(j.gap.lowerBoundS).toBeLessThanOrEqual(j.predicted.iterationTimeS);
    const bad = await runCli(['tune', '--model', 'gpt3-1.3b', '--cluster', '1x2-l4', '--global-batch', '16', '--seq', '1024', '--time-limit', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--time-limit/);
  }, 60_000);

  it('SIGINT stops the search, prints the best plan so far and exits 130', async () => {
    const child = spawn(process.execPath, ['-r', path.join(root, 'tools/scripts/ts-register.js'), '-e',
      "require('./apps/cli/src/main.ts').main(process.argv.slice(1)).then((c) => process.exit(c))",
      'tune', '--model', 'gpt3-175b', '--cluster', '8x8-a100-80gb', '--global-batch', '1536', '--seq', '2048', '--progress', '--no-cache'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    // Ready once the main (mist) search reports progress.
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/tune mist/.test(stderr)) resolve();
      });
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping the search/);
    expect(stdout).toMatch(/Search stopped by a signal/);
  }, 120_000);
});
