// The CUDA embedding, embeddingBackward (cuda/kernels/embedding.cu) and fused crossEntropy
// (cuda/kernels/cross_entropy.cu) against the CPU kernels of the same name on the same inputs, in f32
// and in the 16-bit storage dtypes, plus the CUDA-only behaviour on tokens/targets the CPU kernels
// reject (NaN rows instead of an exception). Skipped (with the reason) where no GPU and kernels are
// available.
import { expect, it } from 'vitest';
import type { EmbeddingShape, KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import { CudaTensor, cudaRun, cudaSynchronize } from '../tensor';
import { uniforms, randn, type Storage } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// Embedding forward: one fp32 addition on both sides, so f32 is exact; 16-bit outputs are rounded once.
const EMBED_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 0, rtol: 0 },
  bf16: { atol: 1e-6, rtol: 8e-3 },
  f16: { atol: 1e-6, rtol: 1e-3 },
};
// Embedding backward: the CUDA kernel adds each table element's rows in the CPU's order, so f32 is
// bit-exact. With 16-bit tables every addition is rounded to the storage dtype (a token seen k times is
// rounded k times, embedding.cu), while the CPU adds in fp32: the tests keep repeats to a handful, with
// partial sums below about one, so the error stays within k half-ulps of them (2^-9, 2^-11 relative).
const EMBED_BACKWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 0, rtol: 0 },
  bf16: { atol: 3e-2, rtol: 1e-2 },
  f16: { atol: 8e-3, rtol: 3e-3 },
};
// Cross-entropy: the loss is fp32 on both sides (CPU: exponentials in double; CUDA: expf and fp32 sums,
// ~1e-6 relative), dlogits is rounded once to the storage dtype; f16 probabilities below 6e-5 are
// subnormal (absolute precision 6e-8).
const CE_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 1e-6, rtol: 2e-5 },
  bf16: { atol: 1e-6, rtol: 1e-2 },
  f16: { atol: 1e-6, rtol: 2e-3 },
};

/** n integers in [0, limit). */
function randint(n: number, limit: number, seed: number): Int32Array {
  const u = uniforms(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(limit - 1, Math.floor(u() * limit));
  return out;
}

// rows not a multiple of seq; hidden of one, below, at and above the 128-thread column slice of the
// backward; a large case whose many rows and columns spread over several column slices and buckets.
const EMBED_CASES: Array<{ name: string; s: EmbeddingShape; wpe: boolean }> = [
  { name: 'hidden 1', s: { rows: 30, hidden: 1, vocab: 9, seq: 7, maxPos: 12, posOffset: 2 }, wpe: true },
  { name: 'hidden 100, wpe, posOffset 5', s: { rows: 67, hidden: 100, vocab: 50, seq: 23, maxPos: 40, posOffset: 5 }, wpe: true },
  { name: 'hidden 100, no wpe', s: { rows: 67, hidden: 100, vocab: 50, seq: 23, maxPos: 40 }, wpe: false },
  { name: 'hidden 768, seq = rows', s: { rows: 64, hidden: 768, vocab: 300, seq: 64, maxPos: 64 }, wpe: true },
  { name: 'hidden 1000, 700 rows', s: { rows: 700, hidden: 1000, vocab: 1000, seq: 100, maxPos: 128, posOffset: 28 }, wpe: true },
];

describeCuda('CUDA embedding / embeddingBackward / crossEntropy against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    for (const c of EMBED_CASES) {
      const { rows, hidden, vocab, maxPos } = c.s;
      it(`embedding ${dtype} ${c.name}`, () => {
        const tokens = randint(rows, vocab, 1 + rows);
        tokens[0] = vocab - 1;  // the last table row
        const wte = randn(vocab * hidden, 2);
        const wpe = c.wpe ? randn(maxPos * hidden, 3, 0.5) : null;
        const out = new Float32Array(rows * hidden);
        const r = compareWithCpu((ops: KernelOps) => ops.embedding(out, tokens, wte, wpe, c.s), { dtype, ...EMBED_TOL[dtype] });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`embeddingBackward ${dtype} ${c.name}`, () => {
        const tokens = randint(rows, vocab, 4 + rows);
        tokens[0] = vocab - 1;
        // Small values (partial sums below 1), so a 16-bit table's roundings stay well within tolerance.
        const dout = randn(rows * hidden, 5, 0.25);
        // The tables accumulate: start them non-zero.
        const dwte = randn(vocab * hidden, 6, 0.25);
        const dwpe = c.wpe ? randn(maxPos * hidden, 7, 0.25) : null;
        const r = compareWithCpu((ops: KernelOps) => ops.embeddingBackward(dwte, dwpe, dout, tokens, c.s), {
          dtype, ...EMBED_BACKWARD_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    it(`embeddingBackward ${dtype}: one token repeated on every row`, () => {
      const s: EmbeddingShape = { rows: 40, hidden: 130, vocab: 5, seq: 40, maxPos: 40 };
      const tokens = new Int32Array(s.rows).fill(3);
      const dout = randn(s.rows * s.hidden, 8, 0.05);  // small, so 40 roundings of the sum stay within tolerance
      const dwte = new Float32Array(s.vocab * s.hidden);
      const dwpe = new Float32Array(s.maxPos * s.hidden);
      const r = compareWithCpu((ops: KernelOps) => ops.embeddingBackward(dwte, dwpe, dout, tokens, s), {
        dtype, ...EMBED_BACKWARD_TOL[dtype],
      });
      expect(r.ok, r.summary).toBe(true);
    });

    // Vocabularies of GPT-2 (50257, wider than a block: several loop trips per thread) and 7 (one warp,
    // most lanes idle), targets at both ends, and an ignored row (-1).
    for (const [rows, vocab] of [[5, 50257], [13, 7]] as const) {
      const targetsFor = (): Int32Array => {
        const t = randint(rows, vocab, 9 + vocab);
        t[0] = vocab - 1;
        t[1] = -1;
        t[rows - 1] = 0;
        return t;
      };

      it(`crossEntropy ${dtype} rows ${rows} vocab ${vocab}, separate dlogits`, () => {
        const logits = randn(rows * vocab, 10 + vocab, 3);
        const targets = targetsFor();
        const loss = new Float32Array(rows);
        const dlogits = new Float32Array(rows * vocab);
        const r = compareWithCpu((ops: KernelOps) => ops.crossEntropy(loss, logits, targets, dlogits, rows, vocab, 1 / rows), {
          dtype, ...CE_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`crossEntropy ${dtype} rows ${rows} vocab ${vocab}, dlogits in place of the logits`, () => {
        const logits = randn(rows * vocab, 11 + vocab, 3);
        const targets = targetsFor();
        const loss = new Float32Array(rows);
        const r = compareWithCpu((ops: KernelOps) => ops.crossEntropy(loss, logits, targets, logits, rows, vocab, 0.5), {
          dtype, ...CE_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`crossEntropy ${dtype} rows ${rows} vocab ${vocab}, loss only`, () => {
        const logits = randn(rows * vocab, 12 + vocab, 3);
        const targets = targetsFor();
        const loss = new Float32Array(rows);
        const r = compareWithCpu((ops: KernelOps) => ops.crossEntropy(loss, logits, targets, null, rows, vocab), {
          dtype, ...CE_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }
  }

  // The CPU kernels throw on these; the device cannot, so CUDA marks the row with NaN instead.
  it('embedding: a token outside the vocabulary gives a NaN row, the others are untouched', () => {
    const s = { rows: 3, hidden: 5, vocab: 4, seq: 3, maxPos: 3, posOffset: 0 };
    const wte = randn(s.vocab * s.hidden, 13);
    const tensors = [
      CudaTensor.empty(s.rows * s.hidden, 'f32'),
      CudaTensor.from(Int32Array.from([1, 4, -2]), 'i32'),
      CudaTensor.from(wte, 'f32'),
    ];
    try {
      cudaRun('embedding', [...tensors, null], [s.rows, s.hidden, s.vocab, s.seq, s.maxPos, s.posOffset], []);
      cudaSynchronize();
      const out = tensors[0].download();
      expect(Array.from(out.subarray(0, 5))).toEqual(Array.from(wte.subarray(5, 10)));
      expect(Array.from(out.subarray(5)).every(Number.isNaN)).toBe(true);
    } finally {
      for (const t of tensors) t.free();
    }
  });

  it('crossEntropy: a target outside [-1, vocab) gives a NaN loss and gradient row', () => {
    const rows = 2, vocab = 6;
    const tensors = [
      CudaTensor.empty(rows, 'f32'),
      CudaTensor.from(randn(rows * vocab, 14), 'f32'),
      CudaTensor.from(Int32Array.from([2, 6]), 'i32'),
      CudaTensor.empty(rows * vocab, 'f32'),
    ];
    try {
      cudaRun('crossEntropy', tensors, [rows, vocab], [1]);
      cudaSynchronize();
      const loss = tensors[0].download();
      const d = tensors[3].download();
      expect(Number.isFinite(loss[0])).toBe(true);
      expect(Number.isNaN(loss[1])).toBe(true);
      expect(Array.from(d.subarray(0, vocab)).every(Number.isFinite)).toBe(true);
      expect(Array.from(d.subarray(vocab)).every(Number.isNaN)).toBe(true);
    } finally {
      for (const t of tensors) t.free();
    }
  });
});
