// The CUDA compute backend of @mist/native: device tensors, the ops (same names and semantics as the
// CPU kernels), streams, pinned memory and the caching allocator's statistics.
export { CudaKernels, cudaKernels } from './kernel-ops';
export { cudaGemmBenchmark, type GemmBenchmarkOptions, type GemmBenchmarkResult } from './gemm-benchmark';
export type { CudaDType, CudaGpu, CudaMemoryStats, CudaProbe, CudaStream } from './addon-cuda';
export {
  CudaTensor,
  cudaCopyAsync,
  cudaEmptyCache,
  cudaMemoryStats,
  cudaOps,
  cudaPinnedBuffer,
  cudaProbe,
  cudaResetPeaks,
  cudaRun,
  cudaStreamWait,
  cudaSynchronize,
  roundToDType,
} from './tensor';
