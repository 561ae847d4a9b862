// GEMM kernels of the matmul op (cuda/ops/matmul.cc): C[M,N] = alpha * op(A) op(B), or C += that,
// all matrices row-major; op(A) is A stored [M,K] or A^T stored [K,M], op(B) is B stored [K,N] or
// B^T stored [N,K] (the CPU kernel's convention, kernels/matmul.h). alpha is applied in fp32 to the
// fp32 sum; in accumulate mode the old C is read, added in fp32 and the sum rounded once on store.
//
// bf16/f16: a tensor-core kernel (mist_gemm_tc_<ta><tb>[_v]_<bf16|f16>). The structure is the
// multistage shared-memory GEMM of NVIDIA's CUTLASS (sm80 "multistage" mainloop) as described in
// the CUTLASS docs ("Efficient GEMM in CUDA") and the PTX ISA manual:
//   * a 128 x 128 block tile of C, k-tile 32, 256 threads = 8 warps in a 2 (M) x 4 (N) grid, each
//     warp owning a 64 x 32 tile = 4 x 4 mma.sync.aligned.m16n8k16 tiles (fp32 accumulators);
//   * a kStages-deep ring of shared-memory k-tiles filled with cp.async (16 bytes per thread and
//     request), so global loads of k-tile t + kStages - 1 overlap the math on k-tile t;
//   * fragments loaded with ldmatrix (.trans where the operand's stored layout is the transpose of
//     the fragment's), so every transpose combination keeps the stored layout in shared memory;
//   * shared-memory rows padded by 8 halves (16 bytes), which makes the 8 row addresses of each
//     ldmatrix phase fall into 8 distinct 16-byte bank groups (no bank conflicts);
//   * a grouped raster of the block tiles (8 tile rows per group, as in Triton's matmul tutorial)
//     so consecutive blocks share A and B tiles in L2.
// Edge tiles are masked: rows/columns outside the matrix are filled with zeros in shared memory and
// stores are bounds-checked, so any M, N, K works. The "_v" variants copy global memory with
// 16-byte cp.async and need both operands 16-byte aligned with leading dimensions that are a multiple
// of 8 elements (the launcher checks); the others load element by element (same pipeline, same
// shared-memory layout, synchronous loads) for odd shapes.
//
// f32: mist_gemm_simt_f32, a plain shared-memory tiled fp32 kernel (64 x 64 tile, 4 x 4 per thread).
// It exists for correctness (fp32 storage is the reference path), not speed.
#include <cstdint>

#include "dtype.cuh"

namespace mist_cuda {
namespace gemm {

constexpr int kBM = 128;      // block tile rows (M)
constexpr int kBN = 128;      // block tile columns (N)
constexpr int kBK = 32;       // k-tile
constexpr int kStages = 4;    // shared-memory pipeline depth
constexpr int kThreads = 256;
constexpr int kPad = 8;       // halves of padding per shared-memory row
// A shared-memory tile is either K-contiguous (128 rows of 32 k, row stride 40 halves) or
// M/N-contiguous (32 k-rows of 128, row stride 136 halves); each operand slot holds the larger.
constexpr int kKStride = kBK + kPad;   // 40 halves = 80 bytes (a multiple of 16)
constexpr int kMNStride = kBM + kPad;  // 136 halves = 272 bytes (a multiple of 16)
constexpr int kTileElems = (kBM * kKStride > kBK * kMNStride) ? kBM * kKStride : kBK * kMNStride;  // 5120
static_assert(kBM == kBN, "the operand slots assume square block tiles");
// Dynamic shared memory of the tensor-core kernel, kStages * 2 * kTileElems * 2 bytes = 81920
// (cuda/ops/matmul.cc passes the same number).
static_assert(kStages * 2 * kTileElems * 2 == 81920, "matmul.cc's kGemmSharedBytes must match");

__device__ __forceinline__ unsigned SharedAddress(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// cp.async of 16 bytes; bytes past `srcBytes` (0 or 16 here) are zero-filled (PTX ISA, cp.async).
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, int srcBytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(smem)), "l"(gmem), "r"(srcBytes));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ldmatrix .x4: lanes 8j..8j+7 give the row addresses of 8x8 matrix j; register j receives the
// thread's pair of matrix j: (row lane/4, columns 2*(lane%4), +1), or with .trans the same pair of
// the transposed matrix (rows 2*(lane%4), +1 of column lane/4 as stored).
__device__ __forceinline__ void Ldmatrix4(unsigned (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem)));
}
__device__ __forceinline__ void Ldmatrix4Trans(unsigned (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem)));
}

// d += a * b for one m16n8k16 tile, fp32 accumulators (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type").
template <typename T>
__device__ __forceinline__ void Mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1);
template <>
__device__ __forceinline__ void Mma16816<__nv_bfloat16>(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void Mma16816<__half>(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies the TR x TC tile at (r0, c0) of the row-major rows x cols matrix g (16-bit elements) into
// shared memory with row stride TC + kPad; elements outside the matrix become zero (+0.0 in both
// bf16 and f16). kVec: 16-byte cp.async per 8 elements, requiring g 16-byte aligned and cols % 8 == 0
// (then a chunk starting inside the matrix lies wholly inside it). Otherwise 8 masked 2-byte loads
// per chunk and one 16-byte shared store.
template <int TR, int TC, bool kVec>
__device__ __forceinline__ void LoadTile(unsigned short* smem, const unsigned short* g, int64_t rows, int64_t cols,
                                         int64_t r0, int64_t c0, int tid) {
  constexpr int kChunksPerRow = TC / 8;
  constexpr int kChunks = TR * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "tile chunks must divide among the threads");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int chunk = tid + i * kThreads;
    const int r = chunk / kChunksPerRow;
    const int c = (chunk % kChunksPerRow) * 8;
    const int64_t gr = r0 + r, gc = c0 + c;
    unsigned short* dst = smem + r * (TC + kPad) + c;
    if (kVec) {
      const bool inside = gr < rows && gc < cols;
      const unsigned short* src = inside ? g + gr * cols + gc : g;  // a valid address even when nothing is read
      CpAsync16(dst, src, inside ? 16 : 0);
    } else {
      unsigned short v[8];
      const bool rowInside = gr < rows;
      const unsigned short* src = g + (rowInside ? gr * cols : 0);
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = (rowInside && gc + e < cols) ? src[gc + e] : static_cast<unsigned short>(0);
      uint4 packed;
      packed.x = v[0] | (static_cast<unsigned>(v[1]) << 16);
      packed.y = v[2] | (static_cast<unsigned>(v[3]) << 16);
      packed.z = v[4] | (static_cast<unsigned>(v[5]) << 16);
      packed.w = v[6] | (static_cast<unsigned>(v[7]) << 16);
      *reinterpret_cast<uint4*>(dst) = packed;
    }
  }
}

// Loads k-tile `kt` of A and B into the shared-memory slots sA, sB.
//   A: !TA stored [M,K] -> K-contiguous 128 x 32 tile at (m0, k0); TA stored [K,M] -> 32 x 128 at (k0, m0).
//   B: !TB stored [K,N] -> N-contiguous 32 x 128 tile at (k0, n0); TB stored [N,K] -> 128 x 32 at (n0, k0).
template <bool TA, bool TB, bool kVec>
__device__ __forceinline__ void LoadStage(unsigned short* sA, unsigned short* sB, const unsigned short* a,
                                          const unsigned short* b, int64_t M, int64_t N, int64_t K, int64_t m0,
                                          int64_t n0, int64_t k0, int tid) {
  if (TA) {
    LoadTile<kBK, kBM, kVec>(sA, a, K, M, k0, m0, tid);
  } else {
    LoadTile<kBM, kBK, kVec>(sA, a, M, K, m0, k0, tid);
  }
  if (TB) {
    LoadTile<kBN, kBK, kVec>(sB, b, N, K, n0, k0, tid);
  } else {
    LoadTile<kBK, kBN, kVec>(sB, b, K, N, k0, n0, tid);
  }
}

template <typename T, bool TA, bool TB, bool kVec>
__device__ __forceinline__ void GemmTensorCore(T* c, const T* aT, const T* bT, int64_t M, int64_t N, int64_t K,
                                               int accumulate, float alpha) {
  extern __shared__ __align__(16) unsigned char gemmShared[];
  unsigned short* smem = reinterpret_cast<unsigned short*>(gemmShared);
  const unsigned short* a = reinterpret_cast<const unsigned short*>(aT);
  const unsigned short* b = reinterpret_cast<const unsigned short*>(bT);

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int warpM = warp >> 2;  // 0..1: rows warpM*64 .. +63 of the block tile
  const int warpN = warp & 3;   // 0..3: columns warpN*32 .. +31

  // Grouped raster: blocks walk 8 tile rows down a column of tiles before moving right.
  const int64_t tilesM = (M + kBM - 1) / kBM, tilesN = (N + kBN - 1) / kBN;
  const int64_t pid = blockIdx.x;
  constexpr int64_t kGroup = 8;
  const int64_t perGroup = kGroup * tilesN;
  const int64_t firstM = (pid / perGroup) * kGroup;
  const int64_t groupRows = (tilesM - firstM) < kGroup ? (tilesM - firstM) : kGroup;
  const int64_t tileM = firstM + (pid % perGroup) % groupRows;
  const int64_t tileN = (pid % perGroup) / groupRows;
  const int64_t m0 = tileM * kBM, n0 = tileN * kBN;

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  const int64_t kTiles = (K + kBK - 1) / kBK;
  auto slotA = [&](int s) { return smem + s * 2 * kTileElems; };
  auto slotB = [&](int s) { return smem + s * 2 * kTileElems + kTileElems; };

  // Prologue: k-tiles 0 .. kStages-2 in flight, one commit group each (empty groups past the end).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < kTiles) LoadStage<TA, TB, kVec>(slotA(s), slotB(s), a, b, M, N, K, m0, n0, s * kBK, tid);
    CpAsyncCommit();
  }

  // ldmatrix addressing: lane supplies a row of matrix j = lane / 8, row r = lane % 8 of it.
  const int j = lane >> 3, r = lane & 7;

  for (int64_t kt = 0; kt < kTiles; ++kt) {
    // Groups committed so far: kStages - 1 + kt; k-tile kt is group kt, so at most kStages - 2 may
    // still be pending.
    CpAsyncWait<kStages - 2>();
    // k-tile kt is visible to every thread, and every warp has finished the math on k-tile kt - 1,
    // whose slot the load below overwrites.
    __syncthreads();
    {
      const int64_t next = kt + kStages - 1;
      const int s = static_cast<int>(next % kStages);
      if (next < kTiles) LoadStage<TA, TB, kVec>(slotA(s), slotB(s), a, b, M, N, K, m0, n0, next * kBK, tid);
      CpAsyncCommit();
    }

    const int s = static_cast<int>(kt % kStages);
    const unsigned short* sA = slotA(s);
    const unsigned short* sB = slotB(s);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      // A fragments of the warp's 4 m16 tiles: matrix j covers rows (j&1)*8.., k (j>>1)*8.. of the
      // 16 x 16 fragment (a0..a3 of the mma operand layout).
      unsigned af[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int mBase = warpM * 64 + mi * 16;
        if (TA) {  // stored [k][m]: rows are k, transpose on load
          Ldmatrix4Trans(af[mi], sA + (kk + (j >> 1) * 8 + r) * kMNStride + mBase + (j & 1) * 8);
        } else {  // stored [m][k]
          Ldmatrix4(af[mi], sA + (mBase + (j & 1) * 8 + r) * kKStride + kk + (j >> 1) * 8);
        }
      }
      // B fragments of the warp's 4 n8 tiles, two per ldmatrix.x4: matrix j covers k (j&1)*8..,
      // n (j>>1)*8.. of a 16 x 16 block, i.e. registers {b0, b1} of n8 tile 0, then of n8 tile 1.
      unsigned bf[4][2];
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        const int nBase = warpN * 32 + nj * 16;
        unsigned q[4];
        if (TB) {  // stored [n][k]
          Ldmatrix4(q, sB + (nBase + (j >> 1) * 8 + r) * kKStride + kk + (j & 1) * 8);
        } else {  // stored [k][n]: rows are k, transpose on load
          Ldmatrix4Trans(q, sB + (kk + (j & 1) * 8 + r) * kMNStride + nBase + (j >> 1) * 8);
        }
        bf[2 * nj][0] = q[0];
        bf[2 * nj][1] = q[1];
        bf[2 * nj + 1][0] = q[2];
        bf[2 * nj + 1][1] = q[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) Mma16816<T>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  // Nothing may still be writing shared memory when the block exits (only empty groups remain, but
  // wait anyway so the kernel never ends with cp.async in flight).
  CpAsyncWait<0>();

  // Epilogue: accumulator (mi, ni) element e is C[row + 8*(e>=2)][col + (e&1)] with
  // row = group (lane/4), col = 2 * (lane%4) inside the m16n8 tile.
  const int group = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int64_t row = m0 + warpM * 64 + mi * 16 + group;
      const int64_t col = n0 + warpN * 32 + ni * 8 + tig * 2;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t rr = row + (e >> 1) * 8, cc = col + (e & 1);
        if (rr < M && cc < N) {
          const int64_t idx = rr * N + cc;
          float v = alpha * acc[mi][ni][e];
          if (accumulate) v += Load(c, idx);
          Store(c, idx, v);
        }
      }
    }
  }
}

// fp32 SIMT kernel: 64 x 64 tile of C per block of 256 threads, k-tile 16; thread (ty, tx) = (tid/16,
// tid%16) owns C rows ty + 16*i and columns tx + 16*jj (i, jj < 4), so stores of a warp are coalesced.
constexpr int kSimtTile = 64;
constexpr int kSimtK = 16;

__device__ __forceinline__ void GemmSimtF32(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                                            int transA, int transB, int accumulate, float alpha) {
  __shared__ float sA[kSimtK][kSimtTile + 4];  // sA[k][m]
  __shared__ float sB[kSimtK][kSimtTile + 4];  // sB[k][n]
  const int tid = threadIdx.x;
  const int ty = tid >> 4, tx = tid & 15;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kSimtTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kSimtTile;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) acc[i][jj] = 0.f;

  for (int64_t k0 = 0; k0 < K; k0 += kSimtK) {
    // 64 x 16 elements of each operand, 4 per thread; the index order follows the stored layout so
    // consecutive threads read consecutive addresses.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + i * 256;
      int mm, kk;
      if (transA) {  // stored [K][M]
        mm = e % kSimtTile;
        kk = e / kSimtTile;
      } else {  // stored [M][K]
        kk = e % kSimtK;
        mm = e / kSimtK;
      }
      const int64_t gm = m0 + mm, gk = k0 + kk;
      float v = 0.f;
      if (gm < M && gk < K) v = transA ? a[gk * M + gm] : a[gm * K + gk];
      sA[kk][mm] = v;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + i * 256;
      int nn, kk;
      if (transB) {  // stored [N][K]
        kk = e % kSimtK;
        nn = e / kSimtK;
      } else {  // stored [K][N]
        nn = e % kSimtTile;
        kk = e / kSimtTile;
      }
      const int64_t gn = n0 + nn, gk = k0 + kk;
      float v = 0.f;
      if (gn < N && gk < K) v = transB ? b[gn * K + gk] : b[gk * N + gn];
      sB[kk][nn] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSimtK; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = sA[kk][ty + 16 * i];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) bv[jj] = sB[kk][tx + 16 * jj];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = fmaf(av[i], bv[jj], acc[i][jj]);
    }
    __syncthreads();  // the next k-tile overwrites sA/sB
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = m0 + ty + 16 * i;
    if (row >= M) continue;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int64_t col = n0 + tx + 16 * jj;
      if (col >= N) continue;
      float v = alpha * acc[i][jj];
      if (accumulate) v += c[row * N + col];
      c[row * N + col] = v;
    }
  }
}

}  // namespace gemm
}  // namespace mist_cuda

// Tensor-core variants: mist_gemm_tc_<ta><tb>[_v]_<bf16|f16>(c, a, b, M, N, K, accumulate, alpha),
// grid = (ceil(M/128) * ceil(N/128)), block = 256, dynamic shared memory 81920 bytes.
#define MIST_GEMM_TC(NAME, TA, TB, VEC, SUFFIX, TYPE)                                                         \
  extern "C" __global__ void __launch_bounds__(mist_cuda::gemm::kThreads)                                    \
      mist_gemm_tc_##NAME##_##SUFFIX(TYPE* c, const TYPE* a, const TYPE* b, int64_t M, int64_t N, int64_t K, \
                                     int accumulate, float alpha) {                                          \
    mist_cuda::gemm::GemmTensorCore<TYPE, TA, TB, VEC>(c, a, b, M, N, K, accumulate, alpha);                 \
  }
#define MIST_GEMM_TC_ALL(SUFFIX, TYPE)                 \
  MIST_GEMM_TC(nn, false, false, false, SUFFIX, TYPE) \
  MIST_GEMM_TC(nt, false, true, false, SUFFIX, TYPE)  \
  MIST_GEMM_TC(tn, true, false, false, SUFFIX, TYPE)  \
  MIST_GEMM_TC(tt, true, true, false, SUFFIX, TYPE)   \
  MIST_GEMM_TC(nn_v, false, false, true, SUFFIX, TYPE) \
  MIST_GEMM_TC(nt_v, false, true, true, SUFFIX, TYPE)  \
  MIST_GEMM_TC(tn_v, true, false, true, SUFFIX, TYPE)  \
  MIST_GEMM_TC(tt_v, true, true, true, SUFFIX, TYPE)
MIST_GEMM_TC_ALL(bf16, __nv_bfloat16)
MIST_GEMM_TC_ALL(f16, __half)

// mist_gemm_simt_f32(c, a, b, M, N, K, transA, transB, accumulate, alpha):
// grid = (ceil(N/64), ceil(M/64)), block = 256, no dynamic shared memory.
extern "C" __global__ void __launch_bounds__(256)
    mist_gemm_simt_f32(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, int transA, int transB,
                       int accumulate, float alpha) {
  mist_cuda::gemm::GemmSimtF32(c, a, b, M, N, K, transA, transB, accumulate, alpha);
}
