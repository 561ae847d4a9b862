// @mist/profiler: measures a host (its CPU devices, or its GPU: profile-cuda.ts) and writes a HardwareProfile
// (@mist/core) that the analyzer and the tuner use instead of the datasheet profile.
export { profileHost, type ProfileHostOptions } from './profile-host';
export { type ProfileProgress, type ProgressFn } from './progress';
export { profileGrid, SMOKE_GRID, type ProfileGrid, type MatmulShape, type AttentionCase } from './grids';
export { mergeProfiles } from './merge';
export { profileRequestHandler } from './service';
export {
  collectiveTerms, fitCollective, fitLine, fitLineRelative, fitReport, fitTransfer, fitTwoTermsRelative, relativeErrors,
  type AlphaBetaFit, type UVY, type XY,
} from './fit';
export { median, timeAsync, timeSync, type Timing, type TimingOptions } from './timing';
export {
  assembleCudaProfile, attentionEfficiencyFit, catalogGpu, cudaMachineKind, cudaUnavailableReason, derivedPeakFlops, profileCuda,
  type CudaMeasurements, type ExecutorProbeResult, type ProfileCudaOptions,
} from './profile-cuda';
export { checkCudaGrid, CUDA_SMOKE_GRID, cudaProfileGrid, type CudaOpShape, type CudaProfileGrid } from './cuda-grids';
export { nativeCudaRuntime, type CudaRuntime, type ExecutorProbeRequest, type ProfileDtype, type StorageDType } from './cuda-runtime';
/** A simulated GPU behind the CUDA profiler's runtime interface, for tests of code that drives profileCuda on hosts without a GPU. */
export * as profilerTesting from './testing/cuda-simulated-runtime';
export { profileStoreDir, saveMeasuredProfile, storedProfile, type StoredDtype } from './profile-store';
