// The CUDA device this process computes on: its primary context, a compute and a communication
// stream, the kernels loaded from the fatbinaries nvcc built, and the caching allocator over
// cuMemAlloc. One device per process (the agents run one worker per GPU, pinned by
// CUDA_VISIBLE_DEVICES or MIST_CUDA_DEVICE). Created on first use; every entry point makes the
// context current on the calling thread, so kernel batches may run on worker threads.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda/caching_allocator.h"
#include "cuda/driver.h"
#include "cuda/launch.h"

namespace mist::cuda {

// Where the fatbinaries are and whether they cover this device, without creating a context.
struct KernelImages {
  std::string directory;
  std::vector<std::string> files;  // *.fatbin, sorted
  std::string reason;              // why there are none, when files is empty
  // From manifest.txt (written by tools/scripts/build-cuda-kernels.js); 0 / empty when absent.
  int cudaVersion = 0;             // of the nvcc that built them, e.g. 13000
  std::vector<int> sass;           // compute capabilities with machine code, e.g. 80 86 89 90
  int ptx = 0;                     // compute capability of the PTX the driver can JIT for newer GPUs
};
KernelImages FindKernelImages();

// Why the images cannot run on `device` under a driver of `driverVersion`, or "" when they can.
std::string KernelIncompatibility(const KernelImages& images, const DeviceProperties& device, int driverVersion);

enum class StreamKind { kCompute, kComm };

class Device {
 public:
  // The process's device, created on first call; throws with the reason when CUDA is unavailable.
  static Device& Get();
  // Whether Get() has already created it (nothing is created by asking).
  static bool Created();

  // Makes the primary context current on the calling thread (cheap; call at every entry point).
  void MakeCurrent() const;

  const DeviceProperties& properties() const { return props_; }
  CUstream stream(StreamKind kind) const { return kind == StreamKind::kCompute ? compute_ : comm_; }
  CachingAllocator& allocator() { return *allocator_; }

  // The kernel `name` from the loaded fatbinaries; throws naming it and the images searched.
  CUfunction Function(const std::string& name);
  void Launch(const std::string& name, Dim3 grid, Dim3 block, unsigned sharedBytes, void** params);
  // The fatbinaries loaded as modules (empty when the addon was built without nvcc).
  const std::vector<std::string>& kernelImages() const { return imageFiles_; }

  // `waiter` waits (on the device, not the host) for all work queued on `signaller` so far.
  void StreamWait(StreamKind waiter, StreamKind signaller);
  void Synchronize(StreamKind kind);
  void SynchronizeAll();

  // Milliseconds per call of `work` (which queues device work on the compute stream), timed with
  // events over `iterations` calls after `warmup` calls.
  double TimeOnCompute(const std::function<void()>& work, int iterations, int warmup);

  // Host memory pinned for asynchronous copies (offloading).
  void* AllocPinned(size_t bytes);
  void FreePinned(void* ptr);
  void CopyToDevice(CUdeviceptr dst, const void* src, size_t bytes, StreamKind kind);
  void CopyToHost(void* dst, CUdeviceptr src, size_t bytes, StreamKind kind);
  void CopyOnDevice(CUdeviceptr dst, CUdeviceptr src, size_t bytes, StreamKind kind);
  void Zero(CUdeviceptr dst, size_t bytes, StreamKind kind);

  // Free and total device memory as the driver sees it (cuMemGetInfo).
  std::pair<size_t, size_t> MemoryInfo() const;

 private:
  Device();
  void LoadKernels();

  const DriverApi& api_;
  DeviceProperties props_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  CUstream compute_ = nullptr;
  CUstream comm_ = nullptr;
  CUevent syncEvent_ = nullptr;
  std::mutex syncEventMutex_;
  std::unique_ptr<RawMemory> raw_;
  std::unique_ptr<CachingAllocator> allocator_;
  std::vector<CUmodule> modules_;
  std::string kernelsReason_;  // why no kernel can be found, when imageFiles_ is empty
  std::vector<std::string> imageFiles_;
  std::mutex functionsMutex_;
  std::map<std::string, CUfunction> functions_;
  std::map<CUfunction, unsigned> sharedLimit_;  // dynamic shared memory raised to this
};

}  // namespace mist::cuda
