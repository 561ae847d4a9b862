// Training data from a token file: a flat little-endian array of token ids, uint16 or uint32 (the
// layout nanoGPT's prepare.py writes with numpy's tofile for uint16, and Megatron-style .bin
// token dumps use; no header). Batches are random windows drawn from the seeded generator, like
// the corpus sampler; every id is checked against the model's vocabulary once, at open.
import * as fs from 'node:fs';
import { Rng } from '../model/rng';
import type { BatchSampler, TokenBatch } from './data';

export interface TokenFile {
  file: string;
  dtype: 'uint16' | 'uint32';
}

/** Reads and checks a token file; throws naming run.data and what is wrong. */
export function readTokenFile(t: TokenFile, vocab: number): Uint32Array | Uint16Array {
  const size = t.dtype === 'uint16' ? 2 : 4;
  let buf: Buffer;
  try {
    buf = fs.readFileSync(t.file);
  } catch (err) {
    throw new Error(`run.data ${t.file}: cannot read the token file (${(err as Error).message})`);
  }
  if (buf.length % size !== 0) throw new Error(`run.data ${t.file}: ${buf.length} bytes is not a whole number of ${t.dtype} token ids (run.dataDtype)`);
  const n = buf.length / size;
  const ids = t.dtype === 'uint16' ? new Uint16Array(n) : new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const id = t.dtype === 'uint16' ? buf.readUInt16LE(i * 2) : buf.readUInt32LE(i * 4);
    if (id >= vocab) throw new Error(`run.data ${t.file}: token ${i} is ${id}, outside the model's vocabulary of ${vocab} (wrong run.dataDtype?)`);
    ids[i] = id;
  }
  return ids;
}

export class TokenFileSampler implements BatchSampler {
  readonly entropy = null;
  private readonly rng: Rng;

  constructor(private readonly ids: Uint16Array | Uint32Array, seed: number, private readonly name: string) {
    this.rng = Rng.forKey(seed, 'data.tokens');
  }

  next(batch: number, seq: number): TokenBatch {
    if (this.ids.length < seq + 1) throw new Error(`run.data ${this.name}: holds ${this.ids.length} tokens, fewer than seq + 1 = ${seq + 1}`);
    const tokens = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      const start = this.rng.int(this.ids.length - seq);
      for (let i = 0; i < seq; i++) {
        tokens[b * seq + i] = this.ids[start + i];
        targets[b * seq + i] = this.ids[start + i + 1];
      }
    }
    return { batch, seq, tokens, targets };
  }
}
