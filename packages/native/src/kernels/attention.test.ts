import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { attentionRef, ropeRef } from './testing/reference';

describe('RoPE', () => {
  const batch = 2, seq = 5, heads = 3, d = 8, rows = batch * seq;
  const x = randomArray(rows * heads * d, 1), w = randomArray(rows * heads * d, 2);

  it('forward matches the reference, also with a position offset', () => {
    for (const offset of [0, 7]) {
      const y = new Float32Array(x.length);
      kernels.rope(y, f32(x), rows, seq, heads, d, 10000, offset);
      expect(relError(y, ropeRef(x, rows, seq, heads, d, 10000, offset))).toBeLessThan(1e-6);
    }
  });

  it('backward matches central finite differences', () => {
    const dx = new Float32Array(x.length);
    kernels.ropeBackward(dx, f32(w), rows, seq, heads, d);
    expect(relError(dx, finiteDiff(() => dotF64(w, ropeRef(x, rows, seq, heads, d)), x))).toBeLessThan(1e-3);
  });
});

describe('causal grouped-query attention', () => {
  for (const kvHeads of [4, 2, 1]) {
    const s = { batch: 2, seq: 6, heads: 4, kvHeads, headDim: 4 };
    const rows = s.batch * s.seq, qw = s.heads * s.headDim, kw = kvHeads * s.headDim;
    const q = randomArray(rows * qw, 1, 2), k = randomArray(rows * kw, 2, 2), v = randomArray(rows * kw, 3);
    const w = randomArray(rows * qw, 4);

    it(`forward matches the reference (kvHeads=${kvHeads})`, () => {
      const out = new Float32Array(rows * qw), lse = new Float32Array(s.batch * s.heads * s.seq);
      kernels.attention(out, lse, f32(q), f32(k), f32(v), s);
      expect(relError(out, attentionRef(q, k, v, s))).toBeLessThan(1e-5);
    });

    it(`backward matches central finite differences (kvHeads=${kvHeads})`, () => {
      const out = new Float32Array(rows * qw), lse = new Float32Array(s.batch * s.heads * s.seq);
      const [qf, kf, vf] = [f32(q), f32(k), f32(v)];
      kernels.attention(out, lse, qf, kf, vf, s);
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      kernels.attentionBackward(dq, dk, dv, f32(w), qf, kf, vf, out, lse, s);
      const loss = (): number => dotF64(w, attentionRef(q, k, v, s));
      expect(relError(dq, finiteDiff(loss, q))).toBeLessThan(1e-3);
      expect(relError(dk, finiteDiff(loss, k))).toBeLessThan(1e-3);
      expect(relError(dv, finiteDiff(loss, v))).toBeLessThan(1e-3);
    });
  }

  it('is stable for large scores (no overflow in the softmax)', () => {
    const s = { batch: 1, seq: 4, heads: 1, kvHeads: 1, headDim: 2 };
    const q = new Float64Array(8).fill(300), k = new Float64Array(8).fill(300), v = randomArray(8, 5);
    const out = new Float32Array(8), lse = new Float32Array(4);
    kernels.attention(out, lse, f32(q), f32(k), f32(v), s);
    expect([...out].every(Number.isFinite)).toBe(true);
    expect(relError(out, attentionRef(q, k, v, s))).toBeLessThan(1e-5);
  });
});
