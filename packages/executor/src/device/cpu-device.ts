// The CPU device: tensors are Float32Array / Int32Array, kernels the native CPU kernels recorded into
// a KernelBatch (run off the JavaScript thread). Every operation is what the executor did before
// the seam existed, so CPU results are unchanged.
import { KernelBatch } from '@mist/native';
import type { Device, DeviceBatch } from './device';

export const cpuDevice: Device<Float32Array, Int32Array> = {
  kind: 'cpu',
  computeDtype: 'fp32',
  zeros: (n) => new Float32Array(n),
  storage: () => 'f32',
  storageOf: () => 'f32',
  zero: (t) => {
    t.fill(0);
  },
  upload: (data) => Float32Array.from(data),
  write: (t, data) => {
    t.set(data);
  },
  copy: (dst, src) => {
    dst.set(src);
  },
  view: (t, begin, end) => t.subarray(begin, end),
  read: (t) => t,
  ints: (data) => data,
  isWhole: (t) => t.byteOffset === 0 && t.length === t.buffer.byteLength / 4,
  isTensor: (v): v is Float32Array => v instanceof Float32Array,
  memory: () => null,
  resetPeaks: () => {
    // Nothing to reset: see memory().
  },
  synchronize: () => {
    // Every CPU batch has finished when its run() resolved.
  },
  batch: (): DeviceBatch<Float32Array, Int32Array> => new KernelBatch(),
};
