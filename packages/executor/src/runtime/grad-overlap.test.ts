// The DP gradient all-reduce of flat gradients (ZeRO 0-1) overlaps the last micro-batch's backward:
// each unit's part is issued as soon as the backward is done with it, before the step reaches its
// gradient reduction (unit-memory.ts lastBackwardBegins), as the analyzer's cost model assumes (the
// sync beside the last backward). On by default on a GPU device; forced on here, on the CPU: the order
// of the calls on every rank, and the same losses as without it.
import { type Communicator, type CommBuffer } from '@mist/native';
import { getModel, type Plan } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { TokenSource } from './data';
import { RankRuntime } from './rank-runtime';
import { UnitMemory } from './unit-memory';
import { localWorld } from './testing/local-world';
import { singleHostPlan } from '../launch/single-host-plan';

type Event = { kind: 'allReduce'; elements: number } | { kind: 'finishGradients' };

/** The communicator with every all-reduce (of it and of the groups split from it) logged. */
function logged<B extends CommBuffer>(c: Communicator<B>, log: Event[]): Communicator<B> {
  return new Proxy(c, {
    get(target, prop, receiver) {
      if (prop === 'allReduce') {
        return (buffer: B, op?: 'sum' | 'max') => {
          log.push({ kind: 'allReduce', elements: (buffer as unknown as { length: number }).length });
          return target.allReduce(buffer, op);
        };
      }
      if (prop === 'split') {
        return async (color: number, key: number) => {
          const sub = await target.split(color, key);
          return sub ? logged(sub, log) : sub;
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The two ranks of a dp-2 plan on gpt-tiny in this process; `run` gets their runtimes, then all is closed. */
async function withRanks<T>(plan: Plan, overlapComm: boolean, run: (rts: RankRuntime[]) => Promise<T>, wrap = (w: Communicator<Float32Array>, _rank: number) => w): Promise<T> {
  const model = getModel('gpt-tiny');
  const world = await localWorld(2);
  const data = new TokenSource('synthetic', 7, model.vocab, 8, 16);
  const rts: RankRuntime[] = [];
  try {
    rts.push(...await Promise.all(world.map((w, rank) => RankRuntime.create({ plan, model, rank, world: wrap(w, rank), seed: 7, lr: () => 3e-3, data, overlapComm }))));
    return await run(rts);
  } finally {
    await Promise.all(rts.map((r) => r.destroy()));
    await Promise.all(world.map((w) => w.destroy()));
  }
}

describe('communication beside compute (overlapComm): the DP gradient all-reduce of flat gradients, the ZeRO-3 gather of the next layer', () => {
  it('issues one all-reduce per unit before the step reduces its gradients, on every DP rank, in the same order', async () => {
    const model = getModel('gpt-tiny');
    const plan = singleHostPlan(model, { seq: 16, globalBatch: 8, G: 2 }, [{ layers: [0, 3], dp: 2, zero: 1 }]);
    const logs: Event[][] = [[], []];
    const finish = UnitMemory.prototype.finishGradients;
    const owner = new Map<UnitMemory, number>();
    UnitMemory.prototype.finishGradients = async function (this: UnitMemory) {
      logs[owner.get(this) ?? 0].push({ kind: 'finishGradients' });
      return finish.call(this);
    };
    try {
      await withRanks(plan, true, async (runtimes) => {
        runtimes.forEach((r, rank) => { for (const c of (r as unknown as { chunks: Array<{ memory: UnitMemory }> }).chunks) owner.set(c.memory, rank); });
        for (const l of logs) l.length = 0;
        await Promise.all(runtimes.map((r) => r.step()));
        const units = (runtimes[0] as unknown as { chunks: Array<{ stage: { units: Array<{ lo: number; hi: number }> } }> }).chunks[0].stage.units;
        const flat = units[units.length - 1].hi;
        for (const log of logs) {
          const end = log.findIndex((e) => e.kind === 'finishGradients');
          const before = log.slice(0, end).filter((e): e is Extract<Event, { kind: 'allReduce' }> => e.kind === 'allReduce');
          // Every unit (embedding, 4 layers, head) started before the reduction step, together the whole vector.
          expect(before.map((e) => e.elements).sort((x, y) => x - y)).toEqual(units.map((u) => u.hi - u.lo).sort((x, y) => x - y));
          expect(before.reduce((x, e) => x + e.elements, 0)).toBe(flat);
        }
        expect(logs[0].map((e) => (e.kind === 'allReduce' ? e.elements : -1))).toEqual(logs[1].map((e) => (e.kind === 'allReduce' ? e.elements : -1)));
      }, (w, rank) => logged(w, logs[rank]));
    } finally {
      UnitMemory.prototype.finishGradients = finish;
    }
  });

  it('trains the same with and without it (dp 2, G 2, ZeRO 0-3; ZeRO-3 also with checkpointing)', async () => {
    const model = getModel('gpt-tiny');
    const cases: Array<{ zero: 0 | 1 | 2 | 3; ckpt?: number }> = [{ zero: 0 }, { zero: 1 }, { zero: 2 }, { zero: 3 }, { zero: 3, ckpt: 2 }];
    for (const { zero, ckpt } of cases) {
      const plan = singleHostPlan(model, { seq: 16, globalBatch: 8, G: 2 }, [{ layers: [0, 3], dp: 2, zero, ckpt }]);
      const losses: number[][] = [];
      for (const overlap of [false, true]) {
        losses.push(await withRanks(plan, overlap, async (rts) => {
          const l: number[] = [];
          for (let k = 0; k < 3; k++) l.push((await Promise.all(rts.map((r) => r.step()))).find((m) => m.loss !== null)?.loss as number);
          return l;
        }));
      }
      // Two ranks: each element is one sum of two values either way, and a gather moves the same bytes.
      expect(losses[1], `ZeRO-${zero} ckpt ${ckpt ?? 0}`).toEqual(losses[0]);
    }
  });

  it('ZeRO-3: gathers the next layer while one runs (one gather issued ahead of each module but the first of a pass)', async () => {
    const model = getModel('gpt-tiny');
    const plan = singleHostPlan(model, { seq: 16, globalBatch: 8, G: 1 }, [{ layers: [0, 3], dp: 2, zero: 3 }]);
    await withRanks(plan, true, async (rts) => {
      const mem = (rts[0] as unknown as { chunks: Array<{ memory: UnitMemory }> }).chunks[0].memory as unknown as {
        prefetchNext: (units: unknown, phase: string) => void; gather: (u: unknown) => Promise<unknown>;
      };
      let ahead = 0;
      let onDemand = 0;
      const prefetchNext = mem.prefetchNext.bind(mem);
      const gather = mem.gather.bind(mem);
      const started = (mem as unknown as { startGather: (u: unknown) => unknown }).startGather.bind(mem);
      (mem as unknown as { startGather: (u: unknown) => unknown }).startGather = (u: unknown) => { ahead++; return started(u); };
      mem.gather = (u: unknown) => { onDemand++; return gather(u); };
      mem.prefetchNext = prefetchNext;
      await Promise.all(rts.map((r) => r.step()));
      // 6 modules (embedding, 4 layers, head with the tied token table): forward gathers its first
      // module's unit on demand, backward its first module's two (the head's and the tied table);
      // every other module's units were gathered ahead (forward: 4 layers + head and table; backward:
      // 4 layers + embedding).
      expect(onDemand).toBe(3);
      expect(ahead).toBe(11);
    });
  });

  it('ZeRO-2: each unit\'s reduce-scatter runs beside the next module\'s backward, at most one at a time', async () => {
    const model = getModel('gpt-tiny');
    const plan = singleHostPlan(model, { seq: 16, globalBatch: 8, G: 2 }, [{ layers: [0, 3], dp: 2, zero: 2 }]);
    await withRanks(plan, true, async (rts) => {
      const mem = (rts[0] as unknown as { chunks: Array<{ memory: UnitMemory }> }).chunks[0].memory as unknown as {
        startReduce: (u: unknown) => Promise<void>; completeReduce: () => Promise<void>; pendingReduce: unknown;
        exit: (units: unknown, phase: string) => Promise<void>;
      };
      // Each start: was a reduction still pending when the stage went on to another module?
      let started = 0;
      let pendingAtExit = 0;
      const start = mem.startReduce.bind(mem);
      mem.startReduce = async (u: unknown) => { started++; return start(u); };
      const exit = mem.exit.bind(mem);
      mem.exit = async (units: unknown, phase: string) => {
        if (phase === 'backward' && mem.pendingReduce) pendingAtExit++;
        return exit(units, phase);
      };
      await Promise.all(rts.map((r) => r.step()));
      // 2 micro-batches x 6 units; a reduction was in flight at the exit of every backward module but
      // the last one of a pass (its first module), i.e. while the modules after it ran.
      expect(started).toBe(12);
      expect(pendingAtExit).toBe(2 * 5);
      expect(mem.pendingReduce).toBeNull();
    });
  });
});
