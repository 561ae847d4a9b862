// Completeness rules of a checkpoint directory and the TP slice mapping that re-sharding uses.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { latestCheckpoint, readCheckpoint } from './load';
import { type CheckpointManifest, MANIFEST, rankDataName, rankIndexName, stepDirName } from './format';
import { placeSlice, takeSlice, type SlicedTensor } from './tensor-slice';

function fakeStep(root: string, step: number, bytes: number, manifest = true): string {
  const dir = path.join(root, stepDirName(step));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, rankDataName(0)), Buffer.alloc(bytes));
  fs.writeFileSync(path.join(dir, rankIndexName(0)), JSON.stringify({ rank: 0, records: [] }));
  if (manifest) {
    const m: Omit<CheckpointManifest, 'plan'> & { plan: null } = {
      version: 2, step, jobId: 'job-t', model: 'gpt-tiny', modelFingerprint: '', planFingerprint: '', worldSize: 1, plan: null,
      files: [{ rank: 0, index: rankIndexName(0), data: rankDataName(0), bytes: 64, sha256: '', indexSha256: '' }], savedAt: '',
    };
    fs.writeFileSync(path.join(dir, MANIFEST), JSON.stringify(m));
  }
  return dir;
}

describe('checkpoint directories', () => {
  it('loads only complete steps: a manifest, and every listed file at its size', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-ck-'));
    try {
      fakeStep(root, 2, 64);
      fakeStep(root, 4, 64, false); // died before the manifest
      const truncated = fakeStep(root, 6, 32); // a shard shorter than the manifest says
      expect(readCheckpoint(truncated)).toBeNull();
      expect(latestCheckpoint(root)?.manifest.step).toBe(2);
      expect(latestCheckpoint(path.join(root, 'missing'))).toBeNull();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('TP slices', () => {
  it('takeSlice and placeSlice invert each other for every shard kind', () => {
    const kinds: SlicedTensor[] = [{ shape: [4, 6], shard: 'cols' }, { shape: [4, 6], shard: 'rows' }, { shape: [6], shard: 'cols' }, { shape: [4, 6], shard: 'none' }];
    for (const e of kinds) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      const full = Float32Array.from({ length: n }, (_, i) => i + 1);
      const back = new Float32Array(n);
      const tp = 2;
      const parts = e.shard === 'none' ? 1 : tp;
      for (let r = 0; r < parts; r++) {
        const local = takeSlice(e, tp, r, full, n / parts);
        // Place in two pieces, as ZeRO shards of the flat vector cut a tensor.
        const cut = Math.floor(local.length / 3);
        placeSlice(e, tp, r, back, local.subarray(0, cut), 0);
        placeSlice(e, tp, r, back, local.subarray(cut), cut);
      }
      expect([...back]).toEqual([...full]);
    }
    // Column split of [2, 4] over tp=2: rank 1 holds columns 2..3 of each row.
    expect([...takeSlice({ shape: [2, 4], shard: 'cols' }, 2, 1, Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7), 4)]).toEqual([2, 3, 6, 7]);
  });
});
