// cuBLASLt opened at run time (dlopen; declarations in cuda/cublaslt_abi.h), the library path the
// matmul op prefers for its GEMMs when it is there. Opening it needs no GPU: the probe only loads the
// library and binds the entry points, so backends() can report it on any machine; the handle, the
// 32 MiB workspace and the per-shape plans are created on the first GEMM.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/launch.h"

namespace mist::cuda {

struct CublasLtProbe {
  bool available = false;  // the library opened and every entry point bound
  std::string path;        // the library that was opened
  std::string reason;      // why not, when !available
  size_t version = 0;      // cublasLtGetVersion(), e.g. 130000 (0 when unknown)
};

// Opens libcublasLt once per process (thread-safe): MIST_CUBLASLT_PATH's entries first (files, or
// directories searched for the names below), then libcublasLt.so.13, .12, .11 and libcublasLt.so.
const CublasLtProbe& CublasLtStatus();

// Queues C = alpha * op(A) op(B) + beta * C on the device's compute stream with cuBLASLt, fp32
// compute (CUBLAS_COMPUTE_32F, no TF32) for every storage dtype; all matrices row-major as in
// kernels/matmul.h (A [m,k] or [k,m] when transA, B [k,n] or [n,k] when transB, C [m,n]), all of
// `dtype`. Returns false, having queued nothing, when cuBLASLt offers no algorithm for the problem
// (e.g. alignments it does not support); throws when the library is absent or a call fails.
bool CublasLtGemm(DType dtype, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, CUdeviceptr a,
                  CUdeviceptr b, float beta, CUdeviceptr c);

}  // namespace mist::cuda
