// The integer and float parameters of one kernel call as JavaScript passed them, read by name with
// their checks, and the call's error: shared by the CPU kernels' arguments (kernels/op_args.h) and the
// CUDA launchers' (cuda/launch.h), which add their buffers. An error names the op (and the backend
// when it is not the CPU), so the same bad call reads the same on both.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mist {

class ParamReader {
 public:
  std::string op;
  std::vector<int64_t> ints;
  std::vector<double> floats;

  int64_t Int(size_t i, const char* name) const {
    if (i >= ints.size()) Fail(std::string("missing integer parameter ") + name);
    return ints[i];
  }
  /** A strictly positive integer parameter (shape sizes). */
  int64_t Dim(size_t i, const char* name) const {
    int64_t v = Int(i, name);
    if (v <= 0) Fail(std::string(name) + " must be positive, got " + std::to_string(v));
    return v;
  }
  double Float(size_t i, const char* name) const {
    if (i >= floats.size()) Fail(std::string("missing float parameter ") + name);
    return floats[i];
  }
  [[noreturn]] void Fail(const std::string& msg) const { throw std::invalid_argument(op + backend_ + ": " + msg); }

 protected:
  /** `backend` follows the op's name in errors, e.g. " (cuda)"; empty for the CPU kernels. */
  explicit ParamReader(const char* backend) : backend_(backend) {}

 private:
  const char* backend_;
};

}  // namespace mist
