#include "cuda/device.h"

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace mist::cuda {
namespace {

constexpr CUresult kErrorOutOfMemory = 2;  // CUDA_ERROR_OUT_OF_MEMORY

// Device memory from cuMemAlloc; exhaustion is reported as 0 so the allocator can free its cache
// and retry.
class DriverRawMemory : public RawMemory {
 public:
  explicit DriverRawMemory(const DriverApi& api) : api_(api) {}
  uintptr_t Allocate(size_t bytes) override {
    CUdeviceptr ptr = 0;
    CUresult r = api_.memAlloc(&ptr, bytes);
    if (r == kErrorOutOfMemory) return 0;
    Check("cuMemAlloc", r);
    return static_cast<uintptr_t>(ptr);
  }
  void Release(uintptr_t address, size_t) override { Check("cuMemFree", api_.memFree(static_cast<CUdeviceptr>(address))); }

 private:
  const DriverApi& api_;
};

std::string AddonDirectory() {
  Dl_info info;
  if (::dladdr(reinterpret_cast<void*>(&FindKernelImages), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the kernel image " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::mutex g_create_mutex;
Device* g_device = nullptr;

}  // namespace

KernelImages FindKernelImages() {
  KernelImages images;
  const char* env = std::getenv("MIST_CUDA_KERNELS_DIR");
  images.directory = env != nullptr && *env != '\0' ? env : AddonDirectory() + "/cuda-kernels";
  DIR* dir = ::opendir(images.directory.c_str());
  if (dir == nullptr) {
    images.reason = "the addon was built without CUDA kernels (no " + images.directory +
                    "; rebuild with nvcc on the PATH: node tools/scripts/build-native.js --force)";
    return images;
  }
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".fatbin") == 0) images.files.push_back(images.directory + "/" + name);
  }
  ::closedir(dir);
  std::sort(images.files.begin(), images.files.end());
  if (images.files.empty()) images.reason = "no *.fatbin in " + images.directory;
  std::ifstream manifest(images.directory + "/manifest.txt");
  std::string line;
  while (std::getline(manifest, line)) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    int value = 0;
    if (key == "cuda") words >> images.cudaVersion;
    else if (key == "ptx") words >> images.ptx;
    else if (key == "sass") while (words >> value) images.sass.push_back(value);
  }
  return images;
}

std::string KernelIncompatibility(const KernelImages& images, const DeviceProperties& device, int driverVersion) {
  if (images.cudaVersion == 0) return "";  // no manifest: the module loader will say
  auto version = [](int code) { return std::to_string(code / 1000) + "." + std::to_string((code % 1000) / 10); };
  if (driverVersion > 0 && driverVersion < images.cudaVersion) {
    return "the CUDA kernels were built by CUDA " + version(images.cudaVersion) + " and this driver supports CUDA " + version(driverVersion) +
           ": install a driver for CUDA " + version(images.cudaVersion) + " or newer, or rebuild the addon with an nvcc no newer than the driver";
  }
  const int cc = device.computeCapability;
  if (std::find(images.sass.begin(), images.sass.end(), cc) != images.sass.end()) return "";
  if (images.ptx > 0 && cc >= images.ptx) return "";
  std::string have;
  for (int s : images.sass) have += (have.empty() ? "sm_" : ", sm_") + std::to_string(s);
  return device.name + " is sm_" + std::to_string(cc) + "; the CUDA kernels hold code for " + have +
         (images.ptx > 0 ? " and PTX for sm_" + std::to_string(images.ptx) + " and newer" : "");
}

Device& Device::Get() {
  std::lock_guard<std::mutex> lock(g_create_mutex);
  if (g_device == nullptr) g_device = new Device();  // lives until the process exits
  return *g_device;
}

bool Device::Created() {
  std::lock_guard<std::mutex> lock(g_create_mutex);
  return g_device != nullptr;
}

Device::Device() : api_(RequireDriver()) {
  const DriverProbe& probe = Driver();
  int ordinal = 0;
  if (const char* env = std::getenv("MIST_CUDA_DEVICE")) ordinal = std::atoi(env);
  if (ordinal < 0 || ordinal >= static_cast<int>(probe.devices.size())) {
    throw std::runtime_error("MIST_CUDA_DEVICE=" + std::to_string(ordinal) + " is outside [0, " +
                             std::to_string(probe.devices.size()) + ")");
  }
  props_ = probe.devices[static_cast<size_t>(ordinal)];
  Check("cuDeviceGet", api_.deviceGet(&device_, ordinal));
  Check("cuDevicePrimaryCtxRetain", api_.primaryCtxRetain(&context_, device_));
  MakeCurrent();
  Check("cuStreamCreate", api_.streamCreate(&compute_, kStreamNonBlocking));
  Check("cuStreamCreate", api_.streamCreate(&comm_, kStreamNonBlocking));
  Check("cuEventCreate", api_.eventCreate(&syncEvent_, kEventDisableTiming));
  raw_ = std::make_unique<DriverRawMemory>(api_);
  allocator_ = std::make_unique<CachingAllocator>(*raw_);
  LoadKernels();
}

void Device::LoadKernels() {
  KernelImages images = FindKernelImages();
  if (images.files.empty()) {
    kernelsReason_ = images.reason;
    return;
  }
  const std::string incompatible = KernelIncompatibility(images, props_, Driver().driverVersion);
  if (!incompatible.empty()) {
    kernelsReason_ = incompatible;  // memory, copies and streams still work; every kernel names this
    return;
  }
  for (const std::string& file : images.files) {
    std::string image = ReadFile(file);
    CUmodule module = nullptr;
    CUresult r = api_.moduleLoadData(&module, image.data());
    if (r != kCudaSuccess) {
      throw std::runtime_error(DriverErrorText("cuModuleLoadData", r) + " for " + file + " on " + props_.name + " (sm_" +
                               std::to_string(props_.computeCapability) +
                               ", driver " + std::to_string(Driver().driverVersion) +
                               "): the images hold SASS for sm_80/86/89/90 and PTX for newer GPUs, built by the nvcc of the build machine; "
                               "a driver older than that nvcc cannot load them");
    }
    modules_.push_back(module);
    imageFiles_.push_back(file);
  }
}

void Device::MakeCurrent() const { Check("cuCtxSetCurrent", api_.ctxSetCurrent(context_)); }

CUfunction Device::Function(const std::string& name) {
  std::lock_guard<std::mutex> lock(functionsMutex_);
  auto it = functions_.find(name);
  if (it != functions_.end()) return it->second;
  if (modules_.empty()) throw std::runtime_error("CUDA kernel " + name + " is unavailable: " + kernelsReason_);
  for (CUmodule module : modules_) {
    CUfunction fn = nullptr;
    if (api_.moduleGetFunction(&fn, module, name.c_str()) == kCudaSuccess && fn != nullptr) {
      functions_[name] = fn;
      return fn;
    }
  }
  throw std::runtime_error("CUDA kernel " + name + " is not in any of the " + std::to_string(modules_.size()) +
                           " loaded kernel images (rebuild the addon: node tools/scripts/build-native.js --force)");
}

void Device::Launch(const std::string& name, Dim3 grid, Dim3 block, unsigned sharedBytes, void** params) {
  MakeCurrent();
  CUfunction fn = Function(name);
  if (sharedBytes > 48 * 1024) {
    std::lock_guard<std::mutex> lock(functionsMutex_);
    unsigned& limit = sharedLimit_[fn];
    if (limit < sharedBytes) {
      if (static_cast<int>(sharedBytes) > props_.maxSharedPerBlockOptin) {
        throw std::runtime_error("CUDA kernel " + name + " needs " + std::to_string(sharedBytes) + " bytes of shared memory; " +
                                 props_.name + " allows " + std::to_string(props_.maxSharedPerBlockOptin));
      }
      Check("cuFuncSetAttribute", api_.funcSetAttribute(fn, kFuncAttrMaxDynamicShared, static_cast<int>(sharedBytes)));
      limit = sharedBytes;
    }
  }
  CUresult r = api_.launchKernel(fn, grid.x, grid.y, grid.z, block.x, block.y, block.z, sharedBytes, compute_, params, nullptr);
  if (r != kCudaSuccess) {
    std::ostringstream msg;
    msg << DriverErrorText("cuLaunchKernel", r) << " for " << name << " grid (" << grid.x << "," << grid.y << "," << grid.z
        << ") block (" << block.x << "," << block.y << "," << block.z << ") shared " << sharedBytes;
    throw std::runtime_error(msg.str());
  }
}

void Device::StreamWait(StreamKind waiter, StreamKind signaller) {
  MakeCurrent();
  // One event serves every caller (the JavaScript thread and each NCCL communicator's worker thread):
  // its record and the wait on it must not interleave with another caller's.
  std::lock_guard<std::mutex> lock(syncEventMutex_);
  Check("cuEventRecord", api_.eventRecord(syncEvent_, stream(signaller)));
  Check("cuStreamWaitEvent", api_.streamWaitEvent(stream(waiter), syncEvent_, 0));
}

void Device::Synchronize(StreamKind kind) {
  MakeCurrent();
  Check("cuStreamSynchronize", api_.streamSynchronize(stream(kind)));
}

void Device::SynchronizeAll() {
  MakeCurrent();
  Check("cuCtxSynchronize", api_.ctxSynchronize());
}

double Device::TimeOnCompute(const std::function<void()>& work, int iterations, int warmup) {
  MakeCurrent();
  for (int i = 0; i < warmup; ++i) work();
  CUevent start = nullptr, stop = nullptr;
  Check("cuEventCreate", api_.eventCreate(&start, kEventDefault));
  Check("cuEventCreate", api_.eventCreate(&stop, kEventDefault));
  float ms = 0;
  try {
    Check("cuEventRecord", api_.eventRecord(start, compute_));
    for (int i = 0; i < iterations; ++i) work();
    Check("cuEventRecord", api_.eventRecord(stop, compute_));
    Check("cuEventSynchronize", api_.eventSynchronize(stop));
    Check("cuEventElapsedTime", api_.eventElapsedTime(&ms, start, stop));
  } catch (...) {
    api_.eventDestroy(start);
    api_.eventDestroy(stop);
    throw;
  }
  api_.eventDestroy(start);
  api_.eventDestroy(stop);
  return static_cast<double>(ms) / std::max(1, iterations);
}

void* Device::AllocPinned(size_t bytes) {
  MakeCurrent();
  void* ptr = nullptr;
  Check("cuMemHostAlloc", api_.memHostAlloc(&ptr, bytes == 0 ? 1 : bytes, kMemHostAllocPortable));
  return ptr;
}

void Device::FreePinned(void* ptr) {
  MakeCurrent();
  Check("cuMemFreeHost", api_.memFreeHost(ptr));
}

void Device::CopyToDevice(CUdeviceptr dst, const void* src, size_t bytes, StreamKind kind) {
  MakeCurrent();
  Check("cuMemcpyHtoDAsync", api_.memcpyHtoDAsync(dst, src, bytes, stream(kind)));
}

void Device::CopyToHost(void* dst, CUdeviceptr src, size_t bytes, StreamKind kind) {
  MakeCurrent();
  Check("cuMemcpyDtoHAsync", api_.memcpyDtoHAsync(dst, src, bytes, stream(kind)));
}

void Device::CopyOnDevice(CUdeviceptr dst, CUdeviceptr src, size_t bytes, StreamKind kind) {
  MakeCurrent();
  Check("cuMemcpyDtoDAsync", api_.memcpyDtoDAsync(dst, src, bytes, stream(kind)));
}

void Device::Zero(CUdeviceptr dst, size_t bytes, StreamKind kind) {
  MakeCurrent();
  Check("cuMemsetD8Async", api_.memsetD8Async(dst, 0, bytes, stream(kind)));
}

std::pair<size_t, size_t> Device::MemoryInfo() const {
  MakeCurrent();
  size_t free = 0, total = 0;
  Check("cuMemGetInfo", api_.memGetInfo(&free, &total));
  return {free, total};
}

void LaunchRaw(const std::string& function, Dim3 grid, Dim3 block, unsigned sharedBytes, void** params) {
  Device::Get().Launch(function, grid, block, sharedBytes, params);
}

int DeviceMultiprocessors() { return Device::Get().properties().multiprocessors; }
int DeviceComputeCapability() { return Device::Get().properties().computeCapability; }

}  // namespace mist::cuda
