import { describe, expect, it } from 'vitest';
import { type CommOp, interleavedSchedule, maxInFlight, oneFOneBSchedule, type ScheduleStep, virtualNeighbour } from './pipeline-schedule';

/**
 * Runs every stage's schedule against the others with rendezvous (unbuffered) sends: a send
 * completes only together with the matching receive on the neighbour. The ops of one comm step are
 * outstanding together. Returns the order in which computations ran, or throws on a deadlock.
 */
function simulate(pp: number, m: number, chunks = 0): Array<{ stage: number; step: ScheduleStep }> {
  // chunks 0: the plain 1F1B schedule; otherwise the interleaved one with that many chunks per rank.
  const v = Math.max(1, chunks);
  const programs = Array.from({ length: pp }, (_, stage) => (chunks === 0
    ? oneFOneBSchedule({ stage, pp, gradAccumSteps: m })
    : interleavedSchedule({ stage, pp, gradAccumSteps: m, chunks })));
  const pc = new Array<number>(pp).fill(0);
  const pending: Array<CommOp[] | null> = new Array(pp).fill(null);
  const trace: Array<{ stage: number; step: ScheduleStep }> = [];
  const partner = (stage: number, op: CommOp): { stage: number; chunk: number; op: CommOp['op'] } => {
    const dir = op.op === 'sendForward' || op.op === 'recvBackward' ? 'next' : 'prev';
    const n = virtualNeighbour(stage, op.chunk ?? 0, pp, v, dir);
    if (n === null) throw new Error(`stage ${stage} chunk ${op.chunk ?? 0} has no ${dir} neighbour for ${op.op}`);
    const other = { sendForward: 'recvForward', recvForward: 'sendForward', sendBackward: 'recvBackward', recvBackward: 'sendBackward' } as const;
    return { ...n, op: other[op.op] };
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
        const match = pending[p.stage]?.find((o) => o.op === p.op && o.microBatch === op.microBatch && (o.chunk ?? 0) === p.chunk);
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

describe('interleaved 1F1B schedule', () => {
  const label = (s: ScheduleStep): string => (s.kind === 'comm' ? '' : `${s.kind === 'forward' ? 'F' : 'B'}${s.microBatch}.${s.chunk ?? 0}`);

  it('orders (micro-batch, chunk) units as Megatron-LM\'s schedule table with groups of pp', () => {
    const order = interleavedSchedule({ stage: 0, pp: 2, gradAccumSteps: 4, chunks: 2 }).map(label).filter((x) => x !== '');
    // Warm-up (2 - 0 - 1) * 2 + (2 - 1) * 2 = 4 forward units, then F/B pairs, then the last backwards.
    expect(order.join(' ')).toBe('F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0');
  });

  it('refuses G not a multiple of pp and bad chunk counts, naming them', () => {
    expect(() => interleavedSchedule({ stage: 0, pp: 4, gradAccumSteps: 6, chunks: 2 })).toThrow(/gradAccumSteps must be a positive multiple of pp 4/);
    expect(() => interleavedSchedule({ stage: 0, pp: 4, gradAccumSteps: 8, chunks: 0 })).toThrow(/chunks \(virtualStages\)/);
  });

  const shapes: Array<[number, number, number]> = [];
  for (const pp of [1, 2, 3, 4, 8]) {
    for (const v of [1, 2, 3, 4]) {
      for (const groups of [1, 2, 3]) shapes.push([pp, v, pp * groups]);
    }
  }
  for (const [pp, v, m] of shapes) {
    it(`runs without deadlock on unbuffered links, pp=${pp} v=${v} G=${m}`, () => {
      const trace = simulate(pp, m, v);
      expect(trace).toHaveLength(2 * pp * v * m);
      // Data dependencies along the pp * v virtual stages (virtual stage j = chunk * pp + rank).
      const at = new Map<string, number>();
      trace.forEach((t, i) => {
        if (t.step.kind === 'comm') return;
        const key = `${t.step.kind}:${t.step.chunk ?? 0}:${t.stage}:${t.step.microBatch}`;
        expect(at.has(key), `${key} runs once`).toBe(false);
        at.set(key, i);
      });
      const when = (kind: string, j: number, mb: number): number => at.get(`${kind}:${Math.floor(j / pp)}:${j % pp}:${mb}`)!;
      for (let j = 0; j < pp * v; j++) {
        for (let mb = 0; mb < m; mb++) {
          if (j > 0) expect(when('forward', j, mb)).toBeGreaterThan(when('forward', j - 1, mb));
          if (j < pp * v - 1) expect(when('backward', j, mb)).toBeGreaterThan(when('backward', j + 1, mb));
          expect(when('backward', j, mb)).toBeGreaterThan(when('forward', j, mb));
        }
      }
    });
  }

  it('issues the messages of every link in the same order at both ends (untagged FIFO links suffice, even with pp = 2)', () => {
    for (const [pp, v, m] of shapes) {
      const sent = new Map<string, string[]>();
      const received = new Map<string, string[]>();
      for (let stage = 0; stage < pp; stage++) {
        for (const step of interleavedSchedule({ stage, pp, gradAccumSteps: m, chunks: v })) {
          if (step.kind !== 'comm') continue;
          for (const o of step.ops) {
            const forward = o.op === 'sendForward' || o.op === 'recvForward';
            const sending = o.op === 'sendForward' || o.op === 'sendBackward';
            const n = virtualNeighbour(stage, o.chunk ?? 0, pp, v, (o.op === 'sendForward' || o.op === 'recvBackward') ? 'next' : 'prev')!;
            // The message: its direction, micro-batch and the virtual stage that sends it.
            const from = sending ? (o.chunk ?? 0) * pp + stage : n.chunk * pp + n.stage;
            const link = sending ? `${stage}->${n.stage}` : `${n.stage}->${stage}`;
            const log = sending ? sent : received;
            log.set(link, [...(log.get(link) ?? []), `${forward ? 'F' : 'B'}${o.microBatch}@${from}`]);
          }
        }
      }
      expect([...received.keys()].sort(), `pp ${pp} v ${v} G ${m}`).toEqual([...sent.keys()].sort());
      for (const [link, order] of sent) expect(received.get(link), `pp ${pp} v ${v} G ${m} link ${link}`).toEqual(order);
    }
  });

  it('keeps (pp - stage - 1) * 2 + (v - 1) * pp + 1 units in flight, at most G * v: the first rank pp + (pp - 1) / v micro-batches (Korthikanti et al. 2022)', () => {
    for (const [pp, v, m] of shapes) {
      for (let stage = 0; stage < pp; stage++) {
        const expected = Math.min((pp - stage - 1) * 2 + (v - 1) * pp + 1, m * v);
        expect(maxInFlight(interleavedSchedule({ stage, pp, gradAccumSteps: m, chunks: v })), `pp ${pp} v ${v} G ${m} stage ${stage}`).toBe(expected);
      }
    }
  });
});
