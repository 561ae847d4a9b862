// Sharded checkpoint layout:
//   <root>/step-00000010/rank-00003.json   the rank's records (which tensor slices, where in .bin)
//                                          and the SHA-256 of its .bin
//   <root>/step-00000010/rank-00003.bin    float32 data: per record params, then m, then v
//   <root>/step-00000010/manifest.json     written last, atomically, once every rank's files are
//                                          complete; a step directory without it is never loaded.
//                                          It names the job that wrote it, the fingerprints of the
//                                          model and the plan, and a SHA-256 per shard file; a
//                                          resume loads only a checkpoint that verifies against all
//                                          of them (load.ts verifyCheckpoint).
// Each rank saves the part of each tensor it owns: its ZeRO/DP shard of each unit of the flat vector, tensors
// replicated over TP only from TP rank 0, and a tied token table only from the first stage, so
// every element of every tensor is saved exactly once and can be re-sharded for any plan.
import * as crypto from 'node:crypto';
import type { Plan, ShardKind } from './model-types';

/** 2: job id, fingerprints and checksums in the manifest (1 had none and cannot be verified). */
export const CHECKPOINT_VERSION = 2;

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
  /** SHA-256 (hex) of the rank's .bin. */
  dataSha256: string;
}

export interface CheckpointManifest {
  version: number;
  step: number;
  /** The job that wrote it: a resume loads only its own job's checkpoints. */
  jobId: string;
  model: string;
  /** fingerprint() of the ModelSpec and of the Plan the job trained with. */
  modelFingerprint: string;
  planFingerprint: string;
  worldSize: number;
  plan: Plan;
  /** Per rank: file names, the .bin size in bytes, and the SHA-256 (hex) of the .bin and of the .json. */
  files: Array<{ rank: number; index: string; data: string; bytes: number; sha256: string; indexSha256: string }>;
  savedAt: string;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/** SHA-256 (hex) of the value's JSON with sorted keys: equal specs give equal fingerprints whatever their key order. */
export function fingerprint(value: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(canonical(value))).digest('hex');
}

export function sha256(data: Uint8Array | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export const stepDirName = (step: number): string => `step-${String(step).padStart(8, '0')}`;
export const rankIndexName = (rank: number): string => `rank-${String(rank).padStart(5, '0')}.json`;
export const rankDataName = (rank: number): string => `rank-${String(rank).padStart(5, '0')}.bin`;
export const MANIFEST = 'manifest.json';
