// Device memory for the NCCL backend, allocated through the dlopen'ed CUDA runtime and handed to
// JavaScript as opaque type-tagged Externals (freed explicitly or when collected).
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

namespace mist::collectives {

struct DeviceAllocation {
  void* ptr = nullptr;  // nullptr once freed
  size_t bytes = 0;
  int device = 0;
};

// The allocation behind a deviceAlloc() handle; throws a TypeError naming `what` otherwise.
DeviceAllocation& UnwrapDeviceAllocation(Napi::Value value, const std::string& what);

}  // namespace mist::collectives
