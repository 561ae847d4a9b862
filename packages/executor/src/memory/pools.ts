// The executor's own memory accounting: every buffer the runtime allocates for a rank goes through
// a MemoryPools, which keeps the live and peak bytes of each pool on the device and in host memory
// (offloaded state). On the CPU backend "device" and "host" are distinct JavaScript buffers; the
// bytes copied between them are counted as offload traffic.
export const POOL_NAMES = ['weights', 'grads', 'optim', 'activations', 'transient'] as const;
export type PoolName = (typeof POOL_NAMES)[number];
export type Placement = 'device' | 'host';

interface Owner {
  pool: PoolName;
  place: Placement;
  bytes: number;
}

export class MemoryPools {
  private readonly live = new Map<string, number>();
  private readonly peak = new Map<string, number>();
  private readonly owners = new WeakMap<object, Owner>();
  /** Bytes copied device -> host and host -> device. */
  offloadBytes = { toHost: 0, toDevice: 0 };

  private bump(key: string, delta: number): void {
    const v = (this.live.get(key) ?? 0) + delta;
    if (v < 0) throw new Error(`memory pool ${key} would go negative (${v} bytes)`);
    this.live.set(key, v);
    if (v > (this.peak.get(key) ?? 0)) this.peak.set(key, v);
  }

  /** Records `bytes` allocated in a pool (for buffers made elsewhere, e.g. saved activations). */
  add(pool: PoolName, place: Placement, bytes: number): void {
    this.bump(`${place}.${pool}`, bytes);
    this.bump(`${place}.total`, bytes);
  }

  remove(pool: PoolName, place: Placement, bytes: number): void {
    this.bump(`${place}.${pool}`, -bytes);
    this.bump(`${place}.total`, -bytes);
  }

  /** A zeroed Float32Array of n elements, accounted to a pool until release(). */
  f32(pool: PoolName, n: number, place: Placement = 'device'): Float32Array {
    const a = new Float32Array(n);
    this.adopt(a, pool, place);
    return a;
  }

  /** Accounts an existing buffer to a pool. */
  adopt(a: Float32Array, pool: PoolName, place: Placement = 'device'): Float32Array {
    if (this.owners.has(a)) throw new Error('buffer is already accounted to a pool');
    this.owners.set(a, { pool, place, bytes: a.byteLength });
    this.add(pool, place, a.byteLength);
    return a;
  }

  release(a: Float32Array): void {
    const o = this.owners.get(a);
    if (!o) throw new Error('release of a buffer that no pool owns');
    this.owners.delete(a);
    this.remove(o.pool, o.place, o.bytes);
  }

  /** Copies between placements and counts the traffic. */
  copy(dst: Float32Array, src: Float32Array, direction: 'toHost' | 'toDevice'): void {
    dst.set(src);
    this.offloadBytes[direction] += src.byteLength;
  }

  liveBytes(key: string): number {
    return this.live.get(key) ?? 0;
  }

  /**
   * Peak bytes per pool: `weights`, `grads`, `optim`, `activations`, `transient` and `total` on the
   * device, `host.<pool>` and `host.total` for offloaded state. Pools never used report 0.
   */
  peaks(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const place of ['device', 'host'] as const) {
      for (const pool of [...POOL_NAMES, 'total']) {
        const v = this.peak.get(`${place}.${pool}`) ?? 0;
        out[place === 'device' ? pool : `host.${pool}`] = v;
      }
    }
    return out;
  }

  /** Starts a new peak window at the current live bytes (e.g. per step). */
  resetPeaks(): void {
    this.peak.clear();
    for (const [k, v] of this.live) this.peak.set(k, v);
  }
}
