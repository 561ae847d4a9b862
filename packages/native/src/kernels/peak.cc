// Measured single-thread FMA throughput: independent chains of vector FMAs that stay in registers,
// enough of them (2 pipes x 4-cycle latency x 2) to keep every FMA unit busy. The benchmark uses it
// beside the datasheet formula (cores x FMA units x vector lanes x 2 x clock) as this core's peak.
#include <chrono>
#include <cstring>

namespace mist {
namespace kernels {

#if defined(__AVX512F__)
constexpr int kPeakVec = 16;
#else
constexpr int kPeakVec = 8;
#endif
typedef float PeakVec __attribute__((vector_size(kPeakVec * sizeof(float))));

double MeasureFmaPeak(double seconds) {
  constexpr int kChains = 16;
  PeakVec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = PeakVec{} + static_cast<float>(i) * 1e-3f;
  volatile float mul_src = 0.999999f, add_src = 1e-7f;
  const float mul = mul_src, add = add_src;
  const PeakVec vm = PeakVec{} + mul, va = PeakVec{} + add;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  double flops = 0;
  double elapsed = 0;
  do {
    for (int rep = 0; rep < 100000; ++rep) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * vm + va;
    }
    flops += 100000.0 * kChains * kPeakVec * 2;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  float sink = 0;
  for (int i = 0; i < kChains; ++i) sink += acc[i][0];
  volatile float keep = sink;
  (void)keep;
  return flops / elapsed / 1e9;
}

}  // namespace kernels
}  // namespace mist
