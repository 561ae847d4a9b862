#include "collectives/device_memory.h"

#include <string>

#include "addon/registry.h"
#include "collectives/gpu_runtime.h"

namespace mist::collectives {
namespace {

const napi_type_tag kDeviceAllocationTag = {0x6d6973742d646576ULL, 0x616c6c6f63617431ULL};

void FreeAllocation(DeviceAllocation& a) {
  if (a.ptr == nullptr) return;
  const gpu::CudaRuntime& cuda = gpu::Runtime().cuda;
  cuda.setDevice(a.device);
  cuda.free(a.ptr);
  a.ptr = nullptr;
}

// deviceAlloc(bytes: number, device: number): handle
Napi::Value DeviceAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(env, "deviceAlloc: bytes must be a non-negative number");
  }
  const size_t bytes = static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue());
  const int device = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  const gpu::CudaRuntime* cuda;
  try {
    cuda = &gpu::RequireCuda();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("deviceAlloc: ") + e.what());
  }
  cudaError_t err = cuda->setDevice(device);
  void* ptr = nullptr;
  if (err == MIST_CUDA_SUCCESS) err = cuda->malloc(&ptr, bytes == 0 ? 1 : bytes);
  if (err != MIST_CUDA_SUCCESS) {
    throw Napi::Error::New(env, "deviceAlloc(" + std::to_string(bytes) + " bytes): " + gpu::CudaErrorText("cudaMalloc", err));
  }
  auto* alloc = new DeviceAllocation{ptr, bytes, device};
  auto external = Napi::External<DeviceAllocation>::New(env, alloc, [](Napi::Env, DeviceAllocation* a) {
    FreeAllocation(*a);
    delete a;
  });
  external.TypeTag(&kDeviceAllocationTag);
  return external;
}

Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  FreeAllocation(UnwrapDeviceAllocation(info[0], "deviceFree: buffer"));
  return info.Env().Undefined();
}

// Copies between a Float32Array and device memory on a libuv worker thread.
class CopyWorker : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, Napi::Value host, Napi::Value device, bool toDevice)
      : Napi::AsyncWorker(env, "mist-device-copy"),
        deferred_(Napi::Promise::Deferred::New(env)),
        hostRef_(Napi::Persistent(host)),
        deviceRef_(Napi::Persistent(device)),
        toDevice_(toDevice) {
    const char* name = toDevice ? "copyToDevice" : "copyToHost";
    if (!host.IsTypedArray() || host.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, std::string(name) + ": the host array must be a Float32Array");
    }
    auto array = host.As<Napi::Float32Array>();
    DeviceAllocation& alloc = UnwrapDeviceAllocation(device, std::string(name) + ": buffer");
    if (alloc.ptr == nullptr) throw Napi::Error::New(env, std::string(name) + ": the device buffer was freed");
    if (array.ByteLength() > alloc.bytes) {
      throw Napi::RangeError::New(env, std::string(name) + ": the host array has " + std::to_string(array.ByteLength()) +
                                           " bytes but the device buffer only " + std::to_string(alloc.bytes));
    }
    host_ = array.Data();
    bytes_ = array.ByteLength();
    device_ = alloc.ptr;
    deviceIndex_ = alloc.device;
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const gpu::CudaRuntime& cuda = gpu::Runtime().cuda;
    cudaError_t err = cuda.setDevice(deviceIndex_);
    if (err == MIST_CUDA_SUCCESS && bytes_ > 0) {
      err = toDevice_ ? cuda.memcpy(device_, host_, bytes_, cudaMemcpyHostToDevice)
                      : cuda.memcpy(host_, device_, bytes_, cudaMemcpyDeviceToHost);
    }
    if (err != MIST_CUDA_SUCCESS) SetError(gpu::CudaErrorText("cudaMemcpy", err));
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> hostRef_;
  Napi::Reference<Napi::Value> deviceRef_;
  bool toDevice_;
  void* host_ = nullptr;
  void* device_ = nullptr;
  size_t bytes_ = 0;
  int deviceIndex_ = 0;
};

Napi::Value QueueCopy(const Napi::CallbackInfo& info, Napi::Value host, Napi::Value device, bool toDevice) {
  try {
    gpu::RequireCuda();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(toDevice ? "copyToDevice: " : "copyToHost: ") + e.what());
  }
  auto* worker = new CopyWorker(info.Env(), host, device, toDevice);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// deviceCopyToDevice(dst: handle, src: Float32Array): Promise<void>
Napi::Value CopyToDevice(const Napi::CallbackInfo& info) { return QueueCopy(info, info[1], info[0], true); }
// deviceCopyToHost(dst: Float32Array, src: handle): Promise<void>
Napi::Value CopyToHost(const Napi::CallbackInfo& info) { return QueueCopy(info, info[0], info[1], false); }

}  // namespace

DeviceAllocation& UnwrapDeviceAllocation(Napi::Value value, const std::string& what) {
  if (!value.IsExternal() || !value.As<Napi::External<DeviceAllocation>>().CheckTypeTag(&kDeviceAllocationTag)) {
    throw Napi::TypeError::New(value.Env(), what + " must be a device buffer from deviceAlloc()");
  }
  return *value.As<Napi::External<DeviceAllocation>>().Data();
}

namespace {

// Adds deviceAlloc, deviceFree, deviceCopyToDevice and deviceCopyToHost to the addon.
void InitDeviceMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceAlloc", Napi::Function::New(env, DeviceAlloc, "deviceAlloc"));
  exports.Set("deviceFree", Napi::Function::New(env, DeviceFree, "deviceFree"));
  exports.Set("deviceCopyToDevice", Napi::Function::New(env, CopyToDevice, "deviceCopyToDevice"));
  exports.Set("deviceCopyToHost", Napi::Function::New(env, CopyToHost, "deviceCopyToHost"));
}

const mist::Registrar registrar(&InitDeviceMemory);

}  // namespace

}  // namespace mist::collectives
