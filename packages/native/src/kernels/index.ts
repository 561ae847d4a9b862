// CPU fp32 kernels of @mist/native: typed wrappers, immediate and batched execution, pool control.
export type { GemmConfig, KernelBuffer, KernelTraceEntry } from './addon-kernels';
export { KernelOps, maskFloats } from './ops';
export type { AdamWArgs, AttentionBlockShape, AttentionDropout, AttentionShape, DropoutStream, EmbeddingShape, MatmulArgs, TensorLike } from './ops';
export { ImmediateKernels, kernels } from './immediate';
export { KernelBatch } from './batch';
export { gemmConfig, kernelThreads, measureFmaPeak, setKernelThreads, startKernelTrace, stopKernelTrace } from './runtime';
