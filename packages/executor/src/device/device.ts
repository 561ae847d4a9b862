// The device seam: where the executor's tensors live and how its kernels run. Model code allocates,
// reads and computes through a Device and never indexes float data itself, so the same stage runs on
// the CPU kernels (tensors are Float32Array, kernels run in batches off the JavaScript thread) and
// on the GPU (tensors are device memory, kernels queue on the compute stream).
//   F: the float tensor type (Float32Array on the CPU), I: the int32 tensor type (tokens, targets,
//   positions; Int32Array on the CPU).
// Mixed precision: a tensor is either an activation-class tensor ('act': activations, parameters'
// compute copies, gradients), stored in the device's compute dtype, or an 'fp32' one (statistics
// such as norms' rstd and attention's lse, per-token losses, dropout masks' words, the optimizer's
// master weights and moments). Core's block descriptions say which is which (BlockTensor.dtype);
// the CPU device stores both as fp32.
import type { KernelOps, TensorLike } from '@mist/native';

export type TensorClass = 'act' | 'fp32';
export type ComputeDtype = 'fp32' | 'bf16' | 'fp16';

/** Kernels recorded on one device; `run()` executes what was recorded (in order) and resolves when done. */
export interface DeviceBatch<F extends TensorLike, I> extends KernelOps<F, I> {
  run(): Promise<void>;
}

export interface Device<F extends TensorLike = Float32Array, I = Int32Array> {
  readonly kind: 'cpu' | 'cuda';
  /** The storage dtype of 'act' tensors. */
  readonly computeDtype: ComputeDtype;
  /** A zeroed tensor of n elements of a class (default 'act'). */
  zeros(n: number, cls?: TensorClass): F;
  /** The storage a tensor of a class gets ('f32', 'bf16', 'f16'): tensors with the same one are interchangeable. */
  storage(cls: TensorClass): string;
  /** The storage of an existing tensor. */
  storageOf(t: F): string;
  /** Sets every element of t to 0 (ordered after the work queued before it on this device). */
  zero(t: F): void;
  /** A tensor of a class (default 'act') holding a copy of host values (rounded to its storage). */
  upload(data: Float32Array, cls?: TensorClass): F;
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
  /**
   * The device allocator's figures (bytes) since the last resetPeaks(), to hold against the analyzer's
   * memory prediction; null where there is no such allocator (the CPU device's arrays are the JS heap's).
   */
  memory(): { allocated: number; reserved: number; peakAllocated: number; peakReserved: number } | null;
  resetPeaks(): void;
  /** Waits until every kernel and copy queued on this device so far has finished (timing a step). */
  synchronize(): void;
  /** A fresh kernel batch. */
  batch(): DeviceBatch<F, I>;
}
