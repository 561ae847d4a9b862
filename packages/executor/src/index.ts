// @mist/executor: runs one rank of a plan. So far: the stage module (transformer layers from a
// ModelSpec on the native CPU kernels, TP-ready) and single-process training.
export * from './model';
export * from './train';
export { cpuDevice, cudaDevice, DEVICE_KINDS, deviceOf, type Device, type DeviceBatch, type DeviceKind } from './device';
// The distributed runtime: worker entry, local launcher, rank runtime, checkpoints, memory pools.
export { workerEntryPath } from './worker/entry-path';
export { runWorker, type WorkerIo } from './worker/run-worker';
export type * from './worker/protocol';
export { launchLocal, LaunchError, type LaunchLocalOptions, type LaunchResult, type LocalStep } from './launch/launch-local';
export { RankRuntime, type LocalState, type RankRuntimeOptions } from './runtime/rank-runtime';
export { TokenSource, batchTokens } from './runtime/data';
export { DEFAULT_ADAMW, type AdamWHyper } from './runtime/hyper';
export { latestCheckpoint, loadCheckpoint, readCheckpoint, readFullTensors, saveCheckpoint, type CheckpointRef, type CheckpointManifest } from './checkpoint';
export { MemoryPools, POOL_NAMES, type PoolName, type Placement } from './memory/pools';
export { runInProcess, type InProcessOptions, type InProcessRun } from './launch/in-process';
export { singleHostPlan, type StageSketch } from './launch/single-host-plan';
export { oneFOneBSchedule, type CommOp, type ScheduleStep } from './schedule/one-f-one-b';
