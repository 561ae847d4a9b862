// The device seam: where the executor's tensors live and how its kernels run. Model code allocates,
// reads and computes through a Device and never indexes float data itself, so the same stage runs on
// the CPU kernels (tensors are Float32Array, kernels run in batches off the JavaScript thread) and
// on the GPU (tensors are device memory, kernels queue on the compute stream).
//   F: the float tensor type (Float32Array on the CPU), I: the int32 tensor type (tokens, targets,
//   positions; Int32Array on the CPU).
import type { KernelOps, TensorLike } from '@mist/native';

/** Kernels recorded on one device; `run()` executes what was recorded (in order) and resolves when done. */
export interface DeviceBatch<F extends TensorLike, I> extends KernelOps<F, I> {
  run(): Promise<void>;
}

export interface Device<F extends TensorLike = Float32Array, I = Int32Array> {
  readonly kind: 'cpu' | 'cuda';
  /** A zeroed tensor of n floats. */
  zeros(n: number): F;
  /** Sets every element of t to 0 (ordered after the work queued before it on this device). */
  zero(t: F): void;
  /** A tensor holding a copy of host values. */
  upload(data: Float32Array): F;
  /** Copies host values into t (t.length >= data.length), ordered after the work queued before it. */
  write(t: F, data: Float32Array): void;
  /** dst = src (same length), ordered after the work queued before it. */
  copy(dst: F, src: F): void;
  /** Elements [begin, end) of t as a tensor sharing its memory (Float32Array.subarray). */
  view(t: F, begin: number, end: number): F;
  /** t's values on the host: the array itself on the CPU (no copy), a download after the queued work elsewhere. */
  read(t: F): Float32Array;
  /** Host int32 data (tokens, targets, positions) as this device's kernels take it. */
  ints(data: Int32Array): I;
  /** Whether t owns its allocation (not a view into another tensor), so a pool may keep and reuse it. */
  isWhole(t: F): boolean;
  /** Whether v is one of this device's float tensors. */
  isTensor(v: unknown): v is F;
  /** Waits until every kernel and copy queued on this device so far has finished (timing a step). */
  synchronize(): void;
  /** A fresh kernel batch. */
  batch(): DeviceBatch<F, I>;
}
