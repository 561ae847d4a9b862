// HiGHS runs in a worker thread: a failure or a solve past its deadline costs that worker only, the
// tuner falls back to the exact DP with a note, and the next MILP gets a fresh solver.
import { describe, expect, it } from 'vitest';
import { HighsFailure, solveWithHighs, stopHighs } from './highs';
import { solveInterStageDp } from './inter-stage-dp';
import { solveInterStageMilp, solveInterStageMilpOrDp } from './inter-stage-milp';
import { randomInstance } from './test/random-instance';

function feasibleInstance(): ReturnType<typeof randomInstance> {
  for (let seed = 100; ; seed++) {
    const inst = randomInstance(seed);
    if (solveInterStageDp(inst)) return inst;
  }
}

describe('HiGHS isolation and the DP fallback', () => {
  it('a solve past its deadline fails with HighsFailure, and the MILP falls back to the DP with a note', async () => {
    stopHighs();
    const inst = feasibleInstance();
    // A fresh worker needs far more than 1 ms to load HiGHS: the deadline passes first.
    await expect(solveInterStageMilp(inst, { deadlineS: 0.001 })).rejects.toBeInstanceOf(HighsFailure);
    const notes: string[] = [];
    const dp = solveInterStageDp(inst)!;
    const sol = await solveInterStageMilpOrDp(inst, () => solveInterStageDp(inst), notes, { deadlineS: 0.001 });
    expect(sol!.iterationTimeS).toBe(dp.iterationTimeS);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/HiGHS failed on the inter-stage MILP .*did not finish.*solved with the exact DP instead/);
  });

  it('a solver worker that dies fails the solve in flight only; the next one gets a working solver', async () => {
    const inFlight = solveWithHighs('Maximize\n obj: x\nSubject To\n c: x <= 3\nEnd', {}, 60);
    stopHighs();
    await expect(inFlight).rejects.toBeInstanceOf(HighsFailure);
    const ok = await solveWithHighs('Maximize\n obj: x + y\nSubject To\n c: x + 2 y <= 3\nBinary\n x y\nEnd', {}, 60);
    expect(ok.Status).toBe('Optimal');
    expect(ok.ObjectiveValue).toBe(2);
    const inst = feasibleInstance();
    const milp = await solveInterStageMilp(inst);
    expect(milp!.iterationTimeS).toBeCloseTo(solveInterStageDp(inst)!.iterationTimeS, 9);
  });
});
