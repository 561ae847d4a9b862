// The GEMM behind the CUDA matmul op (cuda/ops/matmul.cc), shared with the GEMM benchmark
// (cuda/gemm_bench.cc): row-major C[m,n] = alpha * op(A) op(B), or C += that, on the compute stream,
// by cuBLASLt (cuda/cublaslt.h) or by the addon's own kernels (cuda/kernels/gemm.cu).
#pragma once
#include <cstdint>
#include <string>

#include "cuda/launch.h"

namespace mist::cuda {

// kAuto: cuBLASLt when it opened and has an algorithm for the problem, else the own kernel.
// kOwn: always the own kernel. kCublasLt: cuBLASLt or an error.
enum class GemmPath { kAuto, kOwn, kCublasLt };

// MIST_GEMM, read at every call: unset, "" or "auto" -> kAuto, "own" -> kOwn, "cublaslt" -> kCublasLt;
// anything else throws naming the variable.
GemmPath GemmPathFromEnv();
// Parses "auto" / "own" / "cublaslt" (the benchmark's `path`); throws on anything else.
GemmPath ParseGemmPath(const std::string& text, const char* what);

// Queues the product; every pointer holds a matrix of `dtype` (A m*k, B k*n, C m*n elements).
// Returns the path that ran: "own" or "cublaslt".
const char* RunGemm(GemmPath path, DType dtype, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
                    CUdeviceptr a, CUdeviceptr b, bool accumulate, CUdeviceptr c);

}  // namespace mist::cuda
