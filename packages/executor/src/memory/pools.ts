// The executor's own memory accounting: every buffer the runtime allocates for a rank goes through
// a MemoryPools, which keeps the live and peak bytes of each pool on the device and in host memory
// (offloaded state). Device buffers are the rank's Device tensors (Float32Array on the CPU device,
// GPU memory on the CUDA device), counted at their storage's bytes (fp32 4, bf16/fp16 2); host
// buffers are always Float32Arrays. On the CPU device "device" and "host" are distinct JavaScript
// buffers; the bytes copied between them are counted as offload traffic.
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device, TensorClass } from '../device/device';

export const POOL_NAMES = ['weights', 'grads', 'optim', 'activations', 'transient'] as const;
export type PoolName = (typeof POOL_NAMES)[number];
export type Placement = 'device' | 'host';

interface Owner {
  pool: PoolName;
  place: Placement;
  bytes: number;
}

/** Bytes per element of a device storage ('f32', 'bf16', 'f16', 'i32'). */
export function storageBytes(storage: string): number {
  if (storage === 'bf16' || storage === 'f16') return 2;
  if (storage === 'f32' || storage === 'i32') return 4;
  throw new Error(`unknown tensor storage '${storage}': expected f32, bf16, f16 or i32`);
}

/** Bytes of a device tensor at its storage. */
export function tensorBytes<F extends TensorLike>(device: Device<F, unknown>, t: F): number {
  return t.length * storageBytes(device.storageOf(t));
}

/** F: the device's float tensor type (Float32Array on the CPU). */
export class MemoryPools<F extends TensorLike = Float32Array> {
  private readonly live = new Map<string, number>();
  private readonly peak = new Map<string, number>();
  private readonly owners = new WeakMap<object, Owner>();
  /** Bytes copied device -> host and host -> device. */
  offloadBytes = { toHost: 0, toDevice: 0 };

  constructor(readonly device: Device<F, unknown> = cpuDevice as unknown as Device<F, unknown>) {}

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

  /** A zeroed device tensor of n elements of a class (default 'act'), accounted to a pool until release(). */
  tensor(pool: PoolName, n: number, cls: TensorClass = 'act'): F {
    const t = this.device.zeros(n, cls);
    this.adopt(t, pool);
    return t;
  }

  /** A zeroed host Float32Array of n elements (offloaded state), accounted to a pool's host part until release(). */
  host(pool: PoolName, n: number): Float32Array {
    const a = new Float32Array(n);
    this.adoptHost(a, pool);
    return a;
  }

  /** Accounts an existing device tensor to a pool. */
  adopt(t: F, pool: PoolName): F {
    this.own(t, pool, 'device', tensorBytes(this.device, t));
    return t;
  }

  /** Accounts an existing host array to a pool's host part. */
  adoptHost(a: Float32Array, pool: PoolName): Float32Array {
    this.own(a, pool, 'host', a.byteLength);
    return a;
  }

  private own(a: object, pool: PoolName, place: Placement, bytes: number): void {
    if (this.owners.has(a)) throw new Error('buffer is already accounted to a pool');
    this.owners.set(a, { pool, place, bytes });
    this.add(pool, place, bytes);
  }

  /** Ends the accounting of a device tensor or host array. */
  release(a: F | Float32Array): void {
    const o = this.owners.get(a);
    if (!o) throw new Error('release of a buffer that no pool owns');
    this.owners.delete(a);
    this.remove(o.pool, o.place, o.bytes);
  }

  /** Host dst <- device src (same length), counted as device->host traffic at the device storage's bytes. */
  toHost(dst: Float32Array, src: F): void {
    dst.set(this.device.read(src));
    this.offloadBytes.toHost += tensorBytes(this.device, src);
  }

  /** Device dst <- host src (same length), counted as host->device traffic at the device storage's bytes. */
  toDevice(dst: F, src: Float32Array): void {
    this.device.write(dst, src);
    this.offloadBytes.toDevice += src.length * storageBytes(this.device.storageOf(dst));
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
