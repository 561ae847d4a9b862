// The CUDA causal softmax of the unfused attention core (cuda/kernels/softmax.cu: causalSoftmax,
// causalSoftmaxBackward) against the CPU kernels of the same name on the same inputs, in f32 and in
// the 16-bit storage dtypes, including the CPU's convention for the future (j > i): both directions
// write 0 there, whatever the output held. Skipped (with the reason) where no GPU and kernels are
// available.
import { expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, CudaTensor, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { cudaRun } from '../tensor';
import { randn } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// [seq, batch * heads]: a single key, a row shorter than a warp, one that is no multiple of 32
// (300: one block of 64 threads that loop), and seq 2048 (256 threads of 8 elements each).
const SHAPES: Array<[number, number]> = [[1, 5], [17, 6], [300, 3], [2048, 1]];

// Forward: exp (CUDA's expf vs the CPU's exp, a few ulp) and a sum of up to 2048 terms in another
// order (sequential on the CPU, a tree here: ~1e-6 relative); the 16-bit outputs are rounded once
// (2^-8, 2^-11 relative; f16 subnormals 2^-25 absolute).
const FORWARD_TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 1e-6, rtol: 3e-5 },
  bf16: { atol: 1e-6, rtol: 1e-2 },
  f16: { atol: 1e-6, rtol: 2e-3 },
};
// Backward: p * (dp - dot) with dot summed in another order; the subtraction can cancel, so the
// absolute tolerance carries the dot's rounding (|dot| <= max |dp| ~ 5, eps 6e-8, ~2048 terms).
const BACKWARD_TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 2e-6, rtol: 3e-5 },
  bf16: { atol: 1e-5, rtol: 1e-2 },
  f16: { atol: 2e-6, rtol: 2e-3 },
};

/** Causal softmax probabilities of `scores` [rows, seq] in double precision, 0 above the diagonal. */
function causalProbs(scores: Float32Array, rows: number, seq: number): Float32Array {
  const out = new Float32Array(rows * seq);
  for (let r = 0; r < rows; r++) {
    const i = r % seq, row = r * seq;
    let mx = -Infinity;
    for (let j = 0; j <= i; j++) mx = Math.max(mx, scores[row + j]);
    let sum = 0;
    for (let j = 0; j <= i; j++) sum += Math.exp(scores[row + j] - mx);
    for (let j = 0; j <= i; j++) out[row + j] = Math.exp(scores[row + j] - mx) / sum;
  }
  return out;
}

describeCuda('CUDA causalSoftmax / causalSoftmaxBackward against the CPU kernels', () => {
  const cases = DTYPES.flatMap((dtype) => SHAPES.map(([seq, bh]) => [dtype, seq, bh] as const));

  it.each(cases)('causalSoftmax %s seq=%i batch*heads=%i (and in place)', (dtype, seq, bh) => {
    const rows = bh * seq, n = rows * seq;
    // Scores with a spread (scale 3) and a large offset on some rows, so the max subtraction matters;
    // the output starts as noise, so the zeros above the diagonal must be written.
    const scores = randn(n, 1, 3).map((v, k) => (Math.floor(k / seq) % 3 === 0 ? v + 40 : v));
    const probs = randn(n, 2);
    const scores2 = randn(n, 3, 3);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.causalSoftmax(probs, scores, rows, seq);
      ops.causalSoftmax(scores2, scores2, rows, seq); // probs aliases scores
    }, { dtype, ...FORWARD_TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('causalSoftmaxBackward %s seq=%i batch*heads=%i (and in place)', (dtype, seq, bh) => {
    const rows = bh * seq, n = rows * seq;
    // Probabilities as the forward makes them (each side gets the same rounded copy); the gradient
    // of the probabilities is dense noise, also above the diagonal, which must not leak into dscores.
    const probs = causalProbs(randn(n, 4, 3), rows, seq);
    const dprobs = randn(n, 5, 2), dscores = randn(n, 6);
    const dprobs2 = randn(n, 7, 2);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.causalSoftmaxBackward(dscores, dprobs, probs, rows, seq);
      ops.causalSoftmaxBackward(dprobs2, dprobs2, probs, rows, seq); // dscores aliases dprobs
    }, { dtype, ...BACKWARD_TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(DTYPES)('causalSoftmax %s writes exact zeros above the diagonal and rows that sum to 1', (dtype) => {
    const seq = 17, rows = 2 * seq, n = rows * seq;
    const scores = CudaTensor.from(randn(n, 8, 3), dtype);
    const probs = CudaTensor.from(new Float32Array(n).fill(NaN), dtype);
    cudaRun('causalSoftmax', [probs, scores], [rows, seq], []);
    const p = probs.download() as Float32Array;
    for (let r = 0; r < rows; r++) {
      const i = r % seq;
      let sum = 0;
      for (let j = 0; j < seq; j++) {
        const v = p[r * seq + j];
        if (j > i) expect(Object.is(v, 0), `row ${r} key ${j}: ${v}`).toBe(true);
        else sum += v;
      }
      expect(Math.abs(sum - 1)).toBeLessThan(dtype === 'f32' ? 1e-5 : 2e-2);
    }
    // The first query of each sequence sees only itself: probability exactly 1.
    expect(p[0]).toBe(1);
    scores.free();
    probs.free();
  });

  it('rejects rows that are not a multiple of seq and short buffers', () => {
    const t = CudaTensor.from(new Float32Array(12), 'f32');
    expect(() => cudaRun('causalSoftmax', [t, t], [3, 2], [])).toThrow(/causalSoftmax \(cuda\): rows must be a multiple of seq/);
    expect(() => cudaRun('causalSoftmaxBackward', [t, t, t], [4, 4], [])).toThrow(/holds 12 elements, needs 16/);
    t.free();
  });
});
