// Run-time SIMD dispatch. The package is built without -march flags so one binary runs on any
// x86-64: SIMD kernels are compiled per function with __attribute__((target(...))) and chosen here
// from what the CPU (and the OS, which must save the wider registers) supports.
//
// The active level is process-wide: DQNFAST_SIMD (scalar | avx2 | avx512 | auto) caps it at
// start-up, and tests force each level in turn through set_simd_level() to check that every path
// gives the same bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace dqnfast {

enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

inline const char* simd_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    default: return "scalar";
  }
}

// The best level this CPU runs. "avx512" needs F + BW + VBMI: the kernels' byte permutes
// (vpermt2b) are VBMI; AVX-512 CPUs without it (Skylake-SP) use the AVX2 path.
//
// Read from CPUID and XCR0 here, with the same rules as libgcc's __builtin_cpu_supports, rather
// than through that builtin: some compiler runtimes never fill its table (zig's compiler-rt, which
// links the portable wheels, stubs it out), and every CPU would then look scalar.
inline SimdLevel detect_simd() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return SimdLevel::kScalar;  // no OSXSAVE
  uint32_t xcr0 = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(xcr0_high) : "c"(0));
  (void)xcr0_high;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // the OS saves XMM + YMM state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // ... and opmask + ZMM state
  if (!os_ymm || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return SimdLevel::kScalar;
  const bool avx2 = ebx & (1u << 5), avx512f = ebx & (1u << 16), avx512bw = ebx & (1u << 30),
             avx512vbmi = ecx & (1u << 1);
  if (os_zmm && avx512f && avx512bw && avx512vbmi) return SimdLevel::kAvx512;
  if (avx2) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kScalar;
}

// "scalar" | "avx2" | "avx512" | "auto" (the best supported); anything else is an error.
inline SimdLevel parse_simd(const std::string& name) {
  if (name == "scalar") return SimdLevel::kScalar;
  if (name == "avx2") return SimdLevel::kAvx2;
  if (name == "avx512") return SimdLevel::kAvx512;
  if (name == "auto") return detect_simd();
  throw std::invalid_argument("SIMD level must be one of 'scalar', 'avx2', 'avx512', 'auto'; got '" + name + "'");
}

namespace detail {
// The environment variable caps the level (a CI job can run the scalar path on any machine);
// asking for more than the CPU has gives what it has.
inline int initial_simd_level() {
  const SimdLevel best = detect_simd();
  const char* env = std::getenv("DQNFAST_SIMD");
  if (env == nullptr || *env == '\0') return int(best);
  SimdLevel want;
  try {
    want = parse_simd(env);
  } catch (const std::invalid_argument&) {
    return int(best);  // checked (and reported) by the bindings at import; never guess here
  }
  return int(want) < int(best) ? int(want) : int(best);
}
inline std::atomic<int>& simd_level_storage() {
  static std::atomic<int> level{initial_simd_level()};
  return level;
}
}  // namespace detail

inline SimdLevel simd_level() { return SimdLevel(detail::simd_level_storage().load(std::memory_order_relaxed)); }

// Force a level (tests); throws std::invalid_argument if this CPU cannot run it.
inline void set_simd_level(SimdLevel level) {
  if (int(level) > int(detect_simd()))
    throw std::invalid_argument(std::string("this CPU does not support the '") + simd_name(level) +
                                "' path (best: '" + simd_name(detect_simd()) + "')");
  detail::simd_level_storage().store(int(level), std::memory_order_relaxed);
}

}  // namespace dqnfast
