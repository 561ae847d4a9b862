// The contract between the CUDA kernels' host-side launchers and the rest of the backend.
//
// A CUDA op has the same name, buffer order, integer and float parameters as the CPU kernel of that
// name (kernels/ops.ts), so one recorded call runs on either backend. Buffers are device tensors
// (ptr, element count, dtype). Each op declares a signature, one character per buffer:
//   'x' storage dtype: f32, bf16 or f16 (all 'x' buffers of one call share it; the launcher picks
//       the kernel variant from it), 'f' always fp32 (statistics such as mean/rstd/lse, AdamW
//       master weights and moments), 'i' int32, '*' any of f32/bf16/f16 (the launcher reads
//       tensors[i].dtype, e.g. cast), 'm' a dropout mask: an f32 tensor used as raw 32-bit words (4
//       mask bytes each, as the CPU kernels pack them; compared bit for bit); upper case ('X', 'F',
//       'I', 'M') marks an optional one.
// Launchers check every length against the shapes before launching (a wrong call throws, it never
// writes out of bounds) and launch with LaunchKernel on the current compute stream.
// Kernels are `extern "C" __global__` functions in cuda/kernels/*.cu, compiled by nvcc into
// fatbinaries that the device loads at first use; a variant is named <kernel>_<dtype suffix>, the
// suffix being DTypeSuffix(dtype) ("f32", "bf16", "f16").
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/param_reader.h"
#include "cuda/driver_abi.h"

namespace mist::cuda {

enum class DType : int { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };

inline size_t DTypeBytes(DType t) { return t == DType::kBF16 || t == DType::kF16 ? 2 : 4; }
inline const char* DTypeSuffix(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
  }
  return "?";
}

struct TensorArg {
  CUdeviceptr ptr = 0;  // 0 when the buffer is absent (null)
  size_t count = 0;     // elements
  DType dtype = DType::kF32;
};

class LaunchArgs : public ParamReader {
 public:
  LaunchArgs() : ParamReader(" (cuda)") {}
  std::vector<TensorArg> tensors;

  /** The storage dtype of this call (of its first 'x' buffer); checked against the others by Check. */
  DType storage = DType::kF32;

  /** Device pointer of buffer `i` holding at least `need` elements (dtype already checked by signature). */
  CUdeviceptr T(size_t i, size_t need, const char* name) const { return Get(i, need, name, false); }
  /** Like T, but an absent buffer gives 0. */
  CUdeviceptr OptT(size_t i, size_t need, const char* name) const { return Get(i, need, name, true); }
  bool Has(size_t i) const { return i < tensors.size() && tensors[i].ptr != 0; }
  /** `<base>_<suffix of the storage dtype>`, the kernel variant for this call. */
  std::string Variant(const char* base) const { return std::string(base) + "_" + DTypeSuffix(storage); }

 private:
  CUdeviceptr Get(size_t i, size_t need, const char* name, bool optional) const {
    if (!Has(i)) {
      if (optional) return 0;
      Fail(std::string("buffer ") + name + " is missing");
    }
    if (tensors[i].count < need) {
      Fail(std::string("buffer ") + name + " holds " + std::to_string(tensors[i].count) + " elements, needs " +
           std::to_string(need));
    }
    return tensors[i].ptr;
  }
};

using CudaOpFn = void (*)(const LaunchArgs& args);

struct CudaOpEntry {
  const char* name;
  const char* signature;
  CudaOpFn fn;
};

inline std::vector<CudaOpEntry>& CudaOpTable() {
  static std::vector<CudaOpEntry> table;
  return table;
}

struct CudaOpRegistrar {
  CudaOpRegistrar(const char* name, const char* signature, CudaOpFn fn) { CudaOpTable().push_back({name, signature, fn}); }
};

#define MIST_CUDA_CONCAT_INNER(a, b) a##b
#define MIST_CUDA_CONCAT(a, b) MIST_CUDA_CONCAT_INNER(a, b)
/** MIST_REGISTER_CUDA_OP("layerNorm", "xffxXX", LaunchLayerNorm); */
#define MIST_REGISTER_CUDA_OP(name, signature, fn) \
  static ::mist::cuda::CudaOpRegistrar MIST_CUDA_CONCAT(mist_cuda_op_reg_, __LINE__)(name, signature, fn)

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr Dim3(unsigned gx = 1, unsigned gy = 1, unsigned gz = 1) : x(gx), y(gy), z(gz) {}
};

/** Grid size for n items in blocks of `per` (at least 1). */
inline unsigned CeilDiv(size_t n, size_t per) { return static_cast<unsigned>(n == 0 ? 1 : (n + per - 1) / per); }

// Launches `function` (a name in the loaded fatbinaries) on the current compute stream with the
// given parameter addresses; throws naming the kernel when it is missing or the launch fails.
// Raising the dynamic shared memory limit above 48 KiB is done here when `sharedBytes` needs it.
void LaunchRaw(const std::string& function, Dim3 grid, Dim3 block, unsigned sharedBytes, void** params);

/** Multiprocessors of the current device (for grid sizing), and its compute capability (e.g. 90). */
int DeviceMultiprocessors();
int DeviceComputeCapability();

/**
 * Blocks for a grid-stride loop over n items of `threads` threads each: one item per thread up to 32
 * blocks per multiprocessor (8 resident blocks of 256 threads, four waves), beyond which each thread loops.
 */
inline unsigned StreamBlocks(int64_t n, unsigned threads = 256) {
  const int64_t cap = 32LL * (DeviceMultiprocessors() > 0 ? DeviceMultiprocessors() : 1);
  const int64_t want = (n + threads - 1) / threads;
  return static_cast<unsigned>(want < 1 ? 1 : want < cap ? want : cap);
}

// Parameters are passed by address in declaration order: their C++ types must match the kernel's
// parameter types exactly (CUdeviceptr for a pointer, int/int64_t/float as declared).
template <typename... Params>
void LaunchKernel(const std::string& function, Dim3 grid, Dim3 block, unsigned sharedBytes, Params... params) {
  void* addresses[] = {static_cast<void*>(&params)..., nullptr};
  LaunchRaw(function, grid, block, sharedBytes, addresses);
}

}  // namespace mist::cuda
