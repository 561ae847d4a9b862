import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { crossEntropyRef, embeddingRef } from './testing/reference';

describe('token + learned position embedding', () => {
  const vocab = 11, hidden = 20, seq = 4, batch = 3, rows = batch * seq, maxPos = 6;
  const tokens = Int32Array.from({ length: rows }, (_, i) => (i * 7) % vocab);
  tokens[5] = tokens[0]; // a repeated token accumulates twice
  const wte = randomArray(vocab * hidden, 1), wpe = randomArray(maxPos * hidden, 2), w = randomArray(rows * hidden, 3);
  const shape = { rows, hidden, vocab, seq, maxPos };

  it('forward matches the reference, with and without positions', () => {
    const out = new Float32Array(rows * hidden);
    kernels.embedding(out, tokens, f32(wte), f32(wpe), shape);
    expect(relError(out, embeddingRef(tokens, wte, wpe, hidden, seq))).toBeLessThan(1e-7);
    kernels.embedding(out, tokens, f32(wte), null, shape);
    expect(relError(out, embeddingRef(tokens, wte, null, hidden, seq))).toBeLessThan(1e-7);
  });

  it('backward matches central finite differences', () => {
    const dwte = new Float32Array(wte.length), dwpe = new Float32Array(wpe.length);
    kernels.embeddingBackward(dwte, dwpe, f32(w), tokens, shape);
    const loss = (): number => dotF64(w, embeddingRef(tokens, wte, wpe, hidden, seq));
    expect(relError(dwte, finiteDiff(loss, wte))).toBeLessThan(1e-3);
    expect(relError(dwpe, finiteDiff(loss, wpe))).toBeLessThan(1e-3);
  });

  it('rejects tokens outside the vocabulary', () => {
    const bad = Int32Array.from(tokens);
    bad[3] = vocab;
    expect(() => kernels.embedding(new Float32Array(rows * hidden), bad, f32(wte), null, shape)).toThrow(/outside the vocabulary/);
  });
});

describe('fused softmax cross-entropy', () => {
  const rows = 6, vocab = 13;
  const logits = randomArray(rows * vocab, 4, 3);
  const targets = Int32Array.from([0, 5, 12, -1, 7, 3]);

  it('loss matches the reference (ignored rows give 0)', () => {
    const loss = new Float32Array(rows);
    kernels.crossEntropy(loss, f32(logits), targets, null, rows, vocab);
    expect(relError(loss, crossEntropyRef(logits, targets, rows, vocab))).toBeLessThan(1e-6);
    expect(loss[3]).toBe(0);
  });

  it('gradient written in place over the logits matches central finite differences', () => {
    const scale = 1 / 5; // mean over the 5 rows that count
    const buf = f32(logits), loss = new Float32Array(rows);
    kernels.crossEntropy(loss, buf, targets, buf, rows, vocab, scale);
    const mean = (): number => crossEntropyRef(logits, targets, rows, vocab).reduce((a, b) => a + b, 0) * scale;
    expect(relError(buf, finiteDiff(mean, logits))).toBeLessThan(1e-3);
    expect(relError(loss, crossEntropyRef(logits, targets, rows, vocab))).toBeLessThan(1e-6);
  });

  it('is stable for large logits', () => {
    const big = randomArray(vocab, 5).map((v) => v * 1e3);
    const loss = new Float32Array(1);
    kernels.crossEntropy(loss, f32(big), Int32Array.from([2]), null, 1, vocab);
    expect(Number.isFinite(loss[0])).toBe(true);
    expect(relError(loss, crossEntropyRef(big, Int32Array.from([2]), 1, vocab))).toBeLessThan(1e-5);
  });
});
