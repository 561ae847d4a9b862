// Random inter-stage instances for the solver tests (seeded, reproducible), and an exhaustive
// solver that tries every stage sequence.
import { inFlightMicroBatches, type StagePosition, stagePosition } from '@mist/analyzer';
import {
  type ChosenStage, evaluateSolution, FrontierStoreBuilder, frontierAt, type InterStageInstance,
  type StageGroup,
} from '../inter-stage-instance';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomInstanceOptions {
  uniformPartition?: boolean;
  uniformMesh?: boolean;
  /** One group per depth pp, with its own frontiers (as when the stage model reads pp). */
  perDepth?: boolean;
  /** Points with an end-of-step time `last` (3-D frontiers); without it every last is 0. */
  withLast?: boolean;
}

export function randomInstance(seed: number, opts: RandomInstanceOptions = {}): InterStageInstance {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const L = 2 + Math.floor(rnd() * 6);
  const D = pick([2, 3, 4, 4, 6]);
  const G = pick([1, 2, 3, 5, 8]);
  const meshSizes = [1, 2, 4].filter((m) => m <= D);
  const maxStages = Math.min(L, D, 4);
  const store = new FrontierStoreBuilder();
  const groups: StageGroup[] = [];
  // Times on a coarse grid so that ties happen.
  const q = (x: number): number => Math.round(x * 1000) / 1000;
  const frontier = (l: number, devices: number): number => {
    const n = 1 + Math.floor(rnd() * 5);
    const steady: number[] = [];
    const imbalance: number[] = [];
    let s = q((l / devices) * (0.5 + rnd()));
    let im = q((l / devices) * (1 + 2 * rnd()) + 0.5);
    for (let k = 0; k < n; k++) {
      steady.push(s);
      imbalance.push(im);
      s = q(s + 0.001 + rnd() * 0.5);
      im = q(im - 0.001 - rnd() * 0.4);
      if (im <= 0) break;
    }
    if (!opts.withLast) return store.add(steady, imbalance, steady.map((_, k) => k));
    // 3-D: each point also gets a last, and a few more points trade first for last; keep the
    // non-dominated ones in steady order.
    const pts = steady.map((st, k) => [st, imbalance[k], q(rnd() * 0.6)]);
    for (let k = Math.floor(rnd() * 4); k > 0; k--) pts.push([q(steady[0] + rnd() * 1.5), q(imbalance[0] * rnd()), q(rnd() * 0.6)]);
    pts.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    const kept = pts.filter((p, i) => !pts.some((o, j) => j !== i && o[0] <= p[0] && o[1] <= p[1] && o[2] <= p[2] &&
      (o[0] < p[0] || o[1] < p[1] || o[2] < p[2] || j < i)));
    // (Kept non-dominated in (steady, first, last), a superset of the (steady, first, first + last)
    // frontier the tuner keeps: the solvers must find the optimum over any point set.)
    return store.add(kept.map((p) => p[0]), kept.map((p) => p[1]), kept.map((_, k) => k), kept.map((p) => p[2]));
  };
  const positions: StagePosition[] = ['only', 'first', 'middle', 'last'];
  for (const position of positions) {
    for (let l = 1; l <= L; l++) {
      meshSizes.forEach((devices, meshIndex) => {
        if (rnd() < 0.15) return;
        // Depths the group serves, and per depth range [a, b] the in-flight counts min(pp - i, G).
        const [pLo, pHi] = position === 'only' ? [1, 1] : position === 'middle' ? [3, maxStages] : [2, maxStages];
        if (pHi < pLo) return;
        const ranges: Array<[number, number]> = opts.perDepth && position !== 'only'
          ? Array.from({ length: pHi - pLo + 1 }, (_, k): [number, number] => [pLo + k, pLo + k]) : [[pLo, pHi]];
        for (const [a, b] of ranges) {
          const [lo, hi] = position === 'first' ? [a, b] : position === 'middle' ? [2, b - 1] : [1, 1];
          const [flo, fhi] = [Math.min(lo, G), Math.min(hi, G)];
          const byF = new Int32Array(fhi - flo + 1);
          for (let f = flo; f <= fhi; f++) byF[f - flo] = rnd() < 0.1 ? -1 : frontier(l, devices);
          groups.push({ position, layers: l, devices, meshIndex, ppMin: a, ppMax: b, inFlightMin: flo, inFlightMax: fhi, frontierByInFlight: byF });
        }
      });
    }
  }
  // A whole-cluster mesh for single-stage plans.
  const whole = meshSizes.includes(D) ? meshSizes.indexOf(D) : meshSizes.length;
  if (!meshSizes.includes(D)) {
    groups.push({ position: 'only', layers: L, devices: D, meshIndex: whole, ppMin: 1, ppMax: 1, inFlightMin: 1, inFlightMax: 1,
      frontierByInFlight: Int32Array.of(frontier(L, D)) });
  }
  return {
    layers: L, devices: D, gradAccumSteps: G, minStages: 1, maxStages,
    uniformPartition: opts.uniformPartition ?? false, uniformMesh: opts.uniformMesh ?? false,
    frontiersPerDepth: opts.perDepth ?? false, groups, frontiers: store.build(),
  };
}

/** Tries every stage sequence and every point: the reference optimum (value only). */
export function exhaustiveOptimum(inst: InterStageInstance): number | null {
  let best = Infinity;
  const stages: ChosenStage[] = [];
  const { start, length } = inst.frontiers;
  const extend = (pp: number, i: number, layers: number, devices: number): void => {
    if (i === pp) {
      if (layers !== inst.layers || devices !== inst.devices) return;
      if (inst.uniformPartition && stages.some((s) => inst.groups[s.group].layers !== inst.layers / pp)) return;
      if (inst.uniformMesh && stages.some((s) => inst.groups[s.group].meshIndex !== inst.groups[stages[0].group].meshIndex)) return;
      best = Math.min(best, evaluateSolution(inst, stages).iterationTimeS);
      return;
    }
    inst.groups.forEach((g, gi) => {
      if (g.position !== stagePosition(i, pp)) return;
      if (layers + g.layers > inst.layers || devices + g.devices > inst.devices || pp < g.ppMin || pp > g.ppMax) return;
      const f = frontierAt(g, inFlightMicroBatches(pp, i, inst.gradAccumSteps));
      if (f < 0) return;
      for (let p = start[f]; p < start[f] + length[f]; p++) {
        stages.push({ group: gi, point: p });
        extend(pp, i + 1, layers + g.layers, devices + g.devices);
        stages.pop();
      }
    });
  };
  for (let pp = inst.minStages; pp <= inst.maxStages; pp++) extend(pp, 0, 0, 0);
  return Number.isFinite(best) ? best : null;
}
