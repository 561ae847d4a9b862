// Runs a block's kernels as batches off the JavaScript thread, cut only where a tensor-parallel
// hook needs the data: record, record, ... then `await flow.allReduce(buf, site)` runs what was
// recorded, calls the hook, and recording goes on. `await flow.end()` runs the rest.
import type { TensorLike } from '@mist/native';
import { cpuDevice } from '../device/cpu-device';
import type { Device, DeviceBatch } from '../device/device';
import type { TpHooks, TpSite } from './tp-hooks';

export class Flow<F extends TensorLike = Float32Array, I = Int32Array> {
  readonly k: DeviceBatch<F, I>;

  constructor(
    private readonly hooks: TpHooks<F> | undefined,
    private readonly tp: number,
    private readonly device: Device<F, I> = cpuDevice as unknown as Device<F, I>,
  ) {
    this.k = device.batch();
  }

  async allReduce(buffer: F, site: TpSite): Promise<void> {
    if (this.tp === 1 || !this.hooks) return;
    await this.k.run();
    await this.hooks.allReduce(buffer, site);
  }

  async allGather(shard: F, full: F, site: TpSite): Promise<void> {
    if (this.tp === 1) {
      this.k.copy(full, shard, shard.length);
      await this.k.run();
      return;
    }
    await this.k.run();
    if (!this.hooks?.allGather) throw new Error(`sequence parallelism at ${site.point}: the TP hooks have no allGather`);
    await this.hooks.allGather(shard, full, site);
  }

  async reduceScatter(full: F, shard: F, site: TpSite): Promise<void> {
    if (this.tp === 1) {
      this.k.copy(shard, full, full.length);
      await this.k.run();
      return;
    }
    await this.k.run();
    if (!this.hooks?.reduceScatter) throw new Error(`sequence parallelism at ${site.point}: the TP hooks have no reduceScatter`);
    await this.hooks.reduceScatter(full, shard, site);
  }

  async end(): Promise<void> {
    await this.k.run();
  }
}
