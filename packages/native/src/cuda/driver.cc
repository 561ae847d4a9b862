#include "cuda/driver.h"

#include <mutex>
#include <stdexcept>

#include "addon/dynamic_library.h"

namespace mist::cuda {
namespace {

DriverProbe& Storage() {
  static DriverProbe probe;
  return probe;
}

void BindAll(void* h, DriverApi& d, std::string& missing) {
  Bind(h, "cuInit", d.init, missing);
  Bind(h, "cuDriverGetVersion", d.driverGetVersion, missing);
  Bind(h, "cuGetErrorString", d.getErrorString, missing);
  Bind(h, "cuGetErrorName", d.getErrorName, missing);
  Bind(h, "cuDeviceGetCount", d.deviceGetCount, missing);
  Bind(h, "cuDeviceGet", d.deviceGet, missing);
  Bind(h, "cuDeviceGetName", d.deviceGetName, missing);
  Bind(h, "cuDeviceTotalMem_v2", d.deviceTotalMem, missing);
  Bind(h, "cuDeviceGetAttribute", d.deviceGetAttribute, missing);
  Bind(h, "cuDevicePrimaryCtxRetain", d.primaryCtxRetain, missing);
  Bind(h, "cuDevicePrimaryCtxRelease_v2", d.primaryCtxRelease, missing);
  Bind(h, "cuCtxSetCurrent", d.ctxSetCurrent, missing);
  Bind(h, "cuCtxSynchronize", d.ctxSynchronize, missing);
  Bind(h, "cuMemGetInfo_v2", d.memGetInfo, missing);
  Bind(h, "cuMemAlloc_v2", d.memAlloc, missing);
  Bind(h, "cuMemFree_v2", d.memFree, missing);
  Bind(h, "cuMemHostAlloc", d.memHostAlloc, missing);
  Bind(h, "cuMemFreeHost", d.memFreeHost, missing);
  Bind(h, "cuMemcpyHtoDAsync_v2", d.memcpyHtoDAsync, missing);
  Bind(h, "cuMemcpyDtoHAsync_v2", d.memcpyDtoHAsync, missing);
  Bind(h, "cuMemcpyDtoDAsync_v2", d.memcpyDtoDAsync, missing);
  Bind(h, "cuMemsetD8Async", d.memsetD8Async, missing);
  Bind(h, "cuMemsetD32Async", d.memsetD32Async, missing);
  Bind(h, "cuStreamCreate", d.streamCreate, missing);
  Bind(h, "cuStreamDestroy_v2", d.streamDestroy, missing);
  Bind(h, "cuStreamSynchronize", d.streamSynchronize, missing);
  Bind(h, "cuStreamWaitEvent", d.streamWaitEvent, missing);
  Bind(h, "cuEventCreate", d.eventCreate, missing);
  Bind(h, "cuEventDestroy_v2", d.eventDestroy, missing);
  Bind(h, "cuEventRecord", d.eventRecord, missing);
  Bind(h, "cuEventSynchronize", d.eventSynchronize, missing);
  // The plain symbol exists in every driver; cuda.h 12.8+ maps the name to _v2, same signature.
  Bind(h, "cuEventElapsedTime", d.eventElapsedTime, missing);
  Bind(h, "cuModuleLoadData", d.moduleLoadData, missing);
  Bind(h, "cuModuleUnload", d.moduleUnload, missing);
  Bind(h, "cuModuleGetFunction", d.moduleGetFunction, missing);
  Bind(h, "cuFuncSetAttribute", d.funcSetAttribute, missing);
  Bind(h, "cuLaunchKernel", d.launchKernel, missing);
}

int Attribute(const DriverApi& d, int attribute, CUdevice device) {
  int value = 0;
  return d.deviceGetAttribute(&value, attribute, device) == kCudaSuccess ? value : 0;
}

void Probe(DriverProbe& p) {
  OpenedLibrary lib = OpenLibrary("MIST_CUDA_DRIVER_PATH", {"libcuda.so.1", "libcuda.so"});
  if (lib.handle == nullptr) {
    p.reason = "the CUDA driver (libcuda.so.1) is not installed: " + lib.error;
    return;
  }
  p.path = lib.path;
  std::string missing;
  BindAll(lib.handle, p.api, missing);
  if (!missing.empty()) {
    p.reason = lib.path + " lacks the symbol " + missing + " (a CUDA 11.0 or newer driver is needed)";
    return;
  }
  const DriverApi& d = p.api;
  d.driverGetVersion(&p.driverVersion);
  CUresult r = d.init(0);
  if (r != kCudaSuccess) {
    p.reason = "no usable CUDA device: " + DriverErrorText("cuInit", r);
    return;
  }
  int count = 0;
  r = d.deviceGetCount(&count);
  if (r != kCudaSuccess || count <= 0) {
    p.reason = r != kCudaSuccess ? DriverErrorText("cuDeviceGetCount", r) : "no CUDA device found (cuDeviceGetCount returned 0)";
    return;
  }
  for (int i = 0; i < count; ++i) {
    CUdevice dev = 0;
    if (d.deviceGet(&dev, i) != kCudaSuccess) continue;
    DeviceProperties props;
    props.ordinal = i;
    char name[256] = {0};
    if (d.deviceGetName(name, sizeof(name) - 1, dev) == kCudaSuccess) props.name = name;
    d.deviceTotalMem(&props.totalMemory, dev);
    props.computeCapability = Attribute(d, kAttrComputeCapabilityMajor, dev) * 10 + Attribute(d, kAttrComputeCapabilityMinor, dev);
    props.multiprocessors = Attribute(d, kAttrMultiprocessorCount, dev);
    props.clockKHz = Attribute(d, kAttrClockRate, dev);
    props.maxSharedPerBlockOptin = Attribute(d, kAttrMaxSharedPerBlockOptin, dev);
    props.pciBusId = Attribute(d, kAttrPciBusId, dev);
    p.devices.push_back(props);
  }
  if (p.devices.empty()) {
    p.reason = "cuDeviceGet failed for every one of the " + std::to_string(count) + " devices";
    return;
  }
  p.available = true;
}

}  // namespace

const DriverProbe& Driver() {
  static std::once_flag once;
  std::call_once(once, [] { Probe(Storage()); });
  return Storage();
}

const DriverApi& RequireDriver() {
  const DriverProbe& p = Driver();
  if (!p.available) throw std::runtime_error("CUDA backend unavailable: " + p.reason);
  return p.api;
}

std::string DriverErrorText(const char* call, CUresult result) {
  const DriverApi& d = Storage().api;
  const char* name = nullptr;
  const char* text = nullptr;
  if (d.getErrorName != nullptr) d.getErrorName(result, &name);
  if (d.getErrorString != nullptr) d.getErrorString(result, &text);
  std::string out = std::string(call) + " failed: " + (name != nullptr ? name : "error " + std::to_string(result));
  if (text != nullptr) out += std::string(" (") + text + ")";
  return out;
}

void Check(const char* call, CUresult result) {
  if (result != kCudaSuccess) throw std::runtime_error(DriverErrorText(call, result));
}

}  // namespace mist::cuda
