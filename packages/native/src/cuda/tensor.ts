// Device tensors of the CUDA compute backend and the calls that run ops on them.
import { cudaAddon } from './addon-cuda';
import type { CudaDType, CudaMemoryStats, CudaProbe, CudaStream, NativeCudaTensor } from './addon-cuda';

/** What the driver, the device and the addon's kernel images offer here (never throws). */
export function cudaProbe(): CudaProbe {
  return cudaAddon().cudaProbe();
}

/**
 * A tensor in device memory, from the caching allocator; freed by free() or when collected. A view
 * (subarray) shares its parent's memory and keeps the parent reachable; freeing a parent explicitly
 * while one of its views is still used is the caller's error.
 */
export class CudaTensor {
  private freed = false;

  private constructor(
    readonly handle: NativeCudaTensor,
    readonly count: number,
    readonly dtype: CudaDType,
    private readonly parent: CudaTensor | null = null,
  ) {}

  /** Elements, as a typed array's length (KernelOps reads it). */
  get length(): number {
    return this.count;
  }

  /** Elements [begin, end) as a tensor sharing this one's memory, like Float32Array.subarray. */
  subarray(begin: number, end = this.count): CudaTensor {
    const b = Math.max(0, Math.min(begin, this.count));
    const e = Math.max(b, Math.min(end, this.count));
    return new CudaTensor(cudaAddon().cudaTensorView(this.handle, b, e - b), e - b, this.dtype, this.parent ?? this);
  }

  static empty(count: number, dtype: CudaDType): CudaTensor {
    return new CudaTensor(cudaAddon().cudaTensorCreate(count, dtype), count, dtype);
  }

  /** A tensor holding `data`, converted to `dtype` (round to nearest even for bf16/f16). */
  static from(data: Float32Array | Int32Array, dtype: CudaDType = data instanceof Int32Array ? 'i32' : 'f32'): CudaTensor {
    const t = CudaTensor.empty(data.length, dtype);
    t.upload(data);
    return t;
  }

  /** Whether this tensor is a view into another one's memory (subarray). */
  get isView(): boolean {
    return this.parent !== null;
  }

  /** Sets every element to 0, queued on the compute stream after the work before it. */
  zero(): void {
    cudaAddon().cudaTensorZero(this.handle);
  }

  get bytes(): number {
    return this.count * (this.dtype === 'bf16' || this.dtype === 'f16' ? 2 : 4);
  }

  upload(data: Float32Array | Int32Array | Uint16Array): void {
    cudaAddon().cudaUpload(this.handle, data);
  }

  /** The values as fp32 (or int32), after the compute stream's queued work. */
  download(): Float32Array | Int32Array {
    return cudaAddon().cudaDownload(this.handle);
  }

  /** Returns the memory to the allocator now (a view frees nothing). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.parent === null) cudaAddon().cudaTensorFree(this.handle);
  }
}

/** Queues the CUDA op `op` (same name, buffers and parameters as the CPU kernel) on the compute stream. */
export function cudaRun(op: string, tensors: ReadonlyArray<CudaTensor | null>, ints: number[], floats: number[]): void {
  cudaAddon().cudaRun(op, tensors.map((t) => (t ? t.handle : null)), ints, floats);
}

/** Every CUDA op with its buffer signature (see launch.h: x storage, f fp32, i int32, * any; upper case optional). */
export function cudaOps(): Array<{ name: string; signature: string }> {
  return cudaAddon().cudaOps();
}

export function cudaSynchronize(stream?: CudaStream): void {
  cudaAddon().cudaSynchronize(stream);
}

/** `waiter` waits on the device for the work queued on `signaller` so far. */
export function cudaStreamWait(waiter: CudaStream, signaller: CudaStream): void {
  cudaAddon().cudaStreamWait(waiter, signaller);
}

export function cudaMemoryStats(): CudaMemoryStats & { deviceFree: number; deviceTotal: number } {
  return cudaAddon().cudaMemoryStats();
}

/** Returns the allocator's free segments to the device (after the queued work). */
export function cudaEmptyCache(): void {
  cudaAddon().cudaEmptyCache();
}

export function cudaResetPeaks(): void {
  cudaAddon().cudaResetPeaks();
}

/** Page-locked host memory for asynchronous copies (offloading). */
export function cudaPinnedBuffer(bytes: number): ArrayBuffer {
  return cudaAddon().cudaPinnedBuffer(bytes);
}

/** Queues a copy between a tensor and a pinned buffer on `stream`; it completes in stream order. */
export function cudaCopyAsync(direction: 'toDevice' | 'toHost', tensor: CudaTensor, pinned: ArrayBuffer, stream: CudaStream): void {
  cudaAddon().cudaCopyAsync(direction, tensor.handle, pinned, stream);
}

/** `values` rounded to `dtype` (round to nearest even) and back to fp32: what an upload stores. No GPU needed. */
export function roundToDType(values: Float32Array, dtype: 'f32' | 'bf16' | 'f16'): Float32Array {
  return cudaAddon().cudaRoundValues(values, dtype);
}
