#include "kernels/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {

namespace {

// Vector width from the compiler's target (-march=native): 16 floats with AVX-512, else 8.
#if defined(__AVX512F__)
constexpr int kVec = 16;
constexpr int kMR = 8;  // 8 x 2 zmm accumulators + 2 B vectors + 1 broadcast of 32 registers
#else
constexpr int kVec = 8;
constexpr int kMR = 6;  // 6 x 2 ymm accumulators + 2 B vectors + 1 broadcast of 16 registers
#endif
constexpr int kNR = 2 * kVec;
constexpr int64_t kKC = 256;                  // A micro-panel (MR x KC) and B micro-panel (KC x NR) stay in L1
constexpr int64_t kMC = kMR * (kVec == 16 ? 16 : 20);  // A block (MC x KC) in L2
constexpr int64_t kNC = 2048;                 // B block (KC x NC) in L2/L3

typedef float VecF __attribute__((vector_size(kVec * sizeof(float))));

struct AlignedBuffer {
  float* data = nullptr;
  size_t size = 0;
  float* Get(size_t n) {
    if (n > size) {
      std::free(data);
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
  ~AlignedBuffer() { std::free(data); }
};

thread_local AlignedBuffer tls_pack_a;

inline float ElemA(const float* a, bool trans, int64_t m, int64_t k, int64_t i, int64_t p) {
  return trans ? a[p * m + i] : a[i * k + p];
}

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-row micro-panels: panel r holds
// element (i, p) at r*MR*kc + p*MR + i; rows beyond M are zero.
void PackA(const float* a, bool trans, int64_t m, int64_t k, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out) {
  for (int64_t ir = 0; ir < mc; ir += kMR) {
    float* dst = out + (ir / kMR) * kMR * kc;
    const int64_t rows = std::min<int64_t>(kMR, mc - ir);
    if (!trans) {
      for (int64_t i = 0; i < kMR; ++i) {
        if (i < rows) {
          const float* src = a + (i0 + ir + i) * k + p0;
          for (int64_t p = 0; p < kc; ++p) dst[p * kMR + i] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) dst[p * kMR + i] = 0.f;
        }
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * m + i0 + ir;
        for (int64_t i = 0; i < kMR; ++i) dst[p * kMR + i] = i < rows ? src[i] : 0.f;
      }
    }
  }
  (void)ElemA;
}

// Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-column micro-panels: panel c holds
// element (p, j) at c*NR*kc + p*NR + j; columns beyond N are zero.
void PackBPanel(const float* b, bool trans, int64_t n, int64_t k, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  if (!trans) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * n + j0;
      float* d = dst + p * kNR;
      if (cols == kNR) {
        std::memcpy(d, src, sizeof(float) * kNR);
      } else {
        for (int64_t j = 0; j < kNR; ++j) d[j] = j < cols ? src[j] : 0.f;
      }
    }
  } else {
    for (int64_t j = 0; j < kNR; ++j) {
      if (j < cols) {
        const float* src = b + (j0 + j) * k + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = src[p];
      } else {
        for (int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = 0.f;
      }
    }
  }
}

inline VecF LoadVec(const float* p) {
  VecF v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void StoreVec(float* p, VecF v) { std::memcpy(p, &v, sizeof(v)); }

// acc[MR x NR] = sum_p A_panel[:, p] * B_panel[p, :], then C = alpha * acc + beta * C
// (`first` = this is the first K block, so beta applies; later K blocks add to C).
void MicroKernel(int64_t kc, const float* __restrict pa, const float* __restrict pb, float* c, int64_t ldc, int64_t rows,
                 int64_t cols, float alpha, float beta, bool first) {
  VecF acc0[kMR], acc1[kMR];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) {
    acc0[i] = VecF{};
    acc1[i] = VecF{};
  }
  for (int64_t p = 0; p < kc; ++p) {
    const VecF b0 = LoadVec(pb + p * kNR);
    const VecF b1 = LoadVec(pb + p * kNR + kVec);
    const float* ap = pa + p * kMR;
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const float ai = ap[i];
      acc0[i] += ai * b0;
      acc1[i] += ai * b1;
    }
  }
  const float beta_eff = first ? beta : 1.f;
  if (rows == kMR && cols == kNR) {
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      float* ci = c + i * ldc;
      VecF r0 = alpha * acc0[i], r1 = alpha * acc1[i];
      if (beta_eff != 0.f) {
        r0 += beta_eff * LoadVec(ci);
        r1 += beta_eff * LoadVec(ci + kVec);
      }
      StoreVec(ci, r0);
      StoreVec(ci + kVec, r1);
    }
    return;
  }
  alignas(64) float tmp[kMR * kNR];
  for (int i = 0; i < kMR; ++i) {
    StoreVec(tmp + i * kNR, acc0[i]);
    StoreVec(tmp + i * kNR + kVec, acc1[i]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float v = alpha * tmp[i * kNR + j];
      if (beta_eff != 0.f) v += beta_eff * c[i * ldc + j];
      c[i * ldc + j] = v;
    }
  }
}

// Scalar path for tiny products, where packing costs more than it saves.
void GemmSmall(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
               float* c) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    if (beta == 0.f) {
      std::fill(ci, ci + n, 0.f);
    } else if (beta != 1.f) {
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
    for (int64_t p = 0; p < k; ++p) {
      const float av = alpha * (ta ? a[p * m + i] : a[i * k + p]);
      if (!tb) {
        const float* bp = b + p * n;
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
      } else {
        for (int64_t j = 0; j < n; ++j) ci[j] += av * b[j * k + p];
      }
    }
  }
}

thread_local AlignedBuffer tls_pack_b;

// Products of up to about 67 MFLOP (the tiny models' GEMMs) on the pool in one Run: each task owns
// an MC-row block and a range of NR-column panels of C and walks every K block itself, packing its
// own panels of B and block of A. The shared path below packs B once per K block but needs two
// Runs per K block, whose hand-offs cost more than the work at these sizes; the repacking here is
// 1 / MC of the multiply-adds. Each C element still sums its K blocks in the same order, so the
// results equal the serial path's bit for bit.
void GemmSmallParallel(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
                       float beta, float* c, int threads) {
  // About 4 tasks per thread, for balance: row blocks of at most MC rows, column ranges of whole
  // panels, and when that is still fewer than 2 per thread (a weight gradient: few rows, few
  // columns), row blocks down to MR rows. Blocks of equal size, so no task is left over alone.
  const int64_t npanels = (n + kNR - 1) / kNR;
  int64_t mblocks = (m + kMC - 1) / kMC;
  int64_t nsplit = std::min<int64_t>(npanels, (4 * threads + mblocks - 1) / mblocks);
  const int64_t panels_per_split = (npanels + nsplit - 1) / nsplit;
  nsplit = (npanels + panels_per_split - 1) / panels_per_split;
  if (mblocks * nsplit < 2 * threads) {
    mblocks = std::max(mblocks, std::min<int64_t>((m + kMR - 1) / kMR, (2 * threads + nsplit - 1) / nsplit));
  }
  const int64_t mc_block = ((m + mblocks - 1) / mblocks + kMR - 1) / kMR * kMR;
  mblocks = (m + mc_block - 1) / mc_block;
  ThreadPool::Get().Run(mblocks * nsplit, [&](int64_t t) {
    const int64_t mb = t / nsplit, ns = t % nsplit;
    const int64_t i0 = mb * mc_block, mc = std::min<int64_t>(mc_block, m - i0);
    const int64_t q_lo = ns * panels_per_split, q_hi = std::min<int64_t>(npanels, q_lo + panels_per_split);
    if (q_lo >= q_hi) return;
    const int64_t kc_max = std::min<int64_t>(kKC, k);
    float* pb = tls_pack_b.Get(static_cast<size_t>((q_hi - q_lo) * kNR * kc_max));
    float* pa = tls_pack_a.Get(static_cast<size_t>(((mc + kMR - 1) / kMR) * kMR * kc_max));
    for (int64_t p0 = 0; p0 < k; p0 += kKC) {
      const int64_t kc = std::min<int64_t>(kKC, k - p0);
      for (int64_t q = q_lo; q < q_hi; ++q) {
        PackBPanel(b, tb, n, k, p0, kc, q * kNR, std::min<int64_t>(kNR, n - q * kNR), pb + (q - q_lo) * kNR * kc);
      }
      PackA(a, ta, m, k, i0, mc, p0, kc, pa);
      for (int64_t q = q_lo; q < q_hi; ++q) {
        const int64_t jj = q * kNR, cols = std::min<int64_t>(kNR, n - jj);
        const float* pbq = pb + (q - q_lo) * kNR * kc;
        for (int64_t ir = 0; ir < mc; ir += kMR) {
          MicroKernel(kc, pa + (ir / kMR) * kMR * kc, pbq, c + (i0 + ir) * n + jj, n, std::min<int64_t>(kMR, mc - ir), cols,
                      alpha, beta, p0 == 0);
        }
      }
    }
  });
}

}  // namespace

GemmConfig GetGemmConfig() { return {kMR, kNR, static_cast<int>(kKC), static_cast<int>(kMC), static_cast<int>(kNC), kVec}; }

void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
          float* c) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == 0.f ? 0.f : beta * c[i];
    return;
  }
  if (m * n * k <= 4096) {
    GemmSmall(ta, tb, m, n, k, alpha, a, b, beta, c);
    return;
  }
  const int threads = NumThreads();
  // About 2 MFLOP and up: with the pool's workers spinning between kernels a split costs a few
  // microseconds, less than a tenth of such a product.
  const bool parallel = threads > 1 && m * n * k >= (int64_t{1} << 20);
  if (parallel && n <= kNC && m * n * k < (int64_t{1} << 26)) {
    GemmSmallParallel(ta, tb, m, n, k, alpha, a, b, beta, c, threads);
    return;
  }
  std::unique_ptr<float, decltype(&std::free)> packed_b(nullptr, &std::free);
  const int64_t nc_max = std::min<int64_t>(kNC, ((n + kNR - 1) / kNR) * kNR);
  const int64_t kc_max = std::min<int64_t>(kKC, k);
  packed_b.reset(static_cast<float*>(std::aligned_alloc(64, ((nc_max * kc_max * sizeof(float) + 63) / 64) * 64)));
  if (!packed_b) throw std::bad_alloc();
  float* pb = packed_b.get();

  for (int64_t j0 = 0; j0 < n; j0 += kNC) {
    const int64_t nc = std::min<int64_t>(kNC, n - j0);
    const int64_t npanels = (nc + kNR - 1) / kNR;
    for (int64_t p0 = 0; p0 < k; p0 += kKC) {
      const int64_t kc = std::min<int64_t>(kKC, k - p0);
      const bool first = p0 == 0;
      // Pack this K x N block of B once, shared by every thread.
      auto pack = [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo; q < hi; ++q) {
          PackBPanel(b, tb, n, k, p0, kc, j0 + q * kNR, std::min<int64_t>(kNR, nc - q * kNR), pb + q * kNR * kc);
        }
      };
      if (parallel) ParallelFor(npanels, 4, pack); else pack(0, npanels);
      // Tasks: MC-row blocks of C, split further along N when there are fewer blocks than threads.
      const int64_t mblocks = (m + kMC - 1) / kMC;
      int64_t nsplit = 1;
      if (parallel && mblocks < 2 * threads) nsplit = std::min<int64_t>(npanels, (2 * threads + mblocks - 1) / mblocks);
      const int64_t panels_per_split = (npanels + nsplit - 1) / nsplit;
      auto task = [&](int64_t t) {
        const int64_t mb = t / nsplit, ns = t % nsplit;
        const int64_t i0 = mb * kMC, mc = std::min<int64_t>(kMC, m - i0);
        const int64_t q_lo = ns * panels_per_split, q_hi = std::min<int64_t>(npanels, q_lo + panels_per_split);
        if (q_lo >= q_hi) return;
        float* pa = tls_pack_a.Get(static_cast<size_t>(((mc + kMR - 1) / kMR) * kMR * kc));
        PackA(a, ta, m, k, i0, mc, p0, kc, pa);
        for (int64_t q = q_lo; q < q_hi; ++q) {
          const int64_t jj = j0 + q * kNR, cols = std::min<int64_t>(kNR, n - jj);
          const float* pbq = pb + q * kNR * kc;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            MicroKernel(kc, pa + (ir / kMR) * kMR * kc, pbq, c + (i0 + ir) * n + jj, n, std::min<int64_t>(kMR, mc - ir),
                        cols, alpha, beta, first);
          }
        }
      };
      const int64_t ntasks = mblocks * nsplit;
      if (parallel) {
        ThreadPool::Get().Run(ntasks, task);
      } else {
        for (int64_t t = 0; t < ntasks; ++t) task(t);
      }
    }
  }
}

namespace {

// matmul: bufs [c, a, b]; ints [m, n, k, transA, transB, accumulate]; floats [alpha]
//   c[m,n] = alpha * op(a) op(b) (+ c when accumulate).
void MatmulOp(const OpArgs& x) {
  const int64_t m = x.Dim(0, "m"), n = x.Dim(1, "n"), k = x.Dim(2, "k");
  const bool ta = x.Int(3, "transA") != 0, tb = x.Int(4, "transB") != 0, acc = x.Int(5, "accumulate") != 0;
  const float alpha = x.floats.empty() ? 1.f : static_cast<float>(x.Float(0, "alpha"));
  float* c = x.F(0, m * n, "c");
  const float* a = x.F(1, m * k, "a");
  const float* b = x.F(2, k * n, "b");
  Gemm(ta, tb, m, n, k, alpha, a, b, acc ? 1.f : 0.f, c);
}

}  // namespace

MIST_REGISTER_OP("matmul", MatmulOp);

}  // namespace kernels
}  // namespace mist
