// cudaGemmBenchmark({m, n, k, dtype?, path?, iterations?, transA?, transB?}): times the GEMM of the
// CUDA matmul op (cuda/ops/matmul.h) on the compute stream and returns
// {path, m, n, k, dtype, transA, transB, iterations, ms, tflops}.
//   dtype: 'bf16' (default), 'f16' or 'f32'; path: 'auto' (default; cuBLASLt when it opened),
//   'own' or 'cublaslt'; iterations: timed launches (default 20) after 3 untimed ones.
// A [m,k] (or [k,m]), B [k,n] (or [n,k]) and C [m,n] come from the device's caching allocator and
// are freed afterwards; A and B hold a repeating pattern of small values (0.125, -0.0625), so sums
// stay finite in f16 for any k up to ~500k. ms is per launch (CUDA events around all timed
// launches); tflops = 2 m n k / time. `path` in the result is the path that ran (auto resolves).
#include <cstdint>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "cuda/device.h"
#include "cuda/ops/matmul.h"

namespace mist::cuda {
namespace {

int64_t IntOption(const Napi::Object& o, const char* key, int64_t fallback, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw Napi::TypeError::New(o.Env(), std::string("cudaGemmBenchmark: ") + key + " is required");
    return fallback;
  }
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 1) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::TypeError::New(o.Env(), std::string("cudaGemmBenchmark: ") + key + " must be a positive integer");
  }
  return static_cast<int64_t>(d);
}

std::string StringOption(const Napi::Object& o, const char* key, const char* fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("cudaGemmBenchmark: ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool BoolOption(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && v.ToBoolean().Value();
}

// 32-bit fill words: two elements (0.125, -0.0625) of a 16-bit dtype, or one fp32 0.125 / -0.0625.
uint32_t Pattern(DType dtype, bool second) {
  switch (dtype) {
    case DType::kBF16: return second ? 0x3E00BD80u : 0xBD803E00u;
    case DType::kF16: return second ? 0x3000AC00u : 0xAC003000u;
    default: return second ? 0xBD800000u : 0x3E000000u;
  }
}

// Device buffers freed (after the compute stream drains) however the benchmark ends.
class Buffers {
 public:
  explicit Buffers(Device& device) : device_(device) {}
  ~Buffers() {
    try {
      device_.Synchronize(StreamKind::kCompute);
    } catch (...) {
    }
    for (uintptr_t p : owned_) device_.allocator().Free(p);
  }
  // `elements` of `bytesPer` bytes, the size rounded up to whole 32-bit words and filled with `word`.
  CUdeviceptr Filled(size_t elements, size_t bytesPer, uint32_t word) {
    const size_t words = (elements * bytesPer + 3) / 4;
    const uintptr_t p = device_.allocator().Allocate(words * 4);
    owned_.push_back(p);
    Check("cuMemsetD32Async",
          RequireDriver().memsetD32Async(static_cast<CUdeviceptr>(p), word, words, device_.stream(StreamKind::kCompute)));
    return static_cast<CUdeviceptr>(p);
  }

 private:
  Device& device_;
  std::vector<uintptr_t> owned_;
};

Napi::Value CudaGemmBenchmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw Napi::TypeError::New(env, "cudaGemmBenchmark: expects {m, n, k, dtype?, path?, iterations?, transA?, transB?}");
  }
  const Napi::Object o = info[0].As<Napi::Object>();
  const int64_t m = IntOption(o, "m", 0, true), n = IntOption(o, "n", 0, true), k = IntOption(o, "k", 0, true);
  const int64_t iterations = IntOption(o, "iterations", 20, false);
  const std::string dtypeName = StringOption(o, "dtype", "bf16");
  const std::string pathName = StringOption(o, "path", "auto");
  const bool transA = BoolOption(o, "transA"), transB = BoolOption(o, "transB");
  DType dtype;
  if (dtypeName == "bf16") {
    dtype = DType::kBF16;
  } else if (dtypeName == "f16") {
    dtype = DType::kF16;
  } else if (dtypeName == "f32") {
    dtype = DType::kF32;
  } else {
    throw Napi::TypeError::New(env, "cudaGemmBenchmark: dtype must be 'bf16', 'f16' or 'f32', got '" + dtypeName + "'");
  }
  if (iterations > 1000000) throw Napi::RangeError::New(env, "cudaGemmBenchmark: iterations must be at most 1000000");

  try {
    const GemmPath path = ParseGemmPath(pathName, "path");
    Device& device = Device::Get();
    device.MakeCurrent();
    const char* used = nullptr;
    double ms = 0;
    {
      Buffers buffers(device);
      const size_t bytes = DTypeBytes(dtype);
      const CUdeviceptr a = buffers.Filled(static_cast<size_t>(m) * k, bytes, Pattern(dtype, false));
      const CUdeviceptr b = buffers.Filled(static_cast<size_t>(k) * n, bytes, Pattern(dtype, true));
      const CUdeviceptr c = buffers.Filled(static_cast<size_t>(m) * n, bytes, 0u);
      auto launch = [&] { used = RunGemm(path, dtype, transA, transB, m, n, k, 1.f, a, b, false, c); };
      ms = device.TimeOnCompute(launch, static_cast<int>(iterations), 3);
    }
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    Napi::Object out = Napi::Object::New(env);
    out.Set("path", used != nullptr ? used : "none");
    out.Set("m", static_cast<double>(m));
    out.Set("n", static_cast<double>(n));
    out.Set("k", static_cast<double>(k));
    out.Set("dtype", dtypeName);
    out.Set("transA", transA);
    out.Set("transB", transB);
    out.Set("iterations", static_cast<double>(iterations));
    out.Set("ms", ms);
    out.Set("tflops", ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0);
    return out;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cudaGemmBenchmark: ") + e.what());
  }
}

void InitGemmBenchmark(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaGemmBenchmark", Napi::Function::New(env, CudaGemmBenchmark, "cudaGemmBenchmark"));
}

const mist::Registrar registrar(&InitGemmBenchmark);

}  // namespace
}  // namespace mist::cuda
