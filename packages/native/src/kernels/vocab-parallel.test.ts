// The vocabulary-parallel pieces against the whole-vocabulary kernels: the shards' embeddings add up
// to the full lookup, the three cross-entropy steps with the all-reduces done here (max, then sum)
// give the fused kernel's losses and gradients, and the position rows add up as the full embedding
// adds them, cyclic and by a position table (context parallelism's chunks).
import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { f32, randomArray, relError } from './testing/gradcheck';

const vocab = 13, hidden = 12, seq = 5, rows = 3 * seq;
const cuts = [0, 4, 9, 13]; // three uneven shards of the vocabulary
const tokens = Int32Array.from({ length: rows }, (_, i) => (i * 7 + 3) % vocab);
tokens[6] = tokens[1];

describe('vocabulary-parallel embedding', () => {
  const wte = f32(randomArray(vocab * hidden, 1));
  const full = new Float32Array(rows * hidden);
  kernels.embedding(full, tokens, wte, null, { rows, hidden, vocab, seq, maxPos: seq });

  it('the shards\' lookups sum to the full lookup, each holding only its own tokens', () => {
    const sum = new Float32Array(rows * hidden);
    for (let s = 0; s + 1 < cuts.length; s++) {
      const [lo, hi] = [cuts[s], cuts[s + 1]];
      const out = new Float32Array(rows * hidden).fill(Number.NaN);
      kernels.embeddingShard(out, tokens, wte.subarray(lo * hidden, hi * hidden), rows, hidden, vocab, lo, hi);
      for (let r = 0; r < rows; r++) {
        const mine = tokens[r] >= lo && tokens[r] < hi;
        for (let j = 0; j < hidden; j++) {
          if (!mine) expect(out[r * hidden + j]).toBe(0);
          sum[r * hidden + j] += out[r * hidden + j];
        }
      }
    }
    expect([...sum]).toEqual([...full]);
  });

  it('the shards\' backward scatters add up to the full backward', () => {
    const dout = f32(randomArray(rows * hidden, 2));
    const want = new Float32Array(vocab * hidden);
    kernels.embeddingBackward(want, null, dout, tokens, { rows, hidden, vocab, seq, maxPos: seq });
    const got = new Float32Array(vocab * hidden);
    for (let s = 0; s + 1 < cuts.length; s++) {
      const [lo, hi] = [cuts[s], cuts[s + 1]];
      kernels.embeddingShardBackward(got.subarray(lo * hidden, hi * hidden), dout, tokens, rows, hidden, vocab, lo, hi);
    }
    expect([...got]).toEqual([...want]);
  });

  it('rejects a token outside the vocabulary and a shard outside it', () => {
    const bad = Int32Array.from(tokens);
    bad[2] = vocab;
    expect(() => kernels.embeddingShard(new Float32Array(rows * hidden), bad, wte, rows, hidden, vocab, 0, vocab))
      .toThrow(/token 13 at row 2 is outside the vocabulary of 13/);
    expect(() => kernels.embeddingShard(new Float32Array(rows * hidden), tokens, wte, rows, hidden, vocab, 4, 14))
      .toThrow(/\[lo, hi\) = \[4, 14\) must be a non-empty range inside \[0, vocab = 13\)/);
  });
});

describe('learned positions added to a micro-batch\'s rows', () => {
  const maxPos = 8;
  const wte = f32(randomArray(vocab * hidden, 3)), wpe = f32(randomArray(maxPos * hidden, 4));

  it('cyclic positions from any first row give the embedding kernel\'s sum', () => {
    const want = new Float32Array(rows * hidden);
    kernels.embedding(want, tokens, wte, wpe, { rows, hidden, vocab, seq, maxPos });
    const x = new Float32Array(rows * hidden);
    kernels.embedding(x, tokens, wte, null, { rows, hidden, vocab, seq, maxPos });
    // Two pieces of the rows (a sequence-parallel shard starts mid-sequence).
    kernels.positionAdd(x.subarray(0, 7 * hidden), wpe, null, 7, hidden, seq, 0);
    kernels.positionAdd(x.subarray(7 * hidden), wpe, null, rows - 7, hidden, seq, 7);
    expect([...x]).toEqual([...want]);
  });

  it('a position table reorders them, and the gradient scatters back the same way', () => {
    const positions = Int32Array.from([4, 0, 3, 1, 2]);
    const x = new Float32Array(rows * hidden);
    kernels.positionAdd(x, wpe, positions, rows, hidden, seq);
    for (let r = 0; r < rows; r++) {
      const p = positions[r % seq];
      expect([...x.subarray(r * hidden, (r + 1) * hidden)]).toEqual([...wpe.subarray(p * hidden, (p + 1) * hidden)]);
    }
    const dout = f32(randomArray(rows * hidden, 5));
    const dwpe = new Float32Array(maxPos * hidden);
    kernels.positionGrad(dwpe, dout, positions, rows, hidden, seq);
    const want = new Float32Array(maxPos * hidden);
    for (let r = 0; r < rows; r++) for (let j = 0; j < hidden; j++) want[positions[r % seq] * hidden + j] += dout[r * hidden + j];
    expect([...dwpe]).toEqual([...want]);
    expect(() => kernels.positionAdd(x, wpe, Int32Array.from([0, 1, 9, 2, 3]), rows, hidden, seq)).toThrow(/position 9 of row 2 is outside the table of 8/);
  });
});

describe('vocabulary-parallel cross-entropy', () => {
  const V = 13, T = 6;
  const logits = f32(randomArray(T * V, 6).map((v) => v * 4));
  const targets = Int32Array.from([0, 12, 5, -1, 4, 9]);

  it('three steps with the all-reduces in between equal the fused kernel', () => {
    const wantLoss = new Float32Array(T), wantGrad = new Float32Array(T * V);
    kernels.crossEntropy(wantLoss, logits, targets, wantGrad, T, V, 0.5);
    const shards = cuts.slice(0, -1).map((lo, s) => {
      const hi = cuts[s + 1], Vl = hi - lo;
      const mine = new Float32Array(T * Vl);
      for (let r = 0; r < T; r++) mine.set(logits.subarray(r * V + lo, r * V + hi), r * Vl);
      return { lo, Vl, logits: mine };
    });
    const max = new Float32Array(T).fill(-Infinity);
    for (const s of shards) {
      const m = new Float32Array(T);
      kernels.crossEntropyShardMax(m, s.logits, T, s.Vl);
      for (let r = 0; r < T; r++) max[r] = Math.max(max[r], m[r]);
    }
    const sums = new Float32Array(2 * T);
    for (const s of shards) {
      const part = new Float32Array(2 * T);
      kernels.crossEntropyShardSums(part, s.logits, max, targets, T, s.Vl, s.lo);
      for (let i = 0; i < 2 * T; i++) sums[i] += part[i];
    }
    const loss = new Float32Array(T), grad = new Float32Array(T * V);
    for (const s of shards) {
      const d = new Float32Array(T * s.Vl);
      kernels.crossEntropyShardFinish(loss, d, s.logits, max, sums, targets, T, s.Vl, s.lo, 0.5);
      for (let r = 0; r < T; r++) grad.set(d.subarray(r * s.Vl, (r + 1) * s.Vl), r * V + s.lo);
    }
    expect(loss[3]).toBe(0);
    expect(relError(loss, wantLoss)).toBeLessThan(1e-6);
    expect(relError(grad, wantGrad)).toBeLessThan(1e-6);
    for (let j = 0; j < V; j++) expect(grad[3 * V + j]).toBe(0);
  });

  it('writes the gradient into the logits when asked, and refuses a target below -1', () => {
    const l = logits.slice();
    const max = new Float32Array(T), sums = new Float32Array(2 * T), loss = new Float32Array(T);
    kernels.crossEntropyShardMax(max, l, T, V);
    kernels.crossEntropyShardSums(sums, l, max, targets, T, V, 0);
    kernels.crossEntropyShardFinish(loss, l, l, max, sums, targets, T, V, 0);
    const want = new Float32Array(T * V);
    kernels.crossEntropy(new Float32Array(T), logits, targets, want, T, V);
    expect(relError(l, want)).toBeLessThan(1e-6);
    expect(() => kernels.crossEntropyShardSums(sums, l, max, Int32Array.from([0, 1, -2, 0, 0, 0]), T, V, 0)).toThrow(/target -2 at row 2 is below -1/);
  });
});
