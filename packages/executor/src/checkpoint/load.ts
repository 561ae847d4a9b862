// Finding the newest complete checkpoint and loading it into a runtime of any plan: the shards of
// every rank are assembled into full tensors (weights and AdamW moments) and re-sliced for this
// rank's stage, TP rank and ZeRO shard.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommBuffer } from '@mist/native';
import type { RankRuntime } from '../runtime/rank-runtime';
import type { ModelSpec, Plan } from '@mist/core';
import { CHECKPOINT_VERSION, type CheckpointManifest, fingerprint, MANIFEST, type RankShardFile, sha256 } from './format';
import { placeSlice, takeSlice } from './tensor-slice';

export interface CheckpointRef {
  dir: string;
  manifest: CheckpointManifest;
}

/** A step directory is complete when its manifest parses and every file it lists has its size. */
export function readCheckpoint(dir: string): CheckpointRef | null {
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as CheckpointManifest;
  } catch {
    return null;
  }
  for (const f of manifest.files) {
    try {
      if (fs.statSync(path.join(dir, f.data)).size !== f.bytes || !fs.existsSync(path.join(dir, f.index))) return null;
    } catch {
      return null;
    }
  }
  return { dir, manifest };
}

/** The complete checkpoint with the highest step under root, or null. */
export function latestCheckpoint(root: string): CheckpointRef | null {
  if (!fs.existsSync(root)) return null;
  const steps = fs.readdirSync(root).filter((d) => /^step-\d+$/.test(d)).sort().reverse();
  for (const d of steps) {
    const ck = readCheckpoint(path.join(root, d));
    if (ck) return ck;
  }
  return null;
}

/** What a checkpoint must match to be resumed from: the job, its model and its plan. */
export interface CheckpointOwner {
  jobId: string;
  model: ModelSpec;
  plan: Plan;
  /** Accept a checkpoint of another plan of the same model (it is re-sharded on load). */
  anyPlan?: boolean;
}

/** Why the complete checkpoint `ck` may not be loaded for `owner`, or null when it verifies (reads and hashes every file). */
export function verifyCheckpoint(ck: CheckpointRef, owner: CheckpointOwner): string | null {
  const m = ck.manifest;
  if (m.version !== CHECKPOINT_VERSION) return `manifest version ${m.version}, expected ${CHECKPOINT_VERSION} (no job id or checksums to verify)`;
  if (m.jobId !== owner.jobId) return `written by job ${m.jobId}, not ${owner.jobId}`;
  if (m.modelFingerprint !== fingerprint(owner.model)) return `model fingerprint ${m.modelFingerprint.slice(0, 12)} differs from the job's model ${owner.model.name} (${fingerprint(owner.model).slice(0, 12)})`;
  if (!owner.anyPlan && m.planFingerprint !== fingerprint(owner.plan)) return `plan fingerprint ${m.planFingerprint.slice(0, 12)} differs from the job's plan (${fingerprint(owner.plan).slice(0, 12)})`;
  for (const f of m.files) {
    let index: string, data: Buffer;
    try {
      index = fs.readFileSync(path.join(ck.dir, f.index), 'utf8');
      data = fs.readFileSync(path.join(ck.dir, f.data));
    } catch (err) {
      return `rank ${f.rank}: ${(err as Error).message}`;
    }
    if (sha256(index) !== f.indexSha256) return `rank ${f.rank}: ${f.index} does not match its SHA-256 in the manifest`;
    if (sha256(data) !== f.sha256) return `rank ${f.rank}: ${f.data} does not match its SHA-256 in the manifest (the shard was changed or damaged)`;
  }
  return null;
}

export interface ResumeChoice {
  /** The newest checkpoint of the job that verifies; null when there is none. */
  checkpoint: CheckpointRef | null;
  /** Newer complete checkpoints passed over, and why (another job's, damaged, another plan). */
  skipped: Array<{ dir: string; reason: string }>;
}

/**
 * The checkpoint a resume loads: the newest complete one under root that verifies for `owner`.
 * Throws when the job has checkpoints there but none verifies: training from the start instead
 * would silently throw its progress away.
 */
export function resumeCheckpoint(root: string, owner: CheckpointOwner): ResumeChoice {
  const skipped: ResumeChoice['skipped'] = [];
  if (!fs.existsSync(root)) return { checkpoint: null, skipped };
  let own = 0;
  for (const d of fs.readdirSync(root).filter((x) => /^step-\d+$/.test(x)).sort().reverse()) {
    const ck = readCheckpoint(path.join(root, d));
    if (!ck) continue;
    if (ck.manifest.jobId === owner.jobId) own++;
    const why = verifyCheckpoint(ck, owner);
    if (why === null) return { checkpoint: ck, skipped };
    skipped.push({ dir: ck.dir, reason: why });
  }
  if (own > 0) {
    throw new Error(`cannot resume job ${owner.jobId}: none of its ${own} checkpoint(s) in ${root} verifies: ` +
      skipped.map((x) => `${path.basename(x.dir)}: ${x.reason}`).join('; '));
  }
  return { checkpoint: null, skipped };
}

interface FullTensor {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  filled: number;
}

/** Every tensor of a checkpoint, whole (weights and moments), by name. */
export function readFullTensors(ck: CheckpointRef): Map<string, FullTensor> {
  const out = new Map<string, FullTensor>();
  for (const f of ck.manifest.files) {
    const index = JSON.parse(fs.readFileSync(path.join(ck.dir, f.index), 'utf8')) as RankShardFile;
    const buf = fs.readFileSync(path.join(ck.dir, f.data));
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    for (const r of index.records) {
      let t = out.get(r.name);
      if (!t) {
        const n = r.shape.reduce((a, b) => a * b, 1);
        t = { params: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n), filled: 0 };
        out.set(r.name, t);
      }
      const at = (k: number): Float32Array => data.subarray(r.offset + k * r.length, r.offset + (k + 1) * r.length);
      placeSlice(r, r.tp, r.tpRank, t.params, at(0), r.localStart);
      placeSlice(r, r.tp, r.tpRank, t.m, at(1), r.localStart);
      placeSlice(r, r.tp, r.tpRank, t.v, at(2), r.localStart);
      t.filled += r.length;
    }
  }
  for (const [name, t] of out) {
    if (t.filled !== t.params.length) throw new Error(`checkpoint ${ck.dir}: tensor ${name} has ${t.filled} of ${t.params.length} elements saved`);
  }
  return out;
}

/** Loads a checkpoint into this rank (re-sharding for its plan); the next step is manifest.step + 1. */
/** The state goes to the rank's device through RankRuntime.importState. */
export async function loadCheckpoint<F extends CommBuffer, I>(rt: RankRuntime<F, I>, ck: CheckpointRef): Promise<void> {
  const tensors = readFullTensors(ck);
  // Every model chunk of the rank (several with interleaved 1F1B), its tensors by name.
  for (const [c, stage] of rt.stages.entries()) {
    const n = stage.paramCount;
    const params = new Float32Array(n), m = new Float32Array(n), v = new Float32Array(n);
    for (const e of stage.paramEntries) {
      const t = tensors.get(e.name);
      if (!t) throw new Error(`checkpoint ${ck.dir} (model ${ck.manifest.model}) has no tensor ${e.name}`);
      if (t.params.length !== e.shape.reduce((a, b) => a * b, 1)) throw new Error(`checkpoint tensor ${e.name} has ${t.params.length} elements, the model ${e.shape.join('x')}`);
      params.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.params, e.size), e.offset);
      m.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.m, e.size), e.offset);
      v.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.v, e.size), e.offset);
    }
    rt.importState({ params, m, v }, ck.manifest.step, c);
  }
}
