// A range [lo, hi) of a rank's flat parameter-sized vector (weights, gradients or an AdamW moment)
// stored in two pools: the device part [lo, cut) and the host part [cut, hi), cut = hi -
// round(ratio * (hi - lo)) for an offload ratio. Moving data between a device buffer and the host
// part goes through MemoryPools.copy, which counts the offload traffic.
import type { MemoryPools, PoolName } from '../memory/pools';

export class SplitVec {
  private constructor(
    readonly lo: number, readonly hi: number, readonly cut: number,
    /** Elements [lo, cut). */
    readonly dev: Float32Array,
    /** Elements [cut, hi). */
    readonly host: Float32Array,
  ) {}

  /** Fresh zeroed buffers accounted to `pool`, the last `hostRatio` of the range in the host pool. */
  static alloc(pools: MemoryPools, pool: PoolName, lo: number, hi: number, hostRatio: number): SplitVec {
    const cut = hi - Math.round(hostRatio * (hi - lo));
    return new SplitVec(lo, hi, cut, pools.f32(pool, cut - lo), pools.f32(pool, hi - cut, 'host'));
  }

  /** All on the device, a view of elements [lo, hi) of `data` whose element 0 is flat index `base` (no allocation). */
  static view(data: Float32Array, base: number, lo: number, hi: number): SplitVec {
    return new SplitVec(lo, hi, hi, data.subarray(lo - base, hi - base), new Float32Array(0));
  }

  get length(): number {
    return this.hi - this.lo;
  }

  placeOf(i: number): 'device' | 'host' {
    return i < this.cut ? 'device' : 'host';
  }

  /** The stored elements [a, b), which must lie in one part. */
  piece(a: number, b: number): Float32Array {
    if (a < this.lo || b > this.hi || a > b) throw new Error(`range [${a}, ${b}) outside [${this.lo}, ${this.hi})`);
    if (b <= this.cut) return this.dev.subarray(a - this.lo, b - this.lo);
    if (a >= this.cut) return this.host.subarray(a - this.cut, b - this.cut);
    throw new Error(`range [${a}, ${b}) straddles the device/host cut at ${this.cut}`);
  }

  /** Calls fn on the stored parts of [a, b) in order, with the flat index of each part's first element. */
  forParts(a: number, b: number, fn: (part: Float32Array, at: number, place: 'device' | 'host') => void): void {
    const m = Math.min(Math.max(a, this.cut), b);
    if (a < m) fn(this.piece(a, m), a, 'device');
    if (m < b) fn(this.piece(m, b), m, 'host');
  }

  /** Device buffer `out` (elements [a, b)) <- stored values; the host part counts as host->device traffic. */
  read(a: number, b: number, out: Float32Array, pools: MemoryPools): void {
    this.forParts(a, b, (p, at, place) => {
      const dst = out.subarray(at - a, at - a + p.length);
      if (place === 'device') dst.set(p);
      else pools.copy(dst, p, 'toDevice');
    });
  }

  /** Stored values <- device buffer `src` (elements [a, b)); the host part counts as device->host traffic. */
  write(a: number, b: number, src: Float32Array, pools: MemoryPools): void {
    this.forParts(a, b, (p, at, place) => {
      const s = src.subarray(at - a, at - a + p.length);
      if (place === 'device') p.set(s);
      else pools.copy(p, s, 'toHost');
    });
  }

  /** Stored values += device buffer `src`; the host part is copied to a host buffer first and added there. */
  add(a: number, b: number, src: Float32Array, pools: MemoryPools): void {
    this.forParts(a, b, (p, at, place) => {
      let s = src.subarray(at - a, at - a + p.length);
      let tmp: Float32Array | null = null;
      if (place === 'host') {
        tmp = pools.f32('transient', p.length, 'host');
        pools.copy(tmp, s, 'toHost');
        s = tmp;
      }
      for (let i = 0; i < p.length; i++) p[i] += s[i];
      if (tmp) pools.release(tmp);
    });
  }

  /** A plain copy of [a, b) (for checkpoints: no device traffic). */
  snapshot(a: number, b: number): Float32Array {
    const out = new Float32Array(b - a);
    this.forParts(a, b, (p, at) => out.set(p, at - a));
    return out;
  }

  /** Sets [a, b) from a plain array (checkpoint load). */
  load(a: number, b: number, src: Float32Array): void {
    this.forParts(a, b, (p, at) => p.set(src.subarray(at - a, at - a + p.length)));
  }

  fill(v: number): void {
    this.dev.fill(v);
    this.host.fill(v);
  }
}
