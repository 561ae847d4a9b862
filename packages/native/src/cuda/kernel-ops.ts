// KernelOps on the CUDA backend: the same typed wrappers as the CPU kernels (kernels/ops.ts), over
// device tensors. Every call is queued on the device's compute stream and returns at once; a
// download (or cudaSynchronize) waits for it. The CUDA op of each name has the CPU kernel's
// buffers and parameters (launch.h), so code written against KernelOps runs on either backend.
import { KernelOps } from '../kernels/ops';
import { CudaTensor, cudaRun } from './tensor';

export class CudaKernels extends KernelOps<CudaTensor, CudaTensor> {
  protected override emit(op: string, buffers: Array<CudaTensor | null>, ints: number[], floats: number[]): void {
    cudaRun(op, buffers, ints, floats);
  }
}

/** The shared CUDA kernels (calls go to the process's device; nothing is created until the first call). */
export const cudaKernels = new CudaKernels();
