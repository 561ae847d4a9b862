// The GPU as the CUDA profiler sees it: device tensors, the KernelOps on the compute stream, the two
// streams, pinned copies, the event-timed GEMM, memory figures, a clock and the executor probe. The
// measuring code (cuda-*-bench.ts, profile-cuda.ts) is written against this interface only, so the
// same code runs on @mist/native's CUDA backend (nativeCudaRuntime) and on the simulated device of
// the tests (testing/cuda-simulated-runtime.ts), which checks its orchestration and fits on a host without a GPU.
import { performance } from 'node:perf_hooks';
import { trainSingleProcess } from '@mist/executor';
import {
  CudaKernels, CudaTensor, cudaCopyAsync, cudaEmptyCache, cudaGemmBenchmark, cudaMemoryStats, cudaPinnedBuffer, cudaProbe,
  cudaSynchronize, type CudaProbe, type CudaStream, type GemmBenchmarkOptions, type GemmBenchmarkResult, type KernelOps, type TensorLike,
} from '@mist/native';

/** Storage of a float tensor: 'x' buffers of the ops take the compute dtype's, 'f' buffers f32. */
export type StorageDType = 'f32' | 'bf16' | 'f16';
export type ProfileDtype = 'fp32' | 'bf16' | 'fp16';

export const STORAGE_OF: Record<ProfileDtype, StorageDType> = { fp32: 'f32', bf16: 'bf16', fp16: 'f16' };
export const STORAGE_BYTES: Record<StorageDType, number> = { f32: 4, bf16: 2, f16: 2 };

/** What the executor probe runs (trainSingleProcess on the GPU) and what it returns per step. */
export interface ExecutorProbeRequest {
  model: string;
  seq: number;
  microBatch: number;
  gradAccumSteps: number;
  dtype: ProfileDtype;
  steps: number;
}

export interface CudaRuntime<T extends TensorLike = TensorLike> {
  probe(): CudaProbe;
  /** The ops, queued on the compute stream in call order. */
  readonly kernels: KernelOps<T, T>;
  /** A device tensor holding `data` in `dtype` (i32 for tokens and targets). */
  upload(data: Float32Array | Int32Array, dtype: StorageDType | 'i32'): T;
  /** Elements [begin, end) of t, sharing its memory. */
  view(t: T, begin: number, end: number): T;
  /** Returns t's memory to the allocator (after the work queued on it). */
  free(t: T): void;
  /** Waits for the work queued on a stream (default: every stream). */
  synchronize(stream?: CudaStream): void;
  /** Page-locked host memory. */
  pinned(bytes: number): ArrayBuffer;
  /** Queues a copy of t's bytes between the device and a pinned buffer on a stream. */
  copyAsync(direction: 'toDevice' | 'toHost', t: T, pinned: ArrayBuffer, stream: CudaStream): void;
  /** The matmul op's GEMM, timed on the device with CUDA events (per launch). */
  gemmBenchmark(o: GemmBenchmarkOptions): GemmBenchmarkResult;
  /** Device memory: the driver's total and free, and what the caching allocator holds (reserved). */
  memory(): { deviceTotal: number; deviceFree: number; reserved: number };
  /** Returns the allocator's free segments to the driver. */
  emptyCache(): void;
  /** Host clock, seconds. */
  now(): number;
  /** Trains the probe model on the GPU; each timed step's seconds (after `steps` untimed ones are dropped by the caller). */
  trainSteps(r: ExecutorProbeRequest): Promise<number[]>;
}

/** @mist/native's CUDA backend on device 0 (the process's device). */
export function nativeCudaRuntime(): CudaRuntime<CudaTensor> {
  return {
    probe: cudaProbe,
    kernels: new CudaKernels(),
    upload: (data, dtype) => CudaTensor.from(data, dtype),
    view: (t, begin, end) => t.subarray(begin, end),
    free: (t) => t.free(),
    synchronize: (stream) => cudaSynchronize(stream),
    pinned: cudaPinnedBuffer,
    copyAsync: (direction, t, pinned, stream) => cudaCopyAsync(direction, t, pinned, stream),
    gemmBenchmark: cudaGemmBenchmark,
    memory: () => {
      const s = cudaMemoryStats();
      return { deviceTotal: s.deviceTotal, deviceFree: s.deviceFree, reserved: s.reserved };
    },
    emptyCache: cudaEmptyCache,
    now: () => performance.now() / 1000,
    trainSteps: async (r) => {
      const res = await trainSingleProcess({
        model: r.model, device: 'cuda', computeDtype: r.dtype, steps: r.steps, seed: 1, lr: 1e-4, warmupSteps: 0,
        globalBatch: r.microBatch * r.gradAccumSteps, microBatch: r.microBatch, seq: r.seq, data: 'synthetic',
      });
      return res.steps.map((s) => s.seconds);
    },
  };
}
