// Nearest-neighbour resize of an emulator's palette-index screen straight to gray.
//
// Why. ALE renders each frame as one palette index per pixel (getScreen, ~1 us); its gray screen
// (getScreenGrayscale) is that frame looked up pixel by pixel in a gray palette, ~13 us per frame
// on a 2-core EPYC VM, two per agent step — 8% on top of emulation. With nearest-neighbour
// resizing only the sampled pixels matter (84x84 of 210x160), and max-pooling two frames commutes
// with sampling pixels, so an agent step needs two small gathers through a 256-entry table.
//
// The table is not copied from any emulator: it is learned from the emulator's own output, one
// (index screen, gray screen) pair of the same frame at a time, so it is exactly the gray palette
// in use. A gather that meets an index not learned yet says so, and the caller learns from the
// current frame (still on the emulator) and gathers again. A pair that maps one index to two gray
// values (an emulator setting such as colour averaging) is refused, and the caller stops using
// the palette.
//
// Sampled pixels are those of dqnfast::pre's nearest resize: output (i, j) reads crop pixel
// (((2i+1) ch) / (2 oh), ((2j+1) cw) / (2 ow)), so gather() equals preprocess(gray, interp="nearest").
#pragma once

#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "dqnfast/preprocess.hpp"

namespace dqnfast {
namespace palette {

// Scalar: one pass, each output pixel read through its sampled row offset and column.
inline bool gather_scalar(const uint8_t* screen, const int32_t* rows, int64_t oh, const int32_t* cols, int64_t ow,
                          const uint8_t* table, const uint8_t* unknown, uint8_t* out) {
  uint8_t missing = 0;
  for (int64_t i = 0; i < oh; ++i, out += ow) {
    const uint8_t* row = screen + rows[i];
    for (int64_t j = 0; j < ow; ++j) {
      const uint8_t x = row[cols[j]];
      missing |= unknown[x];
      out[j] = table[x];
    }
  }
  return missing != 0;
}

#ifdef DQNFAST_X86_SIMD
#define DQNFAST_PALETTE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))
// 64 lookups per step: vpermi2b picks from a 128-entry half of the table by the low 7 bits, and
// bit 7 chooses the half.
DQNFAST_PALETTE_AVX512 inline bool lookup_avx512(const uint8_t* idx, const uint8_t* table, const uint8_t* unknown, int64_t n,
                                         uint8_t* out) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  const __m512i u0 = _mm512_loadu_si512(unknown), u1 = _mm512_loadu_si512(unknown + 64);
  const __m512i u2 = _mm512_loadu_si512(unknown + 128), u3 = _mm512_loadu_si512(unknown + 192);
  __m512i missing = _mm512_setzero_si512();
  for (int64_t k = 0; k < n; k += 64) {
    const __mmask64 live = n - k >= 64 ? ~__mmask64(0) : (__mmask64(1) << (n - k)) - 1;
    const __m512i x = _mm512_maskz_loadu_epi8(live, idx + k);
    const __mmask64 high = _mm512_movepi8_mask(x);
    const __m512i v = _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(t0, x, t1), _mm512_permutex2var_epi8(t2, x, t3));
    const __m512i u = _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(u0, x, u1), _mm512_permutex2var_epi8(u2, x, u3));
    missing = _mm512_or_si512(missing, _mm512_maskz_mov_epi8(live, u));
    _mm512_mask_storeu_epi8(out + k, live, v);
  }
  return _mm512_test_epi8_mask(missing, missing) != 0;
}
#undef DQNFAST_PALETTE_AVX512
#endif

}  // namespace palette

class PaletteResizer {
 public:
  // A (height x width) index screen, cropped to rows [top, bottom) and columns [left, right),
  // resized to (out_h x out_w).
  PaletteResizer(int64_t height, int64_t width, int64_t top, int64_t bottom, int64_t left, int64_t right, int64_t out_h,
                 int64_t out_w)
      : plan_(geometry(height, width, top, bottom, left, right, out_h, out_w)) {
    for (int32_t r : plan_.rows) row_offsets_.push_back(r * int32_t(width));
    std::memset(gray_, 0, sizeof gray_);
    std::memset(unknown_, 1, sizeof unknown_);
  }

  int64_t height() const { return plan_.g.h; }
  int64_t width() const { return plan_.g.w; }
  int64_t out_h() const { return plan_.g.oh; }
  int64_t out_w() const { return plan_.g.ow; }

  // out (out_h x out_w, packed) = gray value of each sampled pixel's index. False if a sampled
  // index has no gray value yet (out is then garbage): learn() from this frame and gather again.
  bool gather(const uint8_t* screen, uint8_t* out) const {
#ifdef DQNFAST_X86_SIMD
    if (simd_level() == SimdLevel::kAvx512) {
      // The indices sampled by preprocess's own AVX-512 nearest kernel, then 64 lookups a step.
      thread_local pre::Scratch scratch;
      pre::Request r;
      r.plan = &plan_;
      r.frame = {screen, 0, plan_.g.w, 1, 0};
      r.level = SimdLevel::kAvx512;
      pre::run_nearest(r, screen, nullptr, out, scratch);
      std::lock_guard<std::mutex> lock(mu_);
      return !palette::lookup_avx512(out, gray_, unknown_, plan_.g.oh * plan_.g.ow, out);
    }
#endif
    // AVX2 has no byte permute over more than 16 entries: one scalar pass (~0.5 ns a pixel) wins.
    std::lock_guard<std::mutex> lock(mu_);
    return !palette::gather_scalar(screen, row_offsets_.data(), plan_.g.oh, plan_.cols.px.data(), plan_.g.ow, gray_,
                                   unknown_, out);
  }

  // Learns index -> gray from one frame's index screen and gray screen (height x width, packed).
  // False, learning nothing, if the pair contradicts itself or what was learned before.
  bool learn(const uint8_t* screen, const uint8_t* gray) {
    std::lock_guard<std::mutex> lock(mu_);
    int16_t next[256];
    for (int i = 0; i < 256; ++i) next[i] = unknown_[i] ? int16_t(-1) : int16_t(gray_[i]);
    const int64_t n = plan_.g.h * plan_.g.w;
    for (int64_t k = 0; k < n; ++k) {
      int16_t& e = next[screen[k]];
      if (e < 0) {
        e = gray[k];
      } else if (e != gray[k]) {
        return false;
      }
    }
    for (int i = 0; i < 256; ++i) {
      unknown_[i] = next[i] < 0;
      gray_[i] = next[i] < 0 ? 0 : uint8_t(next[i]);
    }
    return true;
  }

  // The gray value learned for an index, or -1.
  int gray_of(uint8_t index) const {
    std::lock_guard<std::mutex> lock(mu_);
    return unknown_[index] ? -1 : gray_[index];
  }

 private:
  static pre::Geometry geometry(int64_t h, int64_t w, int64_t top, int64_t bottom, int64_t left, int64_t right,
                                int64_t oh, int64_t ow) {
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0) throw std::invalid_argument("sizes must be positive");
    const int64_t big = int64_t(1) << 15;
    if (h > big || w > big || oh > big || ow > big) throw std::invalid_argument("screen or output too large");
    if (!(0 <= top && top < bottom && bottom <= h && 0 <= left && left < right && right <= w))
      throw std::invalid_argument("crop must satisfy 0 <= top < bottom <= height and 0 <= left < right <= width");
    return pre::Geometry{h, w, 1, top, bottom, left, right, oh, ow, pre::Interp::kNearest};
  }

  const pre::Plan plan_;               // nearest, one channel: the rows and columns preprocess samples
  std::vector<int32_t> row_offsets_;  // byte offset of each sampled row
  alignas(64) uint8_t gray_[256];     // the learned gray value of each index
  alignas(64) uint8_t unknown_[256];  // 1 until an index is learned
  mutable std::mutex mu_;  // a wrapper is stepped from one thread, but the GIL is released here
};

}  // namespace dqnfast
