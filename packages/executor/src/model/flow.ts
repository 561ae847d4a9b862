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

  async end(): Promise<void> {
    await this.k.run();
  }
}
