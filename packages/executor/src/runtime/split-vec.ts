// A range [lo, hi) of a rank's flat parameter-sized vector (weights, gradients or an AdamW moment)
// stored in two pools: the device part [lo, cut) and the host part [cut, hi), cut = hi -
// round(ratio * (hi - lo)) for an offload ratio. The device part is a tensor of the rank's Device
// (a Float32Array on the CPU device), the host part always a host Float32Array. Moving data between
// a device buffer and the host part goes through MemoryPools.toHost / toDevice, which count the
// offload traffic.
import type { TensorLike } from '@mist/native';
import type { Device, TensorClass } from '../device/device';
import type { MemoryPools, PoolName } from '../memory/pools';

/** One stored part of a range: device tensor or host array. */
export type Part<F> = { place: 'device'; part: F; at: number } | { place: 'host'; part: Float32Array; at: number };

export class SplitVec<F extends TensorLike = Float32Array> {
  private constructor(
    private readonly device: Device<F, unknown>,
    readonly lo: number, readonly hi: number, readonly cut: number,
    /** Elements [lo, cut). */
    readonly dev: F,
    /** Elements [cut, hi). */
    readonly host: Float32Array,
  ) {}

  /** Fresh zeroed buffers of a class accounted to `pool`, the last `hostRatio` of the range in the host pool. */
  static alloc<F extends TensorLike>(pools: MemoryPools<F>, pool: PoolName, lo: number, hi: number, hostRatio: number, cls: TensorClass = 'act'): SplitVec<F> {
    const cut = hi - Math.round(hostRatio * (hi - lo));
    return new SplitVec(pools.device, lo, hi, cut, pools.tensor(pool, cut - lo, cls), pools.host(pool, hi - cut));
  }

  /** All on the device, a view of elements [lo, hi) of `data` whose element 0 is flat index `base` (no allocation). */
  static view<F extends TensorLike>(device: Device<F, unknown>, data: F, base: number, lo: number, hi: number): SplitVec<F> {
    return new SplitVec(device, lo, hi, hi, device.view(data, lo - base, hi - base), new Float32Array(0));
  }

  get length(): number {
    return this.hi - this.lo;
  }

  placeOf(i: number): 'device' | 'host' {
    return i < this.cut ? 'device' : 'host';
  }

  private check(a: number, b: number): void {
    if (a < this.lo || b > this.hi || a > b) throw new Error(`range [${a}, ${b}) outside [${this.lo}, ${this.hi})`);
  }

  /** The stored device elements [a, b), which must lie in the device part. */
  devPiece(a: number, b: number): F {
    this.check(a, b);
    if (b <= this.cut) return this.device.view(this.dev, a - this.lo, b - this.lo);
    throw new Error(`range [${a}, ${b}) is not all on the device (the host part starts at ${this.cut})`);
  }

  /** The stored host elements [a, b), which must lie in the host part. */
  hostPiece(a: number, b: number): Float32Array {
    this.check(a, b);
    if (a >= this.cut) return this.host.subarray(a - this.cut, b - this.cut);
    throw new Error(`range [${a}, ${b}) is not all in the host part (it starts at ${this.cut})`);
  }

  /** The stored parts of [a, b) in order, with the flat index of each part's first element. */
  parts(a: number, b: number): Array<Part<F>> {
    const m = Math.min(Math.max(a, this.cut), b);
    const out: Array<Part<F>> = [];
    if (a < m) out.push({ place: 'device', part: this.devPiece(a, m), at: a });
    if (m < b) out.push({ place: 'host', part: this.hostPiece(m, b), at: m });
    return out;
  }

  /** Device buffer `out` (elements [a, b)) <- stored values; the host part counts as host->device traffic. */
  read(a: number, b: number, out: F, pools: MemoryPools<F>): void {
    for (const p of this.parts(a, b)) {
      const dst = this.device.view(out, p.at - a, p.at - a + p.part.length);
      if (p.place === 'device') this.device.copy(dst, p.part);
      else pools.toDevice(dst, p.part);
    }
  }

  /** Stored values <- device buffer `src` (elements [a, b)); the host part counts as device->host traffic. */
  write(a: number, b: number, src: F, pools: MemoryPools<F>): void {
    for (const p of this.parts(a, b)) {
      const s = this.device.view(src, p.at - a, p.at - a + p.part.length);
      if (p.place === 'device') this.device.copy(p.part, s);
      else pools.toHost(p.part, s);
    }
  }

  /**
   * Stored values += device buffer `src`: the device part with the add kernel (float32 sums, as
   * the host loop), the host part copied to a host buffer first and added there.
   */
  async add(a: number, b: number, src: F, pools: MemoryPools<F>): Promise<void> {
    let batch: ReturnType<Device<F, unknown>['batch']> | null = null;
    for (const p of this.parts(a, b)) {
      const s = this.device.view(src, p.at - a, p.at - a + p.part.length);
      if (p.place === 'device') {
        batch ??= this.device.batch();
        batch.add(p.part, p.part, s);
        continue;
      }
      const tmp = pools.host('transient', p.part.length);
      pools.toHost(tmp, s);
      const h = p.part;
      for (let i = 0; i < h.length; i++) h[i] += tmp[i];
      pools.release(tmp);
    }
    if (batch) await batch.run();
  }

  /** A host copy of [a, b) (for checkpoints: no counted traffic). */
  snapshot(a: number, b: number): Float32Array {
    const out = new Float32Array(b - a);
    for (const p of this.parts(a, b)) out.set(p.place === 'device' ? this.device.read(p.part) : p.part, p.at - a);
    return out;
  }

  /** Sets [a, b) from a host array (checkpoint load). */
  load(a: number, b: number, src: Float32Array): void {
    for (const p of this.parts(a, b)) {
      const s = src.subarray(p.at - a, p.at - a + p.part.length);
      if (p.place === 'device') this.device.write(p.part, s);
      else p.part.set(s);
    }
  }

  /** Sets every element to 0. */
  zero(): void {
    this.device.zero(this.dev);
    this.host.fill(0);
  }
}
