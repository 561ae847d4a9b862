// cudaGemmBenchmark: the matmul op's GEMM timed on the device with CUDA events (cuda/gemm_bench.cc),
// for the profiler's GEMM table (`mist profile --device cuda`): per-launch device time of a shape,
// without the host's cost of queueing each launch from JavaScript.
import { cudaAddon, type GemmBenchmarkOptions, type GemmBenchmarkResult } from './addon-cuda';

export type { GemmBenchmarkOptions, GemmBenchmarkResult };

/** Times `iterations` launches (after 3 untimed ones) of the GEMM of m, n, k; throws where CUDA is unavailable. */
export function cudaGemmBenchmark(options: GemmBenchmarkOptions): GemmBenchmarkResult {
  return cudaAddon().cudaGemmBenchmark(options);
}
