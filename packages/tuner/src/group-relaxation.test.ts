// The relaxation over unsearched stage groups (group-relaxation.ts): a group's virtual point never
// costs a plan more than any of its real points, so an instance with some groups replaced by theirs
// is never worse than the real one; and the tuner that relies on it finds the plan it finds without it.
import { builtinHardwareProfile, getModel, parseClusterShorthand, parseTrainingSpec } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { virtualPoint } from './group-relaxation';
import { solveInterStageDp } from './inter-stage-dp';
import { FrontierStoreBuilder, type InterStageInstance, type StageGroup } from './inter-stage-instance';
import { mistSpace, NO_OFFLOAD_LEVELS, uniformOffloadLevels } from './search-space';
import { mulberry32, randomInstance } from './test/random-instance';
import { tinyContext, withAllBusy } from './test/tiny-context';
import { tune } from './tuner';

/** `inst` with the groups `virtualOf` picks standing in as one point at the minima of all their frontiers. */
function relaxInstance(inst: InterStageInstance, virtualOf: (g: number) => boolean): InterStageInstance {
  const { steady, first, last, start, length } = inst.frontiers;
  const store = new FrontierStoreBuilder();
  const copy = (f: number): number => {
    const span = Array.from({ length: length[f] }, (_, k) => start[f] + k);
    return store.add(span.map((p) => steady[p]), span.map((p) => first[p]), span.map((p) => p), span.map((p) => last[p]));
  };
  const groups: StageGroup[] = inst.groups.map((g, gi) => {
    if (!virtualOf(gi)) return { ...g, frontierByInFlight: g.frontierByInFlight.map((f) => (f < 0 ? -1 : copy(f))) };
    let s = Infinity;
    let fi = Infinity;
    let imb = Infinity;
    for (const f of g.frontierByInFlight) {
      if (f < 0) continue;
      for (let p = start[f]; p < start[f] + length[f]; p++) {
        s = Math.min(s, steady[p]);
        fi = Math.min(fi, first[p]);
        imb = Math.min(imb, first[p] + last[p]);
      }
    }
    const v = virtualPoint({ steady: s, first: fi, imbalance: imb });
    if (!v) return { ...g, frontierByInFlight: g.frontierByInFlight.map(() => -1) };
    const id = store.add([v.steady], [v.first], [-1], [v.last]);
    return { ...g, frontierByInFlight: g.frontierByInFlight.map(() => id) };
  });
  return { ...inst, groups, frontiers: store.build() };
}

describe('relaxation over unsearched stage groups', () => {
  it('a virtual point needs finite minima and never has a negative last', () => {
    expect(virtualPoint({ steady: 1, first: 2, imbalance: 5 })).toEqual({ steady: 1, first: 2, last: 3 });
    expect(virtualPoint({ steady: 1, first: 2, imbalance: 1.5 })).toEqual({ steady: 1, first: 2, last: 0 });
    expect(virtualPoint({ steady: Infinity, first: 2, imbalance: 5 })).toBeNull();
  });

  it('replacing any groups by their virtual points never raises the optimum (random instances with end-of-step times)', () => {
    let compared = 0;
    let strictlyBelow = 0;
    for (let seed = 1; seed <= 60; seed++) {
      for (const opts of [{ withLast: true }, { withLast: true, perDepth: true }, { withLast: true, uniformMesh: true }]) {
        const inst = randomInstance(seed, opts);
        const real = solveInterStageDp(inst);
        const rnd = mulberry32(seed * 7 + 1);
        for (const share of [1, 0.5]) {
          const relaxed = solveInterStageDp(relaxInstance(inst, () => rnd() < share));
          if (!real) continue;
          // Every real plan is a plan of the relaxed instance (its groups only gain points).
          expect(relaxed, `seed ${seed}`).not.toBeNull();
          expect(relaxed!.iterationTimeS, `seed ${seed}, share ${share}`).toBeLessThanOrEqual(real.iterationTimeS * (1 + 1e-12));
          compared++;
          if (relaxed!.iterationTimeS < real.iterationTimeS * (1 - 1e-9)) strictlyBelow++;
        }
      }
    }
    expect(compared).toBeGreaterThan(200);
    expect(strictlyBelow).toBeGreaterThan(0);
  });

  const reduced = mistSpace({ offload: uniformOffloadLevels(0.5), frontierSize: Infinity, maxCp: 1 });
  const activations = mistSpace({ zero: [0, 1], offload: { ...NO_OFFLOAD_LEVELS, activations: [0, 0.5, 1] }, frontierSize: Infinity, maxCp: 1 });
  const cases = [
    { name: '2x2, offload 1/2 grid', ctx: tinyContext('2x2-l4', 3e6, 8), space: reduced },
    { name: '2x2, activation offload, four stages', ctx: tinyContext('2x2-l4', 3e6, 32), space: activations },
    { name: '1x4, activation offload', ctx: tinyContext('1x4-l4', 2.5e6, 16), space: activations },
    { name: '1x4, measured-style profile (frontiers per depth)', ctx: withAllBusy(tinyContext('1x4-l4', 2.5e6, 16)), space: activations },
    { name: '2x4, activation offload', ctx: tinyContext('2x4-l4', 2.5e6, 32), space: activations },
  ];
  it('the tuner finds the same optimum with and without it, searching no more stage groups', async () => {
    let spared = 0;
    for (const c of cases) {
      const without = await tune(c.ctx, { space: c.space, relaxationRounds: 0 });
      const withIt = await tune(c.ctx, { space: c.space });
      expect(withIt.objectiveS, c.name).not.toBeNull();
      expect(withIt.objectiveS, c.name).toBe(without.objectiveS);
      expect(withIt.gap, c.name).toBeNull();
      expect(withIt.groupsSearched!, c.name).toBeLessThanOrEqual(without.groupsSearched!);
      spared += without.groupsSearched! - withIt.groupsSearched!;
    }
    expect(spared).toBeGreaterThan(0);
  });

  it('at full size too: gpt3-175b on 8x8-a100-80gb finds the plan it finds without the relaxation', async () => {
    const ctx = {
      model: getModel('gpt3-175b'),
      training: parseTrainingSpec({ globalBatch: 1536, seqLen: 2048, flashAttention: true }),
      profile: builtinHardwareProfile(parseClusterShorthand('8x8-a100-80gb')),
    };
    const without = await tune(ctx, { space: mistSpace(), relaxationRounds: 0 });
    const withIt = await tune(ctx, { space: mistSpace() });
    expect(withIt.objectiveS).toBe(without.objectiveS);
    // (The relaxation's budgets are in wall time: on a loaded machine it may spare fewer groups, never more searches.)
    expect(withIt.groupsSearched!).toBeLessThanOrEqual(without.groupsSearched!);
  }, 60_000);
});
