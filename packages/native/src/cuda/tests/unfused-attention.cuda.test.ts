// The CUDA unfused attention core (cuda/kernels/unfused_attention.cu: attentionScores, its query and
// key gradients, attentionValues, its probability and value gradients) against the CPU kernels of the
// same names (kernels/unfused_attention.cc) on the same inputs, in f32 and in the 16-bit storage
// dtypes. Each case runs all six ops on independent inputs in one comparison (the summary names the
// failing op's buffer). Shapes cover one token, sequences that are no multiple of the 64-row tiles
// or the 32-deep reduction slices and several tiles (17, 130, 200), full, grouped and single
// key/value heads (a group of 8 in one case), head sizes 16/64/128 and ones that leave partial
// feature tiles and slices (7, 33, 80), and the default and a custom scale.
//
// The inputs are chosen to catch what a mirror can get wrong: every output buffer starts with random
// values (the ops write, never accumulate), and the score-shaped inputs (probs, dscores) are random
// above the diagonal too, where the CPU never reads them (the CUDA kernels must mask them, not
// multiply them by zero). Skipped (with the reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { AttentionShape, KernelOps } from '../../kernels/ops';
import { compareWithCpu, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { randn } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;

// Both sides accumulate in fp32 in different orders. A float64 model of the two orders (sequential
// rounded multiply-add vs fused multiply-adds) on these magnitudes differs by at most about 1.1e-5
// on the unscaled 128-term dots (|value| up to ~40) and 2.4e-6 on the 1600-term key-row sums; the
// 16-bit outputs are also rounded once by CUDA (relative 2^-8 for bf16, 2^-11 for f16) while the CPU
// output stays fp32.
const TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 5e-5, rtol: 1e-4 },
  bf16: { atol: 1e-4, rtol: 1e-2 },
  f16: { atol: 1e-4, rtol: 2e-3 },
};

interface Case {
  name: string;
  shape: AttentionShape;
}

const CASES: Case[] = [];
for (const seq of [1, 17, 130]) {
  for (const headDim of [16, 64, 128]) {
    for (const kvHeads of [4, 2, 1]) {
      // A custom scale for the grouped heads (0.6x to 1.7x the default 1 / sqrt(headDim)).
      const scale = kvHeads === 2 ? 0.15 : undefined;
      CASES.push({
        name: `seq ${seq} headDim ${headDim} kvHeads ${kvHeads} scale ${scale ?? 'default'}`,
        shape: { batch: 2, seq, heads: 4, kvHeads, headDim, scale },
      });
    }
  }
}
// Head sizes that are no multiple of the 32-deep slice (row dots) or the 64-wide feature tile
// (weighted and key rows), one of them odd.
CASES.push({ name: 'seq 130 headDim 33 kvHeads 2 scale 0.2', shape: { batch: 2, seq: 130, heads: 4, kvHeads: 2, headDim: 33, scale: 0.2 } });
CASES.push({ name: 'seq 65 headDim 7 kvHeads 1 scale default', shape: { batch: 2, seq: 65, heads: 4, kvHeads: 1, headDim: 7 } });
// Eight query heads per key/value head summed by one block, four key tiles, two feature tiles.
CASES.push({ name: 'batch 1 seq 200 heads 8 kvHeads 1 headDim 80', shape: { batch: 1, seq: 200, heads: 8, kvHeads: 1, headDim: 80 } });

function inputs(s: AttentionShape, seed: number) {
  const rows = s.batch * s.seq, qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim;
  const scores = s.batch * s.heads * s.seq * s.seq;
  // Score-shaped inputs scaled like probabilities and their gradients (rows of ~seq terms of size
  // ~1/sqrt(seq)), so that the sums stay O(1) to O(10).
  const w = 1 / Math.sqrt(s.seq);
  return {
    q: randn(rows * qw, seed),
    k: randn(rows * kw, seed + 1),
    v: randn(rows * kw, seed + 2),
    dout: randn(rows * qw, seed + 3),
    probs: randn(scores, seed + 4, w),
    dscores: randn(scores, seed + 5, w),
    // Outputs, prefilled with garbage: every element must be overwritten.
    scores: randn(scores, seed + 6),
    dq: randn(rows * qw, seed + 7),
    dk: randn(rows * kw, seed + 8),
    out: randn(rows * qw, seed + 9),
    dprobs: randn(scores, seed + 10),
    dv: randn(rows * kw, seed + 11),
  };
}

describeCuda('CUDA unfused attention core against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    it.each(CASES.map((c, i) => [c.name, c, i] as const))(`six products ${dtype} %s`, (_name, c, i) => {
      const x = inputs(c.shape, 300 + 13 * i);
      const r = compareWithCpu((ops: KernelOps) => {
        ops.attentionScores(x.scores, x.q, x.k, c.shape);
        ops.attentionScoresGradQ(x.dq, x.dscores, x.k, c.shape);
        ops.attentionScoresGradK(x.dk, x.dscores, x.q, c.shape);
        ops.attentionValues(x.out, x.probs, x.v, c.shape);
        ops.attentionValuesGradProbs(x.dprobs, x.dout, x.v, c.shape);
        ops.attentionValuesGradV(x.dv, x.dout, x.probs, c.shape);
      }, { dtype, ...TOL[dtype] });
      expect(r.ok, r.summary).toBe(true);
    });
  }
});
