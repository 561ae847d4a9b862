// Saving a sharded checkpoint: collective over the world (every rank calls it after the same step).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommBuffer, Communicator } from '@mist/native';
import type { RankRuntime } from '../runtime/rank-runtime';
import { segments } from '../runtime/shard';
import type { WorkerAssignment } from '../worker/protocol';
import {
  CHECKPOINT_VERSION, type CheckpointManifest, fingerprint, MANIFEST, rankDataName, rankIndexName, type RankShardFile, sha256, type ShardRecord, stepDirName,
} from './format';
import { pruneCheckpoints } from './prune';

function writeFileSynced(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes this rank's shard of the runtime's state after its last step; returns the step directory.
 * The state comes to the host through the runtime's device (RankRuntime.exportState).
 * With `keep` > 0, rank 0 then removes this job's older checkpoints beyond the newest `keep`.
 */
export async function saveCheckpoint<F extends CommBuffer, I>(
  rt: RankRuntime<F, I>, world: Communicator<F>, root: string, a: Pick<WorkerAssignment, 'plan' | 'model' | 'rank' | 'worldSize' | 'jobId'>,
  keep = 0,
): Promise<string> {
  const step = rt.stepsDone;
  const dir = path.join(root, stepDirName(step));
  // A manifest left from an earlier save of this step goes first, so the directory is never
  // "complete" while its shards are being rewritten.
  if (a.rank === 0) {
    fs.mkdirSync(dir, { recursive: true });
    fs.rmSync(path.join(dir, MANIFEST), { force: true });
  }
  await world.barrier();
  const records: ShardRecord[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  // Every model chunk of the rank (several with interleaved 1F1B), its tensors by name.
  for (const [c, stage] of rt.stages.entries()) {
    const state = await rt.exportState(c);
    for (const s of rt.ownedRangesOf(c).flatMap(([lo, hi]) => segments(stage.paramEntries, lo, hi))) {
      const e = s.entry;
      if (e.shard === 'none' && rt.pos.tpIndex !== 0) continue;
      if (e.name === 'embed.wte' && stage.tiedEmbeddingCopy) continue;
      const length = s.hi - s.lo;
      records.push({ name: e.name, shape: e.shape, shard: e.shard, tp: rt.pos.tp, tpRank: rt.pos.tpIndex, localStart: s.lo - e.offset, length, offset });
      chunks.push(state.params.subarray(s.lo, s.hi), state.m.subarray(s.lo, s.hi), state.v.subarray(s.lo, s.hi));
      offset += 3 * length;
    }
  }
  const data = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const index: RankShardFile = { rank: a.rank, records, dataSha256: sha256(bytes) };
  writeFileSynced(path.join(dir, rankDataName(a.rank)), bytes);
  writeFileSynced(path.join(dir, rankIndexName(a.rank)), JSON.stringify(index));
  // Every rank's files are on disk (a shared directory) before the manifest says so.
  await world.barrier();
  if (a.rank === 0) {
    // Each rank hashed its own .bin into its index; rank 0 hashes the (small) index files.
    const files = Array.from({ length: a.worldSize }, (_, r) => {
      const indexText = fs.readFileSync(path.join(dir, rankIndexName(r)), 'utf8');
      const shard = JSON.parse(indexText) as RankShardFile;
      return {
        rank: r, index: rankIndexName(r), data: rankDataName(r), bytes: fs.statSync(path.join(dir, rankDataName(r))).size,
        sha256: shard.dataSha256, indexSha256: sha256(indexText),
      };
    });
    const manifest: CheckpointManifest = {
      version: CHECKPOINT_VERSION, step, jobId: a.jobId, model: a.model.name, modelFingerprint: fingerprint(a.model), planFingerprint: fingerprint(a.plan),
      worldSize: a.worldSize, plan: a.plan, files, savedAt: new Date().toISOString(),
    };
    const tmp = path.join(dir, `${MANIFEST}.tmp`);
    writeFileSynced(tmp, JSON.stringify(manifest, null, 2));
    fs.renameSync(tmp, path.join(dir, MANIFEST));
    if (keep > 0) pruneCheckpoints(root, a.jobId, keep);
  }
  await world.barrier();
  return dir;
}
