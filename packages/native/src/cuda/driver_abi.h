// The part of the CUDA driver API (cuda.h) the CUDA compute backend calls, declared here so the
// addon compiles on machines without the CUDA toolkit and opens libcuda.so.1 with dlopen at run
// time. Types, values and versioned symbol names follow cuda.h of CUDA 12/13 (the _v2 entry points
// are the ones cuda.h maps the plain names to); checked against /usr/local/cuda-13.0/include/cuda.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mist::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;  // NOLINT: the driver's own type
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;
using CUcontext = CUctx_st*;
using CUmodule = CUmod_st*;
using CUfunction = CUfunc_st*;
using CUstream = CUstream_st*;
using CUevent = CUevent_st*;

constexpr CUresult kCudaSuccess = 0;
constexpr CUresult kCudaErrorNotReady = 600;
constexpr unsigned kStreamNonBlocking = 0x1;       // CU_STREAM_NON_BLOCKING
constexpr unsigned kEventDefault = 0x0;            // CU_EVENT_DEFAULT
constexpr unsigned kEventDisableTiming = 0x2;      // CU_EVENT_DISABLE_TIMING
constexpr unsigned kMemHostAllocPortable = 0x01;   // CU_MEMHOSTALLOC_PORTABLE
constexpr int kAttrClockRate = 13;                 // CU_DEVICE_ATTRIBUTE_CLOCK_RATE (kHz)
constexpr int kAttrMultiprocessorCount = 16;       // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
constexpr int kAttrPciBusId = 33;                  // CU_DEVICE_ATTRIBUTE_PCI_BUS_ID
constexpr int kAttrComputeCapabilityMajor = 75;    // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttrComputeCapabilityMinor = 76;    // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
constexpr int kAttrMaxSharedPerBlockOptin = 97;    // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
constexpr int kFuncAttrMaxDynamicShared = 8;       // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

extern "C" {
using cuInit_fn = CUresult (*)(unsigned flags);
using cuDriverGetVersion_fn = CUresult (*)(int* version);
using cuGetErrorString_fn = CUresult (*)(CUresult error, const char** text);
using cuGetErrorName_fn = CUresult (*)(CUresult error, const char** text);
using cuDeviceGetCount_fn = CUresult (*)(int* count);
using cuDeviceGet_fn = CUresult (*)(CUdevice* device, int ordinal);
using cuDeviceGetName_fn = CUresult (*)(char* name, int len, CUdevice device);
using cuDeviceTotalMem_fn = CUresult (*)(size_t* bytes, CUdevice device);
using cuDeviceGetAttribute_fn = CUresult (*)(int* value, int attribute, CUdevice device);
using cuDevicePrimaryCtxRetain_fn = CUresult (*)(CUcontext* ctx, CUdevice device);
using cuDevicePrimaryCtxRelease_fn = CUresult (*)(CUdevice device);
using cuCtxSetCurrent_fn = CUresult (*)(CUcontext ctx);
using cuCtxSynchronize_fn = CUresult (*)();
using cuMemGetInfo_fn = CUresult (*)(size_t* free, size_t* total);
using cuMemAlloc_fn = CUresult (*)(CUdeviceptr* ptr, size_t bytes);
using cuMemFree_fn = CUresult (*)(CUdeviceptr ptr);
using cuMemHostAlloc_fn = CUresult (*)(void** ptr, size_t bytes, unsigned flags);
using cuMemFreeHost_fn = CUresult (*)(void* ptr);
using cuMemcpyHtoDAsync_fn = CUresult (*)(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream);
using cuMemcpyDtoHAsync_fn = CUresult (*)(void* dst, CUdeviceptr src, size_t bytes, CUstream stream);
using cuMemcpyDtoDAsync_fn = CUresult (*)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream);
using cuMemsetD8Async_fn = CUresult (*)(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream);
using cuMemsetD32Async_fn = CUresult (*)(CUdeviceptr dst, unsigned value, size_t count, CUstream stream);
using cuStreamCreate_fn = CUresult (*)(CUstream* stream, unsigned flags);
using cuStreamDestroy_fn = CUresult (*)(CUstream stream);
using cuStreamSynchronize_fn = CUresult (*)(CUstream stream);
using cuStreamWaitEvent_fn = CUresult (*)(CUstream stream, CUevent event, unsigned flags);
using cuEventCreate_fn = CUresult (*)(CUevent* event, unsigned flags);
using cuEventDestroy_fn = CUresult (*)(CUevent event);
using cuEventRecord_fn = CUresult (*)(CUevent event, CUstream stream);
using cuEventSynchronize_fn = CUresult (*)(CUevent event);
using cuEventElapsedTime_fn = CUresult (*)(float* ms, CUevent start, CUevent end);
using cuModuleLoadData_fn = CUresult (*)(CUmodule* module, const void* image);
using cuModuleUnload_fn = CUresult (*)(CUmodule module);
using cuModuleGetFunction_fn = CUresult (*)(CUfunction* fn, CUmodule module, const char* name);
using cuFuncSetAttribute_fn = CUresult (*)(CUfunction fn, int attribute, int value);
using cuLaunchKernel_fn = CUresult (*)(CUfunction fn, unsigned gridX, unsigned gridY, unsigned gridZ, unsigned blockX,
                                       unsigned blockY, unsigned blockZ, unsigned sharedBytes, CUstream stream,
                                       void** params, void** extra);
}

}  // namespace mist::cuda
