// The CUDA mixture-of-experts routing ops (cuda/kernels/moe_routing.cu) against the CPU kernels of the
// same names (kernels/moe_routing.cc) on the same inputs, in f32 and in the 16-bit storage dtypes,
// plus their determinism (two runs bit for bit) and the CUDA-only topK limit. Skipped (with the
// reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { CudaTensor, cudaRun, cudaSynchronize } from '../tensor';
import { firstMismatch, randn, uniforms } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// The gate: both sides compare the same (rounded) logits, so the chosen experts must be equal; the
// probabilities are fp32 on both sides from a double softmax (glibc's exp against CUDA's, each within
// an ulp of double), so they agree to about one float ulp in every storage dtype.
const TOPK_TOL = { atol: 1e-7, rtol: 1e-6 };
// Row copies: exact in every dtype (the values are the storage dtype's).
const COPY_TOL = { atol: 0, rtol: 0 };
// Scaled copies and weighted sums: fp32 on both sides (the CUDA sum uses fmaf, one rounding per term
// like the CPU's double sum of an exact product rounded to float); a 16-bit output is rounded once
// (2^-9, 2^-11 relative), f16 with subnormals below 6e-5.
const SUM_TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 1e-6, rtol: 1e-6 },
  bf16: { atol: 1e-6, rtol: 4e-3 },
  f16: { atol: 1e-6, rtol: 1e-3 },
};
// The gate's backward: double dot products on both sides (sequential on the CPU, a block tree on
// CUDA: differences near 1e-16 of the sums), then one rounding to the output dtype.
const GATE_BACKWARD_TOL = SUM_TOL;

/** A random permutation of [0, n). */
function permutation(n: number, seed: number): Int32Array {
  const u = uniforms(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Logits with many exact ties (multiples of 1/4 in [0, 1]: representable in every dtype). */
function tiedLogits(n: number, seed: number): Float32Array {
  const u = uniforms(seed);
  return Float32Array.from({ length: n }, () => Math.floor(u() * 5) / 4);
}

/** The expert indices and probabilities of a gate (on the CPU kernels' side of compareWithCpu). */
function gate(tokens: number, E: number, K: number, seed: number): { index: Int32Array; probs: Float32Array } {
  // A permutation of the experts per token: distinct indices, as moeTopK writes them.
  const u = uniforms(seed);
  const index = new Int32Array(tokens * K), probs = new Float32Array(tokens * K);
  for (let n = 0; n < tokens; n++) {
    const experts = Array.from({ length: E }, (_, e) => e);
    for (let j = 0; j < K; j++) {
      const pick = j + Math.floor(u() * (E - j));
      [experts[j], experts[pick]] = [experts[pick], experts[j]];
      index[n * K + j] = experts[j];
      probs[n * K + j] = 0.05 + u();
    }
  }
  return { index, probs };
}

describeCuda('CUDA mixture-of-experts routing against the CPU kernels', () => {
  // One token; tokens not a multiple of the 4 warps of a block; experts below, at and above a warp's
  // 32 lanes (several per lane); topK of 1, of all the experts, and 8.
  const TOPK_CASES: Array<[number, number, number, boolean]> = [
    [1, 8, 2, false], [1001, 8, 2, false], [500, 4, 1, false], [257, 5, 5, true], [300, 64, 6, false],
    [333, 8, 2, true], [67, 160, 8, false], [40, 32, 32, true],
  ];
  for (const dtype of DTYPES) {
    for (const [tokens, E, K, ties] of TOPK_CASES) {
      it(`moeTopK ${dtype} ${tokens} tokens, top-${K} of ${E}${ties ? ', ties' : ''}`, () => {
        const logits = ties ? tiedLogits(tokens * E, tokens + E) : randn(tokens * E, tokens + E, 3);
        const index = new Int32Array(tokens * K), probs = new Float32Array(tokens * K);
        const r = compareWithCpu((ops: KernelOps) => ops.moeTopK(index, probs, logits, tokens, E, K), { dtype, ...TOPK_TOL });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    it(`moeTopK ${dtype}: NaN and infinite logits chosen as the CPU chooses them`, () => {
      const rows = [
        [NaN, 1, 2, 3, 4], [1, NaN, 3, NaN, 2], [Infinity, 0, Infinity, -Infinity, 1],
        [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity], [2, 2, 2, 2, 2], [NaN, NaN, NaN, 0, NaN],
      ];
      const logits = Float32Array.from(rows.flat());
      const index = new Int32Array(rows.length * 3), probs = new Float32Array(rows.length * 3);
      const r = compareWithCpu((ops: KernelOps) => ops.moeTopK(index, probs, logits, rows.length, 5, 3), { dtype, ...TOPK_TOL });
      expect(r.ok, r.summary).toBe(true);
    });

    // (tokens, topK, hidden): one element; ragged widths below, at and above the row blocks (256
    // threads of 4 columns each); many rows.
    const ROW_CASES: Array<[number, number, number]> = [[1, 1, 1], [37, 2, 24], [9, 3, 5], [300, 2, 1000], [64, 8, 2050], [2000, 2, 64]];
    for (const [tokens, K, H] of ROW_CASES) {
      const copies = tokens * K;
      const label = `${tokens} tokens, top-${K}, hidden ${H}`;

      it(`moeGatherRows ${dtype} ${label}: the dispatch copy`, () => {
        const src = randn(tokens * H, 1 + H), pos = permutation(copies, 2 + H);
        const dst = randn(copies * H, 3); // every row is overwritten
        const r = compareWithCpu((ops: KernelOps) => ops.moeGatherRows(dst, src, pos, null, tokens, K, H), { dtype, ...COPY_TOL });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`moeGatherRows ${dtype} ${label}: scaled by the probabilities`, () => {
        const src = randn(tokens * H, 4 + H), pos = permutation(copies, 5 + H), probs = gate(tokens, K + 1, K, 6).probs;
        const dst = new Float32Array(copies * H);
        const r = compareWithCpu((ops: KernelOps) => ops.moeGatherRows(dst, src, pos, probs, tokens, K, H), { dtype, ...SUM_TOL[dtype] });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`moeScatterRows ${dtype} ${label}`, () => {
        const src = randn(copies * H, 7 + H), pos = permutation(copies, 8 + H);
        const dst = randn(copies * H, 9);
        const r = compareWithCpu((ops: KernelOps) => ops.moeScatterRows(dst, src, pos, tokens, K, H), { dtype, ...COPY_TOL });
        expect(r.ok, r.summary).toBe(true);
      });

      it(`moeCombine ${dtype} ${label}: weighted sum in token order, and unweighted by positions`, () => {
        const src = randn(copies * H, 10 + H), pos = permutation(copies, 11 + H), probs = gate(tokens, K + 1, K, 12).probs;
        const out = randn(tokens * H, 13, 0.5), out2 = randn(tokens * H, 14, 0.5), out3 = randn(tokens * H, 15, 0.5);
        const r = compareWithCpu((ops: KernelOps) => {
          ops.moeCombine(out, src, probs, null, tokens, K, H);
          ops.moeCombine(out2, src, null, pos, tokens, K, H);
          ops.moeCombine(out3, src, probs, pos, tokens, K, H);
        }, { dtype, ...SUM_TOL[dtype] });
        expect(r.ok, r.summary).toBe(true);
      });
    }

    // (tokens, experts, topK, hidden): hidden below a warp, ragged, above the 256-thread block.
    const GATE_CASES: Array<[number, number, number, number]> = [[40, 8, 2, 32], [1, 6, 6, 50], [300, 64, 8, 1030], [17, 3, 1, 2049], [1000, 8, 2, 5]];
    for (const [tokens, E, K, H] of GATE_CASES) {
      it(`moeGateBackward ${dtype} ${tokens} tokens, top-${K} of ${E}, hidden ${H}`, () => {
        const { index, probs } = gate(tokens, E, K, 20 + E);
        const dOut = randn(tokens * H, 21), yc = randn(tokens * K * H, 22);
        const dLogits = randn(tokens * E, 23); // the whole row is written
        const r = compareWithCpu((ops: KernelOps) => ops.moeGateBackward(dLogits, dOut, yc, probs, index, tokens, E, K, H), {
          dtype, ...GATE_BACKWARD_TOL[dtype],
        });
        expect(r.ok, r.summary).toBe(true);
      });
    }
  }

  it('the weighted sums and the gate backward are deterministic: two runs agree bit for bit', () => {
    const tokens = 513, E = 8, K = 2, H = 777, copies = tokens * K;
    const { index, probs } = gate(tokens, E, K, 31);
    const pos = permutation(copies, 32);
    const src = CudaTensor.from(randn(copies * H, 33), 'bf16'), dOut = CudaTensor.from(randn(tokens * H, 34), 'bf16');
    const p = CudaTensor.from(probs, 'f32'), ix = CudaTensor.from(index, 'i32'), ps = CudaTensor.from(pos, 'i32');
    const start = randn(tokens * H, 35);
    const runs: Array<[Float32Array | Int32Array, Float32Array | Int32Array]> = [];
    try {
      for (let t = 0; t < 2; t++) {
        const out = CudaTensor.from(start, 'bf16'), dLogits = CudaTensor.empty(tokens * E, 'bf16');
        try {
          cudaRun('moeCombine', [out, src, p, ps], [tokens, K, H], []);
          cudaRun('moeGateBackward', [dLogits, dOut, src, p, ix], [tokens, E, K, H], []);
          cudaSynchronize();
          runs.push([out.download(), dLogits.download()]);
        } finally {
          out.free();
          dLogits.free();
        }
      }
    } finally {
      for (const x of [src, dOut, p, ix, ps]) x.free();
    }
    expect(firstMismatch(runs[1][0], runs[0][0])).toBe(-1);
    expect(firstMismatch(runs[1][1], runs[0][1])).toBe(-1);
  });

  it('moeTopK refuses a topK above 32 on CUDA, naming it', () => {
    const tokens = 2, E = 40, K = 33;
    const index = CudaTensor.empty(tokens * K, 'i32'), probs = CudaTensor.empty(tokens * K, 'f32'), logits = CudaTensor.from(randn(tokens * E, 40), 'f32');
    try {
      expect(() => cudaRun('moeTopK', [index, probs, logits], [tokens, E, K], [])).toThrow(/moeTopK \(cuda\): topK 33 is above the 32/);
    } finally {
      for (const x of [index, probs, logits]) x.free();
    }
  });
});
