// JavaScript face of the CUDA compute backend:
//   cudaProbe()                          what the driver, the device and the kernel images offer
//   cudaOps()                            [{name, signature}] of every CUDA op (launch.h)
//   cudaTensorCreate(count, dtype)       a device tensor handle ('f32' | 'bf16' | 'f16' | 'i32')
//   cudaTensorView(handle, offset, count) elements of a tensor as a tensor sharing its memory
//   cudaTensorFree(handle)               returns its memory to the caching allocator now
//   cudaTensorZero(handle)               zeroes it, queued on the compute stream
//   cudaUpload(handle, typedArray)       Float32Array (converted to the tensor's dtype), Int32Array,
//                                        or Uint16Array (raw bf16/f16 bits); ordered on the compute stream
//   cudaDownload(handle)                 Float32Array (or Int32Array for i32) once the stream is idle
//   cudaRun(op, tensors, ints, floats)   queues one op on the compute stream (asynchronous)
//   cudaSynchronize(stream?)             'compute' | 'comm' | undefined (the whole context)
//   cudaStreamWait(waiter, signaller)    device-side ordering between the two streams
//   cudaMemoryStats(), cudaEmptyCache(), cudaResetPeaks()
//   cudaPinnedBuffer(bytes)              an ArrayBuffer in page-locked host memory
//   cudaCopyAsync(direction, handle, pinned, stream)  'toDevice' | 'toHost' between a tensor and a pinned buffer
//   cudaRoundValues(values, dtype)       fp32 values rounded to bf16/f16 as an upload stores them (no GPU needed)
// and the caching allocator over a simulated address space, so its logic is tested without a GPU:
//   allocatorTestCreate(capacityBytes), allocatorTestAllocate(a, bytes), allocatorTestFree(a, address),
//   allocatorTestStats(a), allocatorTestEmptyCache(a).
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "cuda/caching_allocator.h"
#include "cuda/cublaslt.h"
#include "cuda/device.h"
#include "cuda/driver.h"
#include "cuda/host_convert.h"
#include "cuda/launch.h"
#include "cuda/tensor_handle.h"

namespace mist::cuda {
namespace {

// Tags the tensor handles so other parts of the addon can tell them from other externals.
const napi_type_tag kTensorTag = {0x6d6973742d637564ULL, 0x6174656e736f7231ULL};

struct DeviceTensor {
  CUdeviceptr ptr = 0;  // 0 once freed
  size_t count = 0;
  DType dtype = DType::kF32;
  bool owner = true;    // false for a view into another tensor's memory (never freed through it)
};

void FreeTensor(DeviceTensor* t) {
  if (t->ptr != 0 && t->owner && Device::Created()) Device::Get().allocator().Free(static_cast<uintptr_t>(t->ptr));
  t->ptr = 0;
}

DType ParseDType(const Napi::Env& env, const Napi::Value& v, const std::string& what) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "f32") return DType::kF32;
  if (s == "bf16") return DType::kBF16;
  if (s == "f16") return DType::kF16;
  if (s == "i32") return DType::kI32;
  throw Napi::TypeError::New(env, what + ": dtype must be one of f32, bf16, f16, i32, got " + (s.empty() ? "a non-string" : s));
}

DeviceTensor& Unwrap(const Napi::Env& env, const Napi::Value& v, const std::string& what) {
  if (!v.IsExternal() || !v.As<Napi::External<DeviceTensor>>().CheckTypeTag(&kTensorTag)) {
    throw Napi::TypeError::New(env, what + " is not a CUDA tensor handle");
  }
  DeviceTensor* t = v.As<Napi::External<DeviceTensor>>().Data();
  if (t->ptr == 0) throw Napi::Error::New(env, what + " was already freed");
  return *t;
}

StreamKind ParseStream(const Napi::Env& env, const Napi::Value& v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "compute") return StreamKind::kCompute;
  if (s == "comm") return StreamKind::kComm;
  throw Napi::TypeError::New(env, "stream must be 'compute' or 'comm', got " + (s.empty() ? "a non-string" : s));
}

Napi::Object StatsObject(const Napi::Env& env, const AllocatorStats& s) {
  auto o = Napi::Object::New(env);
  o.Set("allocated", static_cast<double>(s.allocated));
  o.Set("requested", static_cast<double>(s.requested));
  o.Set("reserved", static_cast<double>(s.reserved));
  o.Set("peakAllocated", static_cast<double>(s.peakAllocated));
  o.Set("peakReserved", static_cast<double>(s.peakReserved));
  o.Set("liveAllocations", static_cast<double>(s.liveAllocations));
  o.Set("segments", static_cast<double>(s.segments));
  o.Set("allocations", static_cast<double>(s.allocations));
  o.Set("rawAllocations", static_cast<double>(s.rawAllocations));
  o.Set("rawReleases", static_cast<double>(s.rawReleases));
  o.Set("cacheHits", static_cast<double>(s.cacheHits));
  o.Set("outOfMemory", static_cast<double>(s.outOfMemory));
  o.Set("largestFreeBlock", static_cast<double>(s.largestFreeBlock));
  o.Set("fragmentation", s.fragmentation);
  return o;
}

template <typename F>
auto Guard(const Napi::Env& env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DriverProbe& p = Driver();
  auto o = Napi::Object::New(env);
  KernelImages images = FindKernelImages();
  const bool kernels = !images.files.empty();
  std::string incompatible;
  if (p.available && kernels) incompatible = KernelIncompatibility(images, p.devices.front(), p.driverVersion);
  o.Set("available", p.available && kernels && incompatible.empty());
  if (!p.available) o.Set("reason", p.reason);
  else if (!kernels) o.Set("reason", images.reason);
  else if (!incompatible.empty()) o.Set("reason", incompatible);
  o.Set("driverAvailable", p.available);
  if (!p.path.empty()) o.Set("library", p.path);
  if (p.driverVersion > 0) o.Set("driverVersion", p.driverVersion);
  auto devices = Napi::Array::New(env, p.devices.size());
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const DeviceProperties& d = p.devices[i];
    auto dev = Napi::Object::New(env);
    dev.Set("ordinal", d.ordinal);
    dev.Set("name", d.name);
    dev.Set("memoryBytes", static_cast<double>(d.totalMemory));
    dev.Set("computeCapability", d.computeCapability);
    dev.Set("multiprocessors", d.multiprocessors);
    dev.Set("clockKHz", d.clockKHz);
    dev.Set("maxSharedPerBlock", d.maxSharedPerBlockOptin);
    devices.Set(static_cast<uint32_t>(i), dev);
  }
  o.Set("devices", devices);
  auto k = Napi::Object::New(env);
  k.Set("directory", images.directory);
  auto files = Napi::Array::New(env, images.files.size());
  for (size_t i = 0; i < images.files.size(); ++i) files.Set(static_cast<uint32_t>(i), images.files[i]);
  k.Set("files", files);
  if (!kernels) k.Set("reason", images.reason);
  if (images.cudaVersion > 0) {
    k.Set("cudaVersion", images.cudaVersion);
    auto sass = Napi::Array::New(env, images.sass.size());
    for (size_t i = 0; i < images.sass.size(); ++i) sass.Set(static_cast<uint32_t>(i), images.sass[i]);
    k.Set("sass", sass);
    k.Set("ptx", images.ptx);
  }
  o.Set("kernels", k);
  const CublasLtProbe& lt = CublasLtStatus();
  auto blas = Napi::Object::New(env);
  blas.Set("available", lt.available);
  if (!lt.path.empty()) blas.Set("path", lt.path);
  if (!lt.available) blas.Set("reason", lt.reason);
  if (lt.version > 0) blas.Set("version", static_cast<double>(lt.version));
  o.Set("cublasLt", blas);
  return o;
}

Napi::Value Ops(const Napi::CallbackInfo& info) {
  const auto& table = CudaOpTable();
  auto arr = Napi::Array::New(info.Env(), table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    auto o = Napi::Object::New(info.Env());
    o.Set("name", table[i].name);
    o.Set("signature", table[i].signature);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

Napi::Value TensorCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(env, "cudaTensorCreate: count must be a non-negative number");
  }
  const size_t count = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  const DType dtype = ParseDType(env, info[1], "cudaTensorCreate");
  return Guard(env, [&]() -> Napi::Value {
    Device& device = Device::Get();
    auto* t = new DeviceTensor();
    try {
      t->ptr = static_cast<CUdeviceptr>(device.allocator().Allocate(count * DTypeBytes(dtype)));
    } catch (...) {
      delete t;
      throw;
    }
    t->count = count;
    t->dtype = dtype;
    // Finalizers run on the JavaScript thread after collection; every kernel that used the memory
    // was queued earlier on the same compute stream, so a later allocation reusing it runs after them.
    auto handle = Napi::External<DeviceTensor>::New(env, t, [](Napi::Env, DeviceTensor* p) {
      FreeTensor(p);
      delete p;
    });
    handle.TypeTag(&kTensorTag);
    return handle;
  });
}

// cudaTensorView(handle, offset, count): elements [offset, offset + count) of a tensor as a tensor of
// its own (like Float32Array.subarray); it shares the memory and never frees it. The JavaScript side
// keeps the parent alive while the view is reachable.
Napi::Value TensorViewOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceTensor& parent = Unwrap(env, info[0], "cudaTensorView: handle");
  if (!info[1].IsNumber() || !info[2].IsNumber()) throw Napi::TypeError::New(env, "cudaTensorView: offset and count must be numbers");
  const int64_t offset = info[1].As<Napi::Number>().Int64Value(), count = info[2].As<Napi::Number>().Int64Value();
  if (offset < 0 || count < 0 || static_cast<size_t>(offset + count) > parent.count) {
    throw Napi::RangeError::New(env, "cudaTensorView: [" + std::to_string(offset) + ", " + std::to_string(offset + count) +
                                         ") is outside the tensor's " + std::to_string(parent.count) + " elements");
  }
  auto* view = new DeviceTensor();
  view->ptr = parent.ptr + static_cast<CUdeviceptr>(offset) * DTypeBytes(parent.dtype);
  view->count = static_cast<size_t>(count);
  view->dtype = parent.dtype;
  view->owner = false;
  auto handle = Napi::External<DeviceTensor>::New(env, view, [](Napi::Env, DeviceTensor* p) { delete p; });
  handle.TypeTag(&kTensorTag);
  return handle;
}

// cudaTensorZero(handle): sets the tensor's bytes to 0, queued on the compute stream.
Napi::Value TensorZero(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceTensor& t = Unwrap(env, info[0], "cudaTensorZero: handle");
  Guard(env, [&] {
    Device::Get().Zero(t.ptr, t.count * DTypeBytes(t.dtype), StreamKind::kCompute);
    return 0;
  });
  return env.Undefined();
}

Napi::Value TensorFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "cudaTensorFree: not a CUDA tensor handle");
  Guard(env, [&] {
    FreeTensor(info[0].As<Napi::External<DeviceTensor>>().Data());
    return 0;
  });
  return env.Undefined();
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceTensor& t = Unwrap(env, info[0], "cudaUpload: handle");
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(env, "cudaUpload: data must be a Float32Array, Int32Array or Uint16Array");
  auto ta = info[1].As<Napi::TypedArray>();
  const size_t n = ta.ElementLength();
  if (n != t.count) {
    throw Napi::RangeError::New(env, "cudaUpload: data has " + std::to_string(n) + " elements, the tensor " + std::to_string(t.count));
  }
  const napi_typedarray_type type = ta.TypedArrayType();
  std::vector<uint16_t> halves;
  const void* src = nullptr;
  if (t.dtype == DType::kI32 && type == napi_int32_array) {
    src = info[1].As<Napi::Int32Array>().Data();
  } else if (t.dtype == DType::kF32 && type == napi_float32_array) {
    src = info[1].As<Napi::Float32Array>().Data();
  } else if ((t.dtype == DType::kBF16 || t.dtype == DType::kF16) && type == napi_uint16_array) {
    src = info[1].As<Napi::Uint16Array>().Data();
  } else if ((t.dtype == DType::kBF16 || t.dtype == DType::kF16) && type == napi_float32_array) {
    const float* f = info[1].As<Napi::Float32Array>().Data();
    halves.resize(n);
    for (size_t i = 0; i < n; ++i) halves[i] = t.dtype == DType::kBF16 ? FloatToBf16(f[i]) : FloatToF16(f[i]);
    src = halves.data();
  } else {
    throw Napi::TypeError::New(env, std::string("cudaUpload: a ") + DTypeSuffix(t.dtype) +
                                        " tensor takes " + (t.dtype == DType::kI32 ? "an Int32Array" : t.dtype == DType::kF32 ? "a Float32Array" : "a Float32Array or Uint16Array"));
  }
  Guard(env, [&] {
    Device& device = Device::Get();
    device.CopyToDevice(t.ptr, src, n * DTypeBytes(t.dtype), StreamKind::kCompute);
    device.Synchronize(StreamKind::kCompute);  // the source is pageable and may be collected
    return 0;
  });
  return env.Undefined();
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceTensor& t = Unwrap(env, info[0], "cudaDownload: handle");
  return Guard(env, [&]() -> Napi::Value {
    Device& device = Device::Get();
    if (t.dtype == DType::kI32 || t.dtype == DType::kF32) {
      Napi::TypedArray out = t.dtype == DType::kI32 ? static_cast<Napi::TypedArray>(Napi::Int32Array::New(env, t.count))
                                                    : static_cast<Napi::TypedArray>(Napi::Float32Array::New(env, t.count));
      void* dst = static_cast<uint8_t*>(out.ArrayBuffer().Data()) + out.ByteOffset();
      device.CopyToHost(dst, t.ptr, t.count * 4, StreamKind::kCompute);
      device.Synchronize(StreamKind::kCompute);
      return out;
    }
    std::vector<uint16_t> halves(t.count);
    device.CopyToHost(halves.data(), t.ptr, t.count * 2, StreamKind::kCompute);
    device.Synchronize(StreamKind::kCompute);
    auto out = Napi::Float32Array::New(env, t.count);
    for (size_t i = 0; i < t.count; ++i) out[i] = t.dtype == DType::kBF16 ? Bf16ToFloat(halves[i]) : F16ToFloat(halves[i]);
    return out;
  });
}

// Checks the buffers against the op's signature (launch.h) and fills args.tensors / args.storage.
void BindTensors(const Napi::Env& env, const CudaOpEntry& entry, const Napi::Array& tensors, LaunchArgs& args) {
  const std::string sig = entry.signature;
  if (tensors.Length() > sig.size()) {
    throw Napi::RangeError::New(env, args.op + " (cuda): takes at most " + std::to_string(sig.size()) + " buffers, got " +
                                         std::to_string(tensors.Length()));
  }
  args.tensors.resize(tensors.Length());
  bool storageSet = false;
  for (uint32_t i = 0; i < tensors.Length(); ++i) {
    const char c = sig[i];
    const bool optional = c >= 'A' && c <= 'Z';
    const char kind = static_cast<char>(optional ? c - 'A' + 'a' : c);
    Napi::Value v = tensors.Get(i);
    if (v.IsNull() || v.IsUndefined()) {
      if (!optional) throw Napi::TypeError::New(env, args.op + " (cuda): buffer " + std::to_string(i) + " is required");
      continue;
    }
    DeviceTensor& t = Unwrap(env, v, args.op + " (cuda): buffer " + std::to_string(i));
    const bool isFloat = t.dtype != DType::kI32;
    std::string want;
    if ((kind == 'f' || kind == 'm') && t.dtype != DType::kF32) want = "f32";
    if (kind == 'i' && t.dtype != DType::kI32) want = "i32";
    if ((kind == 'x' || kind == '*') && !isFloat) want = "f32, bf16 or f16";
    if (kind == 'x' && isFloat) {
      if (!storageSet) {
        args.storage = t.dtype;
        storageSet = true;
      } else if (t.dtype != args.storage) {
        want = DTypeSuffix(args.storage);
        want += " (the storage dtype of this call's first 'x' buffer)";
      }
    }
    if (!want.empty()) {
      throw Napi::TypeError::New(env, args.op + " (cuda): buffer " + std::to_string(i) + " is " + DTypeSuffix(t.dtype) + ", must be " + want);
    }
    args.tensors[i] = {t.ptr, t.count, t.dtype};
  }
  for (size_t i = tensors.Length(); i < sig.size(); ++i) {
    if (sig[i] >= 'a' && sig[i] <= 'z') throw Napi::TypeError::New(env, args.op + " (cuda): buffer " + std::to_string(i) + " is required");
  }
}

Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const CudaOpEntry* entry = nullptr;
  for (const CudaOpEntry& e : CudaOpTable()) {
    if (name == e.name) entry = &e;
  }
  if (entry == nullptr) {
    std::string names;
    for (const CudaOpEntry& e : CudaOpTable()) names += (names.empty() ? "" : ", ") + std::string(e.name);
    throw Napi::RangeError::New(env, "cudaRun: unknown op '" + name + "'; CUDA ops: " + names);
  }
  if (!info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
    throw Napi::TypeError::New(env, name + " (cuda): tensors, ints and floats must be arrays");
  }
  LaunchArgs args;
  args.op = name;
  BindTensors(env, *entry, info[1].As<Napi::Array>(), args);
  auto ints = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < ints.Length(); ++i) args.ints.push_back(ints.Get(i).As<Napi::Number>().Int64Value());
  auto floats = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < floats.Length(); ++i) args.floats.push_back(floats.Get(i).As<Napi::Number>().DoubleValue());
  Guard(env, [&] {
    Device::Get().MakeCurrent();
    entry->fn(args);
    return 0;
  });
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Guard(env, [&] {
    if (info.Length() == 0 || info[0].IsUndefined()) Device::Get().SynchronizeAll();
    else Device::Get().Synchronize(ParseStream(env, info[0]));
    return 0;
  });
  return env.Undefined();
}

Napi::Value StreamWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StreamKind waiter = ParseStream(env, info[0]), signaller = ParseStream(env, info[1]);
  Guard(env, [&] {
    Device::Get().StreamWait(waiter, signaller);
    return 0;
  });
  return env.Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    Device& device = Device::Get();
    auto o = StatsObject(env, device.allocator().Stats());
    auto [free, total] = device.MemoryInfo();
    o.Set("deviceFree", static_cast<double>(free));
    o.Set("deviceTotal", static_cast<double>(total));
    return o;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  Guard(info.Env(), [&] {
    Device& device = Device::Get();
    device.SynchronizeAll();  // cached blocks may still be read by queued kernels
    device.allocator().EmptyCache();
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value ResetPeaks(const Napi::CallbackInfo& info) {
  Guard(info.Env(), [&] {
    Device::Get().allocator().ResetPeaks();
    return 0;
  });
  return info.Env().Undefined();
}

Napi::Value PinnedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(env, "cudaPinnedBuffer: bytes must be a non-negative number");
  }
  const size_t bytes = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  return Guard(env, [&]() -> Napi::Value {
    void* ptr = Device::Get().AllocPinned(bytes);
    return Napi::ArrayBuffer::New(env, ptr, bytes, [](Napi::Env, void* p) {
      try {
        Device::Get().FreePinned(p);
      } catch (...) {  // a finalizer must not throw; the memory stays with the process
      }
    });
  });
}

Napi::Value CopyAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string direction = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (direction != "toDevice" && direction != "toHost") throw Napi::TypeError::New(env, "cudaCopyAsync: direction must be 'toDevice' or 'toHost'");
  DeviceTensor& t = Unwrap(env, info[1], "cudaCopyAsync: handle");
  if (!info[2].IsArrayBuffer()) throw Napi::TypeError::New(env, "cudaCopyAsync: the host side must be an ArrayBuffer from cudaPinnedBuffer");
  auto buffer = info[2].As<Napi::ArrayBuffer>();
  const size_t bytes = t.count * DTypeBytes(t.dtype);
  if (buffer.ByteLength() < bytes) {
    throw Napi::RangeError::New(env, "cudaCopyAsync: the pinned buffer holds " + std::to_string(buffer.ByteLength()) + " bytes, the tensor " +
                                         std::to_string(bytes));
  }
  const StreamKind stream = ParseStream(env, info[3]);
  Guard(env, [&] {
    if (direction == "toDevice") Device::Get().CopyToDevice(t.ptr, buffer.Data(), bytes, stream);
    else Device::Get().CopyToHost(buffer.Data(), t.ptr, bytes, stream);
    return 0;
  });
  return env.Undefined();
}

// cudaRoundValues(Float32Array, 'bf16' | 'f16' | 'f32'): the values rounded to the dtype and back
// (what an upload stores), the same conversion the device tensors use; needs no GPU.
Napi::Value RoundValues(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "cudaRoundValues: values must be a Float32Array");
  }
  auto in = info[0].As<Napi::Float32Array>();
  const DType dtype = ParseDType(env, info[1], "cudaRoundValues");
  if (dtype == DType::kI32) throw Napi::TypeError::New(env, "cudaRoundValues: dtype must be f32, bf16 or f16");
  auto out = Napi::Float32Array::New(env, in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); ++i) {
    const float v = in[i];
    out[i] = dtype == DType::kBF16 ? Bf16ToFloat(FloatToBf16(v)) : dtype == DType::kF16 ? F16ToFloat(FloatToF16(v)) : v;
  }
  return out;
}

// cudaKernelCompatibility({name, computeCapability}, driverVersion): why the kernel images found now
// (MIST_CUDA_KERNELS_DIR or next to the addon) cannot run on such a GPU under such a driver, or null.
// What the probe checks for the real device; callable without a GPU.
Napi::Value KernelCompatibility(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "cudaKernelCompatibility: expects ({name, computeCapability}, driverVersion)");
  }
  auto gpu = info[0].As<Napi::Object>();
  DeviceProperties props;
  props.name = gpu.Get("name").IsString() ? gpu.Get("name").As<Napi::String>().Utf8Value() : "GPU";
  props.computeCapability = gpu.Get("computeCapability").As<Napi::Number>().Int32Value();
  const std::string why = KernelIncompatibility(FindKernelImages(), props, info[1].As<Napi::Number>().Int32Value());
  return why.empty() ? env.Null() : Napi::String::New(env, why);
}

// A raw source that hands out addresses of a simulated device of `capacity` bytes.
class SimulatedRawMemory : public RawMemory {
 public:
  explicit SimulatedRawMemory(size_t capacity) : capacity_(capacity) {}
  uintptr_t Allocate(size_t bytes) override {
    if (used_ + bytes > capacity_) return 0;
    used_ += bytes;
    const uintptr_t address = next_;
    next_ += bytes + 4096;  // gaps keep segments from touching
    return address;
  }
  void Release(uintptr_t, size_t bytes) override { used_ -= bytes; }

 private:
  size_t capacity_;
  size_t used_ = 0;
  uintptr_t next_ = 1 << 20;
};

struct TestAllocator {
  SimulatedRawMemory raw;
  CachingAllocator allocator;
  explicit TestAllocator(size_t capacity) : raw(capacity), allocator(raw) {}
};

TestAllocator& UnwrapTest(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(env, "not a test allocator");
  return *v.As<Napi::External<TestAllocator>>().Data();
}

Napi::Value TestCreate(const Napi::CallbackInfo& info) {
  const size_t capacity = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  return Napi::External<TestAllocator>::New(info.Env(), new TestAllocator(capacity), [](Napi::Env, TestAllocator* a) { delete a; });
}

Napi::Value TestAllocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TestAllocator& a = UnwrapTest(env, info[0]);
  const size_t bytes = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  return Guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, static_cast<double>(a.allocator.Allocate(bytes))); });
}

Napi::Value TestFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TestAllocator& a = UnwrapTest(env, info[0]);
  const uintptr_t address = static_cast<uintptr_t>(info[1].As<Napi::Number>().Int64Value());
  Guard(env, [&] {
    a.allocator.Free(address);
    return 0;
  });
  return env.Undefined();
}

Napi::Value TestStats(const Napi::CallbackInfo& info) { return StatsObject(info.Env(), UnwrapTest(info.Env(), info[0]).allocator.Stats()); }

Napi::Value TestEmptyCache(const Napi::CallbackInfo& info) {
  UnwrapTest(info.Env(), info[0]).allocator.EmptyCache();
  return info.Env().Undefined();
}

}  // namespace

bool ReadTensorHandle(const Napi::Value& value, TensorView& out) {
  if (!value.IsExternal() || !value.As<Napi::External<DeviceTensor>>().CheckTypeTag(&kTensorTag)) return false;
  const DeviceTensor* t = value.As<Napi::External<DeviceTensor>>().Data();
  if (t->ptr == 0) return false;
  out = {t->ptr, t->count, t->dtype};
  return true;
}

namespace {

void InitCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaProbe", Napi::Function::New(env, Probe, "cudaProbe"));
  exports.Set("cudaOps", Napi::Function::New(env, Ops, "cudaOps"));
  exports.Set("cudaTensorCreate", Napi::Function::New(env, TensorCreate, "cudaTensorCreate"));
  exports.Set("cudaTensorView", Napi::Function::New(env, TensorViewOf, "cudaTensorView"));
  exports.Set("cudaTensorFree", Napi::Function::New(env, TensorFree, "cudaTensorFree"));
  exports.Set("cudaTensorZero", Napi::Function::New(env, TensorZero, "cudaTensorZero"));
  exports.Set("cudaUpload", Napi::Function::New(env, Upload, "cudaUpload"));
  exports.Set("cudaDownload", Napi::Function::New(env, Download, "cudaDownload"));
  exports.Set("cudaRun", Napi::Function::New(env, Run, "cudaRun"));
  exports.Set("cudaSynchronize", Napi::Function::New(env, Synchronize, "cudaSynchronize"));
  exports.Set("cudaStreamWait", Napi::Function::New(env, StreamWait, "cudaStreamWait"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, MemoryStats, "cudaMemoryStats"));
  exports.Set("cudaEmptyCache", Napi::Function::New(env, EmptyCache, "cudaEmptyCache"));
  exports.Set("cudaResetPeaks", Napi::Function::New(env, ResetPeaks, "cudaResetPeaks"));
  exports.Set("cudaPinnedBuffer", Napi::Function::New(env, PinnedBuffer, "cudaPinnedBuffer"));
  exports.Set("cudaCopyAsync", Napi::Function::New(env, CopyAsync, "cudaCopyAsync"));
  exports.Set("cudaKernelCompatibility", Napi::Function::New(env, KernelCompatibility, "cudaKernelCompatibility"));
  exports.Set("cudaRoundValues", Napi::Function::New(env, RoundValues, "cudaRoundValues"));
  exports.Set("allocatorTestCreate", Napi::Function::New(env, TestCreate, "allocatorTestCreate"));
  exports.Set("allocatorTestAllocate", Napi::Function::New(env, TestAllocate, "allocatorTestAllocate"));
  exports.Set("allocatorTestFree", Napi::Function::New(env, TestFree, "allocatorTestFree"));
  exports.Set("allocatorTestStats", Napi::Function::New(env, TestStats, "allocatorTestStats"));
  exports.Set("allocatorTestEmptyCache", Napi::Function::New(env, TestEmptyCache, "allocatorTestEmptyCache"));
}

const mist::Registrar registrar(&InitCuda);

}  // namespace
}  // namespace mist::cuda
