// Counter-based random numbers for sampling.
//
// Every sample() call takes the next call number from an atomic counter and draws from its own
// SplitMix64 stream seeded by (seed, call number). So any number of threads can sample with no
// shared mutable RNG state, and a single-threaded call sequence is reproducible for a given seed.
// python/dqnfast/replay_reference.py replicates this generator bit for bit.
#pragma once
#include <cstdint>

namespace dqnfast {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kCallMix = 0xD1B54A32D192ED03ULL;

class CallRng {
 public:
  CallRng(uint64_t seed, uint64_t call) : state_(seed ^ (call * kCallMix)) {}

  uint64_t next() {
    state_ += kGolden;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform integer in [0, n) by a 64x64->128 multiply (Lemire). Its bias is below n / 2^64.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  // Uniform double in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace dqnfast
