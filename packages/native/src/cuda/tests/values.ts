// Deterministic test values and exact JavaScript roundings to the storage dtypes for the CUDA op
// tests (independent of the addon's own conversions, so they can check them).
export type Storage = 'f32' | 'bf16' | 'f16';

/** mulberry32: a small deterministic generator of uniforms in [0, 1). */
export function uniforms(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n normal deviates times `scale` plus `shift` (Box-Muller). */
export function randn(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  const u = uniforms(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    out[i] = shift + scale * r * Math.cos(2 * Math.PI * u());
  }
  return out;
}

const bits = new Float32Array(1);
const bitsU = new Uint32Array(bits.buffer);

/** x (an fp32 value) rounded to the nearest bf16, ties to even; NaN stays NaN. */
export function roundBf16(x: number): number {
  bits[0] = x;
  const u = bitsU[0];
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  bitsU[0] = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  return bits[0];
}

/** x (an fp32 value) rounded to the nearest IEEE fp16, ties to even, with subnormals and overflow to infinity. */
export function roundF16(x: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (a >= 65520) return sign * Infinity; // halfway between 65504 and 2^16 rounds to the even, 2^16
  let e = -14; // subnormals share the quantum of the smallest normal binade
  if (a >= 2 ** -14) {
    e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--;
    else if (2 ** (e + 1) <= a) e++;
  }
  const quantum = 2 ** (e - 10);
  const t = a / quantum; // exact: quantum is a power of two
  const f = Math.floor(t);
  const d = t - f;
  const r = d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  return sign * r * quantum;
}

export function roundTo(dtype: Storage, x: number): number {
  return dtype === 'f32' ? Math.fround(x) : dtype === 'bf16' ? roundBf16(x) : roundF16(x);
}

/** Index of the first element where got and want differ (NaN equals NaN, -0 differs from 0), or -1. */
export function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (!(Number.isNaN(g) && Number.isNaN(w)) && !Object.is(g, w)) return i;
  }
  return -1;
}
