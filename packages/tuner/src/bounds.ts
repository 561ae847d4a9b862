// Lower bounds on the iteration time of any plan at a given gradient-accumulation count G, and on any
// plan that uses a given stage group, from corners of each (stage group, parallel config) grid.
//
// The intra-stage search rests on the cost model's monotonicity (see intra-stage.ts): over the grid
// ckptLayers x offload ratios of one parallel configuration,
//   - the corner (ckpt 0, no offload) has the least steady time, the least first micro-batch time and
//     the least imbalance = first + last (offloading
//     more never makes a stage faster; checkpointing more never does either once activations are
//     not offloaded, and offloading them is itself never faster);
//   - the corner (ckpt all, offload all) has the least device memory;
//   - the corner (ckpt all, no offload) has the least host memory.
// So a configuration whose least device memory or least host memory does not fit at the group's
// smallest in-flight count holds no fitting point, and every fitting point of a group is no faster
// than the fastest corner among its remaining configurations: (minSteady, minImbalance) is a
// "virtual point" that dominates the group's whole Pareto set. When the fastest corner does not fit,
// the fastest point that can fit is bounded from the least levels a fitting point needs (memory-aware,
// see boundsForG), and configurations that cannot fit at all are proven so (total bytes).
//
// For a plan at G, T_iter = sum_i first_i + (G - 1) * max_i steady_i + max_i last_i (1F1B,
// inter-stage-instance.ts), which is at least any one stage's first + last plus the others' firsts.
// Dropping exact tiling and the in-flight counts, the best plan made of virtual points is a small DP
// over layer counts only, solved for a few bottleneck thresholds e_0 < e_1 < ... < e_K (quantiles of
// the virtual steady times): a plan whose bottleneck T lies in [e_k, e_k+1] costs at least
// R(e_k+1) + (G - 1) * e_k, where R(e) is the least sum over a layer partition whose virtual points
// all have steady <= e of the first stage's first + last and the other stages' firsts (R falls as e
// grows); the threshold counts only when the
// fewest devices of such a partition (the same DP over mesh sizes) is at most the cluster's, since
// stages take disjoint devices. The least over k is a lower bound of every plan at G; with one group
// pinned to a position and layer count, the same sums give a lower bound of every plan that uses it.
import { type CompiledStageModel, INPUT_WIDTH, OUT as OUT_COLUMNS, OUTPUT_WIDTH } from '@mist/analyzer';
import { meshSize } from '@mist/core';
import type { ParallelConfig, StageGroupSpec } from './enumerate';
import { writeGroupRow } from './group-row';
import type { Shortfall } from './intra-stage';
import type { OffloadLevels } from './search-space';

// Module-level copies of the column tables (a re-exported binding is a getter call per access).
const OUT = OUT_COLUMNS;
const BUCKETS = 96;
const BATCH_ROWS = 1024;

/** What the intra-stage search of one spec needs from the bounds (per kept configuration). */
export interface SpecDetail {
  /** Configurations that may hold a fitting point (the others provably hold none). */
  configs: ParallelConfig[];
  /**
   * Per kept configuration (same order): the least grid level index of (ckpt, offload weights, grads,
   * optim, activations) a fitting point can have (DIMS numbers per configuration).
   */
  roots: Int32Array;
  /** Per kept configuration: lower bounds of the steady time and of the imbalance of every fitting point. */
  steady: Float64Array;
  imbalance: Float64Array;
  /** Analyzer rows evaluated to derive it (0 when it came with the bounds). */
  evaluated: number;
}

/**
 * Per spec, lower bounds of every fitting point over all its configurations: steady time, first
 * micro-batch time and imbalance (first + last); Infinity when no configuration can fit. They are all
 * the layer relaxation reads, depend on (spec, samples per micro-batch) and the analyzer context only,
 * and are what the bounds cache keeps (bounds-cache.ts).
 */
export interface SpecMinima {
  steady: number;
  first: number;
  imbalance: number;
}

/** Lower bounds of one G. */
export interface GBounds {
  G: number;
  /** No plan at G is faster (Infinity: no plan fits at G). */
  lowerBoundS: number;
  /** Per spec (same order as given): a lower bound of every plan using it (Infinity: no plan with it fits). */
  specLowerBoundS: Float64Array;
  /**
   * Per spec: the least time the other stages of a plan add to a point's first + last + (G - 1) *
   * steady (the sum of their firsts), so that a point is useless once that + restS >= the best plan's time.
   */
  specRestS: Float64Array;
  /**
   * Per spec: a lower bound of the bottleneck (the largest steady time) of every plan at G that uses
   * it; at least its own least steady time. The frontier cache reads it (frontier-cache.ts cutoffCovers).
   */
  specBottleneckS: Float64Array;
  /** Per spec: the minima the bounds were derived from. */
  minima: SpecMinima[];
  /** Whether the per-spec values are those of the partition relaxation (LayerBounds.complete). */
  complete: boolean;
  /** Whether they were derived from the bounds at an earlier G (EarlierMinima.earlierG) instead. */
  fromEarlierG: boolean;
  /** Per spec: 1 when its minima were derived here, 0 when they were given (`known`). */
  derived: Uint8Array;
  /**
   * Per spec: 1 when its minima are its fast-corner minima derived here (weaker lower bounds, the
   * memory corners not evaluated: G was closed without them, see boundsForG).
   */
  derivedWeak: Uint8Array;
  /**
   * The kept configurations of spec s with their least levels and time bounds: derived with the
   * bounds for the specs whose minima were derived here, on the first call for the others.
   */
  detail(s: number): SpecDetail;
  /** Rows evaluated by the analyzer for these bounds (details derived later count in their own `evaluated`). */
  evaluated: number;
  /** Of these rows, the smallest device shortfall, and the smallest host shortfall of one that fits the device (no-fit.ts). */
  shortfall: Shortfall | null;
  hostShortfall: Shortfall | null;
}

/** What an earlier derivation gives boundsForG (see there), and whether it runs the fast-corner test. */
export interface EarlierMinima {
  /** A spec's minima, derived before for the same (spec, samples per micro-batch), or null. */
  known?: (s: number) => SpecMinima | null;
  /** Lower bounds of a spec's minima when `known` has none, or null (read by the fast-corner test only). */
  knownWeak?: (s: number) => SpecMinima | null;
  /** Whether G may be closed on the fast corners alone (then the memory corners of the fresh specs are not evaluated). */
  fastTest?: boolean;
  /**
   * The bounds of the same specs (same groups, same samples per micro-batch, same devices) at a
   * smaller G (g-bounds-cache.ts): when every spec's minima are known, the bounds at this G
   * are derived from them (boundsFromEarlierG) instead of the partition relaxation.
   */
  earlierG?: EarlierGBounds | null;
}

/** What boundsFromEarlierG reads of the bounds at an earlier G. */
export interface EarlierGBounds {
  G: number;
  lowerBoundS: number;
  specLowerBoundS: ArrayLike<number>;
  specBottleneckS: ArrayLike<number>;
  specRestS: ArrayLike<number>;
}

/**
 * Bounds at G from bounds of the same specs at G0 <= G (the same stage groups at the same samples per
 * micro-batch, the same devices; the cost columns not reading G). A plan at G is a plan at G0 with the
 * same points (it fits there: in flight min(pp - i, G0) <= min(pp - i, G), and memory grows with the
 * in-flight count; times do not read it), so its time at G is its time at G0 plus (G - G0) times its
 * bottleneck B: T_G = sum first + (G - 1) B + max last. Every plan at G0 using spec s has T_G0 >=
 * specLowerBound_G0(s) and B >= specBottleneck_G0(s), hence T_G >= specLowerBound_G0(s) + (G - G0)
 * specBottleneck_G0(s); every plan uses some spec, so the least of those bounds G; and T_G >=
 * lowerBound_G0 + (G - G0) times the least bottleneck of any spec. The least bottleneck and the rest
 * of the other stages (the last threshold's, which takes in every spec) do not depend on G.
 * gpt3-175b on 64x8-a100-80gb, batch 3072 from the bounds at batch 1536: these bounds are within
 * 1.5% of (and mostly above) the relaxation's at G, and leave as few or fewer groups open.
 */
export function boundsFromEarlierG(G: number, n: number, earlier: EarlierGBounds): LayerBounds {
  const dG = G - earlier.G;
  if (!(dG >= 0)) throw new RangeError(`bounds from an earlier G: ${earlier.G} is above ${G}`);
  const specLowerBoundS = new Float64Array(n);
  const specBottleneckS = new Float64Array(n);
  const specRestS = new Float64Array(n);
  let least = Infinity;
  let leastBottleneck = Infinity;
  for (let s = 0; s < n; s++) {
    const b = earlier.specBottleneckS[s];
    const lb = earlier.specLowerBoundS[s];
    specBottleneckS[s] = b;
    specRestS[s] = earlier.specRestS[s];
    specLowerBoundS[s] = lb === Infinity ? Infinity : lb + dG * b;
    if (specLowerBoundS[s] < least) least = specLowerBoundS[s];
    if (lb !== Infinity && b < leastBottleneck) leastBottleneck = b;
  }
  const viaG = earlier.lowerBoundS === Infinity ? Infinity : earlier.lowerBoundS + dG * (leastBottleneck === Infinity ? 0 : leastBottleneck);
  return { lowerBoundS: Math.max(least, viaG), specLowerBoundS, specRestS, specBottleneckS, complete: true };
}

/** The per-stage grid: ckpt levels of a stage with `layers` layers, and the offload levels. */
export interface StageGrid {
  ckpt: (layers: number) => number[];
  offload: OffloadLevels;
}

export const DIMS = 5; // ckpt, offload weights, grads, optim, activations

/** The fast corners of some (spec, config) pairs (Corners.fastCorners), as columns. */
interface FastCorners {
  count: number;
  spec: Int32Array;
  config: ParallelConfig[];
  steady: Float64Array;
  first: Float64Array;
  imbalance: Float64Array;
  /** 1 when the fast corner fits the device. */
  fits: Uint8Array;
}

/** Both lists of fast corners, in order. */
function concatCorners(a: FastCorners, b: FastCorners): FastCorners {
  if (b.count === 0) return a;
  const f64 = (x: Float64Array, y: Float64Array): Float64Array => { const out = new Float64Array(x.length + y.length); out.set(x); out.set(y, x.length); return out; };
  const spec = new Int32Array(a.count + b.count);
  spec.set(a.spec);
  spec.set(b.spec, a.count);
  const fits = new Uint8Array(a.count + b.count);
  fits.set(a.fits);
  fits.set(b.fits, a.count);
  return {
    count: a.count + b.count, spec, config: [...a.config, ...b.config], steady: f64(a.steady, b.steady), first: f64(a.first, b.first),
    imbalance: f64(a.imbalance, b.imbalance), fits,
  };
}

/** The fast corners of the specs marked in `keep`, in order. */
function pickCorners(a: FastCorners, keep: Uint8Array): FastCorners {
  const idx: number[] = [];
  for (let i = 0; i < a.count; i++) if (keep[a.spec[i]]) idx.push(i);
  if (idx.length === a.count) return a;
  return {
    count: idx.length, spec: Int32Array.from(idx, (i) => a.spec[i]), config: idx.map((i) => a.config[i]),
    steady: Float64Array.from(idx, (i) => a.steady[i]), first: Float64Array.from(idx, (i) => a.first[i]),
    imbalance: Float64Array.from(idx, (i) => a.imbalance[i]), fits: Uint8Array.from(idx, (i) => a.fits[i]),
  };
}

/** A (spec, config) that may hold a fitting point. */
interface Item {
  s: number;
  c: ParallelConfig;
  steady: number;
  /** Lower bounds of the first micro-batch time and of first + last. */
  first: number;
  imbalance: number;
  /** Whether the fastest corner fits the device (then every least level is 0). */
  fastFits: boolean;
  /**
   * Least fitting level index per dimension (bisection: every level below lo does not fit, hi does);
   * made only for the items whose levels are searched (refine), zero (null) for the others.
   */
  lo: Int32Array | null;
  hi: Int32Array | null;
}

/**
 * Evaluates corners of every (spec, config) at G and derives the bounds (see the header). Per
 * configuration, memory-aware:
 *   - total bytes: the device peak is at least states + stored activations (stage-model.ts: peak =
 *     max(peakForward, peakBackward), both states + memActivations + non-negative buffers), and
 *     every offloaded byte of a state or an activation moves from the device to the host
 *     (memWeights + offW = wBytes * shard(z3), likewise grads and optim; memActivations +
 *     hostActivations = inFlight * stored), so device + host >= states + activations of the corner
 *     (ckpt max, no offload), which has the fewest stored bytes; when that exceeds both capacities
 *     together nothing of the configuration fits (analyzer-assumptions.test.ts checks it);
 *   - least levels: device memory never rises with ckpt or any offload ratio, so a fitting point's
 *     level in one dimension is at least the least level that fits with every other dimension at its
 *     maximum (found by bisection); and the host memory of the corner (ckpt max, offloads at those
 *     least levels) is below every fitting point's;
 *   - time: a fitting point p = (c, ow, og, oo, oa) has times >= (c, ow, og, oo, 0) (offloading more
 *     is never faster) >= (cMin, owMin, ogMin, ooMin, 0) (without activation offload, more ckpt or
 *     offload is never faster), so that corner's times bound the configuration.
 * The least levels cost some 25 rows per configuration, so they are searched only for the specs whose
 * bound from the fastest corners is below `incumbentS` (a known plan's time): the others cannot
 * beat it either way. Bounds from both are valid; the larger is kept.
 *
 * `known(s)` may give a spec's minima from an earlier derivation (the bounds cache, for the same
 * spec and samples per micro-batch): no row of that spec is evaluated for the bounds, and its detail
 * is derived only when the search asks for it. `knownWeak(s)` may give weaker lower bounds of them
 * (fast-corner minima, or the minima at a smaller in-flight count: fewer configurations fit at more,
 * and times do not read it): they serve the fast-corner test, and the spec is derived when it fails.
 *
 * The fast-corner test (`fastTest`): the fast corners alone (fit or not) bound every plan too. When
 * the relaxation over them (and the weak minima given) already reaches `incumbentS`, G is closed
 * without the memory corners, two thirds of the rows; those fast-corner minima are then
 * `derivedWeak`, not `derived`.
 */
export function boundsForG(
  model: CompiledStageModel, layers: number, G: number, specs: readonly StageGroupSpec[],
  configsOf: (spec: StageGroupSpec) => ParallelConfig[], grid: StageGrid, devices = Infinity, incumbentS = Infinity,
  earlier: EarlierMinima = {},
): GBounds {
  const known = earlier.known ?? ((): null => null);
  const knownWeak = earlier.knownWeak ?? ((): null => null);
  const n = specs.length;
  const corners = new Corners(model, G, specs, grid);
  const given = specs.map((_, s) => known(s));
  const fresh: number[] = [];
  given.forEach((m, s) => { if (!m) fresh.push(s); });
  const minOf = (items: readonly Item[]): { steady: Float64Array; first: Float64Array; imb: Float64Array } => {
    const steady = new Float64Array(n).fill(Infinity);
    const first = new Float64Array(n).fill(Infinity);
    const imb = new Float64Array(n).fill(Infinity);
    given.forEach((m, s) => {
      if (!m) return;
      steady[s] = m.steady;
      first[s] = m.first;
      imb[s] = m.imbalance;
    });
    for (const it of items) {
      if (it.steady < steady[it.s]) steady[it.s] = it.steady;
      if (it.first < first[it.s]) first[it.s] = it.first;
      if (it.imbalance < imb[it.s]) imb[it.s] = it.imbalance;
    }
    return { steady, first, imb };
  };
  if (fresh.length === 0 && earlier.earlierG) {
    const derivedBounds = boundsFromEarlierG(G, n, earlier.earlierG);
    return {
      G, ...derivedBounds, fromEarlierG: true, evaluated: 0, shortfall: null, hostShortfall: null, derived: new Uint8Array(n), derivedWeak: new Uint8Array(n),
      minima: given.map((m) => m as SpecMinima), detail: detailsOnDemand(specs.map(() => null), corners, configsOf),
    };
  }
  const weakGiven = fresh.map((s) => (earlier.fastTest ? knownWeak(s) : null));
  // Fresh specs whose weak minima stand (see below); null when every fresh spec is derived.
  let keptWeak: Uint8Array | null = null;
  const unknown = fresh.filter((_, k) => !weakGiven[k]);
  let fast = corners.fastCorners(unknown, configsOf);
  if (earlier.fastTest && fresh.length > 0 && incumbentS < Infinity) {
    const weak = minOf([]);
    fresh.forEach((s, k) => {
      const m = weakGiven[k];
      if (!m) return;
      weak.steady[s] = m.steady;
      weak.first[s] = m.first;
      weak.imb[s] = m.imbalance;
    });
    for (let i = 0; i < fast.count; i++) {
      const sp = fast.spec[i];
      if (fast.steady[i] < weak.steady[sp]) weak.steady[sp] = fast.steady[i];
      if (fast.first[i] < weak.first[sp]) weak.first[sp] = fast.first[i];
      if (fast.imbalance[i] < weak.imb[sp]) weak.imb[sp] = fast.imbalance[i];
    }
    const full = layerBounds(layers, G, specs, weak.steady, weak.first, weak.imb, devices, incumbentS);
    if (!(full.lowerBoundS < incumbentS)) {
      const derivedWeak = new Uint8Array(n);
      for (const s of unknown) derivedWeak[s] = 1;
      return {
        G, ...full, fromEarlierG: false, evaluated: corners.evaluated, shortfall: corners.shortfall, hostShortfall: corners.hostShortfall,
        derived: new Uint8Array(n), derivedWeak,
        minima: specs.map((_, s) => ({ steady: weak.steady[s], first: weak.first[s], imbalance: weak.imb[s] })),
        detail: detailsOnDemand(specs.map(() => null), corners, configsOf),
      };
    }
    // Not closed: a spec that no plan below the bar can use, even with the weak minima, keeps them
    // (exact ones would only tighten what is proven already); the others are derived.
    keptWeak = new Uint8Array(n);
    for (const s of fresh) {
      if (full.specLowerBoundS[s] < incumbentS) continue;
      keptWeak[s] = 1;
      given[s] = { steady: weak.steady[s], first: weak.first[s], imbalance: weak.imb[s] };
    }
  }
  const derive = keptWeak ? fresh.filter((s) => !keptWeak[s]) : fresh;
  // The specs given weak minima only are derived now (their fast corners, then as the others).
  const toDerive = new Uint8Array(n);
  for (const s of derive) toDerive[s] = 1;
  if (keptWeak) fast = pickCorners(fast, toDerive);
  fast = concatCorners(fast, corners.fastCorners(fresh.filter((s, k) => weakGiven[k] && toDerive[s]), configsOf));
  const items = corners.mayFit(fast);
  let mins = minOf(items);
  const bounds = layerBounds(layers, G, specs, mins.steady, mins.first, mins.imb, devices, incumbentS);
  const pending = bounds.lowerBoundS < incumbentS
    ? items.filter((it) => !it.fastFits && bounds.specLowerBoundS[it.s] < incumbentS) : [];
  if (pending.length > 0) {
    corners.refine(items, pending);
    mins = minOf(items);
    const refined = layerBounds(layers, G, specs, mins.steady, mins.first, mins.imb, devices, incumbentS);
    bounds.lowerBoundS = Math.max(bounds.lowerBoundS, refined.lowerBoundS);
    bounds.complete = bounds.complete || refined.complete;
    for (let s = 0; s < n; s++) {
      bounds.specLowerBoundS[s] = Math.max(bounds.specLowerBoundS[s], refined.specLowerBoundS[s]);
      bounds.specRestS[s] = Math.max(bounds.specRestS[s], refined.specRestS[s]);
      bounds.specBottleneckS[s] = Math.max(bounds.specBottleneckS[s], refined.specBottleneckS[s]);
    }
  }
  const details: Array<SpecDetail | null> = specs.map(() => null);
  // A G whose bound reaches the incumbent is never searched: its details are left to be derived on demand.
  if (bounds.lowerBoundS < incumbentS) {
    const bySpec: Item[][] = specs.map(() => []);
    for (const it of items) bySpec[it.s].push(it);
    for (const s of derive) details[s] = toDetail(bySpec[s], 0);
  }
  const derived = new Uint8Array(n);
  for (const s of derive) derived[s] = 1;
  const derivedWeak = new Uint8Array(n);
  if (keptWeak) for (const s of unknown) derivedWeak[s] = keptWeak[s];
  return {
    G, ...bounds, fromEarlierG: false, evaluated: corners.evaluated, shortfall: corners.shortfall, hostShortfall: corners.hostShortfall, derived, derivedWeak,
    minima: specs.map((_, s) => ({ steady: mins.steady[s], first: mins.first[s], imbalance: mins.imb[s] })),
    detail: detailsOnDemand(details, corners, configsOf),
  };
}

/**
 * The details of the specs, derived on the first call for those not given. A function of its own, so
 * that what it keeps alive for the rest of the tune is the details and the corner buffers, not the
 * bounds' items (a closure keeps its whole scope).
 */
function detailsOnDemand(details: Array<SpecDetail | null>, corners: Corners, configsOf: (spec: StageGroupSpec) => ParallelConfig[]): (s: number) => SpecDetail {
  return (s: number): SpecDetail => {
    let d = details[s];
    if (!d) {
      // Every configuration that may fit gets its least levels (a spec is asked for only when it may beat the best plan).
      const before = corners.evaluated;
      const own = corners.fastItems([s], configsOf);
      corners.refine(own, own.filter((it) => !it.fastFits));
      d = toDetail(own, corners.evaluated - before);
      details[s] = d;
    }
    return d;
  };
}

function toDetail(items: Item[], evaluated: number): SpecDetail {
  const n = items.length;
  const roots = new Int32Array(n * DIMS);
  const steady = new Float64Array(n);
  const imbalance = new Float64Array(n);
  const configs: ParallelConfig[] = new Array<ParallelConfig>(n);
  for (let k = 0; k < n; k++) {
    const it = items[k];
    const lo = it.lo;
    if (lo) for (let d = 0; d < DIMS; d++) roots[k * DIMS + d] = lo[d];
    steady[k] = it.steady;
    imbalance[k] = it.imbalance;
    configs[k] = it.c;
  }
  return { configs, roots, steady, imbalance, evaluated };
}

/** The corner rows of the bounds at one G: the fast, least-device and least-host corners, and the least levels. */
class Corners {
  evaluated = 0;
  shortfall: Shortfall | null = null;
  hostShortfall: Shortfall | null = null;
  private readonly offload: number[][];
  private readonly ckptByLayers = new Map<number, number[]>();
  private readonly input = new Float64Array(BATCH_ROWS * 3 * INPUT_WIDTH);
  private readonly output = new Float64Array(BATCH_ROWS * 3 * OUTPUT_WIDTH);

  constructor(
    private readonly model: CompiledStageModel, private readonly G: number, private readonly specs: readonly StageGroupSpec[],
    private readonly grid: StageGrid,
  ) {
    this.offload = [1, 2, 3, 4].map((d) => offloadLevels(grid.offload, d));
  }

  levels(spec: StageGroupSpec, d: number): number[] {
    if (d > 0) return this.offload[d - 1];
    let c = this.ckptByLayers.get(spec.layers);
    if (!c) {
      c = this.grid.ckpt(spec.layers);
      this.ckptByLayers.set(spec.layers, c);
    }
    return c;
  }

  top(spec: StageGroupSpec): number[] {
    const c = this.levels(spec, 0);
    return [c[c.length - 1], ...this.offload.map((l) => l[l.length - 1])];
  }

  private noteMiss(row: number): void {
    const { input, output, model } = this;
    const o = row * OUTPUT_WIDTH;
    if (output[o + OUT.FITS] === 1) return;
    const deviceBytes = Math.max(0, output[o + OUT.PEAK_MEMORY] - model.capacityBytes);
    const hostBytes = Math.max(0, output[o + OUT.HOST_MEMORY] - model.hostCapacityBytes);
    const copy = (): Float64Array => input.slice(row * INPUT_WIDTH, (row + 1) * INPUT_WIDTH);
    if (output[o + OUT.FITS_DEVICE] !== 1) {
      if (!this.shortfall || deviceBytes < this.shortfall.deviceBytes) this.shortfall = { deviceBytes, hostBytes, row: copy() };
    } else if (!this.hostShortfall || hostBytes < this.hostShortfall.hostBytes) {
      this.hostShortfall = { deviceBytes: 0, hostBytes, row: copy() };
    }
  }

  /** The three corners of every configuration of the given specs; the configurations that may fit. */
  fastItems(specIndices: readonly number[], configsOf: (spec: StageGroupSpec) => ParallelConfig[]): Item[] {
    return this.mayFit(this.fastCorners(specIndices, configsOf));
  }

  /**
   * The fast corner (ckpt 0, no offload) of every configuration of the given specs, one row each: its
   * times bound every point of the configuration from below, whether any of them fits or not.
   */
  fastCorners(specIndices: readonly number[], configsOf: (spec: StageGroupSpec) => ParallelConfig[]): FastCorners {
    const { input, output, model, G, specs } = this;
    let count = 0;
    for (const s of specIndices) count += configsOf(specs[s]).length;
    const out: FastCorners = {
      count, spec: new Int32Array(count), config: new Array<ParallelConfig>(count), steady: new Float64Array(count),
      first: new Float64Array(count), imbalance: new Float64Array(count), fits: new Uint8Array(count),
    };
    const cap = 3 * BATCH_ROWS;
    let rows = 0;
    let at = 0;
    const flush = (): void => {
      if (rows === 0) return;
      model.evaluateBatch(input, output, rows);
      this.evaluated += rows;
      for (let r = 0; r < rows; r++, at++) {
        this.noteMiss(r);
        const o = r * OUTPUT_WIDTH;
        out.steady[at] = output[o + OUT.STEADY];
        out.first[at] = output[o + OUT.FIRST];
        out.imbalance[at] = output[o + OUT.FIRST] + output[o + OUT.LAST];
        out.fits[at] = output[o + OUT.FITS_DEVICE] === 1 ? 1 : 0;
      }
      rows = 0;
    };
    let k = 0;
    for (const s of specIndices) {
      const spec = specs[s];
      for (const c of configsOf(spec)) {
        writeCorner(input, rows, spec, G, c, 0, [0, 0, 0, 0]);
        out.spec[k] = s;
        out.config[k++] = c;
        rows++;
        if (rows === cap) flush();
      }
    }
    flush();
    return out;
  }

  /**
   * Of the given fast corners, the configurations that may hold a fitting point: their least-device
   * corner (ckpt max, offload max) fits the device, their least-host corner (ckpt max, no offload) the
   * host, and their fewest stored bytes both together (see boundsForG). Two rows each.
   */
  mayFit(fast: FastCorners): Item[] {
    const { input, output, model, G, specs } = this;
    const capacity = model.capacityBytes;
    const hostCapacity = model.hostCapacityBytes;
    const kept: Item[] = [];
    for (let j0 = 0; j0 < fast.count; j0 += BATCH_ROWS) {
      const m = Math.min(BATCH_ROWS, fast.count - j0);
      let topOf = -1;
      let t: number[] = [];
      for (let j = 0; j < m; j++) {
        const spec = specs[fast.spec[j0 + j]];
        if (fast.spec[j0 + j] !== topOf) {
          topOf = fast.spec[j0 + j];
          t = this.top(spec);
        }
        writeCorner(input, 2 * j, spec, G, fast.config[j0 + j], t[0], [t[1], t[2], t[3], t[4]]);
        writeCorner(input, 2 * j + 1, spec, G, fast.config[j0 + j], t[0], [0, 0, 0, 0]);
      }
      model.evaluateBatch(input, output, 2 * m);
      this.evaluated += 2 * m;
      for (let r = 0; r < 2 * m; r++) this.noteMiss(r);
      for (let j = 0; j < m; j++) {
        const lowDevice = 2 * j * OUTPUT_WIDTH;
        const lowHost = (2 * j + 1) * OUTPUT_WIDTH;
        if (output[lowDevice + OUT.FITS_DEVICE] !== 1 || output[lowHost + OUT.FITS_HOST] !== 1) continue;
        const total = output[lowHost + OUT.MEM_WEIGHTS] + output[lowHost + OUT.MEM_GRADS] + output[lowHost + OUT.MEM_OPTIM] +
          output[lowHost + OUT.MEM_ACTIVATIONS];
        if (total * (1 - BOUND_SLACK) > capacity + hostCapacity + 2) continue;
        const i = j0 + j;
        kept.push({
          s: fast.spec[i], c: fast.config[i], steady: fast.steady[i], first: fast.first[i], imbalance: fast.imbalance[i],
          fastFits: fast.fits[i] === 1, lo: null, hi: null,
        });
      }
    }
    return kept;
  }

  /**
   * The least levels of the pending items, then two rows per item: the time corner (least levels, no
   * activation offload) raises its time bounds, the least-host corner of what is left (ckpt max,
   * offloads at their least levels) drops it from `items` (in place) when even that overflows the host.
   */
  refine(items: Item[], pending: Item[]): void {
    const { input, output, model, G, specs } = this;
    const levels = (spec: StageGroupSpec, d: number): number[] => this.levels(spec, d);
    for (const p of pending) {
      const spec = specs[p.s];
      p.lo = new Int32Array(DIMS);
      p.hi = Int32Array.from(ZERO_ROOT, (_, d) => levels(spec, d).length - 1);
    }
    this.evaluated += leastLevels(model, G, specs, pending, levels, (spec) => this.top(spec), input, output);
    const dropped = new Set<Item>();
    for (let j0 = 0; j0 < pending.length; j0 += BATCH_ROWS) {
      const m = Math.min(BATCH_ROWS, pending.length - j0);
      for (let j = 0; j < m; j++) {
        const p = pending[j0 + j];
        const spec = specs[p.s];
        const lo = searched(p).lo;
        const lv = (d: number): number => levels(spec, d)[lo[d]];
        writeCorner(input, 2 * j, spec, G, p.c, lv(0), [lv(1), lv(2), lv(3), 0]);
        writeCorner(input, 2 * j + 1, spec, G, p.c, this.top(spec)[0], [lv(1), lv(2), lv(3), lv(4)]);
      }
      model.evaluateBatch(input, output, 2 * m);
      this.evaluated += 2 * m;
      for (let j = 0; j < m; j++) {
        const p = pending[j0 + j];
        const t = 2 * j * OUTPUT_WIDTH;
        if (output[(2 * j + 1) * OUTPUT_WIDTH + OUT.FITS_HOST] !== 1) {
          dropped.add(p);
          continue;
        }
        p.steady = Math.max(p.steady, output[t + OUT.STEADY]);
        p.first = Math.max(p.first, output[t + OUT.FIRST]);
        p.imbalance = Math.max(p.imbalance, output[t + OUT.FIRST] + output[t + OUT.LAST]);
      }
    }
    if (dropped.size > 0) {
      // In place (a spread of a large array overflows the call stack).
      let kept = 0;
      for (const it of items) if (!dropped.has(it)) items[kept++] = it;
      items.length = kept;
    }
  }
}

/**
 * Bisection of the least level per dimension that fits the device with every other dimension at its
 * maximum, all items in lockstep (the level hi fits, every level below lo does not). Returns the rows evaluated.
 */
function leastLevels(
  model: CompiledStageModel, G: number, specs: readonly StageGroupSpec[], pending: Item[],
  levels: (spec: StageGroupSpec, d: number) => number[], top: (spec: StageGroupSpec) => number[],
  input: Float64Array, output: Float64Array,
): number {
  const cap = Math.min(input.length / INPUT_WIDTH, output.length / OUTPUT_WIDTH);
  const jobP = new Int32Array(cap);
  const jobD = new Int32Array(cap);
  let evaluated = 0;
  let m = 0;
  const run = (): void => {
    model.evaluateBatch(input, output, m);
    evaluated += m;
    for (let j = 0; j < m; j++) {
      const p = pending[jobP[j]];
      const d = jobD[j];
      const { lo, hi } = searched(p);
      const mid = (lo[d] + hi[d]) >> 1;
      if (output[j * OUTPUT_WIDTH + OUT.FITS_DEVICE] === 1) hi[d] = mid;
      else lo[d] = mid + 1;
    }
    m = 0;
  };
  for (;;) {
    let any = false;
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i];
      const spec = specs[p.s];
      for (let d = 0; d < DIMS; d++) {
        const { lo, hi } = searched(p);
        if (lo[d] >= hi[d]) continue;
        const t = top(spec);
        t[d] = levels(spec, d)[(lo[d] + hi[d]) >> 1];
        writeCorner(input, m, spec, G, p.c, t[0], [t[1], t[2], t[3], t[4]]);
        jobP[m] = i;
        jobD[m] = d;
        m++;
        any = true;
        if (m === cap) run();
      }
    }
    if (m > 0) run();
    if (!any) return evaluated;
  }
}

const ZERO_ROOT = [0, 0, 0, 0, 0] as const;

/** The level bounds of an item whose levels are searched (refine made them). */
function searched(p: Item): { lo: Int32Array; hi: Int32Array } {
  if (!p.lo || !p.hi) throw new Error('bounds: an item in the level search has no level bounds');
  return { lo: p.lo, hi: p.hi };
}
/** Relative slack of the total-bytes test (bytes are up to ~1e13, so a few ulps of the sums). */
const BOUND_SLACK = 1e-12;

function offloadLevels(o: OffloadLevels, d: number): number[] {
  return d === 1 ? o.weights : d === 2 ? o.grads : d === 3 ? o.optim : o.activations;
}

/** A corner of the bounds' grid: the row of `spec` at its smallest in-flight count. */
export function writeCorner(x: Float64Array, row: number, spec: StageGroupSpec, G: number, c: ParallelConfig, ckpt: number,
  off: readonly [number, number, number, number]): void {
  writeGroupRow(x, row, spec, G, c, spec.inFlightMin, ckpt, off[0], off[1], off[2], off[3]);
}

/** The layer-only relaxation (see the header) for the plan and for each spec. */
export function layerBounds(L: number, G: number, specs: readonly StageGroupSpec[], minSteady: Float64Array, minFirst: Float64Array,
  minImb: Float64Array, devices = Infinity, incumbentS = Infinity): LayerBounds {
  const n = specs.length;
  // Stages take disjoint devices: a spec is dropped (Infinity) when the fewest devices of any plan
  // using it (over specs that may fit) exceed the cluster's.
  const roomy = devicesFit(L, specs, minSteady, devices);
  minSteady = minSteady.map((v, s) => (roomy[s] ? v : Infinity));
  const specLowerBoundS = new Float64Array(n).fill(Infinity);
  const specRestS = new Float64Array(n).fill(Infinity);
  // Every plan's bottleneck is at least the own least steady time of each spec it uses.
  const specBottleneckS = Float64Array.from(minSteady);
  // A quick bound first: every plan at G has a bottleneck no faster than the fastest spec's steady
  // time and a first micro-batch no faster than the fastest first, and a plan using spec s at least
  // that spec's own first + last + (G - 1) * steady. When the quick bound already reaches the
  // incumbent, no plan at G can beat it: the partition relaxation below is not needed.
  let fastestSteady = Infinity;
  let fastestFirst = Infinity;
  for (let s = 0; s < n; s++) {
    if (!Number.isFinite(minSteady[s])) continue;
    if (minSteady[s] < fastestSteady) fastestSteady = minSteady[s];
    if (minFirst[s] < fastestFirst) fastestFirst = minFirst[s];
  }
  // Nothing may fit (0 * Infinity would make the G = 1 bound NaN).
  if (fastestSteady === Infinity) return { lowerBoundS: Infinity, specLowerBoundS, specRestS, specBottleneckS, complete: true };
  const quick = (G - 1) * fastestSteady + fastestFirst;
  if (!(quick < incumbentS)) {
    for (let s = 0; s < n; s++) {
      if (!Number.isFinite(minSteady[s])) continue;
      specLowerBoundS[s] = Math.max(quick, minImb[s] + (G - 1) * minSteady[s]);
      specRestS[s] = 0;
    }
    return { lowerBoundS: quick, specLowerBoundS, specRestS, specBottleneckS, complete: false };
  }
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
  if (steadies.length === 0 || L < 2) return { lowerBoundS, specLowerBoundS, specRestS, specBottleneckS, complete: true };
  steadies.sort((a, b) => a - b);
  // Thresholds: quantiles of the virtual steady times that can matter, then the largest (every point
  // is below it). A plan whose bottleneck T has (G - 1) T >= incumbentS cannot beat the incumbent,
  // so the buckets are spent on the steady times below incumbentS / (G - 1) only: the rest form one
  // bucket, whose bound is then at least (about) the incumbent anyway.
  // At G = 1 no bound reads the bottleneck ((G - 1) T = 0, and R only falls as T grows): the least
  // steady time and all of them are the only thresholds needed.
  const reach = G > 1 ? incumbentS / (G - 1) : -Infinity;
  let m = 0;
  while (m < steadies.length && steadies[m] <= reach) m++;
  const fine = m > 0 ? steadies.slice(0, m) : steadies.slice(0, 1);
  const edges: number[] = [];
  for (let k = 0; k <= BUCKETS; k++) {
    const v = fine[Math.min(fine.length - 1, Math.round((k * (fine.length - 1)) / BUCKETS))];
    if (edges.length === 0 || v > edges[edges.length - 1]) edges.push(v);
  }
  if (steadies[steadies.length - 1] > edges[edges.length - 1]) edges.push(steadies[steadies.length - 1]);
  const K = edges.length;
  const posIndex = { first: 0, middle: 1, last: 2 } as const;
  // rest[k][pos][l]: least sum of the firsts of the other stages of a plan with a stage at `pos` of l
  // layers, when every stage has virtual steady <= edges[k].
  const rest: Float64Array[][] = [];
  // restDev[k][pos][l]: fewest devices of the other stages of such a plan (stages take disjoint devices).
  const restDev: Float64Array[][] = [];
  // cost[pos][l]: least virtual first of a stage at pos with l layers and steady <= edges[k] (headCost:
  // its first + last, counted for the plan's first stage); dev[pos][l]: its fewest devices (a
  // relaxation each: the minima may come from different specs). The thresholds rise, so the tables
  // only take in the specs of each new bucket (by steady time), and the partition tables are made
  // again only when a table changed.
  const cost = [0, 1, 2].map(() => new Float64Array(L + 1).fill(Infinity));
  const headCost = new Float64Array(L + 1).fill(Infinity);
  const dev = [0, 1, 2].map(() => new Float64Array(L + 1).fill(Infinity));
  const bySteady: number[] = [];
  specs.forEach((spec, s) => { if (spec.position !== 'only' && Number.isFinite(minSteady[s])) bySteady.push(s); });
  bySteady.sort((x, y) => minSteady[x] - minSteady[y]);
  let next = 0;
  const costTables = new PartitionTables(L);
  const devTables = new PartitionTables(L);
  let firsts: { rest: Float64Array[]; whole: number } | null = null;
  let devs: { rest: Float64Array[]; whole: number } | null = null;
  for (let k = 0; k < K; k++) {
    const e = edges[k];
    // The least layer count whose cost (devices) changed in this bucket; Infinity: none did.
    let costFrom = Infinity;
    let devFrom = Infinity;
    for (; next < bySteady.length && minSteady[bySteady[next]] <= e; next++) {
      const s = bySteady[next];
      const spec = specs[s];
      const p = posIndex[spec.position as 'first' | 'middle' | 'last'];
      if (minFirst[s] < cost[p][spec.layers]) {
        cost[p][spec.layers] = minFirst[s];
        costFrom = Math.min(costFrom, spec.layers);
      }
      if (p === 0 && minImb[s] < headCost[spec.layers]) headCost[spec.layers] = minImb[s];
      const d = meshSize(spec.mesh);
      if (d < dev[p][spec.layers]) {
        dev[p][spec.layers] = d;
        devFrom = Math.min(devFrom, spec.layers);
      }
    }
    if (!firsts || costFrom <= L) firsts = costTables.update(cost, firsts ? costFrom : 1);
    if (!devs || devFrom <= L) devs = devTables.update(dev, devs ? devFrom : 1);
    rest.push(firsts.rest);
    restDev.push(devs.rest);
    // Whole plans with bottleneck in [edges[k-1], edges[k]] (k = 0: exactly the least steady), when
    // some partition of such stages fits the devices.
    if (devs.whole > devices) continue;
    const lower = k === 0 ? e : edges[k - 1];
    let whole = Infinity;
    for (let l = 1; l < L; l++) whole = Math.min(whole, headCost[l] + firsts.rest[0][l]);
    lowerBoundS = Math.min(lowerBoundS, whole + (G - 1) * lower);
  }
  specs.forEach((spec, s) => {
    if (spec.position === 'only' || !Number.isFinite(minSteady[s])) return;
    const p = posIndex[spec.position];
    const own = minSteady[s];
    const ownDev = meshSize(spec.mesh);
    let lb = Infinity;
    // The least bottleneck: no plan using the spec has every steady time <= the edges of the buckets
    // before the first one in which the other stages can be filled (the tables only relax as k grows).
    let bottleneck = Infinity;
    for (let k = 0; k < K; k++) {
      if (edges[k] < own) continue;
      const r = rest[k][p][spec.layers];
      if (!Number.isFinite(r) || ownDev + restDev[k][p][spec.layers] > devices) continue;
      const lower = Math.max(own, k === 0 ? edges[0] : edges[k - 1]);
      if (bottleneck === Infinity) bottleneck = lower;
      lb = Math.min(lb, minImb[s] + (G - 1) * lower + r);
    }
    specLowerBoundS[s] = lb;
    specBottleneckS[s] = Math.max(own, bottleneck);
    // The largest threshold allows the most: the least rest of any plan using the spec.
    specRestS[s] = rest[K - 1][p][spec.layers];
  });
  return { lowerBoundS, specLowerBoundS, specRestS, specBottleneckS, complete: true };
}

/** What the layer relaxation proves for one G (layerBounds). */
export interface LayerBounds {
  lowerBoundS: number;
  specLowerBoundS: Float64Array;
  specRestS: Float64Array;
  specBottleneckS: Float64Array;
  /**
   * false when the quick bound alone settled G: the per-spec values are then its weak ones (no rest,
   * no partition), valid but not worth keeping for another G (g-bounds-cache.ts).
   */
  complete: boolean;
}

/**
 * Per spec: whether some layer partition using it, made of specs that may fit (finite minSteady),
 * needs at most `devices` devices in all (a relaxation: stage counts and exact tiling are ignored).
 */
export function devicesFit(L: number, specs: readonly StageGroupSpec[], minSteady: Float64Array, devices: number): Uint8Array {
  const out = new Uint8Array(specs.length);
  const dev = [0, 1, 2].map(() => new Float64Array(L + 1).fill(Infinity));
  const posIndex = { first: 0, middle: 1, last: 2 } as const;
  specs.forEach((spec, s) => {
    if (spec.position === 'only' || !Number.isFinite(minSteady[s])) return;
    const d = dev[posIndex[spec.position]];
    d[spec.layers] = Math.min(d[spec.layers], meshSize(spec.mesh));
  });
  // The fewest devices of the other stages of a plan with this one (the partition relaxation's tables).
  const { rest } = new PartitionTables(L).update(dev);
  specs.forEach((spec, s) => {
    if (!Number.isFinite(minSteady[s])) return;
    const own = meshSize(spec.mesh);
    const others = spec.position === 'only' ? 0 : rest[posIndex[spec.position]][spec.layers];
    out[s] = own + others <= devices ? 1 : 0;
  });
  return out;
}

/**
 * Min-plus tables of a layer partition from per-position stage costs (first, middle, last per layer
 * count): `rest[pos][l]` the least sum of the other stages of a plan with a stage at pos of l layers,
 * `whole` the least sum of a plan of at least two stages. Kept between calls: when the costs changed
 * at layer counts >= `from` only (the bounds' thresholds take in ever slower, so ever longer, stages),
 * the entries below `from` stand and only the rest is summed again.
 */
class PartitionTables {
  // M[m]: m layers as middle stages (0 stages for m = 0); tail[m]: middles then a last stage;
  // head[m]: a first stage then middles; around[m]: a head and a tail (with middles in either).
  private readonly M: Float64Array;
  private readonly tail: Float64Array;
  private readonly head: Float64Array;
  private readonly around: Float64Array;
  /** Scratch: the finite entries of a table (finiteAt). */
  private readonly at: Int32Array;

  constructor(private readonly L: number) {
    this.at = new Int32Array(L + 1);
    this.M = new Float64Array(L + 1).fill(Infinity);
    this.M[0] = 0;
    this.tail = new Float64Array(L + 1).fill(Infinity);
    this.head = new Float64Array(L + 1).fill(Infinity);
    this.around = new Float64Array(L + 1).fill(Infinity);
  }

  update([first, middle, last]: Float64Array[], from = 1): { rest: Float64Array[]; whole: number } {
    const { L, M, tail, head, around, at } = this;
    const start = Math.max(1, from);
    // Min-plus sums over the finite entries only (a table of few allowed stages, at the low
    // thresholds, is mostly Infinity).
    minPlusWith(middle, M, L, M, start, at);
    minPlusWith(last, M, L, tail, start, at);
    minPlusWith(first, M, L, head, start, at);
    const heads = finiteAt(head, L, at);
    for (let m = Math.max(2, start); m <= L; m++) {
      let v = Infinity;
      for (let i = 0; i < heads && at[i] < m; i++) {
        const c = head[at[i]] + tail[m - at[i]];
        if (c < v) v = c;
      }
      around[m] = v;
    }
    const rFirst = new Float64Array(L + 1).fill(Infinity);
    const rMiddle = new Float64Array(L + 1).fill(Infinity);
    const rLast = new Float64Array(L + 1).fill(Infinity);
    let whole = Infinity;
    for (let l = 1; l < L; l++) {
      rFirst[l] = tail[L - l];
      rLast[l] = head[L - l];
      rMiddle[l] = around[L - l];
      whole = Math.min(whole, first[l] + tail[L - l]);
    }
    return { rest: [rFirst, rMiddle, rLast], whole };
  }
}

/** Writes the ascending indexes 1..L of the finite entries of a table into `out`; returns their count. */
function finiteAt(table: Float64Array, L: number, out: Int32Array): number {
  let n = 0;
  for (let l = 1; l <= L; l++) if (table[l] !== Infinity) out[n++] = l;
  return n;
}

/**
 * out[m] = min over l in 1..m of stage[l] + M[m - l] (Infinity where there is none), for m >= from
 * in ascending order (so that out may be M itself: M[m - l] is final before M[m] is written).
 * `at` is scratch of L + 1 entries.
 */
function minPlusWith(stage: Float64Array, M: Float64Array, L: number, out: Float64Array, from: number, at: Int32Array): void {
  const n = finiteAt(stage, L, at);
  for (let m = from; m <= L; m++) {
    let v = Infinity;
    for (let i = 0; i < n; i++) {
      const l = at[i];
      if (l > m) break;
      const c = stage[l] + M[m - l];
      if (c < v) v = c;
    }
    out[m] = v;
  }
}
