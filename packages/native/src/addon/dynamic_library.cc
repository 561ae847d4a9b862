#include "addon/dynamic_library.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>

namespace mist {
namespace {

std::vector<std::string> SplitPathList(const char* value) {
  std::vector<std::string> out;
  if (value == nullptr) return out;
  std::string s(value);
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(':', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

OpenedLibrary OpenLibrary(const char* envVar, const std::vector<std::string>& names) {
  OpenedLibrary result;
  std::vector<std::string> candidates;
  for (const std::string& entry : SplitPathList(std::getenv(envVar))) {
    if (IsDirectory(entry)) {
      for (const std::string& name : names) candidates.push_back(entry + "/" + name);
    } else {
      candidates.push_back(entry);
    }
  }
  for (const std::string& name : names) candidates.push_back(name);

  std::string firstError, envErrors;
  const size_t envCandidates = candidates.size() - names.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    void* handle = ::dlopen(candidates[i].c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      result.handle = handle;
      result.path = candidates[i];
      return result;
    }
    const char* err = ::dlerror();
    std::string text = err != nullptr ? err : (candidates[i] + ": cannot be opened");
    if (i < envCandidates) {
      if (envErrors.empty()) envErrors = text;
    } else if (firstError.empty()) {
      firstError = text;
    }
  }
  result.error = firstError;
  if (!envErrors.empty()) result.error += std::string(" (") + envVar + ": " + envErrors + ")";
  return result;
}

void* FindSymbol(void* handle, const char* symbol) {
  ::dlerror();
  return ::dlsym(handle, symbol);
}

}  // namespace mist
