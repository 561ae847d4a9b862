// The part of NCCL's and the CUDA runtime's C ABI that the NCCL backend uses, declared here so the
// addon builds without CUDA or NCCL headers. Both libraries are opened with dlopen at run time
// (gpu_runtime.cc); the values below are the ones the real headers define (nccl.h 2.x,
// cuda_runtime_api.h 11/12) and must not be changed.
#pragma once
#include <cstddef>

extern "C" {

// ---- NCCL ---------------------------------------------------------------------------------------
#define MIST_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[MIST_NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef struct ncclComm* ncclComm_t;
struct ncclConfig_t;  // only ever passed as NULL (default configuration)

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclNumResults = 8
} ncclResult_t;

typedef enum {
  ncclInt8 = 0,
  ncclChar = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclInt = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclHalf = 6,
  ncclFloat32 = 7,
  ncclFloat = 7,
  ncclFloat64 = 8,
  ncclDouble = 8,
  ncclBfloat16 = 9
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

#define MIST_NCCL_SPLIT_NOCOLOR (-1)

// ---- CUDA runtime -------------------------------------------------------------------------------
typedef int cudaError_t;  // an enum in the real header; only these two values are tested
#define MIST_CUDA_SUCCESS 0
#define MIST_CUDA_ERROR_NOT_READY 600
typedef struct CUstream_st* cudaStream_t;
typedef enum {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3
} cudaMemcpyKind;
#define MIST_CUDA_STREAM_NON_BLOCKING 0x01

}  // extern "C"

namespace mist::gpu {

// Function pointer types, one per symbol looked up with dlsym.
using ncclGetVersion_fn = ncclResult_t (*)(int* version);
using ncclGetUniqueId_fn = ncclResult_t (*)(ncclUniqueId* uniqueId);
using ncclCommInitRank_fn = ncclResult_t (*)(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
using ncclCommSplit_fn = ncclResult_t (*)(ncclComm_t comm, int color, int key, ncclComm_t* newcomm,
                                          ncclConfig_t* config);
using ncclCommDestroy_fn = ncclResult_t (*)(ncclComm_t comm);
using ncclCommAbort_fn = ncclResult_t (*)(ncclComm_t comm);
using ncclCommCount_fn = ncclResult_t (*)(const ncclComm_t comm, int* count);
using ncclCommUserRank_fn = ncclResult_t (*)(const ncclComm_t comm, int* rank);
using ncclCommGetAsyncError_fn = ncclResult_t (*)(ncclComm_t comm, ncclResult_t* asyncError);
using ncclGetErrorString_fn = const char* (*)(ncclResult_t result);
using ncclGetLastError_fn = const char* (*)(ncclComm_t comm);
using ncclAllReduce_fn = ncclResult_t (*)(const void* sendbuff, void* recvbuff, size_t count,
                                          ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                          cudaStream_t stream);
using ncclAllGather_fn = ncclResult_t (*)(const void* sendbuff, void* recvbuff, size_t sendcount,
                                          ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
using ncclReduceScatter_fn = ncclResult_t (*)(const void* sendbuff, void* recvbuff, size_t recvcount,
                                              ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                              cudaStream_t stream);
using ncclBroadcast_fn = ncclResult_t (*)(const void* sendbuff, void* recvbuff, size_t count,
                                          ncclDataType_t datatype, int root, ncclComm_t comm,
                                          cudaStream_t stream);
using ncclSend_fn = ncclResult_t (*)(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                                     ncclComm_t comm, cudaStream_t stream);
using ncclRecv_fn = ncclResult_t (*)(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                                     ncclComm_t comm, cudaStream_t stream);
using ncclGroupStart_fn = ncclResult_t (*)();
using ncclGroupEnd_fn = ncclResult_t (*)();

using cudaGetDeviceCount_fn = cudaError_t (*)(int* count);
using cudaSetDevice_fn = cudaError_t (*)(int device);
using cudaMalloc_fn = cudaError_t (*)(void** devPtr, size_t size);
using cudaFree_fn = cudaError_t (*)(void* devPtr);
using cudaMemcpy_fn = cudaError_t (*)(void* dst, const void* src, size_t count, cudaMemcpyKind kind);
using cudaStreamCreateWithFlags_fn = cudaError_t (*)(cudaStream_t* stream, unsigned int flags);
using cudaStreamDestroy_fn = cudaError_t (*)(cudaStream_t stream);
using cudaStreamQuery_fn = cudaError_t (*)(cudaStream_t stream);
using cudaGetErrorString_fn = const char* (*)(cudaError_t error);

}  // namespace mist::gpu
