// The CUDA driver API opened at run time (libcuda.so.1 by dlopen) and the probe that tells whether
// the CUDA compute backend can run here and, if not, exactly why.
#pragma once
#include <string>
#include <vector>

#include "cuda/driver_abi.h"

namespace mist::cuda {

struct DriverApi {
  cuInit_fn init = nullptr;
  cuDriverGetVersion_fn driverGetVersion = nullptr;
  cuGetErrorString_fn getErrorString = nullptr;
  cuGetErrorName_fn getErrorName = nullptr;
  cuDeviceGetCount_fn deviceGetCount = nullptr;
  cuDeviceGet_fn deviceGet = nullptr;
  cuDeviceGetName_fn deviceGetName = nullptr;
  cuDeviceTotalMem_fn deviceTotalMem = nullptr;
  cuDeviceGetAttribute_fn deviceGetAttribute = nullptr;
  cuDevicePrimaryCtxRetain_fn primaryCtxRetain = nullptr;
  cuDevicePrimaryCtxRelease_fn primaryCtxRelease = nullptr;
  cuCtxSetCurrent_fn ctxSetCurrent = nullptr;
  cuCtxSynchronize_fn ctxSynchronize = nullptr;
  cuMemGetInfo_fn memGetInfo = nullptr;
  cuMemAlloc_fn memAlloc = nullptr;
  cuMemFree_fn memFree = nullptr;
  cuMemHostAlloc_fn memHostAlloc = nullptr;
  cuMemFreeHost_fn memFreeHost = nullptr;
  cuMemcpyHtoDAsync_fn memcpyHtoDAsync = nullptr;
  cuMemcpyDtoHAsync_fn memcpyDtoHAsync = nullptr;
  cuMemcpyDtoDAsync_fn memcpyDtoDAsync = nullptr;
  cuMemsetD8Async_fn memsetD8Async = nullptr;
  cuMemsetD32Async_fn memsetD32Async = nullptr;
  cuStreamCreate_fn streamCreate = nullptr;
  cuStreamDestroy_fn streamDestroy = nullptr;
  cuStreamSynchronize_fn streamSynchronize = nullptr;
  cuStreamWaitEvent_fn streamWaitEvent = nullptr;
  cuEventCreate_fn eventCreate = nullptr;
  cuEventDestroy_fn eventDestroy = nullptr;
  cuEventRecord_fn eventRecord = nullptr;
  cuEventSynchronize_fn eventSynchronize = nullptr;
  cuEventElapsedTime_fn eventElapsedTime = nullptr;
  cuModuleLoadData_fn moduleLoadData = nullptr;
  cuModuleUnload_fn moduleUnload = nullptr;
  cuModuleGetFunction_fn moduleGetFunction = nullptr;
  cuFuncSetAttribute_fn funcSetAttribute = nullptr;
  cuLaunchKernel_fn launchKernel = nullptr;
};

struct DeviceProperties {
  int ordinal = 0;
  std::string name;
  size_t totalMemory = 0;
  int computeCapability = 0;  // major * 10 + minor, e.g. 90
  int multiprocessors = 0;
  int clockKHz = 0;
  int maxSharedPerBlockOptin = 0;
  int pciBusId = 0;
};

struct DriverProbe {
  bool available = false;  // the driver opened, initialised and has at least one device
  std::string reason;      // why not, when !available
  std::string path;        // the library that was opened
  int driverVersion = 0;   // e.g. 13000 for 13.0
  std::vector<DeviceProperties> devices;
  DriverApi api;
};

// Opens and initialises the driver once per process (thread-safe) and returns the probe.
const DriverProbe& Driver();

// Throws std::runtime_error with the reason when the driver cannot be used.
const DriverApi& RequireDriver();

// "cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
std::string DriverErrorText(const char* call, CUresult result);

// Throws std::runtime_error(DriverErrorText(call, result)) unless result is success.
void Check(const char* call, CUresult result);

}  // namespace mist::cuda
