// KernelOps that run each kernel at once (synchronously) on the calling thread plus the pool.
import type { KernelBuffer } from './addon-kernels';
import { KernelOps } from './ops';
import { kernelAddon, kernelId } from './runtime';

export class ImmediateKernels extends KernelOps {
  protected override emit(op: string, buffers: KernelBuffer[], ints: number[], floats: number[]): void {
    kernelAddon().kernelRun(kernelId(op), buffers, ints, floats);
  }
}

/** The shared immediate kernels. */
export const kernels: KernelOps = new ImmediateKernels();
