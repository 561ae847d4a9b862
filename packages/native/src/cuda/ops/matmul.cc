// Launcher of the CUDA matmul op, with the buffers, integers and floats of the CPU kernel of the
// same name (kernels/matmul.cc, ops.ts):
//   matmul  [c x, a x, b x]  ints [m, n, k, transA, transB, accumulate]  floats [alpha]
// c[m,n] = alpha * op(a) op(b), or c += that when accumulate; row-major; a is [m,k] ([k,m] when
// transA), b is [k,n] ([n,k] when transB); alpha (default 1) applied in fp32 to the fp32 sum.
// Path (MIST_GEMM, read at every launch): cuBLASLt when it opened (cuda/cublaslt.h) unless
// MIST_GEMM=own; MIST_GEMM=cublaslt requires it. Otherwise the own kernels of cuda/kernels/gemm.cu:
// tensor cores (mma.sync m16n8k16, fp32 accumulate) for bf16/f16, a SIMT fp32 kernel for f32.
#include "cuda/ops/matmul.h"

#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/cublaslt.h"

namespace mist::cuda {
namespace {

// Must equal the tensor-core kernel's shared-memory ring (gemm.cu: kStages * 2 * kTileElems * 2).
constexpr unsigned kGemmSharedBytes = 81920;
constexpr int64_t kTcTile = 128;    // block tile of the tensor-core kernel (M and N)
constexpr int64_t kSimtTile = 64;   // block tile of the fp32 kernel (M and N)

[[noreturn]] void Fail(const std::string& msg) { throw std::invalid_argument("matmul (cuda): " + msg); }

int64_t CheckedProduct(int64_t x, int64_t y, const char* what) {
  if (x > 0 && y > std::numeric_limits<int64_t>::max() / x) Fail(std::string(what) + " overflows");
  return x * y;
}

void LaunchOwn(DType dtype, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, CUdeviceptr a,
               CUdeviceptr b, bool accumulate, CUdeviceptr c) {
  const int acc = accumulate ? 1 : 0;
  Dim3 block;
  block.x = 256;
  if (dtype == DType::kF32) {
    const int64_t gx = (n + kSimtTile - 1) / kSimtTile, gy = (m + kSimtTile - 1) / kSimtTile;
    if (gy > 65535 || gx > std::numeric_limits<int>::max()) {
      Fail("m = " + std::to_string(m) + ", n = " + std::to_string(n) + " exceed the fp32 kernel's grid");
    }
    Dim3 grid;
    grid.x = static_cast<unsigned>(gx);
    grid.y = static_cast<unsigned>(gy);
    LaunchKernel("mist_gemm_simt_f32", grid, block, 0, c, a, b, m, n, k, transA ? 1 : 0, transB ? 1 : 0, acc, alpha);
    return;
  }
  if (dtype != DType::kBF16 && dtype != DType::kF16) Fail("storage must be f32, bf16 or f16");
  const int64_t tiles = CheckedProduct((m + kTcTile - 1) / kTcTile, (n + kTcTile - 1) / kTcTile, "m * n tiles");
  if (tiles > std::numeric_limits<int>::max()) Fail("m * n is too large for one launch");
  // 16-byte cp.async needs both operands 16-byte aligned and their rows (leading dimensions) a
  // multiple of 8 elements; otherwise the element-wise loading variant.
  const int64_t lda = transA ? m : k, ldb = transB ? k : n;
  const bool vec = a % 16 == 0 && b % 16 == 0 && lda % 8 == 0 && ldb % 8 == 0;
  std::string name = std::string("mist_gemm_tc_") + (transA ? "t" : "n") + (transB ? "t" : "n") + (vec ? "_v" : "") +
                     "_" + DTypeSuffix(dtype);
  Dim3 grid;
  grid.x = static_cast<unsigned>(tiles);
  LaunchKernel(name, grid, block, kGemmSharedBytes, c, a, b, m, n, k, acc, alpha);
}

void LaunchMatmul(const LaunchArgs& x) {
  const int64_t m = x.Dim(0, "m"), n = x.Dim(1, "n"), k = x.Dim(2, "k");
  const bool transA = x.Int(3, "transA") != 0, transB = x.Int(4, "transB") != 0;
  const bool accumulate = x.Int(5, "accumulate") != 0;
  const float alpha = x.floats.empty() ? 1.f : static_cast<float>(x.Float(0, "alpha"));
  const CUdeviceptr c = x.T(0, static_cast<size_t>(CheckedProduct(m, n, "m * n")), "c");
  const CUdeviceptr a = x.T(1, static_cast<size_t>(CheckedProduct(m, k, "m * k")), "a");
  const CUdeviceptr b = x.T(2, static_cast<size_t>(CheckedProduct(k, n, "k * n")), "b");
  RunGemm(GemmPathFromEnv(), x.storage, transA, transB, m, n, k, alpha, a, b, accumulate, c);
}

}  // namespace

GemmPath ParseGemmPath(const std::string& text, const char* what) {
  if (text.empty() || text == "auto") return GemmPath::kAuto;
  if (text == "own") return GemmPath::kOwn;
  if (text == "cublaslt") return GemmPath::kCublasLt;
  Fail(std::string(what) + " must be auto, own or cublaslt, got '" + text + "'");
}

GemmPath GemmPathFromEnv() {
  const char* env = std::getenv("MIST_GEMM");
  return ParseGemmPath(env != nullptr ? env : "", "MIST_GEMM");
}

const char* RunGemm(GemmPath path, DType dtype, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha,
                    CUdeviceptr a, CUdeviceptr b, bool accumulate, CUdeviceptr c) {
  if (m <= 0 || n <= 0 || k <= 0) Fail("m, n and k must be positive");
  if (path != GemmPath::kOwn) {
    const CublasLtProbe& probe = CublasLtStatus();
    if (!probe.available && path == GemmPath::kCublasLt) {
      throw std::runtime_error("matmul (cuda): MIST_GEMM=cublaslt but cuBLASLt is not available: " + probe.reason);
    }
    if (probe.available) {
      if (CublasLtGemm(dtype, transA, transB, m, n, k, alpha, a, b, accumulate ? 1.f : 0.f, c)) return "cublaslt";
      if (path == GemmPath::kCublasLt) {
        throw std::runtime_error("matmul (cuda): cuBLASLt has no algorithm for m = " + std::to_string(m) + ", n = " +
                                 std::to_string(n) + ", k = " + std::to_string(k) + " (" + DTypeSuffix(dtype) +
                                 ", transA " + std::to_string(transA) + ", transB " + std::to_string(transB) + ")");
      }
    }
  }
  LaunchOwn(dtype, transA, transB, m, n, k, alpha, a, b, accumulate, c);
  return "own";
}

MIST_REGISTER_CUDA_OP("matmul", "xxx", LaunchMatmul);

}  // namespace mist::cuda
