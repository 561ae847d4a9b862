// The dropout generator's draw, shared by the CPU kernels (dropout_rng.h) and the CUDA kernels
// (cuda/kernels/*.cu include it), so both backends drop exactly the same elements: a 24-bit uniform
// draw that is a pure function of (stream key, element index). Counter-based generation as in
// Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; the mixing function is
// SplitMix64's finaliser (Steele et al. 2014).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define MIST_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MIST_HOST_DEVICE inline
#endif

namespace mist {
namespace kernels {

MIST_HOST_DEVICE uint32_t DropoutDraw24(uint64_t key, uint64_t index) {
  uint64_t z = key + index * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 40);
}

}  // namespace kernels
}  // namespace mist
