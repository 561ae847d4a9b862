// The unfused attention core (scores, causal softmax, probability dropout, values, and their
// backward kernels) against the fused kernel: same output and the same gradients of q, k and v,
// with grouped-query heads and with dropout drawing the fused kernel's mask.
import { describe, expect, it } from 'vitest';
import { type AttentionShape, kernels, maskFloats } from './index';
import { f32, randomArray, relError } from './testing/gradcheck';

describe('unfused attention core equals the fused attention', () => {
  for (const kvHeads of [4, 2]) {
    for (const p of [0, 0.2]) {
      it(`kvHeads=${kvHeads}, dropout ${p}`, () => {
        const batch = 2, seq = 6, heads = 4, headDim = 4;
        const dropout = { p, keyHi: 77, keyLo: 4242, sampleOffset: 5, headOffset: 0, totalHeads: heads };
        const s: AttentionShape = { batch, seq, heads, kvHeads, headDim, ...(p > 0 ? { dropout } : {}) };
        const rows = batch * seq, qw = heads * headDim, kw = kvHeads * headDim, n = batch * heads * seq * seq;
        const q = f32(randomArray(rows * qw, 1, 2)), k = f32(randomArray(rows * kw, 2, 2)), v = f32(randomArray(rows * kw, 3));
        const dout = f32(randomArray(rows * qw, 4));

        const out = new Float32Array(rows * qw), lse = new Float32Array(batch * heads * seq);
        kernels.attention(out, lse, q, k, v, s);
        const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
        kernels.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, s);

        const scores = new Float32Array(n), probs = new Float32Array(n), o = new Float32Array(out.length);
        kernels.attentionScores(scores, q, k, s);
        kernels.causalSoftmax(probs, scores, batch * heads * seq, seq);
        let pd = probs;
        const mask = new Float32Array(maskFloats(n));
        if (p > 0) {
          pd = new Float32Array(n);
          kernels.attentionProbsDropout(pd, mask, probs, { ...s, dropout });
        }
        kernels.attentionValues(o, pd, v, s);
        expect(relError(o, out)).toBeLessThan(1e-5);

        const dpd = new Float32Array(n), dv2 = new Float32Array(v.length);
        kernels.attentionValuesGradProbs(dpd, dout, v, s);
        kernels.attentionValuesGradV(dv2, dout, pd, s);
        let dprobs = dpd;
        if (p > 0) {
          dprobs = new Float32Array(n);
          kernels.dropoutBackward(dprobs, mask, dpd, p);
        }
        const dscores = new Float32Array(n), dq2 = new Float32Array(q.length), dk2 = new Float32Array(k.length);
        kernels.causalSoftmaxBackward(dscores, dprobs, probs, batch * heads * seq, seq);
        kernels.attentionScoresGradQ(dq2, dscores, k, s);
        kernels.attentionScoresGradK(dk2, dscores, q, s);
        expect(relError(dq2, dq)).toBeLessThan(1e-5);
        expect(relError(dk2, dk)).toBeLessThan(1e-5);
        expect(relError(dv2, dv)).toBeLessThan(1e-5);
      });
    }
  }

  it('names the bad argument', () => {
    const t = new Float32Array(4);
    expect(() => kernels.causalSoftmax(t, t, 3, 2)).toThrow(/rows must be a multiple of seq/);
    expect(() => kernels.attentionScores(t, t, t, { batch: 1, seq: 2, heads: 2, kvHeads: 1, headDim: 1 })).toThrow(/scores/);
  });
});
