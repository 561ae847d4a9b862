// The JavaScript handle of a CUDA tensor (cuda_binding.cc), as other parts of the addon read it:
// the NCCL communicator takes device tensors directly, so collectives run on the executor's own
// tensors (any storage dtype) on the device's communication stream.
#pragma once
#include <napi.h>

#include <cstddef>

#include "cuda/launch.h"

namespace mist::cuda {

struct TensorView {
  CUdeviceptr ptr = 0;
  size_t count = 0;
  DType dtype = DType::kF32;
};

// True and fills `out` when `value` is a live CUDA tensor handle; false for anything else.
bool ReadTensorHandle(const Napi::Value& value, TensorView& out);

}  // namespace mist::cuda
