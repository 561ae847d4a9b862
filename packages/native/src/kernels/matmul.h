// Single-precision GEMM: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, all row-major.
// op(A) = A (stored [M,K]) or A^T (stored [K,M]); op(B) = B (stored [K,N]) or B^T (stored [N,K]).
// beta = 0 never reads C. Cache-blocked after Goto & van de Geijn (2008, "Anatomy of
// high-performance matrix multiplication"): B packed per (KC x NC) block, A per (MC x KC) block,
// a register-blocked MR x NR micro-kernel; blocks of C are spread over the thread pool. Every C
// element sums over K in the same order whatever the thread count, so results are reproducible.
#pragma once
#include <cstdint>

namespace mist {
namespace kernels {

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c);

/** Micro-kernel tile and vector width compiled into this build (for the benchmark's report). */
struct GemmConfig {
  int mr, nr, kc, mc, nc, vector_floats;
};
GemmConfig GetGemmConfig();

}  // namespace kernels
}  // namespace mist
