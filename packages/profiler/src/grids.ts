// What a profile measures: the shapes and sizes of the quick and the full profile. The matmul grid
// covers the GEMMs of the transformer families at the sizes a CPU backend trains (hidden 64-2048,
// tokens per micro-batch 64-4096; the catalog's *-tiny models use hidden 64, ffn 176-256, vocab 256).

export interface MatmulShape {
  m: number;
  n: number;
  k: number;
}

export interface AttentionCase {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
}

export interface ProfileGrid {
  matmul: MatmulShape[];
  /** Element counts of every element-wise op (multiples of 16384: 256-wide rows, 64-token sequences). */
  elementSizes: number[];
  attention: AttentionCase[];
  /** Element counts of the memory-bandwidth copies and the optimizer step. */
  streamSizes: number[];
  /** Bytes of the host<->device copies. */
  copyBytes: number[];
  /** Full-tensor bytes of every collective (multiples of 4 * 4 * ranks). */
  collectiveBytes: number[];
  /** Local ranks the collectives run among. */
  collectiveRanks: number[];
  warmup: number;
  repeats: number;
  /** Runs grouped into one sample last about this long. */
  sampleSeconds: number;
  /** Samples of the overlap measurements (compute alone, beside a collective, beside a copy). */
  overlapRepeats: number;
  /** GEMMs run this long before anything is timed (threads and clocks awake). */
  warmupSeconds: number;
  /** Duration of the FMA peak measurement. */
  fmaSeconds: number;
  /**
   * Training steps of the executor probe (runtime-bench.ts), after `passWarmupSteps` untimed ones, in
   * each of `passRounds` rounds. The JavaScript of a fresh worker takes about 15 steps to reach its
   * speed: on a 2-core VM, gpt-tiny's host cost per pass was 0.2-0.3 ms in steps 1-10, 0.4 ms in
   * steps 11-15 (the optimizing compiler at work), then 0.09-0.2 ms.
   */
  passSteps: number;
  passWarmupSteps: number;
  passRounds: number;
}

/** Every (m, n, k) of the lists whose GEMM is at most maxFlops FLOPs. */
export function matmulGrid(ms: number[], dims: number[], maxFlops: number): MatmulShape[] {
  const out: MatmulShape[] = [];
  for (const m of ms) for (const n of dims) for (const k of dims) if (2 * m * n * k <= maxFlops) out.push({ m, n, k });
  return out;
}

/** from, from * factor, ... up to `to`. */
export const geometric = (from: number, to: number, factor: number): number[] => {
  const out: number[] = [];
  for (let v = from; v <= to; v *= factor) out.push(v);
  return out;
};

const KiB = 1024;
const MiB = 1024 * KiB;

export function profileGrid(quick: boolean): ProfileGrid {
  if (quick) {
    return {
      matmul: matmulGrid([64, 256, 1024], [64, 256, 1024], 2.2e9),
      elementSizes: [16384, 131072, 1048576, 4194304],
      attention: [
        { batch: 4, seq: 64, heads: 4, headDim: 16 },
        { batch: 2, seq: 256, heads: 4, headDim: 64 },
        { batch: 1, seq: 512, heads: 8, headDim: 64 },
      ],
      streamSizes: [262144, 1048576, 4194304, 16777216],
      copyBytes: [64 * KiB, MiB, 16 * MiB],
      collectiveBytes: [4 * KiB, 64 * KiB, MiB, 16 * MiB],
      collectiveRanks: [2],
      warmup: 1,
      repeats: 5,
      sampleSeconds: 0.002,
      overlapRepeats: 5,
      warmupSeconds: 0.3,
      fmaSeconds: 0.1,
      passSteps: 10,
      passWarmupSteps: 20,
      passRounds: 3,
    };
  }
  return {
    matmul: matmulGrid([16, 64, 256, 1024, 4096], [64, 128, 256, 512, 1024, 2048], 8.6e9),
    elementSizes: geometric(16384, 16777216, 4),
    attention: [
      { batch: 8, seq: 64, heads: 4, headDim: 16 },
      { batch: 4, seq: 128, heads: 4, headDim: 32 },
      { batch: 2, seq: 256, heads: 8, headDim: 64 },
      { batch: 1, seq: 512, heads: 8, headDim: 64 },
      { batch: 1, seq: 1024, heads: 8, headDim: 64 },
    ],
    streamSizes: geometric(65536, 16777216, 4),
    copyBytes: geometric(4 * KiB, 64 * MiB, 4),
    collectiveBytes: geometric(4 * KiB, 64 * MiB, 4),
    collectiveRanks: [2, 4],
    warmup: 2,
    repeats: 9,
    sampleSeconds: 0.005,
    overlapRepeats: 9,
    warmupSeconds: 1,
    fmaSeconds: 0.3,
    passSteps: 16,
    passWarmupSteps: 20,
    passRounds: 3,
  };
}

/** A smoke-test grid: every kind of measurement with two to four points, in a few seconds (tests). */
export const SMOKE_GRID: ProfileGrid = {
  matmul: [{ m: 64, n: 64, k: 64 }, { m: 128, n: 128, k: 128 }, { m: 256, n: 256, k: 256 }, { m: 128, n: 256, k: 512 }],
  elementSizes: [16384, 262144],
  attention: [{ batch: 2, seq: 32, heads: 2, headDim: 16 }],
  streamSizes: [262144, 2097152],
  copyBytes: [64 * KiB, MiB],
  collectiveBytes: [4 * KiB, 256 * KiB, 4 * MiB],
  collectiveRanks: [2],
  warmup: 1,
  repeats: 3,
  sampleSeconds: 0.0005,
  overlapRepeats: 3,
  warmupSeconds: 0.1,
  fmaSeconds: 0.05,
  passSteps: 2,
  passWarmupSteps: 1,
  passRounds: 1,
};
