// Exact bottleneck dynamic programme for the inter-stage problem.
//
// For a fixed bottleneck bound T, every stage may only use frontier points with steady <= T; on a
// frontier (steady ascending, imbalance descending) the best such point is the last one below T, so
// each (group, in-flight) has one cost c(T). A DP over (layers used, devices used), built from the
// last stage backwards so that the k-th stage from the end has in-flight min(k, G) (1F1B keeps
// min(pp - i, G) micro-batches in flight, analyzer inFlightMicroBatches: which depends on k and G
// only, not on pp), gives
//     R(T) = min over partitions of sum_i c_i(T),
// and T_iter = min over T of R(T) + (G - 1) * T is exact when T runs over the distinct steady times
// (the optimum's bottleneck is one of them). Thresholds are scanned upwards from the smallest feasible
// one and the scan stops once (G - 1) * T + R(inf) cannot beat the best found, since R(T) >= R(inf).
// The levels are shared by every depth pp (a pipeline closes with its first stage at level pp), which
// is exact when a group's frontiers hold at every depth it can occur in; with per-depth frontiers
// (inst.frontiersPerDepth) subProblems gives one DP per depth, over that depth's groups only.
import {
  type ChosenStage, evaluateSolution, frontierAt, type InterStageInstance, type InterStageSolution, type StageGroup,
  subProblems,
} from './inter-stage-instance';

export interface DpStats {
  thresholdsTried: number;
  /** Set when `shouldStop` ended the threshold scan early (the solution is then valid but maybe not optimal). */
  stopped?: boolean;
}

/**
 * Solves the instance exactly; null when no combination covers the model on the cluster. When
 * `shouldStop` returns true between two thresholds, the best solution of the thresholds tried so far
 * is returned (a valid plan) and `stats.stopped` is set.
 */
export function solveInterStageDp(inst: InterStageInstance, stats?: DpStats, shouldStop?: () => boolean, cutoffS = Infinity): InterStageSolution | null {
  let best: InterStageSolution | null = null;
  for (const sub of subProblems(inst)) {
    if (best && shouldStop?.()) {
      if (stats) stats.stopped = true;
      break;
    }
    const sol = new BottleneckDp(inst, sub.allowed, sub.ppMin, sub.ppMax, shouldStop).solve(stats, best ? Math.min(cutoffS, best.iterationTimeS) : cutoffS);
    if (sol && (!best || sol.iterationTimeS < best.iterationTimeS)) best = sol;
  }
  return best;
}

interface DpResult {
  value: number;
  pp: number;
}

class BottleneckDp {
  private readonly width: number;
  private readonly size: number;
  private readonly only: StageGroup[] = [];
  private readonly onlyIdx: number[] = [];
  private readonly last: number[] = [];
  private readonly middle: number[] = [];
  private readonly first: number[] = [];
  /** Scratch: chosen point of the current cost() call. */
  private chosenPoint = -1;
  /** Per in-flight level f (1-based), the choice (group, point) that set each state; filled when tracing. */
  private traceGroup: Int32Array[] = [];
  private tracePoint: Int32Array[] = [];
  private finalGroup = -1;
  private finalPoint = -1;
  /** Two state tables reused by every run, and the reachable states of a level. */
  private values: Float64Array;
  private scratch: Float64Array;
  private readonly stateL: Int32Array;
  private readonly stateD: Int32Array;

  constructor(
    private readonly inst: InterStageInstance,
    allowed: Uint8Array,
    private readonly ppMin: number,
    private readonly ppMax: number,
    private readonly shouldStop?: () => boolean,
  ) {
    this.width = inst.devices + 1;
    this.size = (inst.layers + 1) * this.width;
    this.values = new Float64Array(this.size);
    this.scratch = new Float64Array(this.size);
    this.stateL = new Int32Array(this.size);
    this.stateD = new Int32Array(this.size);
    inst.groups.forEach((g, i) => {
      if (!allowed[i]) return;
      if (g.position === 'only') {
        this.only.push(g);
        this.onlyIdx.push(i);
      } else if (g.position === 'last') this.last.push(i);
      else if (g.position === 'middle') this.middle.push(i);
      else this.first.push(i);
    });
  }

  /**
   * The optimum, or null when nothing covers the model or (with `cutoffS`, a known plan's time)
   * nothing is faster than the cutoff.
   */
  solve(stats?: DpStats, cutoffS = Infinity): InterStageSolution | null {
    const G = this.inst.gradAccumSteps;
    const thresholds = G > 1 ? this.thresholds() : new Float64Array(0);
    // Every plan costs at least R(inf) + (G - 1) * (the least steady time): R(inf) matters only below
    // cutoff - that, and when it is not, no plan beats the cutoff.
    const limit = G > 1 && thresholds.length > 0 ? cutoffS - (G - 1) * thresholds[0] : cutoffS;
    const atInf = this.run(Infinity, false, limit);
    if (stats) stats.thresholdsTried++;
    if (!(atInf.value < limit)) return null;
    let bestT = Infinity;
    if (G > 1) {
      // Smallest threshold T with R(T) < limit (R falls as T grows): below it every plan costs at
      // least limit + (G - 1) * (least steady) = the cutoff.
      let lo = 0;
      let hi = thresholds.length - 1;
      while (lo < hi) {
        if (this.stopNow(stats)) break;
        const mid = (lo + hi) >> 1;
        if (stats) stats.thresholdsTried++;
        if (this.run(thresholds[mid], false, limit).value < limit) hi = mid;
        else lo = mid + 1;
      }
      // Only objectives below the cutoff matter: partial sums of imbalance that reach it with the
      // bottleneck term are dropped inside run (imbalances are non-negative, so they only grow).
      let best = cutoffS;
      for (let i = lo; i < thresholds.length; i++) {
        const T = thresholds[i];
        if ((G - 1) * T + atInf.value >= best || this.stopNow(stats)) break;
        if (stats) stats.thresholdsTried++;
        const r = this.run(T, false, best - (G - 1) * T);
        const obj = r.value + (G - 1) * T;
        if (obj < best) {
          best = obj;
          bestT = T;
        }
      }
      // Nothing below the cutoff; when stopped before any threshold, the plan at T = inf is still valid.
      if (bestT === Infinity && !stats?.stopped) return null;
    }
    const traced = this.run(bestT, true);
    const stages = this.reconstruct(traced.pp);
    const check = evaluateSolution(this.inst, stages);
    return { iterationTimeS: check.iterationTimeS, bottleneckS: check.bottleneckS, stages };
  }

  private stopNow(stats?: DpStats): boolean {
    if (!this.shouldStop?.()) return false;
    if (stats) stats.stopped = true;
    return true;
  }

  /** Distinct steady times of every point the allowed groups can use, ascending. */
  private thresholds(): Float64Array {
    const { start, length, steady } = this.inst.frontiers;
    const seen = new Set<number>();
    const visit = (g: StageGroup): void => {
      for (const f of g.frontierByInFlight) {
        if (f < 0) continue;
        for (let p = start[f]; p < start[f] + length[f]; p++) seen.add(steady[p]);
      }
    };
    for (const g of this.only) visit(g);
    for (const i of [...this.last, ...this.middle, ...this.first]) visit(this.inst.groups[i]);
    return Float64Array.from([...seen]).sort();
  }

  /** Minimal imbalance of a group at in-flight f among points with steady <= T (Infinity if none). */
  private cost(g: StageGroup, f: number, T: number): number {
    const fid = frontierAt(g, f);
    this.chosenPoint = -1;
    if (fid < 0) return Infinity;
    const { start, length, steady, imbalance } = this.inst.frontiers;
    let lo = start[fid];
    let hi = start[fid] + length[fid] - 1;
    if (length[fid] === 0 || steady[lo] > T) return Infinity;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (steady[mid] <= T) lo = mid;
      else hi = mid - 1;
    }
    this.chosenPoint = lo;
    return imbalance[lo];
  }

  /** R(T) and its depth; states whose partial sum reaches `limit` are dropped (their plans cost more). */
  private run(T: number, trace: boolean, limit = Infinity): DpResult {
    const { layers: L, devices: D, gradAccumSteps: G } = this.inst;
    const W = this.width;
    let best = Infinity;
    let bestPp = 0;
    if (trace) {
      this.traceGroup = [];
      this.tracePoint = [];
      this.finalGroup = -1;
      this.finalPoint = -1;
    }
    if (this.ppMin <= 1) {
      this.only.forEach((g, k) => {
        if (g.layers !== L || g.devices !== D) return;
        const c = this.cost(g, 1, T);
        if (c < best) {
          best = c;
          bestPp = 1;
          if (trace) {
            this.finalGroup = this.onlyIdx[k];
            this.finalPoint = this.chosenPoint;
          }
        }
      });
    }
    if (this.ppMax < 2) return { value: best, pp: bestPp };
    // V[l * W + d]: minimal imbalance of the last f stages using l layers and d devices.
    let V = this.values.fill(Infinity);
    const tg = trace ? new Int32Array(this.size).fill(-1) : undefined;
    const tp = trace ? new Int32Array(this.size).fill(-1) : undefined;
    for (const gi of this.last) {
      const g = this.inst.groups[gi];
      if (g.layers >= L || g.devices >= D) continue;
      const c = this.cost(g, 1, T);
      const idx = g.layers * W + g.devices;
      if (c < V[idx]) {
        V[idx] = c;
        if (tg && tp) {
          tg[idx] = gi;
          tp[idx] = this.chosenPoint;
        }
      }
    }
    if (tg && tp) {
      this.traceGroup.push(tg);
      this.tracePoint.push(tp);
    }
    // Reachable states of the current level as parallel lists of (layers, devices), gathered row by
    // row so that the relaxation loop needs no division to recover them from the flat index.
    let next = this.scratch;
    for (let f = 1; f < this.ppMax; f++) {
      let n = 0;
      const sl = this.stateL;
      const sd = this.stateD;
      for (let l = 1; l < L; l++) {
        const row = l * W;
        for (let d = 1; d < D; d++) {
          if (V[row + d] < limit) {
            sl[n] = l;
            sd[n] = d;
            n++;
          }
        }
      }
      if (n === 0) break;
      // The (f + 1)-th stage from the end has min(f + 1, G) micro-batches in flight.
      const inFlight = Math.min(f + 1, G);
      // Close the pipeline with a first stage (pp = f + 1).
      if (f + 1 >= this.ppMin) {
        for (const gi of this.first) {
          const g = this.inst.groups[gi];
          const rest = (L - g.layers) * W + (D - g.devices);
          if (g.layers >= L || g.devices >= D || f + 1 < g.ppMin || f + 1 > g.ppMax || !(V[rest] < Infinity)) continue;
          const c = this.cost(g, inFlight, T);
          if (c + V[rest] < best) {
            best = c + V[rest];
            bestPp = f + 1;
            if (trace) {
              this.finalGroup = gi;
              this.finalPoint = this.chosenPoint;
            }
          }
        }
      }
      if (f + 1 >= this.ppMax) break;
      // Or put a middle stage in front of them.
      next.fill(Infinity);
      const ng = trace ? new Int32Array(this.size).fill(-1) : undefined;
      const np = trace ? new Int32Array(this.size).fill(-1) : undefined;
      for (const gi of this.middle) {
        const g = this.inst.groups[gi];
        const c = this.cost(g, inFlight, T);
        if (c === Infinity) continue;
        const point = this.chosenPoint;
        const gl = g.layers;
        const gd = g.devices;
        // Leave at least one layer and one device for the first stage.
        const lMax = L - gl;
        const dMax = D - gd;
        for (let k = 0; k < n; k++) {
          const l = sl[k];
          const d = sd[k];
          if (l >= lMax || d >= dMax) continue;
          const from = l * W + d;
          const to = from + gl * W + gd;
          const v = V[from] + c;
          if (v < next[to]) {
            next[to] = v;
            if (ng && np) {
              ng[to] = gi;
              np[to] = point;
            }
          }
        }
      }
      const swap = V;
      V = next;
      next = swap;
      if (ng && np) {
        this.traceGroup.push(ng);
        this.tracePoint.push(np);
      }
    }
    return { value: best, pp: bestPp };
  }

  /** Walks the traced choices back into stages, first stage first. */
  private reconstruct(pp: number): ChosenStage[] {
    const stages: ChosenStage[] = [{ group: this.finalGroup, point: this.finalPoint }];
    if (pp === 1) return stages;
    const W = this.width;
    const g0 = this.inst.groups[this.finalGroup];
    let idx = (this.inst.layers - g0.layers) * W + (this.inst.devices - g0.devices);
    // Stage k from the end (k = pp-1 .. 1) was chosen at level k (traceGroup[k - 1]).
    for (let k = pp - 1; k >= 1; k--) {
      const gi = this.traceGroup[k - 1][idx];
      const point = this.tracePoint[k - 1][idx];
      if (gi < 0) throw new Error('inter-stage DP: broken trace (internal error)');
      stages.push({ group: gi, point });
      const g = this.inst.groups[gi];
      idx -= g.layers * W + g.devices;
    }
    return stages;
  }
}
