// `mist tune` with its cache ($MIST_CACHE_DIR/tune): a re-tune with another global batch says what it
// read from the cache and predicts the same plan time as a tune without it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../test/run-cli';

const args = (batch: number, ...more: string[]): string[] => ['tune', '--model', 'gpt3-1.3b', '--cluster', '2x8-a100-80gb',
  '--global-batch', String(batch), '--seq', '2048', '--no-gains', ...more];

describe('mist tune, re-tune from the cache', () => {
  let dir = '';
  let before: string | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-tune-cache-'));
    before = process.env.MIST_CACHE_DIR;
    process.env.MIST_CACHE_DIR = dir;
  });
  afterEach(() => {
    if (before === undefined) delete process.env.MIST_CACHE_DIR;
    else process.env.MIST_CACHE_DIR = before;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a second batch reads the first tune\'s bounds, says so, and finds the same plan time as --no-cache', async () => {
    expect((await runCli(args(64))).code).toBe(0);
    const again = await runCli(args(128, '--json'));
    const cold = await runCli(args(128, '--json', '--no-cache'));
    expect(again.code).toBe(0);
    const a = JSON.parse(again.stdout);
    const c = JSON.parse(cold.stdout);
    expect(a.predicted.iterationTimeS).toBe(c.predicted.iterationTimeS);
    expect(a.cache.boundsHits).toBeGreaterThan(0);
    expect(c.cache).toBeUndefined();
    const text = await runCli(args(128));
    expect(text.stdout).toMatch(/cache: read from the tune cache: .*stage-group bounds/);
    expect(fs.readdirSync(path.join(dir, 'tune')).some((f) => f.endsWith('.bounds.bin'))).toBe(true);
  }, 120_000);
});
