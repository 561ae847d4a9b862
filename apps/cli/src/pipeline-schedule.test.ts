// The analyzer's closed-form 1F1B iteration time against the schedule the executor runs: every
// stage's steps from oneFOneBSchedule are replayed as an event simulation (a forward waits for the
// previous stage's forward of the same micro-batch, a backward for the next stage's backward),
// with random per-stage forward/backward times, first-micro-batch extras and end-of-iteration
// extras (each stage's after its own last backward, all stages at once). The closed form (Mist,
// EuroSys'25, Sec. 5.3, with the largest end-of-iteration extra rather than their sum) must never
// predict less than the schedule takes, and must be exact where the schedule has no slack to exploit. Lives in an app because it
// reads both the executor and the analyzer, which never import each other.
import { inFlightMicroBatches, iterationTime, type StageEstimate } from '@mist/analyzer';
import { interleavedSchedule, maxInFlight } from '@mist/core';
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

/**
 * Makespan of one iteration of the schedules the executor runs (rank-runtime.ts: core's 1F1B for one
 * chunk per rank, its interleaved schedule for v > 1), communication free: a chunk's forward or
 * backward takes 1/v of its rank's; the rank's first forward unit pays the first-micro-batch extra. A
 * forward unit of virtual stage j = chunk * pp + rank waits for virtual stage j - 1's forward of the
 * same micro-batch, a backward for j + 1's backward.
 */
function simulateSchedule(stages: StageTimes[], G: number, v = 1): number {
  const pp = stages.length;
  const V = pp * v;
  const fEnd = Array.from({ length: V }, () => new Array<number>(G).fill(Number.NaN));
  const bEnd = Array.from({ length: V }, () => new Array<number>(G).fill(Number.NaN));
  const steps = stages.map((_, s) => (v === 1 ? oneFOneBSchedule({ stage: s, pp, gradAccumSteps: G }) : interleavedSchedule({ stage: s, pp, gradAccumSteps: G, chunks: v }))
    .filter((x): x is Extract<ScheduleStep, { kind: 'forward' | 'backward' }> => x.kind !== 'comm'));
  const next = new Array<number>(pp).fill(0);
  const free = new Array<number>(pp).fill(0);
  for (let progress = true; progress;) {
    progress = false;
    for (let s = 0; s < pp; s++) {
      while (next[s] < steps[s].length) {
        const step = steps[s][next[s]];
        const k = step.microBatch;
        const j = (step.chunk ?? 0) * pp + s;
        const ready = step.kind === 'forward' ? (j === 0 ? 0 : fEnd[j - 1][k]) : (j === V - 1 ? fEnd[j][k] : bEnd[j + 1][k]);
        if (Number.isNaN(ready)) break;
        const t = stages[s];
        const work = step.kind === 'forward' ? t.forward / v + (next[s] === 0 ? t.firstExtra : 0) : t.backward / v;
        const end = Math.max(ready, free[s]) + work;
        free[s] = end;
        (step.kind === 'forward' ? fEnd : bEnd)[j][k] = end;
        next[s]++;
        progress = true;
      }
    }
  }
  expect(next.every((n, s) => n === steps[s].length), 'the schedules deadlocked').toBe(true);
  return Math.max(...stages.map((t, s) => free[s] + t.last));
}

/** The analyzer's iteration time of the same stages (v chunks per rank; 1: plain 1F1B). */
function closedForm(stages: StageTimes[], G: number, v = 1): number {
  const estimates = stages.map((t) => ({
    steadyTimeS: t.forward + t.backward,
    firstTimeS: t.forward + t.backward + t.firstExtra,
    lastTimeS: t.last,
  }) as StageEstimate);
  return iterationTime(estimates, G, v).total;
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
      // and stays within the slack it knowingly leaves: the largest end-of-iteration extra (the
      // stages that end their last backward earlier start theirs earlier) and the bottleneck's steady
      // time over each other stage's, paid once per stage in fill and drain.
      const steady = stages.map((t) => t.forward + t.backward);
      const slack = Math.max(...stages.map((t) => t.last)) + stages.reduce((a, t) => a + t.firstExtra, 0) +
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

describe('closed-form interleaved 1F1B time against core\'s interleaved schedule', () => {
  it('is exact for identical stages without extras: (G + (pp - 1) / v) micro-batches, the bubble shrunk v times', () => {
    const r = random(7);
    for (let trial = 0; trial < 60; trial++) {
      const pp = 2 + Math.floor(r() * 6);
      const v = 2 + Math.floor(r() * 3);
      const G = pp * (1 + Math.floor(r() * 4));
      const t = { forward: 0.2 + r(), backward: 0.4 + r(), firstExtra: 0, last: 0 };
      const same = Array.from({ length: pp }, () => ({ ...t }));
      const sim = simulateSchedule(same, G, v);
      expect(closedForm(same, G, v), `pp ${pp} v ${v} G ${G}`).toBeCloseTo(sim, 9);
      expect(sim).toBeCloseTo((G + (pp - 1) / v) * (t.forward + t.backward), 9);
      expect(sim).toBeLessThan(simulateSchedule(same, G));
    }
  });

  it('stays above the schedule and near it for ranks within +-30% of each other (300 random pipelines)', () => {
    // Uniform layer splits (what interleaving requires) leave the ranks close: the first and last
    // differ by the embedding and the head. Each rank's backward/forward ratio varies by +-10%.
    const r = random(23);
    let worst = 0;
    for (let trial = 0; trial < 300; trial++) {
      const pp = 2 + Math.floor(r() * 5);
      const v = 2 + Math.floor(r() * 3);
      const G = pp * (1 + Math.floor(r() * 3));
      const f = 0.2 + r();
      const ratio = 1.5 + r();
      const stages = Array.from({ length: pp }, () => {
        const x = 1 + 0.3 * (2 * r() - 1);
        return { forward: f * x, backward: f * ratio * x * (1 + 0.2 * (r() - 0.5)), firstExtra: 0.3 * r() * f, last: 0.5 * r() * f };
      });
      const sim = simulateSchedule(stages, G, v);
      const closed = closedForm(stages, G, v);
      expect(closed, `pp ${pp}, v ${v}, G ${G}`).toBeGreaterThanOrEqual(sim * (1 - 1e-12));
      worst = Math.max(worst, closed / sim - 1);
    }
    console.log(`interleaved closed form, ranks within +-30%: at most ${(100 * worst).toFixed(1)}% above the replay`);
    // Measured: at most 31.7% above (seed 23; 36% with the end-of-step extras summed), from the
    // extras and the imbalance it pays in full.
    expect(worst).toBeLessThan(0.4);
  });

  it('stays near the schedule for arbitrary ranks (300 random pipelines)', () => {
    // Ranks with unrelated forward and backward times: the ring of chunks can then idle the
    // bottleneck rank itself, which no closed form in steady times sees; measured here.
    const r = random(3);
    let under = 0;
    let over = 0;
    for (let trial = 0; trial < 300; trial++) {
      const pp = 2 + Math.floor(r() * 6);
      const v = 2 + Math.floor(r() * 3);
      const G = pp * (1 + Math.floor(r() * 3));
      const stages = Array.from({ length: pp }, () => ({ forward: 0.2 + r(), backward: 0.4 + 2 * r(), firstExtra: 0.3 * r(), last: 0.5 * r() }));
      const ratio = closedForm(stages, G, v) / simulateSchedule(stages, G, v) - 1;
      under = Math.min(under, ratio);
      over = Math.max(over, ratio);
      expect(closedForm(stages, G, v)).toBeLessThanOrEqual(closedForm(stages, G, 1) + 1e-12);
    }
    console.log(`interleaved closed form, arbitrary ranks: ${(100 * under).toFixed(1)}% .. +${(100 * over).toFixed(1)}% of the replay`);
    // Measured (seed 3): -10.4% .. +34.4% (with the stages' end-of-step extras summed, as before the
    // analyzer took their largest, -8.7% .. +39.1%: the sum hid part of the fill's shortfall).
    expect(under).toBeGreaterThan(-0.12);
    expect(over).toBeLessThan(0.5);
  });

  it('keeps as many micro-batches in flight per rank as the analyzer counts (forward units / v)', () => {
    for (let pp = 2; pp <= 6; pp++) {
      for (let v = 1; v <= 4; v++) {
        for (const G of [pp, 2 * pp, 3 * pp]) {
          for (let s = 0; s < pp; s++) {
            const units = maxInFlight(interleavedSchedule({ stage: s, pp, gradAccumSteps: G, chunks: v }));
            if (v > 1) expect(units / v, `rank ${s} of ${pp}, v ${v}, G ${G}`).toBeCloseTo(inFlightMicroBatches(pp, s, G, v), 12);
          }
        }
      }
    }
  });
});
