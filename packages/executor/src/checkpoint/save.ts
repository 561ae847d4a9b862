// Saving a sharded checkpoint: collective over the world (every rank calls it after the same step).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Communicator } from '@mist/native';
import type { RankRuntime } from '../runtime/rank-runtime';
import { segments } from '../runtime/shard';
import type { WorkerAssignment } from '../worker/protocol';
import {
  CHECKPOINT_VERSION, type CheckpointManifest, MANIFEST, rankDataName, rankIndexName, type RankShardFile, type ShardRecord, stepDirName,
} from './format';

function writeFileSynced(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes this rank's shard of the runtime's state after its last step; returns the step directory. */
export async function saveCheckpoint(
  rt: RankRuntime, world: Communicator<Float32Array>, root: string, a: Pick<WorkerAssignment, 'plan' | 'model' | 'rank' | 'worldSize'>,
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
  const state = await rt.exportState();
  const records: ShardRecord[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  for (const s of rt.ownedRanges.flatMap(([lo, hi]) => segments(rt.stage.paramEntries, lo, hi))) {
    const e = s.entry;
    if (e.shard === 'none' && rt.pos.tpIndex !== 0) continue;
    if (e.name === 'embed.wte' && rt.stage.tiedEmbeddingCopy) continue;
    const length = s.hi - s.lo;
    records.push({ name: e.name, shape: e.shape, shard: e.shard, tp: rt.pos.tp, tpRank: rt.pos.tpIndex, localStart: s.lo - e.offset, length, offset });
    chunks.push(state.params.subarray(s.lo, s.hi), state.m.subarray(s.lo, s.hi), state.v.subarray(s.lo, s.hi));
    offset += 3 * length;
  }
  const data = new Float32Array(offset);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  const index: RankShardFile = { rank: a.rank, records };
  writeFileSynced(path.join(dir, rankDataName(a.rank)), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  writeFileSynced(path.join(dir, rankIndexName(a.rank)), JSON.stringify(index));
  // Every rank's files are on disk (a shared directory) before the manifest says so.
  await world.barrier();
  if (a.rank === 0) {
    const sizes = Array.from({ length: a.worldSize }, (_, r) => fs.statSync(path.join(dir, rankDataName(r))).size);
    const manifest: CheckpointManifest = {
      version: CHECKPOINT_VERSION, step, model: a.model.name, worldSize: a.worldSize, plan: a.plan,
      files: Array.from({ length: a.worldSize }, (_, r) => ({ rank: r, index: rankIndexName(r), data: rankDataName(r), bytes: sizes[r] })),
      savedAt: new Date().toISOString(),
    };
    const tmp = path.join(dir, `${MANIFEST}.tmp`);
    writeFileSynced(tmp, JSON.stringify(manifest, null, 2));
    fs.renameSync(tmp, path.join(dir, MANIFEST));
  }
  await world.barrier();
  return dir;
}
