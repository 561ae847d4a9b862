// The CUDA ring-attention blocks (cuda/kernels/ring_attention.cu) against the CPU kernels of the same
// names (kernels/ring_attention.cc) on the same inputs, in f32 and in the 16-bit storage dtypes:
//   - the ring as the executor runs it: the sequence cut in 2*cp chunks, rank r holding chunks r and
//     2cp-1-r; a rank's queries attend to its own block (merge off) and then to every other rank's
//     block (merge on), and the backward adds every block's dq, dk, dv (cp = 2 with 74-row blocks,
//     more than one 64-row tile and no multiple of it; cp = 4 with 18-row blocks, four merges);
//   - blocks with qSeq != kSeq and unsorted positions: a 90-key block that every query sees part of
//     (merge off), then a 20-key block of late positions that some queries do not see at all (merge
//     on: those rows keep their out and lse), and the backward of both;
//   - dropout p = 0 and 0.1 (the CUDA side draws the CPU's mask from the shared hash with the
//     whole-sequence index ((g * totalHeads + H) * seqTotal + P) * seqTotal + Q);
//   - a row that sees no key with merge off: out = 0 and lse = -inf (checked on the CUDA side alone,
//     since the comparison treats -inf - -inf as a mismatch).
// Skipped (with the reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { AttentionBlockShape, AttentionDropout, KernelOps } from '../../kernels/ops';
import { compareWithCpu, CudaTensor, describeCuda } from '../testing/compare';
import { cudaRun, cudaSynchronize } from '../tensor';
import { randn, uniforms } from './values';

type Storage = 'f32' | 'bf16' | 'f16';
const DTYPES = ['f32', 'bf16', 'f16'] as const;

// The forward as attention's (fp32 on both sides, the CPU with std::exp and another summation order;
// 16-bit outputs rounded once), with the merge: the CUDA side rounds the partial out of each block to
// the storage dtype before the next block folds into it (the CPU keeps fp32), a convex combination of
// rounded values, so at most one more rounding (2^-9, 2^-11 relative) per merge.
const FORWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 1e-5, rtol: 1e-4 },
  bf16: { atol: 2e-3, rtol: 2e-2 },
  f16: { atol: 1e-3, rtol: 4e-3 },
};
// The backward as attentionBackward's tolerances (sums of up to 148 products per block in another
// order; in 16-bit storage D_i = dout_i . out_i reads the rounded merged out), plus one rounding of
// the accumulated dq, dk, dv per block added (the CPU accumulates in fp32).
const BACKWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 3e-5, rtol: 3e-4 },
  bf16: { atol: 3e-2, rtol: 3e-2 },
  f16: { atol: 8e-3, rtol: 1.5e-2 },
};

/** Positions of rank r's rows of a sequence: chunks r and 2cp-1-r of 2cp (Megatron-Core's split). */
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

/** A deterministic permutation of `values` (Fisher-Yates). */
function shuffled(values: number[], seed: number): number[] {
  const u = uniforms(seed), out = values.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Dropout of a rank holding heads 4..7 of 12 and samples from 3 on, over sequences of seqTotal. */
function dropoutOf(p: number, seqTotal: number): (AttentionDropout & { seqTotal: number }) | undefined {
  return p > 0 ? { p, keyHi: 0x2545f491, keyLo: 0x4f6cdd1d, sampleOffset: 3, headOffset: 4, totalHeads: 12, seqTotal } : undefined;
}

interface RingCase {
  name: string;
  cp: number;
  chunk: number;
  headDim: number;
  kvHeads: number;
  p: number;
}

const RING_CASES: RingCase[] = [];
for (const p of [0, 0.1]) {
  for (const headDim of [16, 64, 128]) RING_CASES.push({ name: `cp 2 chunk 37 headDim ${headDim} kvHeads 2 p ${p}`, cp: 2, chunk: 37, headDim, kvHeads: 2, p });
  RING_CASES.push({ name: `cp 4 chunk 9 headDim 32 kvHeads 1 p ${p}`, cp: 4, chunk: 9, headDim: 32, kvHeads: 1, p });
}

describeCuda('CUDA attentionBlock / attentionBlockBackward against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    // Every rank of the ring in turn, forward and backward of all its blocks in one recorded sequence.
    it.each(RING_CASES.map((c, i) => [c.name, c, i] as const))(`ring ${dtype} %s`, (_name, c, i) => {
      const batch = 2, heads = 4, seq = 2 * c.cp * c.chunk;
      const qw = heads * c.headDim, kw = c.kvHeads * c.headDim, rows = batch * seq, L = 2 * c.chunk;
      const q = randn(rows * qw, 10 + 5 * i), k = randn(rows * kw, 11 + 5 * i), v = randn(rows * kw, 12 + 5 * i);
      const dout = randn(rows * qw, 13 + 5 * i);
      const pos = range(0, c.cp).map((r) => rankPositions(seq, c.cp, r));
      const ks = pos.map((ps) => rowsAt(k, batch, seq, kw, ps)), vs = pos.map((ps) => rowsAt(v, batch, seq, kw, ps));
      const dropout = dropoutOf(c.p, seq);
      for (let r = 0; r < c.cp; r++) {
        const qr = rowsAt(q, batch, seq, qw, pos[r]), dor = rowsAt(dout, batch, seq, qw, pos[r]);
        const o = new Float32Array(batch * L * qw), l = new Float32Array(batch * heads * L), dq = new Float32Array(qr.length);
        const dk = pos.map(() => new Float32Array(batch * L * kw)), dv = pos.map(() => new Float32Array(batch * L * kw));
        const shape = (owner: number): AttentionBlockShape => ({
          batch, qSeq: L, kSeq: L, heads, kvHeads: c.kvHeads, headDim: c.headDim, qPos: pos[r], kPos: pos[owner], ...(dropout ? { dropout } : {}),
        });
        const report = compareWithCpu(
          (ops: KernelOps) => {
            // The ring's order: own block first (merge off), then the blocks of ranks r-1, r-2, ...
            for (let t = 0; t < c.cp; t++) {
              const owner = (r - t + c.cp) % c.cp;
              ops.attentionBlock(o, l, qr, ks[owner], vs[owner], shape(owner), t > 0);
            }
            for (let t = 0; t < c.cp; t++) {
              const owner = (r - t + c.cp) % c.cp;
              ops.attentionBlockBackward(dq, dk[owner], dv[owner], dor, qr, ks[owner], vs[owner], o, l, shape(owner));
            }
          },
          { dtype, ...BACKWARD_TOL[dtype] },
        );
        expect(report.ok, `rank ${r}\n${report.summary}`).toBe(true);
      }
    });

    for (const p of [0, 0.1]) {
      for (const headDim of [16, 64]) {
        it(`qSeq 50, kSeq 90 then 20, unsorted positions, headDim ${headDim}, p ${p}, ${dtype}`, () => {
          const batch = 2, heads = 4, kvHeads = 2, seqTotal = 200, qSeq = 50, kSeq1 = 90, kSeq2 = 20;
          const qw = heads * headDim, kw = kvHeads * headDim;
          const qPos = Int32Array.from(shuffled(range(0, seqTotal), 1).slice(0, qSeq));
          // Position 0 in the first block: every query sees at least one of its keys.
          const kPos1 = Int32Array.from(shuffled([0, ...shuffled(range(1, seqTotal), 2).slice(0, kSeq1 - 1)], 3));
          // Late positions in the second: queries before them see none of its keys.
          const kPos2 = Int32Array.from(shuffled(range(100, seqTotal), 4).slice(0, kSeq2));
          const dropout = dropoutOf(p, seqTotal);
          const s1: AttentionBlockShape = { batch, qSeq, kSeq: kSeq1, heads, kvHeads, headDim, qPos, kPos: kPos1, ...(dropout ? { dropout } : {}) };
          const s2: AttentionBlockShape = { ...s1, kSeq: kSeq2, kPos: kPos2 };
          const seed = 40 + headDim + (p > 0 ? 1 : 0);
          const q = randn(batch * qSeq * qw, seed), dout = randn(batch * qSeq * qw, seed + 1);
          const k1 = randn(batch * kSeq1 * kw, seed + 2), v1 = randn(batch * kSeq1 * kw, seed + 3);
          const k2 = randn(batch * kSeq2 * kw, seed + 4), v2 = randn(batch * kSeq2 * kw, seed + 5);
          const out = new Float32Array(q.length), lse = new Float32Array(batch * heads * qSeq), dq = new Float32Array(q.length);
          const dk1 = new Float32Array(k1.length), dv1 = new Float32Array(v1.length);
          const dk2 = new Float32Array(k2.length), dv2 = new Float32Array(v2.length);
          const report = compareWithCpu(
            (ops: KernelOps) => {
              ops.attentionBlock(out, lse, q, k1, v1, s1, false);
              ops.attentionBlock(out, lse, q, k2, v2, s2, true);
              ops.attentionBlockBackward(dq, dk1, dv1, dout, q, k1, v1, out, lse, s1);
              ops.attentionBlockBackward(dq, dk2, dv2, dout, q, k2, v2, out, lse, s2);
            },
            { dtype, ...BACKWARD_TOL[dtype] },
          );
          expect(report.ok, report.summary).toBe(true);
        });
      }
    }

    it(`a single block, merge off, forward only (one query row, tight forward tolerance) ${dtype}`, () => {
      // qSeq 1 against 130 keys (three 64-key tiles, the last one ragged), headDim 128.
      const batch = 1, heads = 2, kvHeads = 1, headDim = 128, kSeq = 130;
      const qPos = Int32Array.of(500), kPos = Int32Array.from(shuffled(range(380, 380 + kSeq), 9));
      const s: AttentionBlockShape = { batch, qSeq: 1, kSeq, heads, kvHeads, headDim, qPos, kPos, scale: 0.07 };
      const q = randn(heads * headDim, 60), k = randn(kSeq * kvHeads * headDim, 61), v = randn(kSeq * kvHeads * headDim, 62);
      const out = new Float32Array(q.length), lse = new Float32Array(heads);
      const report = compareWithCpu((ops: KernelOps) => ops.attentionBlock(out, lse, q, k, v, s, false), { dtype, ...FORWARD_TOL[dtype] });
      expect(report.ok, report.summary).toBe(true);
    });
  }

  it('a row that sees no key: merge off writes out = 0 and lse = -inf, merge on keeps out and lse', () => {
    // Query positions 3 and 10 against keys at positions 5..8: row 0 sees none, row 1 all four.
    const heads = 1, headDim = 16, kSeq = 4;
    const ints = (merge: number): number[] => [1, 2, kSeq, heads, 1, headDim, merge];
    const out = CudaTensor.from(new Float32Array(2 * headDim).fill(7), 'f32');
    const lse = CudaTensor.from(Float32Array.of(1.5, 2.5), 'f32');
    const q = CudaTensor.from(randn(2 * headDim, 70), 'f32');
    const k = CudaTensor.from(randn(kSeq * headDim, 71), 'f32'), v = CudaTensor.from(randn(kSeq * headDim, 72), 'f32');
    const qPos = CudaTensor.from(Int32Array.of(3, 10)), kPos = CudaTensor.from(Int32Array.of(5, 6, 7, 8));
    const all = [out, lse, q, k, v, qPos, kPos];
    try {
      cudaRun('attentionBlock', all, ints(1), [0.25]);
      cudaSynchronize();
      const keptOut = out.download(), keptLse = lse.download();
      expect(Array.from(keptOut.subarray(0, headDim))).toEqual(new Array(headDim).fill(7));
      expect(keptLse[0]).toBe(1.5);
      expect(Number.isFinite(keptLse[1]) && keptLse[1] !== 2.5).toBe(true);

      cudaRun('attentionBlock', all, ints(0), [0.25]);
      cudaSynchronize();
      const newOut = out.download(), newLse = lse.download();
      expect(Array.from(newOut.subarray(0, headDim))).toEqual(new Array(headDim).fill(0));
      expect(newLse[0]).toBe(-Infinity);
      expect(Number.isFinite(newLse[1])).toBe(true);
    } finally {
      for (const t of all) t.free();
    }
  });

  it('checks the shapes and the dropout parameters as the CPU kernel does', () => {
    const t = CudaTensor.empty(64, 'f32'), lse = CudaTensor.empty(4, 'f32'), pos = CudaTensor.from(Int32Array.of(0, 1));
    try {
      const base = [1, 2, 2, 2, 1, 16];
      expect(() => cudaRun('attentionBlock', [t, lse, t, t, t, pos, pos], [...base, 2], [0.25])).toThrow(/merge must be 0 or 1/);
      expect(() => cudaRun('attentionBlock', [t, lse, t, t, t, pos, pos], [1, 2, 3, 2, 1, 16, 0], [0.25])).toThrow(/kPos/);
      const drop = [0x2545f491, 0x4f6cdd1d, 0, 0, 2, 8];
      expect(() => cudaRun('attentionBlock', [t, lse, t, t, t, pos, pos], [...base, 0, ...drop], [0.25, 1.5])).toThrow(
        /dropout probability p must be in \[0, 1\)/,
      );
      expect(() => cudaRun('attentionBlock', [t, lse, t, t, t, pos, pos], [1, 2, 2, 2, 1, 48, 0], [0.25])).toThrow(/headDim must be 16, 32, 64 or 128/);
    } finally {
      for (const x of [t, lse, pos]) x.free();
    }
  });
});
