// Each part of the addon (collectives, kernels, ...) registers an init function with a static
// Registrar in its own .cc file, so parts can be added without editing a central list.
#pragma once
#include <napi.h>
#include <functional>
#include <vector>

namespace mist {

using ModuleInit = void (*)(Napi::Env env, Napi::Object exports);

inline std::vector<ModuleInit>& ModuleInits() {
  static std::vector<ModuleInit> inits;
  return inits;
}

struct Registrar {
  explicit Registrar(ModuleInit init) { ModuleInits().push_back(init); }
};

}  // namespace mist
