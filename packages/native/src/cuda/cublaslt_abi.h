// The part of cuBLASLt (cublasLt.h) the matmul op calls, declared here because this machine has no
// cuBLAS headers and the addon opens libcublasLt.so.* with dlopen at run time (no link dependency).
// Values and signatures are taken from the bindgen output of cublasLt.h that the Rust crate cudarc
// vendors (github.com/coreylowman/cudarc, src/cublaslt/sys/mod.rs at v0.18.1, cuda-11040 ..
// cuda-13000 feature sets; the values below are identical in every CUDA version listed there), and
// cublasOperation_t from the same crate's src/cublas/sys/mod.rs:
//   cublasStatus_t CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15
//   cublasComputeType_t CUBLAS_COMPUTE_32F = 68
//   cudaDataType_t CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14
//   cublasOperation_t CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
//   cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4
//     (both take an int32_t cublasOperation_t)
//   cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1 (uint64_t),
//     CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES = 5, 6, 7, 8 (uint32_t; the heuristic assumes
//     256-byte aligned pointers unless told otherwise)
//   cublasLtMatmulAlgo_t = { uint64_t data[8] }
//   cublasLtMatmulHeuristicResult_t = { algo, size_t workspaceSize, cublasStatus_t state,
//                                       float wavesCount, int reserved[4] }
// Enums are C enums (int-sized) in the header; they are passed as int here. The handles are opaque
// pointers. The stream parameter is cudaStream_t, the same object as the driver's CUstream.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/driver_abi.h"

namespace mist::cuda {

using cublasStatus_t = int;
struct cublasLtContext;
struct cublasLtMatmulDescOpaque_t;
struct cublasLtMatrixLayoutOpaque_t;
struct cublasLtMatmulPreferenceOpaque_t;
using cublasLtHandle_t = cublasLtContext*;
using cublasLtMatmulDesc_t = cublasLtMatmulDescOpaque_t*;
using cublasLtMatrixLayout_t = cublasLtMatrixLayoutOpaque_t*;
using cublasLtMatmulPreference_t = cublasLtMatmulPreferenceOpaque_t*;

struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};

struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(cublasLtMatmulAlgo_t) == 64, "cublasLtMatmulAlgo_t is 8 uint64_t");
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == 96, "cublasLtMatmulHeuristicResult_t layout");

constexpr cublasStatus_t kCublasStatusSuccess = 0;        // CUBLAS_STATUS_SUCCESS
constexpr cublasStatus_t kCublasStatusNotSupported = 15;  // CUBLAS_STATUS_NOT_SUPPORTED
constexpr int kCublasCompute32F = 68;                     // CUBLAS_COMPUTE_32F
constexpr int kCudaR32F = 0;                              // CUDA_R_32F
constexpr int kCudaR16F = 2;                              // CUDA_R_16F
constexpr int kCudaR16BF = 14;                            // CUDA_R_16BF
constexpr int32_t kCublasOpN = 0;                         // CUBLAS_OP_N
constexpr int32_t kCublasOpT = 1;                         // CUBLAS_OP_T
constexpr int kCublasLtMatmulDescTransA = 3;              // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kCublasLtMatmulDescTransB = 4;              // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kCublasLtMatmulPrefMaxWorkspaceBytes = 1;   // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
constexpr int kCublasLtMatmulPrefMinAlignmentA = 5;       // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES
constexpr int kCublasLtMatmulPrefMinAlignmentB = 6;       // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES
constexpr int kCublasLtMatmulPrefMinAlignmentC = 7;       // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES
constexpr int kCublasLtMatmulPrefMinAlignmentD = 8;       // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES

extern "C" {
using cublasLtCreate_fn = cublasStatus_t (*)(cublasLtHandle_t* handle);
using cublasLtDestroy_fn = cublasStatus_t (*)(cublasLtHandle_t handle);
using cublasLtGetVersion_fn = size_t (*)();
using cublasLtGetStatusName_fn = const char* (*)(cublasStatus_t status);
using cublasLtMatmulDescCreate_fn = cublasStatus_t (*)(cublasLtMatmulDesc_t* desc, int computeType, int scaleType);
using cublasLtMatmulDescDestroy_fn = cublasStatus_t (*)(cublasLtMatmulDesc_t desc);
using cublasLtMatmulDescSetAttribute_fn = cublasStatus_t (*)(cublasLtMatmulDesc_t desc, int attr, const void* buf,
                                                             size_t sizeInBytes);
using cublasLtMatrixLayoutCreate_fn = cublasStatus_t (*)(cublasLtMatrixLayout_t* layout, int type, uint64_t rows,
                                                         uint64_t cols, int64_t ld);
using cublasLtMatrixLayoutDestroy_fn = cublasStatus_t (*)(cublasLtMatrixLayout_t layout);
using cublasLtMatmulPreferenceCreate_fn = cublasStatus_t (*)(cublasLtMatmulPreference_t* pref);
using cublasLtMatmulPreferenceDestroy_fn = cublasStatus_t (*)(cublasLtMatmulPreference_t pref);
using cublasLtMatmulPreferenceSetAttribute_fn = cublasStatus_t (*)(cublasLtMatmulPreference_t pref, int attr,
                                                                   const void* buf, size_t sizeInBytes);
using cublasLtMatmulAlgoGetHeuristic_fn = cublasStatus_t (*)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                             cublasLtMatrixLayout_t aDesc, cublasLtMatrixLayout_t bDesc,
                                                             cublasLtMatrixLayout_t cDesc, cublasLtMatrixLayout_t dDesc,
                                                             cublasLtMatmulPreference_t pref, int requestedAlgoCount,
                                                             cublasLtMatmulHeuristicResult_t* results,
                                                             int* returnAlgoCount);
using cublasLtMatmul_fn = cublasStatus_t (*)(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                                             const void* a, cublasLtMatrixLayout_t aDesc, const void* b,
                                             cublasLtMatrixLayout_t bDesc, const void* beta, const void* c,
                                             cublasLtMatrixLayout_t cDesc, void* d, cublasLtMatrixLayout_t dDesc,
                                             const cublasLtMatmulAlgo_t* algo, void* workspace,
                                             size_t workspaceSizeInBytes, CUstream stream);
}

}  // namespace mist::cuda
