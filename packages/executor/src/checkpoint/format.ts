// Sharded checkpoint layout:
//   <root>/step-00000010/rank-00003.json   the rank's records (which tensor slices, where in .bin)
//   <root>/step-00000010/rank-00003.bin    float32 data: per record params, then m, then v
//   <root>/step-00000010/manifest.json     written last, atomically, once every rank's files are
//                                          complete; a step directory without it is never loaded
// Each rank saves the part of each tensor it owns: its ZeRO/DP shard of each unit of the flat vector, tensors
// replicated over TP only from TP rank 0, and a tied token table only from the first stage, so
// every element of every tensor is saved exactly once and can be re-sharded for any plan.
import type { Plan, ShardKind } from './model-types';

export const CHECKPOINT_VERSION = 1;

export interface ShardRecord {
  name: string;
  /** Full tensor shape and how TP splits it. */
  shape: [number] | [number, number];
  shard: ShardKind;
  tp: number;
  tpRank: number;
  /** Range of the TP-local slice [localStart, localStart + length). */
  localStart: number;
  length: number;
  /** Float offset of the record's params in the .bin (m and v follow, `length` each). */
  offset: number;
}

export interface RankShardFile {
  rank: number;
  records: ShardRecord[];
}

export interface CheckpointManifest {
  version: number;
  step: number;
  model: string;
  worldSize: number;
  plan: Plan;
  /** Per rank: file names and the .bin size in bytes. */
  files: Array<{ rank: number; index: string; data: string; bytes: number }>;
  savedAt: string;
}

export const stepDirName = (step: number): string => `step-${String(step).padStart(8, '0')}`;
export const rankIndexName = (rank: number): string => `rank-${String(rank).padStart(5, '0')}.json`;
export const rankDataName = (rank: number): string => `rank-${String(rank).padStart(5, '0')}.bin`;
export const MANIFEST = 'manifest.json';
