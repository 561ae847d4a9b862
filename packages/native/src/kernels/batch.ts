// KernelOps that record calls; `run()` executes them in order on a libuv worker thread and resolves
// when they are done, so a layer's kernels cost one thread hop and keep the event loop free.
// Buffers must not be read or written from JavaScript between recording and the end of run().
import type { KernelBuffer, KernelCall } from './addon-kernels';
import { KernelOps } from './ops';
import { kernelAddon, kernelId } from './runtime';

export class KernelBatch extends KernelOps {
  private calls: KernelCall[] = [];

  get size(): number {
    return this.calls.length;
  }

  protected override emit(op: string, buffers: KernelBuffer[], ints: number[], floats: number[]): void {
    this.calls.push([kernelId(op), buffers, ints, floats]);
  }

  /** Runs the recorded calls (then forgets them); rejects with the failing kernel's error. */
  async run(): Promise<void> {
    if (this.calls.length === 0) return;
    const calls = this.calls;
    this.calls = [];
    await kernelAddon().kernelRunBatch(calls);
  }
}
