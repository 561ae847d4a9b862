// The inter-stage problem, independent of how its frontiers were made (Mist, EuroSys'25, Sec. 5.2).
//
// Choose the number of stages pp, a contiguous layer count and a device mesh per stage, and one point
// of that stage's Pareto frontier, so that layers add up to the model's and devices to the cluster's,
// minimising the 1F1B iteration time (analyzer iterationTime)
//     T_iter = sum_i first_i + (G - 1) * max_i steady_i + max_i last_i
// where first_i is a point's first micro-batch time (the pipeline's fill and drain), steady_i its
// steady micro-batch time and last_i its end-of-step work, which all stages run at once.
// A frontier depends on the stage's position (first/middle/last/only), through activation memory on
// its in-flight micro-batch count min(pp - i, G) (analyzer inFlightMicroBatches), and, when the stage
// model reads pp (the all-busy terms of a measured profile, pipeline-depth.ts), on pp itself.
// Groups therefore hold one frontier per in-flight value and say which depths pp they serve; when
// the frontiers depend on pp (`frontiersPerDepth`) each group serves one depth and the solvers fix pp
// before they choose stages, so that every stage is taken from its own depth's frontier.
import { inFlightMicroBatches, type StagePosition, stagePosition } from '@mist/analyzer';


/** All the frontiers of the instance, flattened: frontier k is points start[k] .. start[k]+length[k]-1. */
export interface FrontierStore {
  steady: Float64Array;
  first: Float64Array;
  last: Float64Array;
  /** The strategy each point stands for (meaning is the caller's). */
  ref: Int32Array;
  start: Int32Array;
  length: Int32Array;
}

/** Stage options sharing position, layer count and mesh. */
export interface StageGroup {
  position: StagePosition;
  layers: number;
  devices: number;
  meshIndex: number;
  /** Pipeline depths (stage counts) the group may be used in. */
  ppMin: number;
  ppMax: number;
  /** In-flight micro-batch counts this group serves, min(pp - i, G): first -> min(pp, G), last and only -> 1. */
  inFlightMin: number;
  inFlightMax: number;
  /** Frontier id for in-flight value f at [f - inFlightMin]; -1 when nothing fits at f. */
  frontierByInFlight: Int32Array;
}

export interface InterStageInstance {
  layers: number;
  devices: number;
  gradAccumSteps: number;
  minStages: number;
  maxStages: number;
  /** Megatron-style: every stage has layers / pp layers. */
  uniformPartition: boolean;
  /** Every stage uses the same mesh. */
  uniformMesh: boolean;
  /**
   * Each group's frontiers hold for its own depths only (each group then serves one pp): the
   * solvers solve one pipeline depth at a time. Otherwise a group's frontiers hold at every depth
   * a plan can place it in, and the DP shares its work across depths.
   */
  frontiersPerDepth: boolean;
  groups: StageGroup[];
  frontiers: FrontierStore;
}

export interface ChosenStage {
  group: number;
  /** Index of the point in the FrontierStore's flat arrays. */
  point: number;
}

export interface InterStageSolution {
  iterationTimeS: number;
  /** max_i steady_i of the chosen points. */
  bottleneckS: number;
  /** First stage first. */
  stages: ChosenStage[];
}

/** Builds a FrontierStore one frontier at a time. */
export class FrontierStoreBuilder {
  private steady: number[] = [];
  private first: number[] = [];
  private last: number[] = [];
  private ref: number[] = [];
  private start: number[] = [];
  private length: number[] = [];

  /**
   * Adds a frontier (points non-dominated in (steady, first, last), steady ascending) and returns
   * its id. `last` may be left out: 0 for every point (a 2-D frontier, first descending).
   */
  add(steady: ArrayLike<number>, first: ArrayLike<number>, ref: ArrayLike<number>, last?: ArrayLike<number>): number {
    for (let i = 1; i < steady.length; i++) {
      if (!(steady[i] >= steady[i - 1]) || (!last && !(first[i] <= first[i - 1]))) {
        throw new Error('FrontierStoreBuilder.add: points must have steady ascending (and first descending without last)');
      }
    }
    this.start.push(this.steady.length);
    this.length.push(steady.length);
    for (let i = 0; i < steady.length; i++) {
      this.steady.push(steady[i]);
      this.first.push(first[i]);
      this.last.push(last ? last[i] : 0);
      this.ref.push(ref[i]);
    }
    return this.start.length - 1;
  }

  build(): FrontierStore {
    return {
      steady: Float64Array.from(this.steady),
      first: Float64Array.from(this.first),
      last: Float64Array.from(this.last),
      ref: Int32Array.from(this.ref),
      start: Int32Array.from(this.start),
      length: Int32Array.from(this.length),
    };
  }
}

/** Frontier id a group uses at in-flight f, or -1. */
export function frontierAt(g: StageGroup, inFlight: number): number {
  if (inFlight < g.inFlightMin || inFlight > g.inFlightMax) return -1;
  return g.frontierByInFlight[inFlight - g.inFlightMin];
}

/**
 * Re-computes the objective of a solution from its points and checks its structure (layers and
 * devices add up, each group is used at its position and in-flight count). Throws on a broken one.
 */
export function evaluateSolution(inst: InterStageInstance, stages: ChosenStage[]): { iterationTimeS: number; bottleneckS: number } {
  const pp = stages.length;
  let layers = 0;
  let devices = 0;
  let first = 0;
  let last = 0;
  let bottleneck = 0;
  stages.forEach((s, i) => {
    const g = inst.groups[s.group];
    if (g.position !== stagePosition(i, pp)) throw new Error(`stage ${i} of ${pp}: group is for position ${g.position}`);
    if (pp < g.ppMin || pp > g.ppMax) throw new Error(`stage ${i} of ${pp}: group is for ${g.ppMin}..${g.ppMax} stages`);
    const inFlight = inFlightMicroBatches(pp, i, inst.gradAccumSteps);
    const f = frontierAt(g, inFlight);
    if (f < 0) throw new Error(`stage ${i} of ${pp}: group has no frontier at in-flight ${inFlight}`);
    const { start, length } = inst.frontiers;
    if (s.point < start[f] || s.point >= start[f] + length[f]) throw new Error(`stage ${i}: point is not on the group's frontier`);
    layers += g.layers;
    devices += g.devices;
    first += inst.frontiers.first[s.point];
    last = Math.max(last, inst.frontiers.last[s.point]);
    bottleneck = Math.max(bottleneck, inst.frontiers.steady[s.point]);
  });
  if (layers !== inst.layers) throw new Error(`solution covers ${layers} layers, not ${inst.layers}`);
  if (devices !== inst.devices) throw new Error(`solution uses ${devices} devices, not ${inst.devices}`);
  return { iterationTimeS: first + (inst.gradAccumSteps - 1) * bottleneck + last, bottleneckS: bottleneck };
}

/**
 * The (pp, group filter) sub-problems: one per depth pp (and mesh) when the uniform partition /
 * uniform mesh switches or per-depth frontiers tie the groups to pp, else one for every depth.
 */
export function subProblems(inst: InterStageInstance): Array<{ ppMin: number; ppMax: number; allowed: Uint8Array }> {
  const all = new Uint8Array(inst.groups.length).fill(1);
  if (!inst.uniformPartition && !inst.uniformMesh && !inst.frontiersPerDepth) return [{ ppMin: inst.minStages, ppMax: inst.maxStages, allowed: all }];
  const out: Array<{ ppMin: number; ppMax: number; allowed: Uint8Array }> = [];
  const meshIndices = [...new Set(inst.groups.map((g) => g.meshIndex))];
  for (let pp = inst.minStages; pp <= inst.maxStages; pp++) {
    if (inst.uniformPartition && inst.layers % pp !== 0) continue;
    const meshChoices = inst.uniformMesh ? meshIndices : [-1];
    for (const m of meshChoices) {
      const allowed = new Uint8Array(inst.groups.length);
      inst.groups.forEach((g, i) => {
        const depthOk = g.ppMin <= pp && pp <= g.ppMax;
        const layersOk = !inst.uniformPartition || g.layers === inst.layers / pp;
        const meshOk = m < 0 || (g.meshIndex === m && g.devices * pp === inst.devices);
        allowed[i] = depthOk && layersOk && meshOk ? 1 : 0;
      });
      out.push({ ppMin: pp, ppMax: pp, allowed });
    }
  }
  return out;
}
