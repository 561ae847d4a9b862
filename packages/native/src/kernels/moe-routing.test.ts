// The mixture-of-experts routing kernels (moe_routing.cc) against the TypeScript loops the executor
// ran before them (model/moe.ts), kept here as the reference: the kernels must reproduce them bit
// for bit, so moving the routing into kernels changes no training result.
import { describe, expect, it } from 'vitest';
import { kernels } from './index';
import { uniforms, randn } from '../cuda/tests/values';

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

/** Bitwise equality (NaN equals NaN, -0 differs from 0): the index of the first difference, or -1. */
function firstDifference(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return 0;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) return i;
  return -1;
}

// ---- The reference: model/moe.ts's loops before the kernels -------------------------------------

function gateRef(logits: Float32Array, tokens: number, E: number, K: number): { index: Float32Array; probs: Float32Array } {
  const probs = new Float32Array(tokens * K), index = new Float32Array(tokens * K);
  const chosen = new Int32Array(K);
  for (let n = 0; n < tokens; n++) {
    const row = n * E;
    for (let j = 0; j < K; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) {
        let taken = false;
        for (let i = 0; i < j; i++) if (chosen[i] === e) taken = true;
        if (!taken && (best < 0 || logits[row + e] > logits[row + best])) best = e;
      }
      chosen[j] = best;
    }
    const max = logits[row + chosen[0]];
    let sum = 0;
    for (let j = 0; j < K; j++) sum += Math.exp(logits[row + chosen[j]] - max);
    for (let j = 0; j < K; j++) {
      probs[n * K + j] = Math.exp(logits[row + chosen[j]] - max) / sum;
      index[n * K + j] = chosen[j];
    }
  }
  return { index, probs };
}

/** The dispatch copy (forward), and p * dOut written into send order (the weighted sum's backward). */
function gatherRef(dst: Float32Array, src: Float32Array, pos: Int32Array, probs: Float32Array | null, K: number, H: number): void {
  for (let c = 0; c < pos.length; c++) {
    const p = probs ? probs[c] : 1, t = Math.floor(c / K);
    for (let i = 0; i < H; i++) dst[pos[c] * H + i] = probs ? p * src[t * H + i] : src[t * H + i];
  }
}

function scatterRef(dst: Float32Array, src: Float32Array, pos: Int32Array, H: number): void {
  for (let c = 0; c < pos.length; c++) dst.set(src.subarray(pos[c] * H, (pos[c] + 1) * H), c * H);
}

/** The forward's weighted sum (probs, rows in token order). */
function weightedSumRef(out: Float32Array, yc: Float32Array, probs: Float32Array, tokens: number, K: number, H: number): void {
  for (let n = 0; n < tokens; n++) {
    for (let j = 0; j < K; j++) {
      const p = probs[n * K + j], row = (n * K + j) * H;
      for (let i = 0; i < H; i++) out[n * H + i] += p * yc[row + i];
    }
  }
}

/** The backward's sum of a token's copies' gradients (rows in send order). */
function copySumRef(dH2: Float32Array, ds: Float32Array, pos: Int32Array, K: number, H: number): void {
  for (let c = 0; c < pos.length; c++) {
    const to = Math.floor(c / K) * H, from = pos[c] * H;
    for (let i = 0; i < H; i++) dH2[to + i] += ds[from + i];
  }
}

function gateBackwardRef(dOut: Float32Array, yc: Float32Array, probs: Float32Array, index: ArrayLike<number>, tokens: number, E: number, K: number, H: number): Float32Array {
  const dLogits = new Float32Array(tokens * E);
  const dp = new Float64Array(K);
  for (let n = 0; n < tokens; n++) {
    let dot = 0;
    for (let j = 0; j < K; j++) {
      const c = n * K + j, p = probs[c];
      let d = 0;
      for (let i = 0; i < H; i++) d += yc[c * H + i] * dOut[n * H + i];
      dp[j] = d;
      dot += p * d;
    }
    for (let j = 0; j < K; j++) dLogits[n * E + index[n * K + j]] = probs[n * K + j] * (dp[j] - dot);
  }
  return dLogits;
}

// ---- Tests ---------------------------------------------------------------------------------------

/** Logits with many exact ties (small integers / 4) or with continuous values. */
function logitsOf(n: number, seed: number, ties: boolean): Float32Array {
  if (!ties) return randn(n, seed, 3);
  const u = uniforms(seed);
  return Float32Array.from({ length: n }, () => Math.floor(u() * 5) / 4);
}

describe('moeTopK', () => {
  const cases: Array<[string, number, number, number, boolean]> = [
    ['top-2 of 8, continuous', 1000, 8, 2, false],
    ['top-2 of 4 with ties', 500, 4, 2, true],
    ['top-1 of 4', 300, 4, 1, false],
    ['top-3 of 5 with ties', 400, 5, 3, true],
    ['top-6 of 64', 200, 64, 6, false],
    ['top-k = experts', 50, 3, 3, true],
  ];
  for (const [name, tokens, E, K, ties] of cases) {
    it(`matches the TypeScript gate bit for bit: ${name}`, () => {
      const logits = logitsOf(tokens * E, tokens + E + K, ties);
      const want = gateRef(logits, tokens, E, K);
      const index = new Int32Array(tokens * K), probs = new Float32Array(tokens * K);
      kernels.moeTopK(index, probs, logits, tokens, E, K);
      expect(firstDifference(index, want.index)).toBe(-1);
      expect(firstDifference(probs, want.probs)).toBe(-1);
    });
  }

  it('treats NaN and infinite logits as the TypeScript comparisons do', () => {
    const E = 5, K = 3;
    const rows = [
      [NaN, 1, 2, 3, 4], // a NaN first candidate is kept
      [1, NaN, 3, NaN, 2], // later NaNs are never larger
      [Infinity, 0, Infinity, -Infinity, 1],
      [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity],
      [2, 2, 2, 2, 2],
    ];
    const logits = Float32Array.from(rows.flat());
    const want = gateRef(logits, rows.length, E, K);
    const index = new Int32Array(rows.length * K), probs = new Float32Array(rows.length * K);
    kernels.moeTopK(index, probs, logits, rows.length, E, K);
    expect(firstDifference(index, want.index)).toBe(-1);
    expect(firstDifference(probs, want.probs)).toBe(-1);
  });

  it('rejects topK above the experts', () => {
    expect(() => kernels.moeTopK(new Int32Array(8), new Float32Array(8), new Float32Array(6), 2, 3, 4)).toThrow(/topK 4 exceeds the 3 experts/);
  });
});

describe('moe row movement and weighted sums', () => {
  const shapes: Array<[number, number, number]> = [[37, 2, 24], [16, 1, 64], [9, 3, 5], [1, 4, 33]];
  for (const [tokens, K, H] of shapes) {
    const copies = tokens * K;
    const pos = permutation(copies, copies + H);
    const src = randn(tokens * H, 3 + H);
    const probs = Float32Array.from(randn(copies, 5), (v) => 1 / (1 + Math.exp(-v)));

    it(`moeGatherRows: the dispatch copy and the probability-scaled copy (${tokens} tokens, top-${K}, hidden ${H})`, () => {
      for (const p of [null, probs]) {
        const want = new Float32Array(copies * H), got = new Float32Array(copies * H).fill(7);
        gatherRef(want, src, pos, p, K, H);
        kernels.moeGatherRows(got, src, pos, p, tokens, K, H);
        expect(firstDifference(got, want)).toBe(-1);
      }
    });

    it(`moeScatterRows: back to token order (${tokens} tokens, top-${K}, hidden ${H})`, () => {
      const rows = randn(copies * H, 11);
      const want = new Float32Array(copies * H), got = new Float32Array(copies * H).fill(-3);
      scatterRef(want, rows, pos, H);
      kernels.moeScatterRows(got, rows, pos, tokens, K, H);
      expect(firstDifference(got, want)).toBe(-1);
    });

    it(`moeCombine: the weighted sum and the copies' gradient sum, accumulated (${tokens} tokens, top-${K}, hidden ${H})`, () => {
      const rows = randn(copies * H, 13);
      const start = randn(tokens * H, 17, 0.5);
      const want = Float32Array.from(start), got = Float32Array.from(start);
      weightedSumRef(want, rows, probs, tokens, K, H);
      kernels.moeCombine(got, rows, probs, null, tokens, K, H);
      expect(firstDifference(got, want)).toBe(-1);
      const want2 = Float32Array.from(start), got2 = Float32Array.from(start);
      copySumRef(want2, rows, pos, K, H);
      kernels.moeCombine(got2, rows, null, pos, tokens, K, H);
      expect(firstDifference(got2, want2)).toBe(-1);
    });
  }

  it('rejects positions that are not a permutation of the copies', () => {
    const dst = new Float32Array(4 * 3), src = new Float32Array(2 * 3);
    expect(() => kernels.moeGatherRows(dst, src, Int32Array.from([0, 1, 1, 3]), null, 2, 2, 3)).toThrow(/repeats an earlier row/);
    expect(() => kernels.moeGatherRows(dst, src, Int32Array.from([0, 1, 2, 4]), null, 2, 2, 3)).toThrow(/outside the 4 rows/);
    expect(() => kernels.moeScatterRows(dst, dst, Int32Array.from([0, -1, 2, 3]), 2, 2, 3)).toThrow(/outside the 4 rows/);
  });
});

describe('moeGateBackward', () => {
  const cases: Array<[number, number, number, number]> = [[40, 8, 2, 32], [25, 4, 1, 16], [12, 5, 3, 7], [1, 6, 6, 50]];
  for (const [tokens, E, K, H] of cases) {
    it(`matches the TypeScript backward bit for bit (${tokens} tokens, top-${K} of ${E}, hidden ${H})`, () => {
      const logits = randn(tokens * E, tokens + E, 2);
      const g = gateRef(logits, tokens, E, K);
      const index = Int32Array.from(g.index);
      const dOut = randn(tokens * H, 21), yc = randn(tokens * K * H, 22);
      const want = gateBackwardRef(dOut, yc, g.probs, index, tokens, E, K, H);
      const got = new Float32Array(tokens * E).fill(9);
      kernels.moeGateBackward(got, dOut, yc, g.probs, index, tokens, E, K, H);
      expect(firstDifference(got, want)).toBe(-1);
    });
  }

  it('is the gradient of the weighted sum through the top-k softmax (central differences in the logits)', () => {
    const tokens = 6, E = 5, K = 3, H = 8;
    const logits = randn(tokens * E, 31);
    const yc = randn(tokens * K * H, 32), w = randn(tokens * H, 33);
    const { index } = gateRef(logits, tokens, E, K);
    // Loss = sum w * out with out = sum_j softmax(chosen logits)_j * yc (the choice held fixed).
    const loss = (l: Float64Array): number => {
      let s = 0;
      for (let n = 0; n < tokens; n++) {
        const z = Array.from({ length: K }, (_, j) => l[n * E + index[n * K + j]]);
        const m = Math.max(...z), ez = z.map((v) => Math.exp(v - m)), sum = ez.reduce((a, b) => a + b, 0);
        for (let j = 0; j < K; j++) for (let i = 0; i < H; i++) s += w[n * H + i] * (ez[j] / sum) * yc[(n * K + j) * H + i];
      }
      return s;
    };
    const probs = new Float32Array(tokens * K), idx = new Int32Array(tokens * K);
    kernels.moeTopK(idx, probs, logits, tokens, E, K);
    const got = new Float32Array(tokens * E);
    kernels.moeGateBackward(got, w, yc, probs, idx, tokens, E, K, H);
    const l = Float64Array.from(logits), eps = 1e-5;
    for (let i = 0; i < l.length; i++) {
      const x = l[i];
      l[i] = x + eps;
      const up = loss(l);
      l[i] = x - eps;
      const down = loss(l);
      l[i] = x;
      expect(got[i]).toBeCloseTo((up - down) / (2 * eps), 4);
    }
  });

  it('rejects an expert index outside the experts', () => {
    const index = Int32Array.from([0, 3]);
    expect(() => kernels.moeGateBackward(new Float32Array(3), new Float32Array(2), new Float32Array(4), new Float32Array(2), index, 1, 3, 2, 2)).toThrow(/outside the 3 experts/);
  });
});
