// The CUDA vocabulary-parallel embedding / position / cross-entropy ops (cuda/kernels/vocab_parallel.cu:
// embeddingShard, embeddingShardBackward, positionAdd, positionGrad, crossEntropyShardMax,
// crossEntropyShardSums, crossEntropyShardFinish) against the CPU kernels of the same names
// (kernels/vocab_parallel.cc) on the same inputs, in f32 and in the 16-bit storage dtypes, plus the
// CUDA-only behaviour on tokens / targets / positions the CPU kernels reject (NaN rows instead of an
// exception) and the launchers' own checks. Skipped (with the reason) where no GPU and kernels are
// available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, CudaTensor, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { cudaRun, cudaSynchronize } from '../tensor';
import { randn, roundTo, uniforms } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;
type Tol = Record<StorageDType, { atol: number; rtol: number }>;

// embeddingShard copies table rows (or writes zeros): exact in every dtype (a 16-bit value widens to
// fp32 exactly on download).
const COPY_TOL: Tol = {
  f32: { atol: 0, rtol: 0 },
  bf16: { atol: 0, rtol: 0 },
  f16: { atol: 0, rtol: 0 },
};
// positionAdd: one fp32 addition on both sides, so f32 is exact; 16-bit outputs are rounded once
// (half an ulp: 2^-9, 2^-12 relative; the f16 subnormal quantum is 6e-8).
const ADD_TOL: Tol = {
  f32: { atol: 0, rtol: 0 },
  bf16: { atol: 1e-6, rtol: 8e-3 },
  f16: { atol: 1e-6, rtol: 1e-3 },
};
// The backward scatters add each table element's rows in the CPU's order, so f32 is bit-exact. With
// 16-bit tables every addition is rounded to the storage dtype (k repeats, k roundings; see
// embedding.cu), while the CPU adds in fp32: the tests keep partial sums below about one, so the error
// stays within k half-ulps of them. The same bounds as the CUDA embeddingBackward's test.
const SCATTER_TOL: Tol = {
  f32: { atol: 0, rtol: 0 },
  bf16: { atol: 3e-2, rtol: 1e-2 },
  f16: { atol: 8e-3, rtol: 3e-3 },
};
// The max of a row is exact (the same rounded values on both sides).
const MAX_TOL: Tol = COPY_TOL;
// sums (fp32 'f' in every storage dtype): the CPU sums exp in double; CUDA sums expf of the fp32
// difference (2 ulp, plus the rounding of logit - max: |logit - max| * 2^-24 relative) in double,
// so a sum differs by a few 1e-7 relative at most; the target logit is copied exactly.
const SUMS_TOL: Tol = {
  f32: { atol: 0, rtol: 2e-6 },
  bf16: { atol: 0, rtol: 2e-6 },
  f16: { atol: 0, rtol: 2e-6 },
};
// Finish: the loss is formed in double from the same fp32 statistics on both sides (a float ulp at
// most). dlogits: CUDA's fp32 exp / sum (a few 1e-7 relative, up to ~2e-6 for probabilities of e^-30)
// against the CPU's double, then rounded to the storage dtype (bf16 2^-9, f16 2^-12 relative, f16
// subnormals below 6e-5 have an absolute quantum of 6e-8).
const FINISH_TOL: Tol = {
  f32: { atol: 1e-10, rtol: 1e-5 },
  bf16: { atol: 1e-6, rtol: 1e-2 },
  f16: { atol: 1e-6, rtol: 2e-3 },
};

/** n integers in [lo, hi). */
function randint(n: number, lo: number, hi: number, seed: number): Int32Array {
  const u = uniforms(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(hi - 1, lo + Math.floor(u() * (hi - lo)));
  return out;
}

interface ShardCase {
  name: string;
  rows: number;
  hidden: number;
  vocab: number;
  lo: number;
  hi: number;
}

// hidden of one, below, at and above the 128-thread column slice of the scatter and above the 256
// threads of the row kernels; shards at the start, middle and end of the vocabulary and the whole
// vocabulary; one row; many rows spread over several column slices and buckets.
const SHARD_CASES: ShardCase[] = [
  { name: 'hidden 1, shard [3, 7) of 9', rows: 30, hidden: 1, vocab: 9, lo: 3, hi: 7 },
  { name: 'hidden 100, whole vocabulary', rows: 67, hidden: 100, vocab: 50, lo: 0, hi: 50 },
  { name: 'hidden 768, last half', rows: 64, hidden: 768, vocab: 300, lo: 150, hi: 300 },
  { name: 'hidden 1000, 700 rows, middle quarter', rows: 700, hidden: 1000, vocab: 1000, lo: 250, hi: 500 },
  { name: 'one row, hidden 1025, one-row shard', rows: 1, hidden: 1025, vocab: 4, lo: 1, hi: 2 },
];

/** Tokens over the whole vocabulary (most outside a narrow shard), with the shard's ends and its neighbours. */
function shardTokens(c: ShardCase, seed: number): Int32Array {
  const t = randint(c.rows, 0, c.vocab, seed);
  const special = [c.lo, c.hi - 1, c.hi < c.vocab ? c.hi : 0, c.lo > 0 ? c.lo - 1 : c.vocab - 1];
  for (let i = 0; i < special.length && i < c.rows; i++) t[i] = special[i];
  // Half the remaining rows inside the shard, so the backward has repeats to add.
  const inside = randint(c.rows, c.lo, c.hi, seed + 1);
  for (let i = special.length; i < c.rows; i += 2) t[i] = inside[i];
  return t;
}

interface PositionCase {
  name: string;
  rows: number;
  hidden: number;
  seq: number;
  first: number;
  maxPos: number;
  /** Builds the positions table (seq entries, in [0, maxPos)), or none. */
  table: ((seq: number, maxPos: number) => Int32Array) | null;
}

// rows not a multiple of seq, rows below seq (a shard of a micro-batch's rows starting at first,
// with a wpe of exactly the rows used), first beyond seq, tables with repeated positions (packed
// documents) and random ones.
const POSITION_CASES: PositionCase[] = [
  { name: 'hidden 1, first 2, no table', rows: 30, hidden: 1, seq: 7, first: 2, maxPos: 12, table: null },
  { name: 'hidden 100, random table', rows: 67, hidden: 100, seq: 23, first: 5, maxPos: 40, table: (s, m) => randint(s, 0, m, 21) },
  { name: 'hidden 768, seq = rows, no table', rows: 64, hidden: 768, seq: 64, first: 0, maxPos: 64, table: null },
  {
    name: 'hidden 1000, 700 rows, first 250, packed documents',
    rows: 700, hidden: 1000, seq: 100, first: 250, maxPos: 128,
    table: (s) => Int32Array.from({ length: s }, (_, i) => i % 37),
  },
  { name: 'rows below seq, tight wpe, no table', rows: 5, hidden: 130, seq: 50, first: 40, maxPos: 45, table: null },
  { name: 'one row, hidden 1025, table', rows: 1, hidden: 1025, seq: 3, first: 4, maxPos: 3, table: () => Int32Array.from([2, 0, 1]) },
];

/** logsumexp pieces of full rows in double: the global max and sum that the all-reduces would give. */
function globalStats(logits: Float32Array, rows: number, vocab: number): { max: Float32Array; sum: Float32Array } {
  const max = new Float32Array(rows);
  const sum = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < vocab; j++) m = Math.max(m, logits[r * vocab + j]);
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(logits[r * vocab + j] - m);
    max[r] = m;
    sum[r] = s;
  }
  return { max, sum };
}

/** Columns [lo, hi) of a [rows, vocab] matrix. */
function columns(x: Float32Array, rows: number, vocab: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(rows * (hi - lo));
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * vocab + lo, r * vocab + hi), r * (hi - lo));
  return out;
}

describeCuda('CUDA vocabulary-parallel embedding / position / cross-entropy against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    for (const c of SHARD_CASES) {
      const local = c.hi - c.lo;
      it(`embeddingShard ${dtype} ${c.name}`, () => {
        const tokens = shardTokens(c, 1 + c.rows);
        const wte = randn(local * c.hidden, 2);
        // Start the output non-zero: the zero rows must be written.
        const out = randn(c.rows * c.hidden, 3);
        const r = compareWithCpu((ops: KernelOps) => ops.embeddingShard(out, tokens, wte, c.rows, c.hidden, c.vocab, c.lo, c.hi), {
          dtype, ...COPY_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`embeddingShardBackward ${dtype} ${c.name}`, () => {
        const tokens = shardTokens(c, 4 + c.rows);
        const dout = randn(c.rows * c.hidden, 5, 0.25);
        const dwte = randn(local * c.hidden, 6, 0.25); // accumulates: start non-zero
        const r = compareWithCpu((ops: KernelOps) => ops.embeddingShardBackward(dwte, dout, tokens, c.rows, c.hidden, c.vocab, c.lo, c.hi), {
          dtype, ...SCATTER_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    it(`embeddingShardBackward ${dtype}: one token repeated on every row`, () => {
      const rows = 40, hidden = 130, vocab = 10, lo = 5, hi = 8;
      const tokens = new Int32Array(rows).fill(6);
      const dout = randn(rows * hidden, 8, 0.05); // small, so 40 roundings of the sum stay within tolerance
      const dwte = new Float32Array((hi - lo) * hidden);
      const r = compareWithCpu((ops: KernelOps) => ops.embeddingShardBackward(dwte, dout, tokens, rows, hidden, vocab, lo, hi), {
        dtype, ...SCATTER_TOL[dtype],
      });
      expect(r.ok, r.summary).toBe(true);
    });

    for (const c of POSITION_CASES) {
      const positions = c.table ? c.table(c.seq, c.maxPos) : null;
      it(`positionAdd ${dtype} ${c.name}`, () => {
        const x = randn(c.rows * c.hidden, 9);
        const wpe = randn(c.maxPos * c.hidden, 10, 0.5);
        const r = compareWithCpu((ops: KernelOps) => ops.positionAdd(x, wpe, positions, c.rows, c.hidden, c.seq, c.first), {
          dtype, ...ADD_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`positionGrad ${dtype} ${c.name}`, () => {
        const dout = randn(c.rows * c.hidden, 11, 0.05); // up to ~21 repeats per table row
        const dwpe = randn(c.maxPos * c.hidden, 12, 0.25);
        const r = compareWithCpu((ops: KernelOps) => ops.positionGrad(dwpe, dout, positions, c.rows, c.hidden, c.seq, c.first), {
          dtype, ...SCATTER_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    // One rank holding the whole vocabulary (lo = 0): the three steps in a row with nothing to
    // all-reduce, as the single-rank executor runs them. GPT-2's vocabulary (wider than a block: many
    // loop trips per thread), 7 columns (one warp, most lanes idle) and 1500 (a partial last trip);
    // targets at both ends and an ignored row.
    for (const [rows, vocab] of [[5, 50257], [13, 7], [3, 1500]] as const) {
      const targetsFor = (): Int32Array => {
        const t = randint(rows, 0, vocab, 13 + vocab);
        t[0] = vocab - 1;
        t[1] = -1;
        t[rows - 1] = 0;
        return t;
      };
      for (const mode of ['separate dlogits', 'dlogits in place', 'loss only'] as const) {
        it(`crossEntropyShard Max/Sums/Finish ${dtype} rows ${rows} vocab ${vocab}, ${mode}`, () => {
          const logits = randn(rows * vocab, 14 + vocab, 3);
          const targets = targetsFor();
          const max = new Float32Array(rows);
          const sums = new Float32Array(2 * rows);
          const loss = new Float32Array(rows);
          const dlogits = mode === 'separate dlogits' ? new Float32Array(rows * vocab) : mode === 'dlogits in place' ? logits : null;
          const r = compareWithCpu((ops: KernelOps) => {
            ops.crossEntropyShardMax(max, logits, rows, vocab);
            ops.crossEntropyShardSums(sums, logits, max, targets, rows, vocab, 0);
            ops.crossEntropyShardFinish(loss, dlogits, logits, max, sums, targets, rows, vocab, 0, 1 / rows);
          }, { dtype, ...FINISH_TOL[dtype] }); // max is exact and SUMS_TOL lies within FINISH_TOL
          expect(r.ok, r.summary).toBe(true);
        });
      }
    }

    // Two ranks of a vocabulary of 1001 (shards [0, 500) and [500, 1001)): each step of one shard on
    // its own, with the statistics the all-reduces would give (computed here in double from the
    // rounded logits) as inputs; targets inside and outside the shard.
    for (const [lo, hi] of [[0, 500], [500, 1001]] as const) {
      const rows = 9, vocab = 1001, v = hi - lo;
      const full = Float32Array.from(randn(rows * vocab, 15, 3), (x) => roundTo(dtype, x));
      const shard = columns(full, rows, vocab, lo, hi);
      const { max: globalMax, sum: globalSum } = globalStats(full, rows, vocab);
      const targets = randint(rows, 0, vocab, 16);
      targets[0] = lo;
      targets[1] = hi - 1;
      targets[2] = hi < vocab ? hi : lo - 1;
      targets[3] = -1;

      it(`crossEntropyShardMax ${dtype} shard [${lo}, ${hi}) of ${vocab}`, () => {
        const max = new Float32Array(rows);
        const r = compareWithCpu((ops: KernelOps) => ops.crossEntropyShardMax(max, shard, rows, v), { dtype, ...MAX_TOL[dtype] });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`crossEntropyShardSums ${dtype} shard [${lo}, ${hi}) of ${vocab}, global max`, () => {
        const sums = randn(2 * rows, 17); // overwritten
        const r = compareWithCpu((ops: KernelOps) => ops.crossEntropyShardSums(sums, shard, globalMax, targets, rows, v, lo), {
          dtype, ...SUMS_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`crossEntropyShardFinish ${dtype} shard [${lo}, ${hi}) of ${vocab}, global sums`, () => {
        const sums = new Float32Array(2 * rows);
        sums.set(globalSum);
        for (let r = 0; r < rows; r++) sums[rows + r] = targets[r] >= 0 ? full[r * vocab + targets[r]] : 0;
        const loss = new Float32Array(rows);
        const dlogits = new Float32Array(rows * v);
        const r = compareWithCpu(
          (ops: KernelOps) => ops.crossEntropyShardFinish(loss, dlogits, shard, globalMax, sums, targets, rows, v, lo, 0.25),
          { dtype, ...FINISH_TOL[dtype] },
        );
        expect(r.ok, r.summary).toBe(true);
      });
    }
  }

  // The CPU kernels throw on these; the device cannot, so CUDA marks the row with NaN (or skips it).
  it('embeddingShard: a token outside the vocabulary gives a NaN row, one outside the shard zeros; the backward skips both', () => {
    const hidden = 3, vocab = 6, lo = 2, hi = 4;
    const wte = randn((hi - lo) * hidden, 18);
    const tokens = CudaTensor.from(Int32Array.from([3, 6, 1, -1]), 'i32');
    const out = CudaTensor.from(new Float32Array(4 * hidden).fill(7), 'f32');
    const table = CudaTensor.from(wte, 'f32');
    const dwte = CudaTensor.from(new Float32Array((hi - lo) * hidden), 'f32');
    const dout = CudaTensor.from(new Float32Array(4 * hidden).fill(1), 'f32');
    try {
      cudaRun('embeddingShard', [out, tokens, table], [4, hidden, vocab, lo, hi], []);
      cudaRun('embeddingShardBackward', [dwte, dout, tokens], [4, hidden, vocab, lo, hi], []);
      cudaSynchronize();
      const o = out.download();
      expect(Array.from(o.subarray(0, 3))).toEqual(Array.from(wte.subarray(3, 6)));
      expect(Array.from(o.subarray(3, 6)).every(Number.isNaN)).toBe(true);
      expect(Array.from(o.subarray(6, 9))).toEqual([0, 0, 0]);
      expect(Array.from(o.subarray(9, 12)).every(Number.isNaN)).toBe(true);
      expect(Array.from(dwte.download())).toEqual([0, 0, 0, 1, 1, 1]);
    } finally {
      for (const t of [tokens, out, table, dwte, dout]) t.free();
    }
  });

  it('positionAdd / positionGrad: a table position outside wpe gives a NaN x row and is skipped by the gradient', () => {
    const hidden = 2, seq = 3, maxPos = 4;
    const tensors = {
      x: CudaTensor.from(new Float32Array(seq * hidden).fill(1), 'f32'),
      wpe: CudaTensor.from(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 'f32'),
      dwpe: CudaTensor.from(new Float32Array(maxPos * hidden), 'f32'),
      dout: CudaTensor.from(new Float32Array(seq * hidden).fill(1), 'f32'),
      positions: CudaTensor.from(Int32Array.from([3, 4, -1]), 'i32'),
    };
    try {
      cudaRun('positionAdd', [tensors.x, tensors.wpe, tensors.positions], [seq, hidden, seq, 0], []);
      cudaRun('positionGrad', [tensors.dwpe, tensors.dout, tensors.positions], [seq, hidden, seq, 0], []);
      cudaSynchronize();
      const x = tensors.x.download();
      expect(Array.from(x.subarray(0, 2))).toEqual([7, 8]);
      expect(Array.from(x.subarray(2)).every(Number.isNaN)).toBe(true);
      expect(Array.from(tensors.dwpe.download())).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    } finally {
      for (const t of Object.values(tensors)) t.free();
    }
  });

  it('crossEntropyShardSums / Finish: a target below -1 gives NaN sums, loss and gradient row', () => {
    const rows = 2, v = 5;
    const tensors = {
      sums: CudaTensor.empty(2 * rows, 'f32'),
      logits: CudaTensor.from(randn(rows * v, 19), 'f32'),
      max: CudaTensor.from(Float32Array.from([3, 3]), 'f32'),
      targets: CudaTensor.from(Int32Array.from([2, -2]), 'i32'),
      loss: CudaTensor.empty(rows, 'f32'),
      dlogits: CudaTensor.empty(rows * v, 'f32'),
    };
    try {
      cudaRun('crossEntropyShardSums', [tensors.sums, tensors.logits, tensors.max, tensors.targets], [rows, v, 0], []);
      cudaRun('crossEntropyShardFinish', [tensors.loss, tensors.dlogits, tensors.logits, tensors.max, tensors.sums, tensors.targets], [rows, v, 0], [1]);
      cudaSynchronize();
      const sums = tensors.sums.download();
      expect(Number.isFinite(sums[0]) && Number.isFinite(sums[2])).toBe(true);
      expect(Number.isNaN(sums[1]) && Number.isNaN(sums[3])).toBe(true);
      const loss = tensors.loss.download();
      expect(Number.isFinite(loss[0])).toBe(true);
      expect(Number.isNaN(loss[1])).toBe(true);
      const d = tensors.dlogits.download();
      expect(Array.from(d.subarray(0, v)).every(Number.isFinite)).toBe(true);
      expect(Array.from(d.subarray(v)).every(Number.isNaN)).toBe(true);
    } finally {
      for (const t of Object.values(tensors)) t.free();
    }
  });

  it('the launchers check the shard, first and the positions used without a table, as the CPU kernels do', () => {
    const out = CudaTensor.empty(12, 'f32');
    const tokens = CudaTensor.from(Int32Array.from([0, 1, 2, 3]), 'i32');
    const wpe = CudaTensor.empty(9, 'f32'); // 3 rows of hidden 3
    try {
      expect(() => cudaRun('embeddingShard', [out, tokens, wpe], [4, 3, 6, 2, 7], [])).toThrow(/embeddingShard \(cuda\): the shard \[lo, hi\)/);
      expect(() => cudaRun('embeddingShard', [out, tokens, wpe], [4, 3, 6, 3, 3], [])).toThrow(/non-empty range/);
      expect(() => cudaRun('positionAdd', [out, wpe, null], [4, 3, 4, -1], [])).toThrow(/first must be >= 0/);
      // Rows 0..3 of seq 4 use positions 0..3: the table has 3.
      expect(() => cudaRun('positionAdd', [out, wpe, null], [4, 3, 4, 0], [])).toThrow(/position 3 is outside the wpe table of 3 rows/);
      // Two rows from first 5 of seq 8 use positions 5 and 6.
      expect(() => cudaRun('positionGrad', [wpe, out, null], [2, 3, 8, 5], [])).toThrow(/position 6 is outside the dwpe table of 3 rows/);
      // Rows 0..3 of seq 3 from first 1 use positions 1, 2, 0: inside.
      expect(() => cudaRun('positionAdd', [out, wpe, null], [4, 3, 3, 1], [])).not.toThrow();
      cudaSynchronize();
    } finally {
      for (const t of [out, tokens, wpe]) t.free();
    }
  });
});
