// Opening shared libraries at run time (dlopen) and binding their symbols, shared by the NCCL/CUDA
// runtime probe (collectives) and the CUDA driver probe (cuda): no link-time dependency on either.
#pragma once
#include <string>
#include <vector>

namespace mist {

struct OpenedLibrary {
  void* handle = nullptr;
  std::string path;
  std::string error;  // dlerror text of the first failed attempt, when handle == nullptr
};

// Tries `envVar`'s entries first (a ':'-separated list; directories are searched for each name,
// other entries are taken as full paths), then each name in the dynamic loader's search path.
OpenedLibrary OpenLibrary(const char* envVar, const std::vector<std::string>& names);

// Binds `symbol` into `out`; on failure records the first missing name in `missing`.
void* FindSymbol(void* handle, const char* symbol);
template <typename Fn>
bool Bind(void* handle, const char* symbol, Fn& out, std::string& missing) {
  out = reinterpret_cast<Fn>(FindSymbol(handle, symbol));
  if (out == nullptr && missing.empty()) missing = symbol;
  return out != nullptr;
}
template <typename Fn>
void BindOptional(void* handle, const char* symbol, Fn& out) {
  out = reinterpret_cast<Fn>(FindSymbol(handle, symbol));
}

}  // namespace mist
