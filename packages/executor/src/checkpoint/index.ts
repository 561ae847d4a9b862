export { saveCheckpoint } from './save';
export { latestCheckpoint, loadCheckpoint, readCheckpoint, readFullTensors, type CheckpointRef } from './load';
export type { CheckpointManifest, RankShardFile, ShardRecord } from './format';
