// The CUDA dropout ops (cuda/kernels/dropout.cu: dropout, dropoutAdd, dropoutBackward,
// attentionProbsDropout) against the CPU kernels of the same name on the same inputs, in f32 and in
// the 16-bit storage dtypes. The masks must equal the CPU's bit for bit (compareWithCpu compares 'm'
// buffers word for word): the same elements are dropped on both backends. Skipped (with the reason)
// where no GPU and kernels are available.
import { expect, it } from 'vitest';
import { type AttentionDropout, type AttentionShape, type KernelOps, maskFloats } from '../../kernels/ops';
import { compareWithCpu, CudaTensor, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { cudaRun } from '../tensor';
import { randn, uniforms } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;
const PS = [0, 0.1, 0.5] as const;

// Each output is one fp32 product (and, for dropoutAdd, one sum) of the same rounded inputs on both
// sides: f32 agrees to the last bit or so (the CPU compiler may fuse dropoutAdd's multiply-add);
// bf16/f16 outputs are rounded once (half an ulp: 2^-8 and 2^-11 relative; f16 subnormals 2^-25
// absolute).
const TOL: Record<StorageDType, { atol: number; rtol: number }> = {
  f32: { atol: 1e-7, rtol: 1e-6 },
  bf16: { atol: 1e-6, rtol: 1e-2 },
  f16: { atol: 1e-6, rtol: 2e-3 },
};

/**
 * A mask buffer for n elements whose every byte starts as 0x07: the kernels must overwrite the n mask
 * bytes and leave the bytes past n in the last word alone (the CPU writes bytes, not words). 0x07070707
 * is a finite float, so no copy of the buffer can canonicalise it as a NaN.
 */
function freshMask(n: number): Float32Array {
  const mask = new Float32Array(maskFloats(n));
  new Uint32Array(mask.buffer).fill(0x07070707);
  return mask;
}

// [rows, cols, rowOffset]: one element, one row with a ragged word, a tail of 1 mask byte, a width
// that is no multiple of 4 (words straddle rows) with a large offset; and (at p = 0.1 only, to keep
// the run short) one with more mask words (1.09M) than the launcher's grid has threads (32 blocks of
// 256 per multiprocessor: 1.08M on 132), so the grid-stride loop goes round twice.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 0],
  [1, 7, 3],
  [37, 33, 5],
  [1000, 1001, 123457],
];
const LARGE: [number, number, number] = [4099, 1063, 9];

describeCuda('CUDA dropout / dropoutAdd / dropoutBackward against the CPU kernels', () => {
  const cases = DTYPES.flatMap((dtype) => [
    ...PS.flatMap((p) => SHAPES.map((s) => [dtype, p, s] as const)),
    [dtype, 0.1, LARGE] as const,
  ]);

  it.each(cases)('dropout and its backward %s p=%f [rows, cols, rowOffset]=%j', (dtype, p, [rows, cols, rowOffset]) => {
    const n = rows * cols;
    const d = { p, keyHi: 0x9e3779b9, keyLo: 12345 + n };
    const x = randn(n, 1), out = randn(n, 2), mask = freshMask(n);
    const x2 = randn(n, 3), mask2 = freshMask(n);
    const dy = randn(n, 4), dx = randn(n, 5), dy2 = randn(n, 6);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.dropout(out, mask, x, rows, cols, rowOffset, d);
      ops.dropout(x2, mask2, x2, rows, cols, rowOffset, { ...d, keyLo: d.keyLo + 1 }); // out aliases x
      ops.dropoutBackward(dx, mask, dy, p); // the forward's mask, read back
      ops.dropoutBackward(dy2, mask, dy2, p); // dx aliases dy
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(cases)('dropoutAdd %s p=%f [rows, cols, rowOffset]=%j', (dtype, p, [rows, cols, rowOffset]) => {
    const n = rows * cols;
    const d = { p, keyHi: 7, keyLo: 0xfffffff0 };
    const stream = randn(n, 11), branch = randn(n, 12), out = randn(n, 13), mask = freshMask(n);
    const stream2 = randn(n, 14), branch2 = randn(n, 15), mask2 = freshMask(n);
    const stream3 = randn(n, 16), branch3 = randn(n, 17), mask3 = freshMask(n);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.dropoutAdd(out, mask, stream, branch, rows, cols, rowOffset, d);
      ops.dropoutAdd(stream2, mask2, stream2, branch2, rows, cols, rowOffset, d); // out aliases stream
      ops.dropoutAdd(branch3, mask3, stream3, branch3, rows, cols, rowOffset + 1, d); // out aliases branch
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it.each(DTYPES)('dropoutBackward %s reads any non-zero mask byte as kept and ignores the bytes past n', (dtype) => {
    const n = 1001;
    const mask = new Float32Array(maskFloats(n));
    const bytes = new Uint8Array(mask.buffer);
    const u = uniforms(21);
    // Bytes 0, 1 and 2 (the CPU tests mask[i] != 0); the 3 bytes past n are 0x05, kept or not.
    for (let i = 0; i < bytes.length; i++) bytes[i] = i < n ? Math.floor(u() * 3) : 0x05;
    const dy = randn(n, 22), dx = randn(n, 23);
    const r = compareWithCpu((ops: KernelOps) => ops.dropoutBackward(dx, mask, dy, 0.3), { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it('keeps about 1 - p of the elements', () => {
    const rows = 300, cols = 1001, n = rows * cols, p = 0.3;
    const x = CudaTensor.from(new Float32Array(n).fill(1), 'f32');
    const mask = CudaTensor.from(new Float32Array(maskFloats(n)), 'f32');
    cudaRun('dropout', [x, mask, x], [rows, cols, 0, 1, 2], [p]);
    const words = mask.download() as Float32Array;
    const bytes = new Uint8Array(words.buffer, words.byteOffset, n);
    const kept = bytes.reduce((s, b) => s + b, 0);
    // Binomial(n, 0.7): the standard deviation is 250, so 1% (3000) is 12 standard deviations.
    expect(Math.abs(kept / n - (1 - p))).toBeLessThan(0.01);
    const values = x.download() as Float32Array;
    for (const i of [0, 1, 2, 3, n - 1]) expect(values[i]).toBe(bytes[i] ? Math.fround(1 / (1 - p)) : 0);
    x.free();
    mask.free();
  });

  it('rejects what the CPU kernel rejects', () => {
    const x = CudaTensor.from(new Float32Array(10), 'f32');
    const mask = CudaTensor.from(new Float32Array(3), 'f32');
    const short = CudaTensor.from(new Float32Array(2), 'f32');
    expect(() => cudaRun('dropout', [x, mask, x], [2, 5, 0, 1, 2], [1])).toThrow(/dropout \(cuda\): dropout probability p must be in \[0, 1\)/);
    expect(() => cudaRun('dropout', [x, mask, x], [2, 5, -1, 1, 2], [0.1])).toThrow(/rowOffset must be >= 0/);
    expect(() => cudaRun('dropout', [x, mask, x], [2, 5, 0, 2 ** 32, 2], [0.1])).toThrow(/keyHi and keyLo/);
    expect(() => cudaRun('dropout', [x, short, x], [2, 5, 0, 1, 2], [0.1])).toThrow(/buffer mask holds 2 elements, needs 3/);
    expect(() => cudaRun('dropoutBackward', [x, mask, x], [10], [-0.1])).toThrow(/dropoutBackward \(cuda\): dropout probability/);
    for (const t of [x, mask, short]) t.free();
  });
});

// Attention shapes with where the call sits in the whole batch: one element; seq 17 (seq^2 = 289, so
// mask words straddle the (sample, head) blocks) with grouped-query heads and offsets; seq 300; and
// (at p = 0.1 only) one with more mask words than the grid has threads.
interface ProbsCase {
  name: string;
  shape: AttentionShape;
  place: Omit<AttentionDropout, 'p' | 'keyHi' | 'keyLo'>;
}
const PROBS_CASES: ProbsCase[] = [
  { name: '1x1x1', shape: { batch: 1, seq: 1, heads: 1, kvHeads: 1, headDim: 1 }, place: { sampleOffset: 0, headOffset: 0, totalHeads: 1 } },
  { name: 'b2 s17 h3 gqa', shape: { batch: 2, seq: 17, heads: 3, kvHeads: 1, headDim: 4 }, place: { sampleOffset: 5, headOffset: 2, totalHeads: 7 } },
  { name: 'b1 s300 h2', shape: { batch: 1, seq: 300, heads: 2, kvHeads: 2, headDim: 8 }, place: { sampleOffset: 3, headOffset: 0, totalHeads: 2 } },
];
const PROBS_LARGE: ProbsCase = {
  name: 'b2 s601 h6',
  shape: { batch: 2, seq: 601, heads: 6, kvHeads: 3, headDim: 8 },
  place: { sampleOffset: 1, headOffset: 6, totalHeads: 12 },
};

describeCuda('CUDA attentionProbsDropout against the CPU kernel', () => {
  const cases = DTYPES.flatMap((dtype) => [
    ...PS.flatMap((p) => PROBS_CASES.map((c) => [dtype, p, c.name, c] as const)),
    [dtype, 0.1, PROBS_LARGE.name, PROBS_LARGE] as const,
  ]);

  it.each(cases)('attentionProbsDropout %s p=%f %s', (dtype, p, _name, c) => {
    const { batch, seq, heads } = c.shape;
    const n = batch * heads * seq * seq;
    const dropout: AttentionDropout = { p, keyHi: 0xdeadbeef, keyLo: 42, ...c.place };
    const s = { ...c.shape, dropout };
    const u = uniforms(31);
    const probs = new Float32Array(n).map(() => u());
    const out = randn(n, 32), mask = freshMask(n);
    const probs2 = new Float32Array(n).map(() => u()), mask2 = freshMask(n);
    const dy = randn(n, 33), dx = randn(n, 34);
    const r = compareWithCpu((ops: KernelOps) => {
      ops.attentionProbsDropout(out, mask, probs, s);
      ops.attentionProbsDropout(probs2, mask2, probs2, s); // out aliases probs
      ops.dropoutBackward(dx, mask, dy, p); // the unfused backward reads the mask back this way
    }, { dtype, ...TOL[dtype] });
    expect(r.ok, r.summary).toBe(true);
  });

  it('rejects a head range beyond totalHeads and kvHeads that do not divide heads', () => {
    const n = 2 * 4 * 4;
    const out = CudaTensor.from(new Float32Array(n), 'f32');
    const mask = CudaTensor.from(new Float32Array(maskFloats(n)), 'f32');
    const core = [1, 4, 2, 2, 8];
    expect(() => cudaRun('attentionProbsDropout', [out, mask, out], [...core, 1, 2, 0, 1, 2], [0.1])).toThrow(
      /headOffset \+ heads <= totalHeads/,
    );
    expect(() => cudaRun('attentionProbsDropout', [out, mask, out], [1, 4, 2, 3, 8, 1, 2, 0, 0, 2], [0.1])).toThrow(
      /kvHeads must divide heads/,
    );
    out.free();
    mask.free();
  });
});
