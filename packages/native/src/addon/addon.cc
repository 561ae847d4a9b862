// Entry point of the mist_native addon.
#include "addon/registry.h"

#define MIST_NATIVE_VERSION "0.1.0"

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), MIST_NATIVE_VERSION);
}

// The host code is compiled for a fixed instruction set (arch-flags.js); refuse clearly, instead of
// dying on an illegal instruction, on a CPU that lacks it.
void CheckInstructionSet(Napi::Env env) {
#if defined(__x86_64__) && defined(__AVX512F__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq") ||
      !__builtin_cpu_supports("avx512vl")) {
    throw Napi::Error::New(env, "this mist_native build needs AVX-512 (x86-64-v4) and this CPU lacks it; load mist_native "
                                "(x86-64-v3) instead: unset MIST_NATIVE_VARIANT");
  }
#elif defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    throw Napi::Error::New(env, "mist_native was built for x86-64-v3 (AVX2 and FMA) and this CPU lacks them; rebuild it here with "
                                "MIST_NATIVE_ARCH=x86-64 node tools/scripts/build-native.js --force");
  }
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  CheckInstructionSet(env);
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  for (mist::ModuleInit init : mist::ModuleInits()) init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mist_native, Init)
