// Loads the kernels' part of the addon and resolves kernel names to ids once.
import { loadAddon } from '../addon';
import type { GemmConfig, KernelAddon, KernelTraceEntry } from './addon-kernels';

let ids: Map<string, number> | undefined;

export function kernelAddon(): KernelAddon {
  return loadAddon<KernelAddon>();
}

export function kernelId(name: string): number {
  if (!ids) ids = new Map(kernelAddon().kernelOpNames().map((n, i) => [n, i] as const));
  const id = ids.get(name);
  if (id === undefined) throw new Error(`native kernel "${name}" is not compiled into the addon`);
  return id;
}

/** Threads of the addon's shared kernel pool (hardware concurrency, or MIST_NUM_THREADS). */
export function kernelThreads(): number {
  return kernelAddon().kernelThreads();
}

/** Resizes the shared kernel pool (results do not depend on it; speed does). */
export function setKernelThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  kernelAddon().kernelSetThreads(threads);
}

/** Blocking of the compiled matmul (micro-kernel tile, cache blocks, SIMD width). */
export function gemmConfig(): GemmConfig {
  return kernelAddon().kernelGemmConfig();
}

/** Measured single-core fp32 FMA throughput in FLOP/s (register-resident FMA chains). */
export function measureFmaPeak(seconds = 0.2): number {
  return kernelAddon().kernelFmaPeak(seconds) * 1e9;
}

/** Starts counting calls and time per kernel name (clears what an earlier trace counted). */
export function startKernelTrace(): void {
  kernelAddon().kernelTraceStart();
}

/**
 * Stops tracing and returns, per kernel name, the calls and the seconds they ran; '(batch)' counts
 * the batches and their time on the worker thread (kernels plus what runs between them there).
 */
export function stopKernelTrace(): KernelTraceEntry[] {
  return kernelAddon().kernelTraceStop();
}
