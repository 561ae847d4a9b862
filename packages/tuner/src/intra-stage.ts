// Intra-stage tuning (Mist, EuroSys'25, Sec. 5.1): for one stage group (position, layers, mesh, G)
// find the strategies that fit in memory and are Pareto-optimal in (steady time, first micro-batch
// time, end-of-step time `last`) for every in-flight count the group serves (pareto.ts: the plan
// sums the firsts and pays the largest last).
//
// The space per parallel configuration (b, dp, tp, sp, zero) is the grid ckptLayers x offload ratios
// (weights, grads, optim, activations): up to (layers+1) * 9^4 points. Exhaustive evaluation is out
// of reach, so the grid is searched by an exact branch and bound that rests on the cost model's
// monotonicity: checkpointing more layers or offloading more never makes a stage use more device
// memory, and offloading more never makes it faster; checkpointing more never makes it faster either
// unless activations are offloaded (then fewer activation bytes travel), so boxes with both a ckpt
// range and activation offload are split until they have neither. Host memory runs the other way:
// offloaded bytes live on the host, so offloading more uses MORE host memory (checkpointing more
// still uses less: fewer saved bytes to offload). A candidate fits when both memories fit. The host
// memory is hostStates(ow, og, oo) + inFlight * oa * saved(ckpt) (the analyzer's HOST_MEMORY,
// HOST_ACTIVATIONS), so over a box its least value is at the corner hmin = (ckpt hi, offloads lo):
// hostStates(lo) + inFlight * oa_lo * saved(ckpt_hi), where saved(ckpt_hi) comes from hi's
// HOST_ACTIVATIONS / (inFlight * oa_hi). For a box [lo, hi] of the grid:
//   - the in-flight capacity of every point is at most the device capacity of hi (the most
//     device-memory-saving corner) and at most the host capacity of hmin; if that bound is below
//     the smallest in-flight count, nothing in the box fits;
//   - steady, first and first + last grow with every level (`last` alone may fall: a longer last
//     backward hides more of the gradient sync, exposedSync = max(b * slow, sync) - b, but
//     b + exposedSync grows), and a point no worse in those three is no worse in any plan
//     (StagePareto), so if lo fits (device and host) at every in-flight count, lo dominates the box;
//   - the box's (steady, first, first + last) are bounded below by lo's and its in-flight capacity
//     above by that bound, so a box whose bound is dominated by a point already found holds nothing new;
//   - a box whose lower-bound times alone reach a known plan's iteration time (the cutoff: a stage's
//     point adds first + last + (G - 1) * steady to any plan's time) cannot improve on that plan;
//   - otherwise it is split in two along its longest side.
// The group's queries carry its pipeline depth (enumerate.ts queryPp): its one depth when the stage
// model reads pp (pipeline-depth.ts), so that times are those of that depth exactly.
// Times do not depend on the in-flight count and memory grows with it only through the stored
// activations, which the analyzer reports (MEM_ACTIVATIONS = inFlight * per-micro-batch bytes), so
// each corner is evaluated once, at the smallest in-flight count the group serves, and the largest
// count that fits (`maxInFlight`) follows: peak(f) = peak(fLo) + (f - fLo) * activations / fLo, and
// likewise host(f) = host(fLo) + (f - fLo) * hostActivations / fLo.
// Candidates are written into one Float64Array per round and evaluated with the analyzer's batch kernel.
import { type CompiledStageModel, INPUT_WIDTH, OUT as OUT_COLUMNS, OUTPUT_WIDTH } from '@mist/analyzer';
import type { ParallelConfig, StageGroupSpec } from './enumerate';
import { writeGroupRow } from './group-row';
import { StagePareto } from './pareto';
import type { OffloadLevels } from './search-space';

// Module-level copies of the column tables: a re-exported binding compiles to a getter call on every
// access (`analyzer_1.IN`), which the hot loops below would pay per column.
const OUT = OUT_COLUMNS;

/** Columns of a stored strategy. */
export const ST = { B: 0, DP: 1, TP: 2, SP: 3, CKPT: 4, ZERO: 5, OW: 6, OG: 7, OO: 8, OA: 9, SEL: 10, CP: 11, EP: 12 } as const;
export const STRATEGY_WIDTH = 13;

/** Growable table of stage strategies (rows of STRATEGY_WIDTH numbers), referenced by frontier points. */
export class StrategyStore {
  data = new Float64Array(STRATEGY_WIDTH * 1024);
  size = 0;

  add(c: ParallelConfig, ckpt: number, ow: number, og: number, oo: number, oa: number): number {
    this.grow();
    const o = this.size * STRATEGY_WIDTH;
    const d = this.data;
    d[o + ST.B] = c.microBatchSize;
    d[o + ST.DP] = c.dp;
    d[o + ST.TP] = c.tp;
    d[o + ST.SP] = c.sequenceParallel ? 1 : 0;
    d[o + ST.CKPT] = ckpt;
    d[o + ST.ZERO] = c.zero;
    d[o + ST.OW] = ow;
    d[o + ST.OG] = og;
    d[o + ST.OO] = oo;
    d[o + ST.OA] = oa;
    d[o + ST.SEL] = c.selectiveRecompute ? 1 : 0;
    d[o + ST.CP] = c.cp;
    d[o + ST.EP] = c.ep ?? 1;
    return this.size++;
  }

  /** Adds a strategy stored as its STRATEGY_WIDTH columns (ST) at `offset` of `src` (e.g. a cached frontier). */
  addColumns(src: ArrayLike<number>, offset: number): number {
    this.grow();
    const o = this.size * STRATEGY_WIDTH;
    for (let c = 0; c < STRATEGY_WIDTH; c++) this.data[o + c] = src[offset + c];
    return this.size++;
  }

  private grow(): void {
    if ((this.size + 1) * STRATEGY_WIDTH <= this.data.length) return;
    const next = new Float64Array(this.data.length * 2);
    next.set(this.data);
    this.data = next;
  }

  get(ref: number, column: number): number {
    return this.data[ref * STRATEGY_WIDTH + column];
  }
}

/**
 * A memory shortfall seen (for the "nothing fits" diagnosis), with the candidate row: the bytes per
 * GPU by which the device peak and the host memory exceed their capacities (0 when within).
 */
export interface Shortfall {
  deviceBytes: number;
  hostBytes: number;
  row: Float64Array;
}

const DIMS = 5; // ckpt, offload weights, grads, optim, activations

/**
 * What bounds.ts proved per configuration of a group: the least grid level index of every fitting
 * point per dimension (DIMS numbers per configuration), and lower bounds of its steady time and
 * imbalance.
 */
export interface ConfigBounds {
  roots: Int32Array;
  steady: Float64Array;
  imbalance: Float64Array;
}
const BOX_INTS = 1 + 2 * DIMS + 1; // config, lo[5], hi[5], flags
// lo steady, lo first + last, lo maxInFlight (device and host), lo host states bytes,
// hi device maxInFlight, hi host activation bytes per in-flight micro-batch, lo first, lo last
const BOX_FLOATS = 8;
const LO_KNOWN = 1;
const HI_KNOWN = 2;
const ROUND_BOXES = 256;
/** Relative slack of the host bound (bytes are up to ~1e13, so a few ulps of the products). */
const BOUND_SLACK = 1e-12;

/**
 * The largest in-flight count in [fLo, fHi] at which bytes(f) = bytes(fLo) + (f - fLo) * slope
 * stay within `capacity`, fLo - 1 when it does not fit at fLo (`fitsAtLo`, the analyzer's test).
 */
function maxInFlight(fitsAtLo: boolean, bytes: number, slope: number, capacity: number, fLo: number, fHi: number): number {
  if (!fitsAtLo) return fLo - 1;
  if (fHi === fLo || !(slope > 0)) return fHi;
  const f = Math.min(fHi, fLo + Math.floor((capacity - bytes) / slope));
  return f < fLo ? fLo : f; // fits at fLo by the analyzer's own test
}

export class IntraStageSearch {
  /** Candidate rows evaluated by the analyzer so far. */
  evaluated = 0;
  /** Of the candidates that overflow device memory, the one with the smallest device shortfall. */
  shortfall: Shortfall | null = null;
  /** Of the candidates that fit in device memory but overflow host memory, the one with the smallest host shortfall. */
  hostShortfall: Shortfall | null = null;

  private boxInt = new Int32Array(BOX_INTS * 1024);
  private boxF = new Float64Array(BOX_FLOATS * 1024);
  private freeBoxes: number[] = [];
  private boxCount = 0;
  private stack: number[] = [];
  private readonly input = new Float64Array(ROUND_BOXES * 4 * INPUT_WIDTH);
  private readonly output = new Float64Array(ROUND_BOXES * 4 * OUTPUT_WIDTH);
  private readonly rowBox = new Int32Array(ROUND_BOXES * 4);
  private readonly rowKind = new Int32Array(ROUND_BOXES * 4); // 0: lo corner, 1: hi corner
  private readonly levels: number[][] = [[], [], [], [], []];
  private readonly round: number[] = [];
  private cutoff = Infinity;
  private G = 1;

  constructor(
    private readonly model: CompiledStageModel,
    readonly strategies: StrategyStore,
  ) {}

  /**
   * Pareto set (steady, first, last, maxInFlight) of one stage group over the given parallel
   * configurations, ckpt levels and offload levels. Points reference rows of `strategies`.
   */
  searchGroup(
    group: StageGroupSpec, gradAccumSteps: number, configs: ParallelConfig[], ckpt: number[], offload: OffloadLevels,
    cutoffS = Infinity, bounds?: ConfigBounds,
  ): StagePareto {
    const set = new StagePareto();
    this.cutoff = cutoffS;
    this.G = gradAccumSteps;
    this.levels[0] = ckpt;
    this.levels[1] = offload.weights;
    this.levels[2] = offload.grads;
    this.levels[3] = offload.optim;
    this.levels[4] = offload.activations;
    const fLo = group.inFlightMin;
    const fHi = group.inFlightMax;
    this.stack.length = 0;
    for (let k = 0; k < configs.length; k++) {
      // No fitting point of the configuration is faster than its bound (bounds.ts): skip it at once
      // when that alone reaches the cutoff.
      if (bounds && bounds.imbalance[k] + (gradAccumSteps - 1) * bounds.steady[k] >= cutoffS) continue;
      const box = this.newBox();
      const o = box * BOX_INTS;
      this.boxInt[o] = k;
      for (let d = 0; d < DIMS; d++) {
        // Below its least fitting levels (bounds.ts) a configuration has no point that fits.
        this.boxInt[o + 1 + d] = bounds ? bounds.roots[k * DIMS + d] : 0;
        this.boxInt[o + 1 + DIMS + d] = this.levels[d].length - 1;
      }
      this.boxInt[o + BOX_INTS - 1] = 0;
      this.stack.push(box);
    }
    while (this.stack.length > 0) {
      // Take a round of boxes and evaluate the corners they miss in one batch.
      this.round.length = 0;
      let rows = 0;
      while (this.stack.length > 0 && this.round.length < ROUND_BOXES) {
        const box = this.stack.pop() as number;
        this.round.push(box);
        const flags = this.boxInt[box * BOX_INTS + BOX_INTS - 1];
        for (let corner = 0; corner < 2; corner++) {
          if (flags & (corner === 0 ? LO_KNOWN : HI_KNOWN)) continue;
          this.writeRow(rows, group, gradAccumSteps, configs[this.boxInt[box * BOX_INTS]], box, corner, fLo);
          this.rowBox[rows] = box;
          this.rowKind[rows] = corner;
          rows++;
        }
      }
      this.model.evaluateBatch(this.input, this.output, rows);
      this.evaluated += rows;
      this.readRows(rows, fLo, fHi);
      for (const box of this.round) this.settle(box, set, configs, fLo, fHi);
    }
    return set;
  }

  private newBox(): number {
    const free = this.freeBoxes.pop();
    if (free !== undefined) return free;
    if ((this.boxCount + 1) * BOX_INTS > this.boxInt.length) {
      const bi = new Int32Array(this.boxInt.length * 2);
      bi.set(this.boxInt);
      this.boxInt = bi;
      const bf = new Float64Array(this.boxF.length * 2);
      bf.set(this.boxF);
      this.boxF = bf;
    }
    return this.boxCount++;
  }

  private writeRow(row: number, group: StageGroupSpec, G: number, c: ParallelConfig, box: number, corner: number, inFlight: number): void {
    const b = box * BOX_INTS + 1 + corner * DIMS;
    const lv = this.levels;
    writeGroupRow(this.input, row, group, G, c, inFlight, lv[0][this.boxInt[b]], lv[1][this.boxInt[b + 1]], lv[2][this.boxInt[b + 2]],
      lv[3][this.boxInt[b + 3]], lv[4][this.boxInt[b + 4]]);
  }

  /** Fills the boxes' corner values from the evaluated rows. */
  private readRows(rows: number, fLo: number, fHi: number): void {
    const out = this.output;
    const cap = this.model.capacityBytes;
    const hostCap = this.model.hostCapacityBytes;
    for (let r = 0; r < rows; r++) {
      const o = r * OUTPUT_WIDTH;
      const peak = out[o + OUT.PEAK_MEMORY];
      const host = out[o + OUT.HOST_MEMORY];
      const hostAct = out[o + OUT.HOST_ACTIVATIONS];
      if (out[o + OUT.FITS] !== 1) this.noteShortfall(r, Math.max(0, peak - cap), Math.max(0, host - hostCap), out[o + OUT.FITS_DEVICE] === 1);
      const box = this.rowBox[r];
      const corner = this.rowKind[r];
      // peak(f) = peak(fLo) + (f - fLo) * activations(fLo) / fLo: the largest f with peak(f) <= capacity.
      const devMaxF = maxInFlight(out[o + OUT.FITS_DEVICE] === 1, peak, out[o + OUT.MEM_ACTIVATIONS] / fLo, cap, fLo, fHi);
      const bf = box * BOX_FLOATS;
      if (corner === 0) {
        // The same for the host memory; the point fits at f when both do.
        const hostMaxF = maxInFlight(out[o + OUT.FITS_HOST] === 1, host, hostAct / fLo, hostCap, fLo, fHi);
        this.boxF[bf] = out[o + OUT.STEADY];
        this.boxF[bf + 1] = out[o + OUT.FIRST] + out[o + OUT.LAST];
        this.boxF[bf + 2] = Math.min(devMaxF, hostMaxF);
        this.boxF[bf + 3] = host - hostAct;
        this.boxF[bf + 6] = out[o + OUT.FIRST];
        this.boxF[bf + 7] = out[o + OUT.LAST];
        this.boxInt[box * BOX_INTS + BOX_INTS - 1] |= LO_KNOWN;
      } else {
        this.boxF[bf + 4] = devMaxF;
        this.boxF[bf + 5] = hostAct / fLo;
        this.boxInt[box * BOX_INTS + BOX_INTS - 1] |= HI_KNOWN;
      }
    }
  }

  private noteShortfall(r: number, deviceBytes: number, hostBytes: number, deviceFits: boolean): void {
    const row = (): Float64Array => this.input.slice(r * INPUT_WIDTH, (r + 1) * INPUT_WIDTH);
    if (!deviceFits) {
      if (!this.shortfall || deviceBytes < this.shortfall.deviceBytes) this.shortfall = { deviceBytes, hostBytes, row: row() };
    } else if (!this.hostShortfall || hostBytes < this.hostShortfall.hostBytes) {
      this.hostShortfall = { deviceBytes: 0, hostBytes, row: row() };
    }
  }

  /**
   * Upper bound on the in-flight capacity of every point of a box, from the host side: the host
   * memory of the corner hmin = (ckpt hi, offloads lo), hostStates(lo) + f * oa_lo * saved(ckpt_hi),
   * is below every point's. Rounding errs towards a larger bound (the bound must not cut a point).
   */
  private hostBoundMaxF(box: number, fLo: number, fHi: number): number {
    const bi = box * BOX_INTS;
    const bf = box * BOX_FLOATS;
    const oaLo = this.levels[4][this.boxInt[bi + 1 + 4]];
    const oaHi = this.levels[4][this.boxInt[bi + 1 + DIMS + 4]];
    const slope = oaHi > 0 ? (this.boxF[bf + 5] * oaLo) / oaHi : 0;
    const room = this.model.hostCapacityBytes + 1 - this.boxF[bf + 3] * (1 - BOUND_SLACK);
    if (room - fLo * slope * (1 - BOUND_SLACK) < 0) return fLo - 1;
    return slope > 0 ? Math.min(fHi, Math.floor(room / (slope * (1 - BOUND_SLACK)))) : fHi;
  }

  /** Prunes, records or splits a box whose corners are known. */
  private settle(box: number, set: StagePareto, configs: ParallelConfig[], fLo: number, fHi: number): void {
    const bi = box * BOX_INTS;
    const bf = box * BOX_FLOATS;
    const loSteady = this.boxF[bf];
    const loImb = this.boxF[bf + 1];
    const loMaxF = this.boxF[bf + 2];
    const loFirst = this.boxF[bf + 6];
    const loLast = this.boxF[bf + 7];
    // No point of the box fits more in flight than hi on the device or hmin on the host.
    const hiMaxF = Math.min(this.boxF[bf + 4], this.hostBoundMaxF(box, fLo, fHi));
    if (hiMaxF < fLo) return this.freeBox(box);
    // Checkpointing shrinks the activations that are offloaded, so with activation offload in the
    // box, time is not monotone in ckptLayers: lo's times bound the box only when the box has a
    // single ckpt level or no activation offload.
    const monotone = this.boxInt[bi + 1] === this.boxInt[bi + 1 + DIMS] || this.boxInt[bi + 1 + DIMS + 4] === 0;
    // Any plan using a point of this stage takes at least first + last + (G - 1) * steady.
    if (monotone && loImb + (this.G - 1) * loSteady >= this.cutoff) return this.freeBox(box);
    if (loMaxF >= fLo) {
      if (!set.dominates(loSteady, loFirst, loLast, loMaxF) && loImb + (this.G - 1) * loSteady < this.cutoff) {
        const c = configs[this.boxInt[bi]];
        const ref = this.strategies.add(c, this.levels[0][this.boxInt[bi + 1]], this.levels[1][this.boxInt[bi + 2]],
          this.levels[2][this.boxInt[bi + 3]], this.levels[3][this.boxInt[bi + 4]], this.levels[4][this.boxInt[bi + 5]]);
        set.insert(loSteady, loFirst, loLast, loMaxF, ref);
      }
      if (monotone && loMaxF >= fHi) return this.freeBox(box);
    }
    if (monotone && set.dominatesBox(loSteady, loFirst, loImb, hiMaxF)) return this.freeBox(box);
    let dim = -1;
    let mid = 0;
    if (!monotone) {
      // Restore monotonicity: first separate "no activation offload", then split the ckpt range.
      if (this.boxInt[bi + 1 + 4] === 0) {
        dim = 4;
        mid = 0;
      } else {
        dim = 0;
        mid = (this.boxInt[bi + 1] + this.boxInt[bi + 1 + DIMS]) >> 1;
      }
    } else {
      // Split along the longest side.
      let span = 0;
      for (let d = 0; d < DIMS; d++) {
        const sp = this.boxInt[bi + 1 + DIMS + d] - this.boxInt[bi + 1 + d];
        if (sp > span) {
          span = sp;
          dim = d;
        }
      }
      if (dim >= 0) mid = (this.boxInt[bi + 1 + dim] + this.boxInt[bi + 1 + DIMS + dim]) >> 1;
    }
    if (dim < 0) return this.freeBox(box); // a single point, already recorded if it fits
    // Upper half: same hi corner, new lo.
    const upper = this.newBox();
    this.boxInt.copyWithin(upper * BOX_INTS, bi, bi + BOX_INTS);
    this.boxF.copyWithin(upper * BOX_FLOATS, bf, bf + BOX_FLOATS);
    this.boxInt[upper * BOX_INTS + 1 + dim] = mid + 1;
    this.boxInt[upper * BOX_INTS + BOX_INTS - 1] = HI_KNOWN;
    // Lower half (reuses the box): same lo corner, new hi.
    this.boxInt[bi + 1 + DIMS + dim] = mid;
    this.boxInt[bi + BOX_INTS - 1] = LO_KNOWN;
    this.stack.push(upper, box);
  }

  private freeBox(box: number): void {
    this.freeBoxes.push(box);
  }
}
