// Training data of a distributed run: exactly the batches single-process training
// (train/data.ts, `mist train`) draws. Its samplers are seeded streams that produce a step's global
// batch sample by sample, so every rank replays the stream and keeps the samples it owns; no
// tokens are sent between ranks. Sample i of step s is the i-th sequence of the s-th batch of
// `globalBatch` sequences, whatever the micro-batch split.
import { type BatchSampler, type DataSource, makeSampler, type TokenFile } from '../train';

export type DataKind = DataSource | TokenFile;

export class TokenSource {
  private sampler: BatchSampler;
  /** The step whose global batch is cached, and the next step the sampler produces. */
  private cachedStep = 0;
  private cached: { tokens: Int32Array; targets: Int32Array } | null = null;

  constructor(readonly kind: DataKind, private readonly seed: number, private readonly vocab: number, readonly globalBatch: number, readonly seq: number) {
    this.sampler = makeSampler(kind, vocab, seed);
  }

  /** The whole global batch of a 1-based step. */
  step(step: number): { tokens: Int32Array; targets: Int32Array } {
    if (this.cached && this.cachedStep === step) return this.cached;
    if (step < this.cachedStep + 1) {
      this.sampler = makeSampler(this.kind, this.vocab, this.seed);
      this.cachedStep = 0;
    }
    while (this.cachedStep < step) {
      const b = this.sampler.next(this.globalBatch, this.seq);
      this.cached = { tokens: b.tokens, targets: b.targets };
      this.cachedStep++;
    }
    return this.cached as { tokens: Int32Array; targets: Int32Array };
  }
}

/** Inputs and targets [count x seq] of global samples first..first+count-1 of a step. */
export function batchTokens(src: TokenSource, step: number, first: number, count: number): { tokens: Int32Array; targets: Int32Array } {
  const all = src.step(step);
  const s = src.seq;
  return { tokens: all.tokens.slice(first * s, (first + count) * s), targets: all.targets.slice(first * s, (first + count) * s) };
}
