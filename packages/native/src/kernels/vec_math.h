// Branch-free float math that the compiler vectorises inside loops (-O3): exp, tanh, and sums and
// maxima with fixed lanes. std::exp / std::tanh are scalar library calls (about 15-20 ns each),
// which made GELU and the softmax of attention several times slower than PyTorch's vectorised
// kernels. The lane reductions add in a fixed order, so every result stays independent of the
// thread count.
#pragma once
#include <cstdint>
#include <cstring>

namespace mist {
namespace kernels {

// 16 floats as one GCC/Clang vector (one AVX-512 register, two AVX2 ones, four NEON ones): loops
// written with it vectorise whatever the compiler's cost model says about the scalar form.
typedef float V16 __attribute__((vector_size(64)));
typedef int32_t V16i __attribute__((vector_size(64)));

inline V16 Load16(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store16(float* p, V16 v) { std::memcpy(p, &v, sizeof(v)); }
inline V16 Splat(float x) { return V16{} + x; }

// Splat for either form: a float constant as a float, or on every lane of a V16.
inline float Constant(float, float c) { return c; }
inline V16 Constant(V16, float c) { return Splat(c); }

// e^r where e^x = 2^n e^r, x clamped, n = round(x / ln 2) (as x): the exact two-part reduction and Cephes'
// polynomial, written once for the scalar and the 16-lane form (same steps, same results).
template <typename T>
inline T ExpfMantissa(T x, T n) {
  T r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  T p = Constant(r, 1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.f;
}

/**
 * e^x in float: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts for an exact
 * reduction), e^r by the polynomial of Cephes' expf (S. L. Moshier, Cephes Math Library, expf.c:
 * 1 + r + r^2 P(r), P of degree 5), 2^n put into the exponent bits. Measured against double exp on
 * [-20, 0] in steps of 1e-4: at most 8.1e-8 relative error (glibc's expf: 6.0e-8), about 1 ulp.
 * Inputs are clamped to [-87.3, 88.3], so it never returns inf or a denormal: e^-87.3 is about
 * 1.2e-38 where exp would give a smaller number or 0, which no sum of probabilities can tell apart.
 */
inline float FastExp(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  // Round x / ln2 to the nearest integer with the 1.5 * 2^23 trick (no library call).
  const float kShift = 12582912.f;
  const float n = (x * 1.44269504088896341f + kShift) - kShift;
  const float p = ExpfMantissa(x, n);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

/**
 * e^x in double, measured relative error at most 3e-13 against std::exp on [-700, 700] (so e^x
 * rounded to float is almost always the correctly rounded float): x = n ln2 + r (Cody-Waite split of ln2, fdlibm's e_exp.c
 * constants), e^r by its Taylor series to r^10 / 10! (|r| <= ln2 / 2, truncation below 3e-12), 2^n
 * written into the exponent bits. n is read from the low mantissa bits of the rounding shift
 * (1.5 * 2^52), so no double-to-integer conversion is needed and the loop vectorises on AVX2 too.
 */
inline double ExpD(double x) {
  x = x < -700.0 ? -700.0 : x;
  x = x > 700.0 ? 700.0 : x;
  const double kShift = 6755399441055744.0;
  const double shifted = x * 1.4426950408889634 + kShift;
  const double n = shifted - kShift;
  double r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  double p = 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t nbits;
  std::memcpy(&nbits, &shifted, sizeof(nbits));
  const int64_t bits = (nbits + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

/** tanh(u) = 1 - 2 / (e^{2u} + 1): absolute error about 1e-7; exactly +-1 for large |u|. */
inline float FastTanh(float u) { return 1.f - 2.f / (FastExp(2.f * u) + 1.f); }

/** 1 / (1 + e^-x). */
inline float FastSigmoid(float x) { return 1.f / (1.f + FastExp(-x)); }


/** FastExp on 16 lanes (the same steps, so the same results as the scalar form). */
inline V16 VecExp(V16 x) {
  const V16 lo = Splat(-87.3f), hi = Splat(88.3f), shift = Splat(12582912.f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const V16 n = (x * 1.44269504088896341f + shift) - shift;
  const V16 p = ExpfMantissa(x, n);
  const V16i bits = (__builtin_convertvector(n, V16i) + 127) << 23;
  return p * (V16)bits;  // a vector cast reinterprets the bits
}

constexpr int kLanes = 16;

/**
 * sum of term(i), i in [0, n), in kLanes interleaved partial sums combined in a fixed order: the one
 * lane reduction the sums below are made of (the term is inlined, so the loop vectorises as written).
 */
template <typename Term>
inline float LaneSumOf(int64_t n, Term term) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += term(j + l);
  }
  for (int64_t t = 0; j + t < n; ++t) acc[t] += term(j + t);
  float s = 0.f;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

/** sum of x[0, n). */
inline float LaneSum(const float* x, int64_t n) {
  return LaneSumOf(n, [x](int64_t i) { return x[i]; });
}

/** sum of a[i] * b[i], i in [0, n). */
inline float LaneDot(const float* a, const float* b, int64_t n) {
  return LaneSumOf(n, [a, b](int64_t i) { return a[i] * b[i]; });
}

/** sum of (x[i] - mu)^2, i in [0, n). */
inline float LaneSumSqDev(const float* x, int64_t n, float mu) {
  return LaneSumOf(n, [x, mu](int64_t i) { return (x[i] - mu) * (x[i] - mu); });
}

/** sum of a[i] * b[i] * c[i], i in [0, n). */
inline float LaneDot3(const float* a, const float* b, const float* c, int64_t n) {
  return LaneSumOf(n, [a, b, c](int64_t i) { return a[i] * b[i] * c[i]; });
}

/** max of x[0, n), n >= 1. */
inline float LaneMax(const float* x, int64_t n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = x[0];
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  }
  for (int64_t t = 0; j + t < n; ++t) acc[t] = x[j + t] > acc[t] ? x[j + t] : acc[t];
  float m = acc[0];
  for (int l = 1; l < kLanes; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

}  // namespace kernels
}  // namespace mist
