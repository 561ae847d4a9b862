// The one figure of the built-in profiles fitted to published runs (a GPU's sustained matmul share,
// hardware-profile.ts) stays at its fit as the cost model changes, and `npm run validate` checks the
// targets on the runs it was not fitted on. Runs the two scripts as a user does.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../../..');
const run = promisify(execFile);

/** A script's stdout, whatever its exit code (1 = some target or fit not met, which the test reads from the JSON). */
async function json<T>(script: string): Promise<T> {
  try {
    return JSON.parse((await run(process.execPath, [path.join(root, script), '--json'], { cwd: root, maxBuffer: 64 << 20 })).stdout) as T;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (e.code !== 1 || !e.stdout) throw new Error(`${script} failed (exit ${e.code}): ${e.stderr}`);
    return JSON.parse(e.stdout) as T;
  }
}

interface Fit { source: string; gpu: string; runs: number; factor: number; sustainedNow: number; sustainedFit: number; atFit: boolean }
interface Figures { timeRuns: number; timeShareWithin10: number | null }
interface Report {
  calibrationSources: string[];
  overall: Figures;
  heldOut: Figures;
  met: { timeShareWithin10: boolean };
  results: { source: string; timeError: number | null }[];
}

describe('the calibrated sustained matmul share and the held-out validation', () => {
  it('every calibrated GPU\'s built-in share is the fit of its calibration sources, taken together (npm run calibrate)', async () => {
    const fits = await json<Fit[]>('tools/validate/calibrate.js');
    expect(fits.map((f) => `${f.gpu} on ${f.source}`)).toEqual(['h100-sxm on nemo-2407 + megatron-core-2024']);
    for (const f of fits) {
      expect(f.runs).toBeGreaterThan(0);
      // Refit (npm run calibrate) and update hardware-profile.ts when the cost model moves it.
      expect(f.atFit, `${f.gpu}: the profile has ${f.sustainedNow}, the fit is ${f.sustainedFit.toFixed(3)}`).toBe(true);
    }
  }, 60_000);

  it('npm run validate holds the calibration sources out of the targets', async () => {
    const r = await json<Report>('tools/validate/published-runs.js');
    expect(r.calibrationSources).toEqual(['nemo-2407', 'megatron-core-2024']);
    const timed = (pred: (s: string) => boolean) => r.results.filter((x) => x.timeError !== null && pred(x.source));
    expect(r.heldOut.timeRuns).toBe(timed((s) => !r.calibrationSources.includes(s)).length);
    expect(r.overall.timeRuns).toBe(timed(() => true).length);
    expect(r.heldOut.timeRuns).toBeLessThan(r.overall.timeRuns);
    const held = timed((s) => !r.calibrationSources.includes(s));
    const within = held.filter((x) => Math.abs(x.timeError!) <= 0.1).length / held.length;
    expect(r.heldOut.timeShareWithin10).toBeCloseTo(within, 12);
    expect(r.met.timeShareWithin10).toBe(within >= 0.75);
  }, 60_000);
});
