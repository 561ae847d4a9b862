// The analyzer's closed-form 1F1B iteration time against the schedule the executor runs: every
// stage's steps from oneFOneBSchedule are replayed as an event simulation (a forward waits for the
// previous stage's forward of the same micro-batch, a backward for the next stage's backward),
// with random per-stage forward/backward times, first-micro-batch extras and end-of-iteration
// extras. The closed form (Mist, EuroSys'25, Sec. 5.3) must never predict less than the schedule
// takes, and must be exact where the schedule has no slack to exploit. Lives in an app because it
// reads both the executor and the analyzer, which never import each other.
import { inFlightMicroBatches, iterationTime, type StageEstimate } from '@mist/analyzer';
import { oneFOneBSchedule, type ScheduleStep } from '@mist/executor';
import { describe, expect, it } from 'vitest';

interface StageTimes {
  forward: number;
  backward: number;
  /** Extra time of the first micro-batch (e.g. ZeRO-3 first gather), added to its forward. */
  firstExtra: number;
  /** Extra time after the stage's last backward (gradient sync, optimizer step). */
  last: number;
}

/** Makespan of one iteration of the executor's 1F1B schedules, communication free. */
function simulateSchedule(stages: StageTimes[], G: number): number {
  const pp = stages.length;
  const fEnd = stages.map(() => new Array<number>(G).fill(Number.NaN));
  const bEnd = stages.map(() => new Array<number>(G).fill(Number.NaN));
  const steps = stages.map((_, s) => oneFOneBSchedule({ stage: s, pp, gradAccumSteps: G })
    .filter((x): x is Extract<ScheduleStep, { kind: 'forward' | 'backward' }> => x.kind !== 'comm'));
  const next = new Array<number>(pp).fill(0);
  const free = new Array<number>(pp).fill(0);
  for (let progress = true; progress;) {
    progress = false;
    for (let s = 0; s < pp; s++) {
      while (next[s] < steps[s].length) {
        const step = steps[s][next[s]];
        const k = step.microBatch;
        const ready = step.kind === 'forward' ? (s === 0 ? 0 : fEnd[s - 1][k]) : (s === pp - 1 ? fEnd[s][k] : bEnd[s + 1][k]);
        if (Number.isNaN(ready)) break;
        const t = stages[s];
        const end = Math.max(ready, free[s]) + (step.kind === 'forward' ? t.forward + (k === 0 ? t.firstExtra : 0) : t.backward);
        free[s] = end;
        (step.kind === 'forward' ? fEnd : bEnd)[s][k] = end;
        next[s]++;
        progress = true;
      }
    }
  }
  expect(next.every((n, s) => n === steps[s].length), 'the schedules deadlocked').toBe(true);
  return Math.max(...stages.map((t, s) => free[s] + t.last));
}

/** The analyzer's iteration time of the same stages. */
function closedForm(stages: StageTimes[], G: number): number {
  const estimates = stages.map((t) => ({
    steadyTimeS: t.forward + t.backward,
    firstTimeS: t.forward + t.backward + t.firstExtra,
    lastTimeS: t.last,
  }) as StageEstimate);
  return iterationTime(estimates, G).total;
}

function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

describe('closed-form 1F1B time against the executor\'s schedule', () => {
  it('never predicts less than the schedule takes (300 random pipelines)', () => {
    const r = random(11);
    for (let trial = 0; trial < 300; trial++) {
      const pp = 1 + Math.floor(r() * 6);
      const G = 1 + Math.floor(r() * 12);
      const stages = Array.from({ length: pp }, () => ({ forward: 0.2 + r(), backward: 0.4 + 2 * r(), firstExtra: 0.3 * r(), last: 0.5 * r() }));
      const sim = simulateSchedule(stages, G);
      const closed = closedForm(stages, G);
      expect(closed, `pp ${pp}, G ${G}`).toBeGreaterThanOrEqual(sim * (1 - 1e-12));
      // and stays within the slack it knowingly leaves: the other stages' end-of-iteration extras and
      // the bottleneck's steady time over each other stage's, paid once per stage in fill and drain.
      const steady = stages.map((t) => t.forward + t.backward);
      const slack = stages.reduce((a, t) => a + t.last, 0) + stages.reduce((a, t) => a + t.firstExtra, 0) +
        (pp - 1) * (Math.max(...steady) - Math.min(...steady));
      expect(closed - sim, `pp ${pp}, G ${G}`).toBeLessThanOrEqual(slack + 1e-9);
    }
  });

  it('is exact for identical stages without extras, and for one stage with extras', () => {
    const r = random(5);
    for (let trial = 0; trial < 50; trial++) {
      const pp = 1 + Math.floor(r() * 8);
      const G = 1 + Math.floor(r() * 16);
      const t = { forward: 0.2 + r(), backward: 0.4 + r(), firstExtra: 0, last: 0 };
      const same = Array.from({ length: pp }, () => ({ ...t }));
      expect(closedForm(same, G)).toBeCloseTo(simulateSchedule(same, G), 9);
      const one = [{ ...t, firstExtra: r(), last: r() }];
      expect(closedForm(one, G)).toBeCloseTo(simulateSchedule(one, G), 9);
    }
  });

  it('keeps as many micro-batches in flight per stage as the analyzer counts', () => {
    for (let pp = 1; pp <= 6; pp++) {
      for (let G = 1; G <= 8; G++) {
        for (let s = 0; s < pp; s++) {
          let live = 0;
          let peak = 0;
          for (const step of oneFOneBSchedule({ stage: s, pp, gradAccumSteps: G })) {
            if (step.kind === 'forward') peak = Math.max(peak, ++live);
            else if (step.kind === 'backward') live--;
          }
          expect(peak, `stage ${s} of ${pp}, G ${G}`).toBe(inFlightMicroBatches(pp, s, G));
        }
      }
    }
  });
});
