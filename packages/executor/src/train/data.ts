// Byte-level training data: the shipped corpus (data/corpus.txt, see data/README.md) or a
// synthetic first-order Markov source. Batches are [batch, seq] token ids with next-token targets.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../model/rng';
import { readTokenFile, type TokenFile, TokenFileSampler } from './token-file';

export type DataSource = 'corpus' | 'synthetic';

export interface TokenBatch {
  batch: number;
  seq: number;
  tokens: Int32Array;
  targets: Int32Array;
}

/** Path of the shipped corpus: packages/executor/data/corpus.txt (from src/train or dist/train). */
export function corpusPath(): string {
  return path.resolve(__dirname, '../../data/corpus.txt');
}

let corpusCache: Uint8Array | undefined;

export function loadCorpus(): Uint8Array {
  if (!corpusCache) corpusCache = new Uint8Array(fs.readFileSync(corpusPath()));
  return corpusCache;
}

export interface BatchSampler {
  /** Next batch of `batch` sequences of `seq` tokens (and their next-token targets). */
  next(batch: number, seq: number): TokenBatch;
  /** Entropy rate of the source in nats per token when known (the synthetic source), else null. */
  readonly entropy: number | null;
}

/** Random windows of the corpus, positions drawn from the seeded generator. */
export class CorpusSampler implements BatchSampler {
  readonly entropy = null;
  private readonly rng: Rng;

  constructor(private readonly text: Uint8Array, seed: number) {
    this.rng = Rng.forKey(seed, 'data.corpus');
  }

  next(batch: number, seq: number): TokenBatch {
    if (this.text.length < seq + 1) throw new Error(`the corpus holds ${this.text.length} bytes, fewer than seq + 1 = ${seq + 1}`);
    const tokens = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      const start = this.rng.int(this.text.length - seq);
      for (let i = 0; i < seq; i++) {
        tokens[b * seq + i] = this.text[start + i];
        targets[b * seq + i] = this.text[start + i + 1];
      }
    }
    return { batch, seq, tokens, targets };
  }
}

/**
 * A fixed random Markov chain over the vocabulary: each token is followed by one of `branching`
 * successors, chosen uniformly. Its entropy rate is ln(branching) nats, the loss a perfect model
 * reaches, against ln(vocab) for a uniform guess.
 */
export class SyntheticSampler implements BatchSampler {
  readonly entropy: number;
  private readonly successors: Int32Array;
  private readonly rng: Rng;

  constructor(private readonly vocab: number, seed: number, private readonly branching = 4) {
    this.entropy = Math.log(branching);
    const table = Rng.forKey(seed, 'data.synthetic.table');
    this.successors = new Int32Array(vocab * branching);
    for (let i = 0; i < this.successors.length; i++) this.successors[i] = table.int(vocab);
    this.rng = Rng.forKey(seed, 'data.synthetic.walk');
  }

  next(batch: number, seq: number): TokenBatch {
    const tokens = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      let t = this.rng.int(this.vocab);
      for (let i = 0; i < seq; i++) {
        const nxt = this.successors[t * this.branching + this.rng.int(this.branching)];
        tokens[b * seq + i] = t;
        targets[b * seq + i] = nxt;
        t = nxt;
      }
    }
    return { batch, seq, tokens, targets };
  }
}

export function makeSampler(source: DataSource | TokenFile, vocab: number, seed: number): BatchSampler {
  if (typeof source === 'object') return new TokenFileSampler(readTokenFile(source, vocab), seed, source.file);
  if (source === 'corpus') {
    if (vocab < 256) throw new Error(`the byte-level corpus needs a vocabulary of at least 256 tokens, the model has ${vocab}`);
    return new CorpusSampler(loadCorpus(), seed);
  }
  return new SyntheticSampler(vocab, seed);
}
