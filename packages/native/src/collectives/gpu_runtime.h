// Run-time loading of the CUDA runtime and NCCL with dlopen (no link-time dependency), and the
// probe that tells whether the NCCL backend can be used on this machine and, if not, why.
#pragma once
#include <string>

#include "collectives/nccl_abi.h"

namespace mist::gpu {

struct CudaRuntime {
  cudaGetDeviceCount_fn getDeviceCount = nullptr;
  cudaSetDevice_fn setDevice = nullptr;
  cudaMalloc_fn malloc = nullptr;
  cudaFree_fn free = nullptr;
  cudaMemcpy_fn memcpy = nullptr;
  cudaStreamCreateWithFlags_fn streamCreateWithFlags = nullptr;
  cudaStreamDestroy_fn streamDestroy = nullptr;
  cudaStreamQuery_fn streamQuery = nullptr;
  cudaGetErrorString_fn getErrorString = nullptr;
};

struct NcclLibrary {
  ncclGetVersion_fn getVersion = nullptr;
  ncclGetUniqueId_fn getUniqueId = nullptr;
  ncclCommInitRank_fn commInitRank = nullptr;
  ncclCommSplit_fn commSplit = nullptr;  // optional: NCCL >= 2.18
  ncclCommDestroy_fn commDestroy = nullptr;
  ncclCommAbort_fn commAbort = nullptr;
  ncclCommCount_fn commCount = nullptr;
  ncclCommUserRank_fn commUserRank = nullptr;
  ncclCommGetAsyncError_fn commGetAsyncError = nullptr;
  ncclGetErrorString_fn getErrorString = nullptr;
  ncclGetLastError_fn getLastError = nullptr;  // optional: NCCL >= 2.13
  ncclAllReduce_fn allReduce = nullptr;
  ncclAllGather_fn allGather = nullptr;
  ncclReduceScatter_fn reduceScatter = nullptr;
  ncclBroadcast_fn broadcast = nullptr;
  ncclSend_fn send = nullptr;
  ncclRecv_fn recv = nullptr;
  ncclGroupStart_fn groupStart = nullptr;
  ncclGroupEnd_fn groupEnd = nullptr;
};

struct GpuRuntime {
  bool cudaAvailable = false;
  std::string cudaReason;  // why not, when !cudaAvailable
  std::string cudaPath;    // the library that was opened
  int deviceCount = 0;
  CudaRuntime cuda;

  bool ncclAvailable = false;  // implies cudaAvailable
  std::string ncclReason;
  std::string ncclPath;
  int ncclVersion = 0;  // e.g. 22105 for 2.21.5
  NcclLibrary nccl;
};

// Loads both libraries once per process (thread-safe) and returns the result of the probe.
const GpuRuntime& Runtime();

// Throws std::runtime_error naming the reason when the CUDA runtime / NCCL cannot be used.
const CudaRuntime& RequireCuda();
const NcclLibrary& RequireNccl();

// "cudaMalloc failed: out of memory (error 2)".
std::string CudaErrorText(const char* call, cudaError_t error);
// "ncclAllReduce failed: unhandled system error (run with NCCL_DEBUG=INFO for details)".
std::string NcclErrorText(const char* call, ncclResult_t result, ncclComm_t comm = nullptr);

}  // namespace mist::gpu
