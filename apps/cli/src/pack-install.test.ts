// @mist/core, @mist/analyzer and @mist/tuner as a user gets them. The work is in
// tools/scripts/pack-install.js (also run by hand): pack, install the tarballs into an empty project
// offline, check README/LICENSE/src/exports/types, run each README's example, and check that one
// package installed alone fails naming its missing @mist dependency. About 15 s on 2 cores.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const script = path.resolve(__dirname, '../../../tools/scripts/pack-install.js');

describe('packages usable alone', () => {
  it('core, analyzer and tuner pack, install from their tarballs and run their README examples', () => {
    const res = spawnSync(process.execPath, [script, '--json'], { encoding: 'utf8', timeout: 180_000 });
    const last = res.stdout.trim().split('\n').pop() ?? '';
    let summary: { ok: boolean; failures: string[]; seconds: number };
    try {
      summary = JSON.parse(last);
    } catch {
      throw new Error(`pack-install printed no summary (exit ${res.status}):\n${res.stdout}\n${res.stderr}`);
    }
    expect(summary.failures).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(res.status).toBe(0);
  }, 240_000);
});
