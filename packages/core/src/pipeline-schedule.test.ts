import { describe, expect, it } from 'vitest';
import { type CommOp, maxInFlight, oneFOneBSchedule, type ScheduleStep } from './pipeline-schedule';

/**
 * Runs every stage's schedule against the others with rendezvous (unbuffered) sends: a send
 * completes only together with the matching receive on the neighbour. The ops of one comm step are
 * outstanding together. Returns the order in which computations ran, or throws on a deadlock.
 */
function simulate(pp: number, m: number): Array<{ stage: number; step: ScheduleStep }> {
  const programs = Array.from({ length: pp }, (_, stage) => oneFOneBSchedule({ stage, pp, gradAccumSteps: m }));
  const pc = new Array<number>(pp).fill(0);
  const pending: Array<CommOp[] | null> = new Array(pp).fill(null);
  const trace: Array<{ stage: number; step: ScheduleStep }> = [];
  const partner = (stage: number, op: CommOp): { stage: number; op: CommOp['op'] } => {
    switch (op.op) {
      case 'sendForward': return { stage: stage + 1, op: 'recvForward' };
      case 'recvForward': return { stage: stage - 1, op: 'sendForward' };
      case 'sendBackward': return { stage: stage - 1, op: 'recvBackward' };
      case 'recvBackward': return { stage: stage + 1, op: 'sendBackward' };
    }
  };
  for (;;) {
    let progressed = false;
    for (let s = 0; s < pp; s++) {
      while (pc[s] < programs[s].length && pending[s] === null) {
        const step = programs[s][pc[s]];
        if (step.kind === 'comm') {
          pending[s] = [...step.ops];
          break;
        }
        trace.push({ stage: s, step });
        pc[s]++;
        progressed = true;
      }
    }
    for (let s = 0; s < pp; s++) {
      for (const op of [...(pending[s] ?? [])]) {
        const p = partner(s, op);
        const match = pending[p.stage]?.find((o) => o.op === p.op && o.microBatch === op.microBatch);
        if (!match) continue;
        pending[s] = pending[s]!.filter((o) => o !== op);
        pending[p.stage] = pending[p.stage]!.filter((o) => o !== match);
        progressed = true;
      }
    }
    for (let s = 0; s < pp; s++) {
      if (pending[s]?.length === 0) {
        pending[s] = null;
        pc[s]++;
      }
    }
    if (pc.every((p, s) => p === programs[s].length)) return trace;
    if (!progressed) throw new Error(`deadlock at pc=${pc.join(',')}`);
  }
}

describe('1F1B schedule', () => {
  it('has the warm-up, steady and cool-down phases of Megatron-LM', () => {
    const kinds = oneFOneBSchedule({ stage: 0, pp: 4, gradAccumSteps: 6 })
      .filter((s) => s.kind !== 'comm')
      .map((s) => `${s.kind === 'forward' ? 'F' : 'B'}${(s as { microBatch: number }).microBatch}`);
    expect(kinds.join(' ')).toBe('F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5');
  });

  for (const [pp, m] of [[1, 1], [1, 4], [2, 1], [2, 2], [2, 8], [3, 2], [4, 4], [4, 9], [8, 3], [8, 16]]) {
    it(`runs without deadlock on unbuffered links, pp=${pp} G=${m}`, () => {
      const trace = simulate(pp, m);
      // Every stage runs each forward and backward exactly once.
      expect(trace).toHaveLength(2 * pp * m);
      // Data dependencies: F(mb) on stage s after F(mb) on s-1; B(mb) on s after B(mb) on s+1 and F(mb) on s.
      const at = (stage: number, kind: string, mb: number): number =>
        trace.findIndex((t) => t.stage === stage && t.step.kind === kind && (t.step as { microBatch: number }).microBatch === mb);
      for (let s = 0; s < pp; s++) {
        for (let mb = 0; mb < m; mb++) {
          if (s > 0) expect(at(s, 'forward', mb)).toBeGreaterThan(at(s - 1, 'forward', mb));
          if (s < pp - 1) expect(at(s, 'backward', mb)).toBeGreaterThan(at(s + 1, 'backward', mb));
          expect(at(s, 'backward', mb)).toBeGreaterThan(at(s, 'forward', mb));
        }
      }
    });
  }

  it('keeps at most pp - stage micro-batches in flight (the analyzer\'s activation factor)', () => {
    for (let stage = 0; stage < 4; stage++) {
      expect(maxInFlight(oneFOneBSchedule({ stage, pp: 4, gradAccumSteps: 8 }))).toBe(4 - stage);
    }
    expect(maxInFlight(oneFOneBSchedule({ stage: 0, pp: 4, gradAccumSteps: 2 }))).toBe(2);
  });
});
