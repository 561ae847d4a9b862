// The arguments of one kernel call as they arrive from JavaScript: typed-array buffers (Float32 or
// Int32, or null for an optional one), integer parameters and float parameters. Every kernel checks
// its buffers' lengths against its shape parameters before it writes anything, so a wrong call
// throws instead of corrupting memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/param_reader.h"

namespace mist {
namespace kernels {

enum class BufKind { kNull, kF32, kI32 };

struct Buf {
  BufKind kind = BufKind::kNull;
  void* data = nullptr;
  size_t length = 0;  // elements
};

class OpArgs : public ParamReader {
 public:
  OpArgs() : ParamReader("") {}
  std::vector<Buf> bufs;

  /** Float32 buffer `i` holding at least `need` elements. */
  float* F(size_t i, size_t need, const char* name) const { return static_cast<float*>(Get(i, BufKind::kF32, need, name, false)); }
  /** Like F, but null is allowed (returns nullptr). */
  float* OptF(size_t i, size_t need, const char* name) const { return static_cast<float*>(Get(i, BufKind::kF32, need, name, true)); }
  const int32_t* I32(size_t i, size_t need, const char* name) const {
    return static_cast<const int32_t*>(Get(i, BufKind::kI32, need, name, false));
  }

 private:
  void* Get(size_t i, BufKind kind, size_t need, const char* name, bool optional) const {
    if (i >= bufs.size() || bufs[i].kind == BufKind::kNull) {
      if (optional) return nullptr;
      Fail(std::string("buffer ") + name + " is missing");
    }
    const Buf& b = bufs[i];
    if (b.kind != kind) Fail(std::string("buffer ") + name + (kind == BufKind::kF32 ? " must be a Float32Array" : " must be an Int32Array"));
    if (b.length < need) {
      Fail(std::string("buffer ") + name + " holds " + std::to_string(b.length) + " elements, needs " + std::to_string(need));
    }
    return b.data;
  }
};

using OpFn = void (*)(const OpArgs& args);

/** Kernels register themselves by name (static OpRegistrar in each .cc); JS calls them by id. */
struct OpEntry {
  const char* name;
  OpFn fn;
};

inline std::vector<OpEntry>& OpTable() {
  static std::vector<OpEntry> table;
  return table;
}

struct OpRegistrar {
  OpRegistrar(const char* name, OpFn fn) { OpTable().push_back({name, fn}); }
};

#define MIST_CONCAT_INNER(a, b) a##b
#define MIST_CONCAT(a, b) MIST_CONCAT_INNER(a, b)
#define MIST_REGISTER_OP(name, fn) static ::mist::kernels::OpRegistrar MIST_CONCAT(mist_op_reg_, __LINE__)(name, fn)

}  // namespace kernels
}  // namespace mist
