// Pareto frontiers on typed arrays.
//
// A stage strategy is judged by two times (Mist, EuroSys'25, Sec. 5.1): its steady 1F1B micro-batch
// time and its imbalance time (first + last extras). Within a frontier sorted by steady time
// ascending, the imbalance is strictly descending. Before a stage's in-flight micro-batch count is
// known, a third criterion matters: the largest in-flight count at which the strategy still fits in
// memory (`maxInFlight`, larger is better); ParetoSet3 keeps the set that is non-dominated in all three.

/** Indices (into the given arrays) of the 2-D Pareto frontier, sorted by steady time ascending. */
export function paretoFrontier2D(steady: Float64Array, imbalance: Float64Array, indices: Int32Array): Int32Array {
  const order = Array.from(indices);
  order.sort((a, b) => steady[a] - steady[b] || imbalance[a] - imbalance[b]);
  const keep: number[] = [];
  let bestImbalance = Infinity;
  for (const i of order) {
    if (imbalance[i] < bestImbalance) {
      keep.push(i);
      bestImbalance = imbalance[i];
    }
  }
  return Int32Array.from(keep);
}

/**
 * Picks at most `k` points of a frontier (positions 0..n-1 in steady order) spread evenly along its
 * length in normalised (steady, imbalance) space. Both ends are always kept: the fastest steady
 * point and the smallest imbalance point.
 */
export function sampleFrontier(steady: ArrayLike<number>, imbalance: ArrayLike<number>, k: number): Int32Array {
  const n = steady.length;
  if (n <= k) return Int32Array.from({ length: n }, (_, i) => i);
  if (k <= 1) return Int32Array.of(0);
  const sSpan = steady[n - 1] - steady[0] || 1;
  const iSpan = imbalance[0] - imbalance[n - 1] || 1;
  const cumulative = new Float64Array(n);
  for (let i = 1; i < n; i++) {
    const ds = (steady[i] - steady[i - 1]) / sSpan;
    const di = (imbalance[i - 1] - imbalance[i]) / iSpan;
    cumulative[i] = cumulative[i - 1] + Math.hypot(ds, di);
  }
  const total = cumulative[n - 1];
  const picked: number[] = [];
  let j = 0;
  for (let t = 0; t < k; t++) {
    const target = (total * t) / (k - 1);
    while (j < n - 1 && Math.abs(cumulative[j + 1] - target) <= Math.abs(cumulative[j] - target)) j++;
    // Never pick the same point twice: move to the next unused one (there are more points than k).
    const next = picked.length > 0 && j <= picked[picked.length - 1] ? picked[picked.length - 1] + 1 : j;
    picked.push(Math.min(next, n - 1 - (k - 1 - t)));
  }
  picked[picked.length - 1] = n - 1;
  return Int32Array.from(picked);
}

/**
 * A growable set of points non-dominated in (steady min, imbalance min, maxInFlight max), each with
 * an integer reference to the strategy it came from. Insertion is O(size); sizes stay small (tens to
 * a few hundred points per stage group).
 */
export class ParetoSet3 {
  steady = new Float64Array(16);
  imbalance = new Float64Array(16);
  maxInFlight = new Int32Array(16);
  ref = new Int32Array(16);
  size = 0;

  /** True when some point is at least as good as (steady, imbalance, maxInFlight) in all three. */
  dominates(steady: number, imbalance: number, maxInFlight: number): boolean {
    for (let i = 0; i < this.size; i++) {
      if (this.steady[i] <= steady && this.imbalance[i] <= imbalance && this.maxInFlight[i] >= maxInFlight) return true;
    }
    return false;
  }

  /** Adds the point unless it is dominated; drops the points it dominates. Returns whether it was added. */
  insert(steady: number, imbalance: number, maxInFlight: number, ref: number): boolean {
    if (this.dominates(steady, imbalance, maxInFlight)) return false;
    let w = 0;
    for (let i = 0; i < this.size; i++) {
      const dominated = steady <= this.steady[i] && imbalance <= this.imbalance[i] && maxInFlight >= this.maxInFlight[i];
      if (dominated) continue;
      if (w !== i) {
        this.steady[w] = this.steady[i];
        this.imbalance[w] = this.imbalance[i];
        this.maxInFlight[w] = this.maxInFlight[i];
        this.ref[w] = this.ref[i];
      }
      w++;
    }
    this.size = w;
    if (this.size === this.steady.length) this.grow();
    this.steady[this.size] = steady;
    this.imbalance[this.size] = imbalance;
    this.maxInFlight[this.size] = maxInFlight;
    this.ref[this.size] = ref;
    this.size++;
    return true;
  }

  /** Positions of the points that fit with `inFlight` micro-batches, as a 2-D frontier in steady order. */
  frontierAt(inFlight: number): Int32Array {
    const idx: number[] = [];
    for (let i = 0; i < this.size; i++) if (this.maxInFlight[i] >= inFlight) idx.push(i);
    return paretoFrontier2D(this.steady, this.imbalance, Int32Array.from(idx));
  }

  private grow(): void {
    const cap = this.steady.length * 2;
    const s = new Float64Array(cap);
    s.set(this.steady);
    const im = new Float64Array(cap);
    im.set(this.imbalance);
    const f = new Int32Array(cap);
    f.set(this.maxInFlight);
    const r = new Int32Array(cap);
    r.set(this.ref);
    this.steady = s;
    this.imbalance = im;
    this.maxInFlight = f;
    this.ref = r;
  }
}
