// What `mist profile --device cuda` measures: the shapes and sizes of the quick and the full GPU
// profile. The GEMM grid covers the layers' GEMMs at the sizes a GPU trains (tokens per micro-batch
// 1k-16k, hidden and FFN widths 1k-16k: QKV, projection and MLP of the catalog's 1-70B models per
// tensor-parallel rank); the element-wise ops run on 1M-64M elements with 1024-wide rows; attention
// from 512 to 8192 tokens at head sizes 64 and 128. Every sample lasts at least `sampleSeconds`
// (20 ms in the full grid), so host timers around a synchronize are accurate to well under 1%.
import { type AttentionCase, geometric, type MatmulShape, matmulGrid } from './grids';

/** Widths of the element-wise ops' tensors (see cuda-compute-bench.ts CUDA_OP_CASES). */
export interface CudaOpShape {
  /** Row width of norms, activations, residuals, dropout and embedding rows (a hidden size). */
  row: number;
  /** Sequence length of rope, the embedding's positions and the softmax's rows. */
  seq: number;
  /** Head size of rope (row / headDim heads). */
  headDim: number;
  /** Vocabulary of the embedding table and the cross-entropy's logits. */
  vocab: number;
}

export interface CudaProfileGrid {
  /** GEMMs c[m,n] = a[m,k] b[k,n] in the compute dtype, timed on the device (CUDA events). */
  matmul: MatmulShape[];
  /** Element counts of every element-wise op: multiples of row, vocab and seq * seq (the softmax's rows come in whole sequences). */
  elementSizes: number[];
  opShape: CudaOpShape;
  /** Causal flash attention forward and backward (head sizes the CUDA kernels have: 16, 32, 64, 128). */
  attention: AttentionCase[];
  /** Element counts of the device-memory copies (HBM bandwidth) and the optimizer step. */
  streamSizes: number[];
  /** Bytes of the pinned host<->device copies, each direction. */
  copyBytes: number[];
  /** Untimed samples of every point first, then `repeats` timed ones (the median is kept). */
  warmup: number;
  repeats: number;
  /** One sample (a group of calls and a synchronize, or one event-timed GEMM run) lasts about this long. */
  sampleSeconds: number;
  /** The GEMM that runs on the compute stream alone and beside copies on the comm stream. */
  overlapMatmul: MatmulShape;
  /** Samples of each overlap measurement (alone, beside copies). */
  overlapRepeats: number;
  /** Kernels per batch of the launch-overhead measurement: few and many tiny kernels. */
  dispatchFew: number;
  dispatchMany: number;
  /** GEMMs run this long before anything is timed (clocks up, modules loaded). */
  warmupSeconds: number;
  /** The executor probe (trainSingleProcess on the GPU): untimed and timed training steps; 0 steps leaves it out. */
  passWarmupSteps: number;
  passSteps: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GPU_OP_SHAPE: CudaOpShape = { row: 1024, seq: 1024, headDim: 128, vocab: 32768 };

export function cudaProfileGrid(quick: boolean): CudaProfileGrid {
  if (quick) {
    return {
      matmul: matmulGrid([1024, 8192], [1024, 4096, 8192], 1.2e12),
      elementSizes: [1 << 20, 1 << 22, 1 << 24],
      opShape: GPU_OP_SHAPE,
      attention: [
        { batch: 4, seq: 1024, heads: 16, headDim: 64 },
        { batch: 2, seq: 2048, heads: 16, headDim: 128 },
        { batch: 1, seq: 4096, heads: 32, headDim: 128 },
      ],
      streamSizes: [1 << 20, 1 << 22, 1 << 24, 1 << 26],
      copyBytes: [256 * KiB, 4 * MiB, 64 * MiB],
      warmup: 1,
      repeats: 3,
      sampleSeconds: 0.01,
      overlapMatmul: { m: 4096, n: 4096, k: 4096 },
      overlapRepeats: 3,
      dispatchFew: 16,
      dispatchMany: 528,
      warmupSeconds: 0.5,
      passWarmupSteps: 10,
      passSteps: 10,
    };
  }
  return {
    matmul: matmulGrid([1024, 4096, 16384], [1024, 2048, 4096, 8192, 16384], 2.2e12),
    elementSizes: geometric(1 << 20, 1 << 26, 4),
    opShape: GPU_OP_SHAPE,
    attention: [
      { batch: 8, seq: 512, heads: 16, headDim: 64 },
      { batch: 4, seq: 1024, heads: 16, headDim: 64 },
      { batch: 2, seq: 2048, heads: 16, headDim: 128 },
      { batch: 1, seq: 4096, heads: 32, headDim: 128 },
      { batch: 1, seq: 8192, heads: 16, headDim: 128 },
    ],
    streamSizes: geometric(1 << 20, 1 << 27, 2),
    copyBytes: geometric(64 * KiB, 256 * MiB, 4),
    warmup: 2,
    repeats: 5,
    sampleSeconds: 0.02,
    overlapMatmul: { m: 8192, n: 8192, k: 8192 },
    overlapRepeats: 5,
    dispatchFew: 16,
    dispatchMany: 1040,
    warmupSeconds: 1,
    passWarmupSteps: 20,
    passSteps: 20,
  };
}

/**
 * A smoke-test grid: every kind of measurement with two to four small points (the simulated
 * runtime of the tests, and a first look on a GPU in seconds).
 */
export const CUDA_SMOKE_GRID: CudaProfileGrid = {
  matmul: [{ m: 64, n: 64, k: 64 }, { m: 128, n: 128, k: 128 }, { m: 256, n: 256, k: 256 }, { m: 128, n: 256, k: 512 }],
  elementSizes: [4096, 16384],
  opShape: { row: 64, seq: 16, headDim: 16, vocab: 256 },
  attention: [{ batch: 2, seq: 64, heads: 2, headDim: 16 }, { batch: 1, seq: 128, heads: 2, headDim: 32 }],
  streamSizes: [16384, 65536, 262144],
  copyBytes: [64 * KiB, MiB],
  warmup: 1,
  repeats: 3,
  sampleSeconds: 0.001,
  overlapMatmul: { m: 256, n: 256, k: 256 },
  overlapRepeats: 3,
  dispatchFew: 4,
  dispatchMany: 68,
  warmupSeconds: 0.01,
  passWarmupSteps: 1,
  passSteps: 2,
};

/** Throws a RangeError naming the field when a grid's sizes do not fit the op shapes (checked before anything runs). */
export function checkCudaGrid(g: CudaProfileGrid): void {
  const fail = (field: string, why: string): never => {
    throw new RangeError(`cuda profile grid: ${field} ${why}`);
  };
  const posInt = (v: number): boolean => Number.isInteger(v) && v > 0;
  const { row, seq, headDim, vocab } = g.opShape;
  for (const [k, v] of Object.entries(g.opShape)) if (!posInt(v)) fail(`opShape.${k}`, `must be a positive integer, got ${v}`);
  if (row % headDim !== 0) fail('opShape.row', `must be a multiple of opShape.headDim ${headDim} (rope's heads), got ${row}`);
  if (headDim % 2 !== 0) fail('opShape.headDim', `must be even (rope rotates pairs), got ${headDim}`);
  const lists: Array<[string, number[]]> = [['matmul', g.matmul.map((s) => s.m * s.n * s.k)], ['elementSizes', g.elementSizes],
    ['attention', g.attention.map((a) => a.batch * a.seq * a.heads * a.headDim)], ['streamSizes', g.streamSizes], ['copyBytes', g.copyBytes]];
  for (const [name, list] of lists) {
    if (list.length === 0) fail(name, 'must not be empty');
    if (!list.every(posInt)) fail(name, 'must hold positive integers');
  }
  if (g.matmul.length < 2 || g.streamSizes.length < 2 || g.copyBytes.length < 2) fail('matmul, streamSizes and copyBytes', 'need at least 2 points each (a line is fitted)');
  for (const n of g.elementSizes) {
    if (n % row !== 0 || n % vocab !== 0 || n % (seq * seq) !== 0) {
      fail('elementSizes', `must be multiples of opShape.row ${row}, opShape.vocab ${vocab} and opShape.seq^2 ${seq * seq}, got ${n}`);
    }
  }
  for (const a of g.attention) {
    if (![16, 32, 64, 128].includes(a.headDim)) fail('attention.headDim', `must be 16, 32, 64 or 128 (the CUDA kernels' head sizes), got ${a.headDim}`);
  }
  for (const b of g.copyBytes) if (b % 4 !== 0) fail('copyBytes', `must be multiples of 4, got ${b}`);
  for (const k of ['warmup', 'passWarmupSteps', 'passSteps'] as const) if (!(Number.isInteger(g[k]) && g[k] >= 0)) fail(k, `must be an integer >= 0, got ${g[k]}`);
  for (const k of ['repeats', 'overlapRepeats', 'dispatchFew'] as const) if (!posInt(g[k])) fail(k, `must be a positive integer, got ${g[k]}`);
  if (!(Number.isInteger(g.dispatchMany) && g.dispatchMany > g.dispatchFew)) fail('dispatchMany', `must be an integer above dispatchFew ${g.dispatchFew}, got ${g.dispatchMany}`);
  if (!(g.sampleSeconds > 0)) fail('sampleSeconds', `must be positive, got ${g.sampleSeconds}`);
  if (!(g.warmupSeconds >= 0)) fail('warmupSeconds', `must be >= 0, got ${g.warmupSeconds}`);
}
