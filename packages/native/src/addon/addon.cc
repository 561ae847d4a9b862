// Entry point of the mist_native addon.
#include "addon/registry.h"

#define MIST_NATIVE_VERSION "0.1.0"

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), MIST_NATIVE_VERSION);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  for (mist::ModuleInit init : mist::ModuleInits()) init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mist_native, Init)
