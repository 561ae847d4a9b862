// The ring-attention block kernels against the fused attention over the whole sequence: the
// sequence is cut the way context parallelism cuts it (2*cp chunks, rank r holding chunks r and
// 2cp-1-r), every rank's queries attend block by block to every rank's keys, and the merged
// outputs, log-sum-exps and gradients must be the whole-sequence kernel's, dropout included.
import { describe, expect, it } from 'vitest';
import { type AttentionBlockShape, type AttentionShape, kernels } from './index';
import { f32, randomArray, relError } from './testing/gradcheck';

/** Positions of rank r's rows of a sequence: chunks r and 2cp-1-r. */
function rankPositions(seq: number, cp: number, r: number): Int32Array {
  const c = seq / (2 * cp), out = new Int32Array(2 * c);
  for (let i = 0; i < c; i++) {
    out[i] = r * c + i;
    out[c + i] = (2 * cp - 1 - r) * c + i;
  }
  return out;
}

/** The rows of `full` [batch * seq, width] at positions `pos` of every sequence. */
function rowsAt(full: Float32Array, batch: number, seq: number, width: number, pos: Int32Array): Float32Array {
  const out = new Float32Array(batch * pos.length * width);
  for (let b = 0; b < batch; b++) {
    pos.forEach((p, i) => out.set(full.subarray((b * seq + p) * width, (b * seq + p + 1) * width), (b * pos.length + i) * width));
  }
  return out;
}

/** Writes a rank's rows back into `full` (the inverse of rowsAt). */
function placeRows(full: Float32Array, part: Float32Array, batch: number, seq: number, width: number, pos: Int32Array): void {
  for (let b = 0; b < batch; b++) {
    pos.forEach((p, i) => full.set(part.subarray((b * pos.length + i) * width, (b * pos.length + i + 1) * width), (b * seq + p) * width));
  }
}

describe('ring attention blocks (context parallelism) equal the whole-sequence attention', () => {
  const batch = 2, seq = 8, heads = 4, kvHeads = 2, headDim = 4;
  const qw = heads * headDim, kw = kvHeads * headDim, rows = batch * seq;
  const q = f32(randomArray(rows * qw, 1, 2)), k = f32(randomArray(rows * kw, 2, 2)), v = f32(randomArray(rows * kw, 3));
  const dout = f32(randomArray(rows * qw, 4));
  for (const cp of [2, 4]) {
    for (const p of [0, 0.25]) {
      it(`cp=${cp}, dropout ${p}: out, lse, dq, dk and dv`, () => {
        const dropout = { p, keyHi: 12345, keyLo: 678, sampleOffset: 3, headOffset: 0, totalHeads: heads };
        const whole: AttentionShape = { batch, seq, heads, kvHeads, headDim, ...(p > 0 ? { dropout } : {}) };
        const out = new Float32Array(rows * qw), lse = new Float32Array(batch * heads * seq);
        kernels.attention(out, lse, q, k, v, whole);
        const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
        kernels.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, whole);

        const L = seq / cp;
        const pos = Array.from({ length: cp }, (_, r) => rankPositions(seq, cp, r));
        const ks = pos.map((ps) => rowsAt(k, batch, seq, kw, ps)), vs = pos.map((ps) => rowsAt(v, batch, seq, kw, ps));
        const dkRing = pos.map(() => new Float32Array(batch * L * kw)), dvRing = pos.map(() => new Float32Array(batch * L * kw));
        const outRing = new Float32Array(out.length), dqRing = new Float32Array(dq.length);
        for (let r = 0; r < cp; r++) {
          const qr = rowsAt(q, batch, seq, qw, pos[r]), dor = rowsAt(dout, batch, seq, qw, pos[r]);
          const o = new Float32Array(batch * L * qw), l = new Float32Array(batch * heads * L);
          const shape = (owner: number): AttentionBlockShape => ({
            batch, qSeq: L, kSeq: L, heads, kvHeads, headDim, qPos: pos[r], kPos: pos[owner], ...(p > 0 ? { dropout: { ...dropout, seqTotal: seq } } : {}),
          });
          // The ring's order: own block first, then the blocks of ranks r-1, r-2, ...
          for (let t = 0; t < cp; t++) {
            const owner = (r - t + cp) % cp;
            kernels.attentionBlock(o, l, qr, ks[owner], vs[owner], shape(owner), t > 0);
          }
          placeRows(outRing, o, batch, seq, qw, pos[r]);
          for (let b = 0; b < batch; b++) {
            for (let h = 0; h < heads; h++) {
              pos[r].forEach((ps, i) => expect(l[(b * heads + h) * L + i]).toBeCloseTo(lse[(b * heads + h) * seq + ps], 5));
            }
          }
          const dqr = new Float32Array(qr.length);
          for (let t = 0; t < cp; t++) {
            const owner = (r - t + cp) % cp;
            kernels.attentionBlockBackward(dqr, dkRing[owner], dvRing[owner], dor, qr, ks[owner], vs[owner], o, l, shape(owner));
          }
          placeRows(dqRing, dqr, batch, seq, qw, pos[r]);
        }
        const dkAll = new Float32Array(dk.length), dvAll = new Float32Array(dv.length);
        pos.forEach((ps, r) => {
          placeRows(dkAll, dkRing[r], batch, seq, kw, ps);
          placeRows(dvAll, dvRing[r], batch, seq, kw, ps);
        });
        expect(relError(outRing, out)).toBeLessThan(1e-5);
        expect(relError(dqRing, dq)).toBeLessThan(1e-5);
        expect(relError(dkAll, dk)).toBeLessThan(1e-5);
        expect(relError(dvAll, dv)).toBeLessThan(1e-5);
      });
    }
  }

  it('names the bad argument', () => {
    const s: AttentionBlockShape = { batch: 1, qSeq: 2, kSeq: 2, heads: 1, kvHeads: 1, headDim: 2, qPos: Int32Array.of(0, 1), kPos: Int32Array.of(0, -1) };
    const t = new Float32Array(4);
    expect(() => kernels.attentionBlock(t, new Float32Array(2), t, t, t, s, false)).toThrow(/kPos holds a position outside/);
    expect(() => kernels.attentionBlock(t, new Float32Array(2), t, t, t, { ...s, kPos: Int32Array.of(0) }, false)).toThrow(/kPos/);
  });
});
