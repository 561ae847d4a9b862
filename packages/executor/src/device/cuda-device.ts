// The CUDA device: tensors in GPU memory (CudaTensor, from the native addon's caching allocator),
// kernels queued on the device's compute stream in call order (CudaKernels: the CPU kernels' names
// and parameters). A batch's run() has nothing left to do but resolve: the kernels were queued when
// recorded, and every read from the host (read(), a download) waits for the stream. 'act' tensors
// are stored in the compute dtype (fp32, bf16 or fp16; the kernels accumulate in fp32), 'fp32' ones
// in fp32.
import { CudaKernels, cudaKernels, type CudaDType, cudaMemoryStats, CudaTensor, cudaProbe, cudaResetPeaks, cudaSynchronize } from '@mist/native';
import type { ComputeDtype, Device, DeviceBatch, TensorClass } from './device';

class CudaBatch extends CudaKernels implements DeviceBatch<CudaTensor, CudaTensor> {
  async run(): Promise<void> {
    // Queued on the stream as recorded; ordering with later work is the stream's.
  }
}

const STORAGE: Record<ComputeDtype, CudaDType> = { fp32: 'f32', bf16: 'bf16', fp16: 'f16' };

const devices = new Map<ComputeDtype, Device<CudaTensor, CudaTensor>>();

/** The process's CUDA device with 'act' tensors in `computeDtype`; throws naming why when the CUDA backend cannot run here. */
export function cudaDevice(computeDtype: ComputeDtype = 'fp32'): Device<CudaTensor, CudaTensor> {
  const known = devices.get(computeDtype);
  if (known) return known;
  if (!(computeDtype in STORAGE)) throw new Error(`computeDtype must be one of ${Object.keys(STORAGE).join(', ')}, got '${String(computeDtype)}'`);
  const probe = cudaProbe();
  if (!probe.available) throw new Error(`the CUDA device is unavailable: ${probe.reason ?? 'unknown reason'} (mist gpus --local shows what this host offers)`);
  const storage = (cls: TensorClass): CudaDType => (cls === 'fp32' ? 'f32' : STORAGE[computeDtype]);
  const device: Device<CudaTensor, CudaTensor> = {
    kind: 'cuda',
    computeDtype,
    zeros: (n, cls = 'act') => {
      const t = CudaTensor.empty(n, storage(cls));
      t.zero();
      return t;
    },
    storage,
    storageOf: (t) => t.dtype,
    zero: (t) => t.zero(),
    upload: (data, cls = 'act') => CudaTensor.from(data, storage(cls)),
    write: (t, data) => (data.length === t.length ? t : t.subarray(0, data.length)).upload(data),
    read: (t) => t.download() as Float32Array,
    // Queued kernels may still read an upload's memory after its CudaTensor is collected: the
    // allocator hands the block out again only to work queued later on the same stream.
    ints: (data) => CudaTensor.from(data, 'i32'),
    isWhole: (t) => !t.isView,
    isTensor: (v): v is CudaTensor => v instanceof CudaTensor,
    copy: (dst, src) => cudaKernels.copy(dst, src, src.length),
    view: (t, begin, end) => t.subarray(begin, end),
    memory: () => {
      const m = cudaMemoryStats();
      return { allocated: m.allocated, reserved: m.reserved, peakAllocated: m.peakAllocated, peakReserved: m.peakReserved };
    },
    resetPeaks: () => cudaResetPeaks(),
    synchronize: () => cudaSynchronize('compute'),
    batch: () => new CudaBatch(),
  };
  devices.set(computeDtype, device);
  return device;
}
