// The CUDA causal grouped-query attention (cuda/kernels/attention.cu) against the CPU kernels of the
// same names on the same inputs, in f32 and in the 16-bit storage dtypes: the forward (out, lse), and
// the forward followed by the backward (whose out and lse come from each side's own forward). Shapes
// cover one token, sequences that are no multiple of the 64-row tiles and several tiles (17, 128,
// 300), full, grouped and single key/value heads, head sizes 16/32/64/128, and the default and a
// custom scale; and dropout p = 0.1 on the probabilities (both sides draw the same mask from the
// shared counter-based hash, so the outputs agree within the same tolerances as without dropout).
// Skipped (with the reason) where no GPU and kernels are available.
import { expect, it } from 'vitest';
import type { AttentionDropout, AttentionShape, KernelOps } from '../../kernels/ops';
import { compareWithCpu, CudaTensor, describeCuda } from '../testing/compare';
import { cudaRun } from '../tensor';
import { randn } from './values';

type Storage = 'f32' | 'bf16' | 'f16';
const DTYPES = ['f32', 'bf16', 'f16'] as const;

// Forward: both sides compute in fp32 (the CPU with its polynomial exp and another summation order,
// ~1e-7 relative); the 16-bit outputs are rounded once (2^-9, 2^-11 relative); lse is fp32 on both.
const FORWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 1e-5, rtol: 1e-4 },
  bf16: { atol: 1e-3, rtol: 1e-2 },
  f16: { atol: 5e-4, rtol: 2e-3 },
};
// Backward: sums of up to 300 products per gradient in another order. In 16-bit storage the CUDA side
// also reads its own rounded out through D_i = dout_i . out_i (the CPU its fp32 out), which moves
// dS = P (dP - D) by P * dD, and rounds the gradients once; a float64 model of exactly these two
// effects on these shapes stays within about 0.8 of the bf16/f16 tolerances below.
const BACKWARD_TOL: Record<Storage, { atol: number; rtol: number }> = {
  f32: { atol: 2e-5, rtol: 2e-4 },
  bf16: { atol: 2e-2, rtol: 2e-2 },
  f16: { atol: 5e-3, rtol: 1e-2 },
};

interface Case {
  name: string;
  shape: AttentionShape;
}

const CASES: Case[] = [];
for (const seq of [1, 17, 128, 300]) {
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
for (const seq of [17, 300]) {
  CASES.push({ name: `seq ${seq} headDim 32 kvHeads 2 scale default`, shape: { batch: 2, seq, heads: 4, kvHeads: 2, headDim: 32 } });
}
CASES.push({ name: 'batch 1 seq 65 headDim 64 kvHeads 1 heads 8', shape: { batch: 1, seq: 65, heads: 8, kvHeads: 1, headDim: 64 } });

// Dropout p = 0.1 with global offsets (a rank holding heads 4..7 of 12 and samples from 5 on), so a
// wrong term of the element index ((g * totalHeads + H) * seq + i) * seq + j changes the mask.
const DROPOUT: AttentionDropout = { p: 0.1, keyHi: 0x9e3779b9, keyLo: 0x7f4a7c15, sampleOffset: 5, headOffset: 4, totalHeads: 12 };
const DROPOUT_CASES: Case[] = [];
for (const seq of [17, 128, 300]) {
  for (const headDim of [16, 64, 128]) {
    DROPOUT_CASES.push({
      name: `dropout 0.1 seq ${seq} headDim ${headDim} kvHeads 2`,
      shape: { batch: 2, seq, heads: 4, kvHeads: 2, headDim, dropout: DROPOUT },
    });
  }
}
DROPOUT_CASES.push({
  name: 'dropout 0.1 seq 65 headDim 32 kvHeads 1 custom scale',
  shape: { batch: 1, seq: 65, heads: 4, kvHeads: 1, headDim: 32, scale: 0.2, dropout: DROPOUT },
});

function inputs(s: AttentionShape, seed: number) {
  const rows = s.batch * s.seq, qw = s.heads * s.headDim, kw = s.kvHeads * s.headDim;
  return {
    q: randn(rows * qw, seed),
    k: randn(rows * kw, seed + 1),
    v: randn(rows * kw, seed + 2),
    dout: randn(rows * qw, seed + 3),
    out: new Float32Array(rows * qw),
    lse: new Float32Array(s.batch * s.heads * s.seq),
    dq: new Float32Array(rows * qw),
    dk: new Float32Array(rows * kw),
    dv: new Float32Array(rows * kw),
  };
}

describeCuda('CUDA attention / attentionBackward against the CPU kernels', () => {
  for (const dtype of DTYPES) {
    it.each(CASES.map((c, i) => [c.name, c, i] as const))(`attention ${dtype} %s`, (_name, c, i) => {
      const x = inputs(c.shape, 100 + 7 * i);
      const r = compareWithCpu((ops: KernelOps) => ops.attention(x.out, x.lse, x.q, x.k, x.v, c.shape), {
        dtype,
        ...FORWARD_TOL[dtype],
      });
      expect(r.ok, r.summary).toBe(true);
    });

    it.each(CASES.map((c, i) => [c.name, c, i] as const))(`attentionBackward ${dtype} %s`, (_name, c, i) => {
      const x = inputs(c.shape, 500 + 7 * i);
      const r = compareWithCpu(
        (ops: KernelOps) => {
          ops.attention(x.out, x.lse, x.q, x.k, x.v, c.shape);
          ops.attentionBackward(x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, c.shape);
        },
        { dtype, ...BACKWARD_TOL[dtype] },
      );
      expect(r.ok, r.summary).toBe(true);
    });

    it.each(DROPOUT_CASES.map((c, i) => [c.name, c, i] as const))(`attention + attentionBackward ${dtype} %s`, (_name, c, i) => {
      const x = inputs(c.shape, 900 + 7 * i);
      const r = compareWithCpu(
        (ops: KernelOps) => {
          ops.attention(x.out, x.lse, x.q, x.k, x.v, c.shape);
          ops.attentionBackward(x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, c.shape);
        },
        { dtype, ...BACKWARD_TOL[dtype] },
      );
      expect(r.ok, r.summary).toBe(true);
    });
  }

  it('rejects head sizes without a kernel, naming the allowed ones', () => {
    const s: AttentionShape = { batch: 1, seq: 4, heads: 2, kvHeads: 1, headDim: 48 };
    const x = inputs(s, 1);
    expect(() =>
      compareWithCpu((ops: KernelOps) => ops.attention(x.out, x.lse, x.q, x.k, x.v, s), { dtype: 'f32', atol: 0, rtol: 0 }),
    ).toThrow(/headDim must be 16, 32, 64 or 128/);
  });

  it('rejects a dropout probability outside [0, 1) with the CPU kernel\'s message', () => {
    // Straight to the CUDA op (compareWithCpu would stop at the CPU kernel's own check first).
    const out = CudaTensor.empty(4 * 32, 'f32'), lse = CudaTensor.empty(8, 'f32'), q = CudaTensor.empty(4 * 32, 'f32');
    const kv = CudaTensor.empty(4 * 16, 'f32');
    try {
      const ints = [1, 4, 2, 1, 16, DROPOUT.keyHi, DROPOUT.keyLo, 0, 0, 12];
      expect(() => cudaRun('attention', [out, lse, q, kv, kv], ints, [0.25, 1])).toThrow(/dropout probability p must be in \[0, 1\)/);
      expect(() => cudaRun('attention', [out, lse, q, kv, kv], [...ints.slice(0, 8), 11, 12], [0.25, 0.1])).toThrow(
        /headOffset \+ heads <= totalHeads/,
      );
    } finally {
      for (const t of [out, lse, q, kv]) t.free();
    }
  });
});
