// The functions the kernels part of the native addon adds to its exports (kernels_binding.cc).
export type KernelBuffer = Float32Array | Int32Array | null;
/** One recorded kernel call: [op id, buffers, integer parameters, float parameters]. */
export type KernelCall = [number, KernelBuffer[], number[], number[]];

export interface GemmConfig {
  mr: number;
  nr: number;
  kc: number;
  mc: number;
  nc: number;
  /** Floats per SIMD vector the addon was compiled for (16 with AVX-512, 8 with AVX2). */
  vectorFloats: number;
}

export interface KernelAddon {
  kernelOpNames(): string[];
  kernelRun(id: number, buffers: KernelBuffer[], ints: number[], floats: number[]): void;
  kernelRunBatch(calls: KernelCall[]): Promise<void>;
  kernelThreads(): number;
  kernelSetThreads(threads: number): void;
  kernelGemmConfig(): GemmConfig;
  kernelFmaPeak(seconds: number): number;
  kernelTraceStart(): void;
  kernelTraceStop(): KernelTraceEntry[];
}

/** Calls and total seconds of one kernel name while tracing ('(batch)': whole batches). */
export interface KernelTraceEntry {
  op: string;
  calls: number;
  seconds: number;
}
