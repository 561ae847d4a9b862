// The attention kernels fix common head sizes at compile time (16, 32, 64, 128) and work in tiles
// of 16 queries x 16 keys: these cases run those paths, with sequences that are not a multiple of
// the tile and grouped-query heads, against the float64 reference and finite differences.
import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';
import { attentionRef } from './testing/reference';

describe('attention at compiled head sizes', () => {
  for (const s of [
    { batch: 1, seq: 19, heads: 2, kvHeads: 1, headDim: 16 },
    { batch: 1, seq: 18, heads: 1, kvHeads: 1, headDim: 32 },
    { batch: 1, seq: 17, heads: 1, kvHeads: 1, headDim: 64 },
  ]) {
    const rows = s.batch * s.seq, qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim;
    const q = randomArray(rows * qw, 11, 1), k = randomArray(rows * kw, 12, 1), v = randomArray(rows * kw, 13);
    const w = randomArray(rows * qw, 14);
    const label = `d=${s.headDim} seq=${s.seq} heads=${s.heads}/${s.kvHeads}`;

    it(`forward matches the reference (${label})`, () => {
      const out = new Float32Array(rows * qw), lse = new Float32Array(s.batch * s.heads * s.seq);
      kernels.attention(out, lse, f32(q), f32(k), f32(v), s);
      expect(relError(out, attentionRef(q, k, v, s))).toBeLessThan(1e-5);
    });

    it(`backward matches central finite differences (${label})`, () => {
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
});
