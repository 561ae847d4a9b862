// The functions the CUDA part of the native addon adds to its exports (cuda/cuda_binding.cc).
import { loadAddon } from '../addon';

export type CudaDType = 'f32' | 'bf16' | 'f16' | 'i32';
export type CudaStream = 'compute' | 'comm';
/** Opaque, type-tagged handle of a device tensor owned by the addon. */
export type NativeCudaTensor = { readonly __brand: 'mist.CudaTensor' };
export type NativeTestAllocator = { readonly __brand: 'mist.TestAllocator' };

export interface CudaGpu {
  ordinal: number;
  name: string;
  memoryBytes: number;
  /** major * 10 + minor, e.g. 90 for an H100/H200. */
  computeCapability: number;
  multiprocessors: number;
  clockKHz: number;
  maxSharedPerBlock: number;
}

export interface CudaProbe {
  /** The driver works, a device is there and the addon has kernels for it. */
  available: boolean;
  reason?: string;
  driverAvailable: boolean;
  library?: string;
  /** e.g. 13000 for CUDA 13.0. */
  driverVersion?: number;
  devices: CudaGpu[];
  /** The fatbinaries next to the addon and what they hold (from the build's manifest.txt). */
  kernels: { directory: string; files: string[]; reason?: string; cudaVersion?: number; sass?: number[]; ptx?: number };
  /** cuBLASLt, opened by dlopen when the host has it (the matmul op's preferred path). */
  cublasLt: { available: boolean; path?: string; reason?: string; version?: number };
}

export interface CudaMemoryStats {
  allocated: number;
  requested: number;
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  liveAllocations: number;
  segments: number;
  allocations: number;
  rawAllocations: number;
  rawReleases: number;
  cacheHits: number;
  outOfMemory: number;
  largestFreeBlock: number;
  fragmentation: number;
}

export interface GemmBenchmarkOptions {
  m: number;
  n: number;
  k: number;
  dtype?: 'bf16' | 'f16' | 'f32';
  /** 'auto' (cuBLASLt when it opened), 'own' (the addon's tensor-core kernel) or 'cublaslt'. */
  path?: 'auto' | 'own' | 'cublaslt';
  iterations?: number;
  transA?: boolean;
  transB?: boolean;
}

export interface GemmBenchmarkResult {
  path: string;
  m: number;
  n: number;
  k: number;
  dtype: string;
  transA: boolean;
  transB: boolean;
  iterations: number;
  /** Per launch, from CUDA events around all timed launches. */
  ms: number;
  tflops: number;
}

export interface CudaAddon {
  cudaGemmBenchmark(options: GemmBenchmarkOptions): GemmBenchmarkResult;
  cudaProbe(): CudaProbe;
  cudaOps(): Array<{ name: string; signature: string }>;
  cudaTensorCreate(count: number, dtype: CudaDType): NativeCudaTensor;
  cudaTensorView(handle: NativeCudaTensor, offset: number, count: number): NativeCudaTensor;
  cudaTensorFree(handle: NativeCudaTensor): void;
  cudaTensorZero(handle: NativeCudaTensor): void;
  cudaUpload(handle: NativeCudaTensor, data: Float32Array | Int32Array | Uint16Array): void;
  cudaDownload(handle: NativeCudaTensor): Float32Array | Int32Array;
  cudaRun(op: string, tensors: Array<NativeCudaTensor | null>, ints: number[], floats: number[]): void;
  cudaSynchronize(stream?: CudaStream): void;
  cudaStreamWait(waiter: CudaStream, signaller: CudaStream): void;
  cudaMemoryStats(): CudaMemoryStats & { deviceFree: number; deviceTotal: number };
  cudaEmptyCache(): void;
  cudaResetPeaks(): void;
  cudaPinnedBuffer(bytes: number): ArrayBuffer;
  cudaCopyAsync(direction: 'toDevice' | 'toHost', handle: NativeCudaTensor, pinned: ArrayBuffer, stream: CudaStream): void;
  cudaKernelCompatibility(gpu: { name: string; computeCapability: number }, driverVersion: number): string | null;
  cudaRoundValues(values: Float32Array, dtype: 'f32' | 'bf16' | 'f16'): Float32Array;
  allocatorTestCreate(capacityBytes: number): NativeTestAllocator;
  allocatorTestAllocate(allocator: NativeTestAllocator, bytes: number): number;
  allocatorTestFree(allocator: NativeTestAllocator, address: number): void;
  allocatorTestStats(allocator: NativeTestAllocator): CudaMemoryStats;
  allocatorTestEmptyCache(allocator: NativeTestAllocator): void;
}

export function cudaAddon(): CudaAddon {
  return loadAddon<CudaAddon>();
}
