#include "collectives/gpu_runtime.h"

#include "addon/dynamic_library.h"

#include <mutex>
#include <stdexcept>
#include <vector>

namespace mist::gpu {
namespace {

// The probe result, filled once by Runtime(). Error formatting reads it directly because it also
// runs during the probe itself (calling Runtime() there would wait on its own call_once).
GpuRuntime& Storage() {
  static GpuRuntime runtime;
  return runtime;
}

void LoadCuda(GpuRuntime& rt) {
  OpenedLibrary lib = OpenLibrary("MIST_CUDA_PATH", {"libcudart.so", "libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0",
                                              "libcudart.so.11"});
  if (lib.handle == nullptr) {
    rt.cudaReason = "CUDA runtime not found: " + lib.error;
    return;
  }
  rt.cudaPath = lib.path;
  CudaRuntime& c = rt.cuda;
  std::string missing;
  Bind(lib.handle, "cudaGetDeviceCount", c.getDeviceCount, missing);
  Bind(lib.handle, "cudaSetDevice", c.setDevice, missing);
  Bind(lib.handle, "cudaMalloc", c.malloc, missing);
  Bind(lib.handle, "cudaFree", c.free, missing);
  Bind(lib.handle, "cudaMemcpy", c.memcpy, missing);
  Bind(lib.handle, "cudaStreamCreateWithFlags", c.streamCreateWithFlags, missing);
  Bind(lib.handle, "cudaStreamDestroy", c.streamDestroy, missing);
  Bind(lib.handle, "cudaStreamQuery", c.streamQuery, missing);
  Bind(lib.handle, "cudaGetErrorString", c.getErrorString, missing);
  if (!missing.empty()) {
    rt.cudaReason = lib.path + " lacks the symbol " + missing;
    return;
  }
  int count = 0;
  cudaError_t err = c.getDeviceCount(&count);
  if (err != MIST_CUDA_SUCCESS) {
    rt.cudaReason = "no usable CUDA device: " + CudaErrorText("cudaGetDeviceCount", err);
    return;
  }
  if (count <= 0) {
    rt.cudaReason = "no CUDA device found (cudaGetDeviceCount returned 0)";
    return;
  }
  rt.deviceCount = count;
  rt.cudaAvailable = true;
}

void LoadNccl(GpuRuntime& rt) {
  OpenedLibrary lib = OpenLibrary("MIST_NCCL_PATH", {"libnccl.so.2", "libnccl.so"});
  if (lib.handle == nullptr) {
    rt.ncclReason = lib.error;
    return;
  }
  rt.ncclPath = lib.path;
  NcclLibrary& n = rt.nccl;
  std::string missing;
  Bind(lib.handle, "ncclGetVersion", n.getVersion, missing);
  Bind(lib.handle, "ncclGetUniqueId", n.getUniqueId, missing);
  Bind(lib.handle, "ncclCommInitRank", n.commInitRank, missing);
  Bind(lib.handle, "ncclCommDestroy", n.commDestroy, missing);
  Bind(lib.handle, "ncclCommAbort", n.commAbort, missing);
  Bind(lib.handle, "ncclCommCount", n.commCount, missing);
  Bind(lib.handle, "ncclCommUserRank", n.commUserRank, missing);
  Bind(lib.handle, "ncclCommGetAsyncError", n.commGetAsyncError, missing);
  Bind(lib.handle, "ncclGetErrorString", n.getErrorString, missing);
  Bind(lib.handle, "ncclAllReduce", n.allReduce, missing);
  Bind(lib.handle, "ncclAllGather", n.allGather, missing);
  Bind(lib.handle, "ncclReduceScatter", n.reduceScatter, missing);
  Bind(lib.handle, "ncclBroadcast", n.broadcast, missing);
  Bind(lib.handle, "ncclSend", n.send, missing);
  Bind(lib.handle, "ncclRecv", n.recv, missing);
  Bind(lib.handle, "ncclGroupStart", n.groupStart, missing);
  Bind(lib.handle, "ncclGroupEnd", n.groupEnd, missing);
  BindOptional(lib.handle, "ncclCommSplit", n.commSplit);
  BindOptional(lib.handle, "ncclGetLastError", n.getLastError);
  if (!missing.empty()) {
    rt.ncclReason = lib.path + " lacks the symbol " + missing + " (NCCL 2.7 or newer is needed)";
    return;
  }
  n.getVersion(&rt.ncclVersion);
  if (!rt.cudaAvailable) {
    rt.ncclReason = rt.cudaReason;
    return;
  }
  rt.ncclAvailable = true;
}

}  // namespace

const GpuRuntime& Runtime() {
  static std::once_flag once;
  std::call_once(once, [] {
    LoadCuda(Storage());
    LoadNccl(Storage());
  });
  return Storage();
}

const CudaRuntime& RequireCuda() {
  const GpuRuntime& rt = Runtime();
  if (!rt.cudaAvailable) throw std::runtime_error("CUDA runtime unavailable: " + rt.cudaReason);
  return rt.cuda;
}

const NcclLibrary& RequireNccl() {
  const GpuRuntime& rt = Runtime();
  if (!rt.ncclAvailable) throw std::runtime_error("NCCL backend unavailable: " + rt.ncclReason);
  return rt.nccl;
}

std::string CudaErrorText(const char* call, cudaError_t error) {
  const CudaRuntime& c = Storage().cuda;
  const char* text = c.getErrorString != nullptr ? c.getErrorString(error) : nullptr;
  return std::string(call) + " failed: " + (text != nullptr ? text : "unknown error") + " (error " +
         std::to_string(error) + ")";
}

std::string NcclErrorText(const char* call, ncclResult_t result, ncclComm_t comm) {
  const NcclLibrary& n = Storage().nccl;
  std::string text = std::string(call) + " failed: ";
  text += n.getErrorString != nullptr ? n.getErrorString(result) : ("error " + std::to_string(result));
  if (n.getLastError != nullptr) {
    const char* last = n.getLastError(comm);
    if (last != nullptr && *last != '\0') text += std::string(": ") + last;
  }
  return text + " (set NCCL_DEBUG=INFO for details)";
}

}  // namespace mist::gpu
