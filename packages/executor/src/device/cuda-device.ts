// The CUDA device: tensors in GPU memory (CudaTensor, from the native addon's caching allocator),
// kernels queued on the device's compute stream in call order (CudaKernels: the CPU kernels' names
// and parameters). A batch's run() has nothing left to do but resolve: the kernels were queued when
// recorded, and every read from the host (read(), a download) waits for the stream. Tensors are fp32
// here; the bf16/fp16 storage of mixed precision is the next step of the seam.
import { CudaKernels, cudaKernels, CudaTensor, cudaProbe, cudaSynchronize } from '@mist/native';
import type { Device, DeviceBatch } from './device';

class CudaBatch extends CudaKernels implements DeviceBatch<CudaTensor, CudaTensor> {
  async run(): Promise<void> {
    // Queued on the stream as recorded; ordering with later work is the stream's.
  }
}

function zeros(n: number): CudaTensor {
  const t = CudaTensor.empty(n, 'f32');
  t.zero();
  return t;
}

let device: Device<CudaTensor, CudaTensor> | null = null;

/** The process's CUDA device; throws naming why when the CUDA backend cannot run here. */
export function cudaDevice(): Device<CudaTensor, CudaTensor> {
  if (device) return device;
  const probe = cudaProbe();
  if (!probe.available) throw new Error(`the CUDA device is unavailable: ${probe.reason ?? 'unknown reason'} (mist gpus --local shows what this host offers)`);
  device = {
    kind: 'cuda',
    zeros,
    zero: (t) => t.zero(),
    upload: (data) => CudaTensor.from(data, 'f32'),
    write: (t, data) => (data.length === t.length ? t : t.subarray(0, data.length)).upload(data),
    read: (t) => t.download() as Float32Array,
    // Queued kernels may still read an upload's memory after its CudaTensor is collected: the
    // allocator hands the block out again only to work queued later on the same stream.
    ints: (data) => CudaTensor.from(data, 'i32'),
    isWhole: (t) => !t.isView,
    isTensor: (v): v is CudaTensor => v instanceof CudaTensor,
    copy: (dst, src) => cudaKernels.copy(dst, src, src.length),
    view: (t, begin, end) => t.subarray(begin, end),
    synchronize: () => cudaSynchronize('compute'),
    batch: () => new CudaBatch(),
  };
  return device;
}
