// Exact bottleneck dynamic programme for the inter-stage problem.
//
// The objective sum_i first_i + (G - 1) * max_i steady_i + max_i last_i has two bottleneck terms.
// For bounds T on every stage's steady time and X on every stage's last, let R(T, X) be the least
// sum_i first_i of a plan whose points all have steady <= T and last <= X. Then
//     T_iter = min over (T, X) of R(T, X) + (G - 1) * T + X
// is exact when T runs over the distinct steady times and X over the distinct lasts: the optimum's
// own bottleneck pair is among them, and at any other pair the plan of R(T, X) costs at most that.
// R falls as T or X grows, so over a box [T_a, T_b] x [X_a, X_b] of the threshold grid every pair
// costs at least R(T_b, X_b) + (G - 1) * T_a + X_a: one DP run at the box's upper corner either
// prunes the box (limit: the best pair so far minus that floor) or gives the pair's objective, and
// the box is split in two along the side whose span loosens that floor more, (G - 1) (T_b - T_a) or
// X_b - X_a (the half holding the corner keeps its R). The search starts from the whole grid;
// R(inf, inf) bounds every box from below. (At G = 768 on 64 GPUs this takes 33 runs where halving
// the longer side by count took 2,173; at 16,384 GPUs 5 to 46 runs per G where a scan over every
// last X with a scan over T inside took 50 to 190.)
//
// One run, R(T, X): with only the points of last <= X (a 2-D frontier per (group, in-flight): steady
// ascending, first descending), the best point with steady <= T is the last one below T, so each
// (group, in-flight) has one cost c(T). A DP over (layers used, devices used), built from the last
// stage backwards so that the k-th stage from the end has in-flight min(k, G) (1F1B keeps
// min(pp - i, G) micro-batches in flight, analyzer inFlightMicroBatches: which depends on k and G
// only, not on pp), gives R = min over partitions of sum_i c_i(T).
// The levels are shared by every depth pp (a pipeline closes with its first stage at level pp), which
// is exact when a group's frontiers hold at every depth it can occur in; with per-depth frontiers
// (inst.frontiersPerDepth) subProblems gives one DP per depth, over that depth's groups only.
import {
  type ChosenStage, evaluateSolution, frontierAt, type FrontierStore, type InterStageInstance, type InterStageSolution, type StageGroup,
  subProblems,
} from './inter-stage-instance';
import { paretoFrontier2D } from './pareto';

export interface DpStats {
  /** DP runs (one R(T, X) each). */
  thresholdsTried: number;
  /** Set when `shouldStop` ended the search early (the solution is then valid but maybe not optimal). */
  stopped?: boolean;
}

/**
 * Solves the instance exactly; null when no combination covers the model on the cluster (or, with
 * `cutoffS`, nothing is faster than it). When `shouldStop` returns true between two runs, the best
 * solution found so far is returned (a valid plan) and `stats.stopped` is set.
 */
export function solveInterStageDp(inst: InterStageInstance, stats?: DpStats, shouldStop?: () => boolean, cutoffS = Infinity): InterStageSolution | null {
  const lasts = distinctSorted(inst.frontiers.last);
  if (lasts.length === 0) return null;
  // The instance restricted to last <= X, per X (built when first needed, shared by the depths).
  const byLast = new Map<number, InterStageInstance>();
  const restricted = (xi: number): InterStageInstance => {
    let r = byLast.get(xi);
    if (!r) {
      r = withLastAtMost(inst, lasts[xi]);
      byLast.set(xi, r);
    }
    return r;
  };
  let best: InterStageSolution | null = null;
  for (const sub of subProblems(inst)) {
    if (best && shouldStop?.()) {
      if (stats) stats.stopped = true;
      break;
    }
    const dp = new BottleneckDp(inst, sub.allowed, sub.ppMin, sub.ppMax, shouldStop);
    const sol = dp.solve(lasts, restricted, stats, best ? Math.min(cutoffS, best.iterationTimeS) : cutoffS);
    if (sol && (!best || sol.iterationTimeS < best.iterationTimeS)) best = sol;
  }
  return best;
}

/** Distinct values, ascending. */
function distinctSorted(values: Float64Array): Float64Array {
  const sorted = Float64Array.from(values).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[n - 1]) sorted[n++] = sorted[i];
  return sorted.slice(0, n);
}

/**
 * The instance restricted to points with last <= X: per frontier the 2-D frontier (steady ascending,
 * first descending) of those points, each point's ref being its index in inst's store (the same
 * frontier ids, so the groups are shared).
 */
function withLastAtMost(inst: InterStageInstance, X: number): InterStageInstance {
  const { steady, first, last, start, length } = inst.frontiers;
  const nf = start.length;
  const outStart = new Int32Array(nf);
  const outLength = new Int32Array(nf);
  const kept: number[] = [];
  const candidates: number[] = [];
  for (let f = 0; f < nf; f++) {
    candidates.length = 0;
    for (let p = start[f]; p < start[f] + length[f]; p++) if (last[p] <= X) candidates.push(p);
    const frontier = paretoFrontier2D(steady, first, Int32Array.from(candidates));
    outStart[f] = kept.length;
    outLength[f] = frontier.length;
    for (const p of frontier) kept.push(p);
  }
  const ref = Int32Array.from(kept);
  return {
    ...inst,
    frontiers: {
      steady: Float64Array.from(ref, (p) => steady[p]),
      first: Float64Array.from(ref, (p) => first[p]),
      last: Float64Array.from(ref, (p) => last[p]),
      ref,
      start: outStart,
      length: outLength,
    },
  };
}

/** The states of one traced level (ascending) and the choice that set each. */
interface TraceLevel {
  idx: Int32Array;
  group: Int32Array;
  point: Int32Array;
}

/**
 * Copies the choices of a level's states out of the dense scratch (which is reset to -1 there, for
 * the next level): a traced run keeps a few entries per level, not a table of every state per level
 * (at 96 levels of 97 x 513 states, 38 MB).
 */
function keepLevel(cells: Int32Array, count: number, group: Int32Array, point: Int32Array): TraceLevel {
  const idx = cells.slice(0, count).sort();
  const out: TraceLevel = { idx, group: new Int32Array(count), point: new Int32Array(count) };
  for (let k = 0; k < count; k++) {
    out.group[k] = group[idx[k]];
    out.point[k] = point[idx[k]];
    group[idx[k]] = -1;
    point[idx[k]] = -1;
  }
  return out;
}

/** The choice that set state idx of a traced level (group -1: none). */
function tracedChoice(level: TraceLevel, idx: number): { gi: number; point: number } {
  let lo = 0;
  let hi = level.idx.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = level.idx[mid];
    if (v === idx) return { gi: level.group[mid], point: level.point[mid] };
    if (v < idx) lo = mid + 1;
    else hi = mid - 1;
  }
  return { gi: -1, point: -1 };
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
  /** Per level f (1-based), the states reached and the choice (group, point) that set each; filled when tracing. */
  private trace: TraceLevel[] = [];
  /** Scratch of a traced run: the choice per state of the level being relaxed (-1 where none). */
  private traceGroupScratch: Int32Array | null = null;
  private tracePointScratch: Int32Array | null = null;
  private finalGroup = -1;
  private finalPoint = -1;
  /** Two state tables reused by every run, and the reachable states of a level. */
  private values: Float64Array;
  private scratch: Float64Array;
  private readonly stateL: Int32Array;
  private readonly stateD: Int32Array;
  /** The finite cells of `values` and `scratch` (both tables are all Infinity between runs). */
  private cellsA: Int32Array;
  private cellsB: Int32Array;
  /** The 2-D frontiers the runs read: those of the instance restricted to the current X. */
  private frontiers: FrontierStore;

  constructor(
    private readonly inst: InterStageInstance,
    allowed: Uint8Array,
    private readonly ppMin: number,
    private readonly ppMax: number,
    private readonly shouldStop?: () => boolean,
  ) {
    this.width = inst.devices + 1;
    this.size = (inst.layers + 1) * this.width;
    this.values = new Float64Array(this.size).fill(Infinity);
    this.scratch = new Float64Array(this.size).fill(Infinity);
    this.cellsA = new Int32Array(this.size);
    this.cellsB = new Int32Array(this.size);
    this.stateL = new Int32Array(this.size);
    this.stateD = new Int32Array(this.size);
    this.frontiers = inst.frontiers;
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
   * nothing is faster than the cutoff (see the header: a box search over the threshold grid).
   * `restricted(xi)` is the instance restricted to last <= lasts[xi]; its points refer to this.inst's.
   */
  solve(lasts: Float64Array, restricted: (xi: number) => InterStageInstance, stats?: DpStats, cutoffS = Infinity): InterStageSolution | null {
    const G = this.inst.gradAccumSteps;
    const Ts = G > 1 ? this.thresholds() : Float64Array.of(Infinity);
    const nX = lasts.length;
    if (Ts.length === 0 || nX === 0) return null;
    const R = (ti: number, xi: number, limit: number): number => {
      this.frontiers = restricted(xi).frontiers;
      if (stats) stats.thresholdsTried++;
      return this.run(Ts[ti], false, limit).value;
    };
    const tCost = (ti: number): number => (G > 1 ? (G - 1) * Ts[ti] : 0);
    // R(inf, inf): every pair costs at least that plus its own (G - 1) T + X.
    const floor0 = tCost(0) + lasts[0];
    const rInf = R(Ts.length - 1, nX - 1, cutoffS - floor0);
    if (!(rInf < cutoffS - floor0)) return null;
    let best = cutoffS;
    let bestT = -1;
    let bestX = -1;
    const top = rInf + tCost(Ts.length - 1) + lasts[nX - 1];
    if (top < best) {
      best = top;
      bestT = Ts.length - 1;
      bestX = nX - 1;
    }
    // Boxes (ta, tb, xa, xb, R at (tb, xb) or NaN when not run yet).
    const boxes: number[] = [0, Ts.length - 1, 0, nX - 1, rInf];
    while (boxes.length > 0) {
      let r = boxes.pop() as number;
      const xb = boxes.pop() as number;
      const xa = boxes.pop() as number;
      const tb = boxes.pop() as number;
      const ta = boxes.pop() as number;
      const floor = tCost(ta) + lasts[xa];
      if (rInf + floor >= best) continue;
      if (Number.isNaN(r)) {
        if (this.stopNow(stats)) break;
        const limit = best - floor;
        r = R(tb, xb, limit);
        if (!(r < limit)) continue;
        const corner = r + tCost(tb) + lasts[xb];
        if (corner < best) {
          best = corner;
          bestT = tb;
          bestX = xb;
        }
      } else if (r + floor >= best) continue;
      if (ta === tb && xa === xb) continue;
      // Split the side that loosens the bound more ((G - 1) T and X are both part of the floor); the
      // upper half keeps the corner (and its R), the lower half needs a run.
      const widthT = tb > ta ? tCost(tb) - tCost(ta) : -1;
      const widthX = xb > xa ? lasts[xb] - lasts[xa] : -1;
      if (widthT >= widthX) {
        const mid = (ta + tb) >> 1;
        boxes.push(mid + 1, tb, xa, xb, r, ta, mid, xa, xb, Number.NaN);
      } else {
        const mid = (xa + xb) >> 1;
        boxes.push(ta, tb, mid + 1, xb, r, ta, tb, xa, mid, Number.NaN);
      }
    }
    // Nothing below the cutoff (when stopped before any corner, the plan at (inf, inf) is still valid).
    if (bestT < 0) {
      if (!stats?.stopped) return null;
      bestT = Ts.length - 1;
      bestX = nX - 1;
    }
    const sub = restricted(bestX);
    this.frontiers = sub.frontiers;
    const traced = this.run(Ts[bestT], true);
    const stages = this.reconstruct(traced.pp).map((st) => ({ group: st.group, point: sub.frontiers.ref[st.point] }));
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

  /** Minimal first of a group at in-flight f among points with steady <= T (Infinity if none). */
  private cost(g: StageGroup, f: number, T: number): number {
    const fid = frontierAt(g, f);
    this.chosenPoint = -1;
    if (fid < 0) return Infinity;
    const { start, length, steady, first } = this.frontiers;
    let lo = start[fid];
    let hi = start[fid] + length[fid] - 1;
    if (length[fid] === 0 || steady[lo] > T) return Infinity;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (steady[mid] <= T) lo = mid;
      else hi = mid - 1;
    }
    this.chosenPoint = lo;
    return first[lo];
  }

  /** R(T) and its depth; states whose partial sum reaches `limit` are dropped (their plans cost more). */
  private run(T: number, trace: boolean, limit = Infinity): DpResult {
    const { layers: L, devices: D, gradAccumSteps: G } = this.inst;
    const W = this.width;
    let best = Infinity;
    let bestPp = 0;
    if (trace) {
      this.trace = [];
      if (!this.traceGroupScratch || !this.tracePointScratch) {
        this.traceGroupScratch = new Int32Array(this.size).fill(-1);
        this.tracePointScratch = new Int32Array(this.size).fill(-1);
      }
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
    // V[l * W + d]: minimal sum of firsts of the last f stages using l layers and d devices; `cells`
    // lists its finite entries, so that a level costs its reachable states, not the whole table
    // (layers x devices: 1.6 M cells at 16,384 GPUs).
    let V = this.values;
    let cells = this.cellsA;
    let count = 0;
    const tg = trace ? this.traceGroupScratch ?? undefined : undefined;
    const tp = trace ? this.tracePointScratch ?? undefined : undefined;
    for (const gi of this.last) {
      const g = this.inst.groups[gi];
      if (g.layers >= L || g.devices >= D) continue;
      const c = this.cost(g, 1, T);
      const idx = g.layers * W + g.devices;
      if (c < V[idx]) {
        if (V[idx] === Infinity) cells[count++] = idx;
        V[idx] = c;
        if (tg && tp) {
          tg[idx] = gi;
          tp[idx] = this.chosenPoint;
        }
      }
    }
    if (tg && tp) this.trace.push(keepLevel(cells, count, tg, tp));
    // Reachable states of the current level as parallel lists of (layers, devices), in row order (the
    // order of the flat index: ties between equal sums resolve as a scan of the table would), so
    // that the relaxation loop needs no division to recover them from the flat index.
    let next = this.scratch;
    let nextCells = this.cellsB;
    for (let f = 1; f < this.ppMax; f++) {
      let n = 0;
      const sl = this.stateL;
      const sd = this.stateD;
      cells.subarray(0, count).sort();
      for (let k = 0; k < count; k++) {
        const idx = cells[k];
        if (V[idx] < limit) {
          const l = (idx / W) | 0;
          sl[n] = l;
          sd[n] = idx - l * W;
          n++;
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
      let nextCount = 0;
      const ng = tg;
      const np = tp;
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
            if (next[to] === Infinity) nextCells[nextCount++] = to;
            next[to] = v;
            if (ng && np) {
              ng[to] = gi;
              np[to] = point;
            }
          }
        }
      }
      // This level's table is the next level's scratch: back to all Infinity.
      for (let k = 0; k < count; k++) V[cells[k]] = Infinity;
      const swap = V;
      V = next;
      next = swap;
      const swapCells = cells;
      cells = nextCells;
      nextCells = swapCells;
      count = nextCount;
      if (ng && np) this.trace.push(keepLevel(cells, count, ng, np));
    }
    for (let k = 0; k < count; k++) V[cells[k]] = Infinity;
    return { value: best, pp: bestPp };
  }

  /** Walks the traced choices back into stages, first stage first. */
  private reconstruct(pp: number): ChosenStage[] {
    const stages: ChosenStage[] = [{ group: this.finalGroup, point: this.finalPoint }];
    if (pp === 1) return stages;
    const W = this.width;
    const g0 = this.inst.groups[this.finalGroup];
    let idx = (this.inst.layers - g0.layers) * W + (this.inst.devices - g0.devices);
    // Stage k from the end (k = pp-1 .. 1) was chosen at level k (trace[k - 1]).
    for (let k = pp - 1; k >= 1; k--) {
      const { gi, point } = tracedChoice(this.trace[k - 1], idx);
      if (gi < 0) throw new Error('inter-stage DP: broken trace (internal error)');
      stages.push({ group: gi, point });
      const g = this.inst.groups[gi];
      idx -= g.layers * W + g.devices;
    }
    return stages;
  }
}
