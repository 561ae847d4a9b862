export { saveCheckpoint } from './save';
export {
  latestCheckpoint, loadCheckpoint, readCheckpoint, readFullTensors, resumeCheckpoint, verifyCheckpoint, type CheckpointOwner, type CheckpointRef, type ResumeChoice,
} from './load';
export { pruneCheckpoints } from './prune';
export { fingerprint } from './format';
export type { CheckpointManifest, RankShardFile, ShardRecord } from './format';
