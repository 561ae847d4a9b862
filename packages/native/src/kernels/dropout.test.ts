import { describe, expect, it } from 'vitest';
import { kernels, maskFloats } from './index';
import { dotF64, f32, finiteDiff, randomArray, relError } from './testing/gradcheck';

const stream = { p: 0.25, keyHi: 0x12345678, keyLo: 0x9abcdef0 };
const bytes = (mask: Float32Array, n: number): Uint8Array => new Uint8Array(mask.buffer, mask.byteOffset, n);

describe('dropout', () => {
  const rows = 64, cols = 48, n = rows * cols;
  const x = f32(randomArray(n, 1));

  it('drops about p of the elements, scales the rest by 1 / (1 - p) and records the mask in 1 byte each', () => {
    const out = new Float32Array(n), mask = new Float32Array(maskFloats(n));
    kernels.dropout(out, mask, x, rows, cols, 0, stream);
    const m = bytes(mask, n);
    const dropped = m.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) / n;
    expect(Math.abs(dropped - stream.p)).toBeLessThan(0.03);
    for (let i = 0; i < n; i++) expect(out[i]).toBe(m[i] ? Math.fround(x[i] * Math.fround(1 / (1 - stream.p))) : 0);
  });

  it('draws the same mask for an element whatever the row shard it is computed in', () => {
    const whole = new Float32Array(n), wm = new Float32Array(maskFloats(n));
    kernels.dropout(whole, wm, x, rows, cols, 0, stream);
    const half = rows / 2, part = x.subarray(half * cols), out = new Float32Array(half * cols), pm = new Float32Array(maskFloats(half * cols));
    kernels.dropout(out, pm, part, half, cols, half, stream);
    expect([...out]).toEqual([...whole.subarray(half * cols)]);
    expect([...bytes(pm, half * cols)]).toEqual([...bytes(wm, n).subarray(half * cols)]);
    const other = new Float32Array(n);
    kernels.dropout(other, new Float32Array(maskFloats(n)), x, rows, cols, 0, { ...stream, keyLo: 1 });
    expect([...other]).not.toEqual([...whole]);
  });

  it('fuses the residual add and passes the gradient through the kept elements', () => {
    const s = f32(randomArray(n, 2));
    const out = new Float32Array(n), mask = new Float32Array(maskFloats(n)), dropped = new Float32Array(n);
    kernels.dropoutAdd(out, mask, s, x, rows, cols, 0, stream);
    kernels.dropout(dropped, new Float32Array(maskFloats(n)), x, rows, cols, 0, stream);
    expect(relError(out, s.map((v, i) => v + dropped[i]))).toBeLessThan(1e-6); // fused multiply-add rounds once
    const dy = f32(randomArray(n, 3)), dx = new Float32Array(n);
    kernels.dropoutBackward(dx, mask, dy, stream.p);
    const m = bytes(mask, n);
    for (let i = 0; i < n; i++) expect(dx[i]).toBe(m[i] ? Math.fround(dy[i] * Math.fround(1 / (1 - stream.p))) : 0);
  });

  it('refuses a probability outside [0, 1)', () => {
    expect(() => kernels.dropout(new Float32Array(4), new Float32Array(1), new Float32Array(4), 1, 4, 0, { ...stream, p: 1 })).toThrow(/p must be in \[0, 1\)/);
  });
});

describe('attention with dropout on the probabilities', () => {
  const s = { batch: 2, seq: 5, heads: 2, kvHeads: 1, headDim: 4 };
  const totalHeads = 4, headOffset = 2, sampleOffset = 3;
  const rows = s.batch * s.seq, qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim;
  const q = randomArray(rows * qw, 1, 2), k = randomArray(rows * kw, 2, 2), v = randomArray(rows * kw, 3), w = randomArray(rows * qw, 4);
  const dropout = { ...stream, p: 0.3, sampleOffset, headOffset, totalHeads };
  // The generator's draw of every index the call can reach, read through the plain dropout kernel.
  const span = (sampleOffset + s.batch) * totalHeads * s.seq * s.seq;
  const keepAll = new Float32Array(maskFloats(span));
  kernels.dropout(new Float32Array(span), keepAll, new Float32Array(span), 1, span, 0, dropout);
  const keep = bytes(keepAll, span);

  /** Float64 reference: o_i = sum_j softmax_j(s_ij) z_ij v_j. */
  const ref = (qq: Float64Array, kk: Float64Array, vv: Float64Array): Float64Array => {
    const out = new Float64Array(rows * qw), D = s.headDim, scale = 1 / Math.sqrt(D);
    for (let b = 0; b < s.batch; b++) for (let h = 0; h < s.heads; h++) for (let i = 0; i < s.seq; i++) {
      const kvh = Math.floor(h / (s.heads / s.kvHeads)), sc: number[] = [];
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let c = 0; c < D; c++) d += qq[(b * s.seq + i) * qw + h * D + c] * kk[(b * s.seq + j) * kw + kvh * D + c];
        sc.push(d * scale);
      }
      const mx = Math.max(...sc), e = sc.map((x) => Math.exp(x - mx)), sum = e.reduce((a, x) => a + x, 0);
      for (let j = 0; j <= i; j++) {
        const idx = (((sampleOffset + b) * totalHeads + headOffset + h) * s.seq + i) * s.seq + j;
        const z = keep[idx] ? 1 / (1 - dropout.p) : 0;
        for (let c = 0; c < D; c++) out[(b * s.seq + i) * qw + h * D + c] += (e[j] / sum) * z * vv[(b * s.seq + j) * kw + kvh * D + c];
      }
    }
    return out;
  };

  it('forward matches the reference and the backward its finite differences, the mask regenerated', () => {
    const out = new Float32Array(rows * qw), lse = new Float32Array(s.batch * s.heads * s.seq);
    const [qf, kf, vf] = [f32(q), f32(k), f32(v)];
    kernels.attention(out, lse, qf, kf, vf, { ...s, dropout });
    expect(relError(out, ref(q, k, v))).toBeLessThan(1e-5);
    const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
    kernels.attentionBackward(dq, dk, dv, f32(w), qf, kf, vf, out, lse, { ...s, dropout });
    const loss = (): number => dotF64(w, ref(q, k, v));
    expect(relError(dq, finiteDiff(loss, q))).toBeLessThan(1e-3);
    expect(relError(dk, finiteDiff(loss, k))).toBeLessThan(1e-3);
    expect(relError(dv, finiteDiff(loss, v))).toBeLessThan(1e-3);
  });
});
