// Runs a block's kernels as batches off the JavaScript thread, cut only where a tensor-parallel
// hook needs the data: record, record, ... then `await flow.allReduce(buf, site)` runs what was
// recorded, calls the hook, and recording goes on. `await flow.end()` runs the rest.
import { KernelBatch } from '@mist/native';
import type { TpHooks, TpSite } from './tp-hooks';

export class Flow {
  readonly k = new KernelBatch();

  constructor(private readonly hooks: TpHooks | undefined, private readonly tp: number) {}

  async allReduce(buffer: Float32Array, site: TpSite): Promise<void> {
    if (this.tp === 1 || !this.hooks) return;
    await this.k.run();
    await this.hooks.allReduce(buffer, site);
  }

  async allGather(shard: Float32Array, full: Float32Array, site: TpSite): Promise<void> {
    await this.k.run();
    if (this.tp === 1) {
      full.set(shard);
      return;
    }
    if (!this.hooks?.allGather) throw new Error(`sequence parallelism at ${site.point}: the TP hooks have no allGather`);
    await this.hooks.allGather(shard, full, site);
  }

  async reduceScatter(full: Float32Array, shard: Float32Array, site: TpSite): Promise<void> {
    await this.k.run();
    if (this.tp === 1) {
      shard.set(full);
      return;
    }
    if (!this.hooks?.reduceScatter) throw new Error(`sequence parallelism at ${site.point}: the TP hooks have no reduceScatter`);
    await this.hooks.reduceScatter(full, shard, site);
  }

  async end(): Promise<void> {
    await this.k.run();
  }
}
