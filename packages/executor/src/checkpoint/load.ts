// Finding the newest complete checkpoint and loading it into a runtime of any plan: the shards of
// every rank are assembled into full tensors (weights and AdamW moments) and re-sliced for this
// rank's stage, TP rank and ZeRO shard.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RankRuntime } from '../runtime/rank-runtime';
import { type CheckpointManifest, MANIFEST, type RankShardFile } from './format';
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
export async function loadCheckpoint(rt: RankRuntime, ck: CheckpointRef): Promise<void> {
  const tensors = readFullTensors(ck);
  const n = rt.stage.paramCount;
  const params = new Float32Array(n), m = new Float32Array(n), v = new Float32Array(n);
  for (const e of rt.stage.paramEntries) {
    const t = tensors.get(e.name);
    if (!t) throw new Error(`checkpoint ${ck.dir} (model ${ck.manifest.model}) has no tensor ${e.name}`);
    if (t.params.length !== e.shape.reduce((a, b) => a * b, 1)) throw new Error(`checkpoint tensor ${e.name} has ${t.params.length} elements, the model ${e.shape.join('x')}`);
    params.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.params, e.size), e.offset);
    m.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.m, e.size), e.offset);
    v.set(takeSlice(e, rt.pos.tp, rt.pos.tpIndex, t.v, e.size), e.offset);
  }
  rt.importState({ params, m, v }, ck.manifest.step);
}
