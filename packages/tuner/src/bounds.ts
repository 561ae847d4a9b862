// Lower bounds on the iteration time of any plan at a given gradient-accumulation count G, and on any
// plan that uses a given stage group, from three corners of each (stage group, parallel config) grid.
//
// The intra-stage search rests on the cost model's monotonicity (see intra-stage.ts): over the grid
// ckptLayers x offload ratios of one parallel configuration,
//   - the corner (ckpt 0, no offload) has the least steady time and the least imbalance (offloading
//     more never makes a stage faster; checkpointing more never does either once activations are
//     not offloaded, and offloading them is itself never faster);
//   - the corner (ckpt all, offload all) has the least device memory;
//   - the corner (ckpt all, no offload) has the least host memory.
// So a configuration whose least device memory or least host memory does not fit at the group's
// smallest in-flight count holds no fitting point, and every fitting point of a group is no faster
// than the fastest corner among its remaining configurations: (minSteady, minImbalance) is a
// "virtual point" that dominates the group's whole Pareto set.
//
// For a plan at G, T_iter = sum_i imbalance_i + (G - 1) * max_i steady_i (1F1B, inter-stage-instance.ts).
// Dropping the device constraint (stages need not tile the cluster) and the in-flight counts, the
// best plan made of virtual points is a small DP over layer counts only, solved for a few bottleneck
// thresholds e_0 < e_1 < ... < e_K (quantiles of the virtual steady times): a plan whose bottleneck
// T lies in [e_k, e_k+1] costs at least R(e_k+1) + (G - 1) * e_k, where R(e) is the least total
// imbalance of a layer partition whose virtual points all have steady <= e (R falls as e grows).
// The least over k is a lower bound of every plan at G; with one group pinned to a position and
// layer count, the same sums give a lower bound of every plan that uses that group.
import { type CompiledStageModel, IN, INPUT_WIDTH, OUT, OUTPUT_WIDTH } from '@mist/analyzer';
import { type ParallelConfig, queryPp, type StageGroupSpec } from './enumerate';
import type { Shortfall } from './intra-stage';

const POSITION_CODE = { first: 0, middle: 1, last: 2, only: 3 } as const;
const BUCKETS = 48;
const BATCH_ROWS = 1024;

/** Lower bounds of one G. */
export interface GBounds {
  G: number;
  /** No plan at G is faster (Infinity: no plan fits at G). */
  lowerBoundS: number;
  /** Per spec (same order as given): a lower bound of every plan using it (Infinity: nothing of it fits). */
  specLowerBoundS: Float64Array;
  /**
   * Per spec: the least time the other stages of a plan add to a point's imbalance + (G - 1) * steady,
   * so that a point is useless once imbalance + (G - 1) * steady + restS >= the best plan's time.
   */
  specRestS: Float64Array;
  /** Configurations per spec whose least-memory corners fit (the others hold no fitting point). */
  configs: ParallelConfig[][];
  /** Rows evaluated by the analyzer for these bounds. */
  evaluated: number;
  /** Of these rows, the smallest device shortfall, and the smallest host shortfall of one that fits the device (no-fit.ts). */
  shortfall: Shortfall | null;
  hostShortfall: Shortfall | null;
}

/**
 * Evaluates the three corners of every (spec, config) at G and derives the bounds. `configsOf`
 * gives the spec's parallel configurations at G; `ckptMax` the largest ckpt level of a spec's grid,
 * `offloadMax` the largest offload level per state (weights, grads, optim, activations).
 */
export function boundsForG(
  model: CompiledStageModel, layers: number, G: number, specs: readonly StageGroupSpec[],
  configsOf: (spec: StageGroupSpec) => ParallelConfig[], ckptMax: (layers: number) => number,
  offloadMax: readonly [number, number, number, number],
): GBounds {
  const n = specs.length;
  const minSteady = new Float64Array(n).fill(Infinity);
  const minImb = new Float64Array(n).fill(Infinity);
  const kept: ParallelConfig[][] = specs.map(() => []);
  const input = new Float64Array(BATCH_ROWS * 3 * INPUT_WIDTH);
  const output = new Float64Array(BATCH_ROWS * 3 * OUTPUT_WIDTH);
  const rowSpec = new Int32Array(BATCH_ROWS);
  const rowConfig: ParallelConfig[] = [];
  let rows = 0;
  let evaluated = 0;
  let shortfall: Shortfall | null = null;
  let hostShortfall: Shortfall | null = null;
  const noteMiss = (row: number): void => {
    const o = row * OUTPUT_WIDTH;
    if (output[o + OUT.FITS] === 1) return;
    const deviceBytes = Math.max(0, output[o + OUT.PEAK_MEMORY] - model.capacityBytes);
    const hostBytes = Math.max(0, output[o + OUT.HOST_MEMORY] - model.hostCapacityBytes);
    const copy = (): Float64Array => input.slice(row * INPUT_WIDTH, (row + 1) * INPUT_WIDTH);
    if (output[o + OUT.FITS_DEVICE] !== 1) {
      if (!shortfall || deviceBytes < shortfall.deviceBytes) shortfall = { deviceBytes, hostBytes, row: copy() };
    } else if (!hostShortfall || hostBytes < hostShortfall.hostBytes) {
      hostShortfall = { deviceBytes: 0, hostBytes, row: copy() };
    }
  };
  const flush = (): void => {
    if (rows === 0) return;
    model.evaluateBatch(input, output, rows * 3);
    evaluated += rows * 3;
    for (let r = 0; r < 3 * rows; r++) noteMiss(r);
    for (let r = 0; r < rows; r++) {
      const fast = 3 * r * OUTPUT_WIDTH;
      const lowDevice = (3 * r + 1) * OUTPUT_WIDTH;
      const lowHost = (3 * r + 2) * OUTPUT_WIDTH;
      if (output[lowDevice + OUT.FITS_DEVICE] !== 1 || output[lowHost + OUT.FITS_HOST] !== 1) continue;
      const s = rowSpec[r];
      kept[s].push(rowConfig[r]);
      minSteady[s] = Math.min(minSteady[s], output[fast + OUT.STEADY]);
      minImb[s] = Math.min(minImb[s], output[fast + OUT.FIRST] + output[fast + OUT.LAST]);
    }
    rows = 0;
    rowConfig.length = 0;
  };
  specs.forEach((spec, s) => {
    for (const c of configsOf(spec)) {
      const ck = ckptMax(spec.layers);
      writeCorner(input, 3 * rows, spec, G, c, 0, [0, 0, 0, 0]);
      writeCorner(input, 3 * rows + 1, spec, G, c, ck, offloadMax);
      writeCorner(input, 3 * rows + 2, spec, G, c, ck, [0, 0, 0, 0]);
      rowSpec[rows] = s;
      rowConfig.push(c);
      rows++;
      if (rows === BATCH_ROWS) flush();
    }
  });
  flush();
  return { G, ...layerBounds(layers, G, specs, minSteady, minImb), configs: kept, evaluated, shortfall, hostShortfall };
}

export function writeCorner(x: Float64Array, row: number, spec: StageGroupSpec, G: number, c: ParallelConfig, ckpt: number,
  off: readonly [number, number, number, number]): void {
  const o = row * INPUT_WIDTH;
  const pos = POSITION_CODE[spec.position];
  const f = spec.inFlightMin;
  x[o + IN.LAYERS] = spec.layers;
  x[o + IN.POSITION] = pos;
  x[o + IN.IN_FLIGHT] = f;
  x[o + IN.PP] = queryPp(spec); // as the intra-stage search (intra-stage.ts writeRow)
  x[o + IN.MESH_NODES] = spec.mesh.nodes;
  x[o + IN.MESH_GPUS_PER_NODE] = spec.mesh.gpusPerNode;
  x[o + IN.MICRO_BATCH] = c.microBatchSize;
  x[o + IN.GRAD_ACCUM] = G;
  x[o + IN.DP] = c.dp;
  x[o + IN.TP] = c.tp;
  x[o + IN.SP] = c.sequenceParallel ? 1 : 0;
  x[o + IN.CKPT] = ckpt;
  x[o + IN.ZERO] = c.zero;
  x[o + IN.OFF_WEIGHTS] = off[0];
  x[o + IN.OFF_GRADS] = off[1];
  x[o + IN.OFF_OPTIM] = off[2];
  x[o + IN.OFF_ACT] = off[3];
}

/** The layer-only relaxation (see the header) for the plan and for each spec. */
export function layerBounds(L: number, G: number, specs: readonly StageGroupSpec[], minSteady: Float64Array, minImb: Float64Array):
  { lowerBoundS: number; specLowerBoundS: Float64Array; specRestS: Float64Array } {
  const n = specs.length;
  const specLowerBoundS = new Float64Array(n).fill(Infinity);
  const specRestS = new Float64Array(n).fill(Infinity);
  let lowerBoundS = Infinity;
  // Single-stage plans: exact virtual cost.
  specs.forEach((spec, s) => {
    if (spec.position !== 'only' || !Number.isFinite(minSteady[s])) return;
    const v = minImb[s] + (G - 1) * minSteady[s];
    specLowerBoundS[s] = v;
    specRestS[s] = 0;
    lowerBoundS = Math.min(lowerBoundS, v);
  });
  const steadies: number[] = [];
  specs.forEach((spec, s) => {
    if (spec.position !== 'only' && Number.isFinite(minSteady[s])) steadies.push(minSteady[s]);
  });
  if (steadies.length === 0 || L < 2) return { lowerBoundS, specLowerBoundS, specRestS };
  steadies.sort((a, b) => a - b);
  // Thresholds: quantiles of the virtual steady times, the largest last (every point is below it).
  const edges: number[] = [];
  for (let k = 0; k <= BUCKETS; k++) {
    const v = steadies[Math.min(steadies.length - 1, Math.round((k * (steadies.length - 1)) / BUCKETS))];
    if (edges.length === 0 || v > edges[edges.length - 1]) edges.push(v);
  }
  const K = edges.length;
  const posIndex = { first: 0, middle: 1, last: 2 } as const;
  // rest[k][pos][l]: least imbalance of the other stages of a plan with a stage at `pos` of l layers,
  // when every stage has virtual steady <= edges[k].
  const rest: Float64Array[][] = [];
  for (let k = 0; k < K; k++) {
    const e = edges[k];
    // cost[pos][l]: least virtual imbalance of a stage at pos with l layers and steady <= e.
    const cost = [0, 1, 2].map(() => new Float64Array(L + 1).fill(Infinity));
    specs.forEach((spec, s) => {
      if (spec.position === 'only' || !(minSteady[s] <= e)) return;
      const c = cost[posIndex[spec.position]];
      if (minImb[s] < c[spec.layers]) c[spec.layers] = minImb[s];
    });
    const [first, middle, last] = cost;
    // M[m]: m layers as middle stages (0 stages for m = 0); Tail[m]: middles then a last stage;
    // Head[m]: a first stage then middles.
    const M = new Float64Array(L + 1).fill(Infinity);
    M[0] = 0;
    for (let m = 1; m <= L; m++) for (let l = 1; l <= m; l++) if (middle[l] + M[m - l] < M[m]) M[m] = middle[l] + M[m - l];
    const tail = new Float64Array(L + 1).fill(Infinity);
    const head = new Float64Array(L + 1).fill(Infinity);
    for (let m = 1; m <= L; m++) {
      for (let l = 1; l <= m; l++) {
        if (last[l] + M[m - l] < tail[m]) tail[m] = last[l] + M[m - l];
        if (first[l] + M[m - l] < head[m]) head[m] = first[l] + M[m - l];
      }
    }
    // Around a middle stage: a head and a tail (with middles in either).
    const around = new Float64Array(L + 1).fill(Infinity);
    for (let m = 2; m <= L; m++) for (let a = 1; a < m; a++) if (head[a] + tail[m - a] < around[m]) around[m] = head[a] + tail[m - a];
    const rFirst = new Float64Array(L + 1).fill(Infinity);
    const rMiddle = new Float64Array(L + 1).fill(Infinity);
    const rLast = new Float64Array(L + 1).fill(Infinity);
    for (let l = 1; l < L; l++) {
      rFirst[l] = tail[L - l];
      rLast[l] = head[L - l];
      rMiddle[l] = around[L - l];
    }
    rest.push([rFirst, rMiddle, rLast]);
    // Whole plans with bottleneck in [edges[k-1], edges[k]] (k = 0: exactly the least steady).
    const R = Math.min(...Array.from({ length: L - 1 }, (_, i) => first[i + 1] + tail[L - i - 1]));
    const lower = k === 0 ? e : edges[k - 1];
    lowerBoundS = Math.min(lowerBoundS, R + (G - 1) * lower);
  }
  specs.forEach((spec, s) => {
    if (spec.position === 'only' || !Number.isFinite(minSteady[s])) return;
    const p = posIndex[spec.position];
    const own = minSteady[s];
    let lb = Infinity;
    for (let k = 0; k < K; k++) {
      if (edges[k] < own) continue;
      const r = rest[k][p][spec.layers];
      if (!Number.isFinite(r)) continue;
      const lower = Math.max(own, k === 0 ? edges[0] : edges[k - 1]);
      lb = Math.min(lb, minImb[s] + (G - 1) * lower + r);
    }
    specLowerBoundS[s] = lb;
    // The largest threshold allows the most: the least rest of any plan using the spec.
    specRestS[s] = rest[K - 1][p][spec.layers];
  });
  return { lowerBoundS, specLowerBoundS, specRestS };
}
