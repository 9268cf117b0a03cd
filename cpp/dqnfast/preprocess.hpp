// Atari frame preprocessing: optional max over two frames (per colour channel), grayscale,
// crop, and resize (nearest or box average) in one pass, writing uint8 into a caller buffer.
//
// Exactness. Every step is integer arithmetic with one fixed evaluation order, so the scalar,
// AVX2 and AVX-512 paths give the same bytes (python/dqnfast/preprocess_reference.py is the numpy
// statement of the same maths):
//   luma  Y = (9798 R + 19235 G + 3735 B + 16384) >> 15   (OpenCV's RGB2GRAY, ALE's NTSC palette)
//   mean  Y = (R + G + B) / 3, computed as (s * 21846) >> 16 (exact for s <= 765, checked below)
//   nearest  output (i, j) samples crop pixel (((2i+1) ch) / (2 oh), ((2j+1) cw) / (2 ow))
//   area  separable box weights: output i covers [i n/m, (i+1) n/m) of the n source pixels; each
//         source pixel's overlap is rounded cumulatively to kAreaQy (rows) / kAreaQx (columns)
//         bits, so every output's weights sum exactly to 2^Q. Rows first, rounded to 16 bits:
//         v = (sum_y wy * gray + 8) >> 4  (at most 255 << 7, an int16), then
//         Y = (sum_x wx * v + 2^18) >> 19  (Qx + Qy - 4 = 19; sums stay below 2^28).
//
// Layout. A Plan holds everything that depends only on (input shape, crop, output size,
// interpolation) — source rows, byte offsets of the sampled pixels, AVX-512 permute windows,
// area weights — and is cached by the bindings. Sources may have any strides: rows are read in
// place when each row's pixels are packed (the common case, including row-sliced and batched
// views); otherwise the crop's part of each row is first copied into a packed scratch row.
#pragma once

// x86 only (other CPUs build the scalar path). GCC 12's AVX-512 headers trip
// -Wmaybe-uninitialized on their own _mm512_undefined_*() placeholders when inlined into
// target-attribute functions (GCC bug 105593, fixed in 13).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#elif defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "dqnfast/cpu_features.hpp"

namespace dqnfast {
namespace pre {

enum class Gray : uint8_t { kLuma = 0, kMean = 1 };
enum class Interp : uint8_t { kNearest = 0, kArea = 1 };

constexpr int32_t kLumaR = 9798, kLumaG = 19235, kLumaB = 3735, kLumaShift = 15;
constexpr int32_t kMeanMul = 21846, kMeanShift = 16;
constexpr int kAreaQy = 11, kAreaQx = 12, kAreaVShift = 4, kAreaShift = kAreaQx + kAreaQy - kAreaVShift;
static_assert((255 << (kAreaQy - kAreaVShift)) < (1 << 15), "row sums must fit an int16 for vpmaddwd");

constexpr bool mean_formula_exact() {
  for (int32_t s = 0; s <= 3 * 255; ++s)
    if (((s * kMeanMul) >> kMeanShift) != s / 3) return false;
  return true;
}
static_assert(mean_formula_exact(), "(s * 21846) >> 16 must equal s / 3 for every sum of three bytes");
static_assert(kLumaR + kLumaG + kLumaB == 1 << kLumaShift, "luma weights must sum to 1.0 so white stays 255");

inline uint8_t luma(uint32_t r, uint32_t g, uint32_t b) {
  return uint8_t((kLumaR * r + kLumaG * g + kLumaB * b + (1u << (kLumaShift - 1))) >> kLumaShift);
}
inline uint8_t mean3(uint32_t r, uint32_t g, uint32_t b) { return uint8_t(((r + g + b) * kMeanMul) >> kMeanShift); }

// ---- plan ----------------------------------------------------------------------------------------

struct Geometry {  // what a plan depends on; crop is half-open and already inside the frame
  int64_t h, w, c;                  // frame rows, columns, channels (1 or 3)
  int64_t top, bottom, left, right;
  int64_t oh, ow;
  Interp interp;
  bool operator==(const Geometry& o) const {
    return h == o.h && w == o.w && c == o.c && top == o.top && bottom == o.bottom && left == o.left &&
           right == o.right && oh == o.oh && ow == o.ow && interp == o.interp;
  }
};

// Which pixels of one packed source row (w * c bytes) an output row takes, in the forms each path
// wants. Arrays used by 16-lane loads are padded to a multiple of 16 with harmless entries.
struct ColumnMap {
  int32_t n = 0;                // output pixels per row
  int32_t c = 1;                // bytes per pixel
  int32_t row_bytes = 0;
  std::vector<int32_t> px;      // byte offset of pixel j (scalar path)
  // 4-byte gathers: load at goff[j] (kept inside the row) and shift right by gshift[j] bits so
  // the pixel's first byte is the low byte. Only when the row has at least 4 bytes.
  bool gather_ok = false;
  std::vector<int32_t> goff, gshift;
  // AVX-512 windows. RGB: chunk k (outputs [16k, 16k + 16)) is two byte permutes of the 128
  // bytes at `base`, giving each output's dword lane as the 16-bit pairs [R, G] (`a`) and [B, 1]
  // (`b`) that vpmaddwd weighs and sums. Gray: chunk k (outputs [64k, 64k + 64)) is one permute
  // (`a`). A chunk whose pixels do not fit in 128 bytes (strong downscaling) is gathered instead.
  struct alignas(64) Window {
    uint8_t a[64];
    uint8_t b[64];
    int32_t base;
    bool fits;
  };
  std::vector<Window> windows;
  bool all_fit = true;
  bool all_fit64 = false;  // RGB windows are 64 bytes: one load, one-table permutes
  uint64_t lo_mask = ~0ULL, hi_mask = ~0ULL;  // bytes of the two 64-byte loads inside the row
  // Gray pixels at consecutive bytes (the area path's every-pixel map): sampling is a copy.
  bool contiguous = false;
  // AVX2 windows (RGB): chunk k = outputs [8k, 8k + 8); 128-bit lane L (outputs 8k + 4L ..)
  // reads the 32 bytes at base[L], as two 16-byte halves that vpshufb picks from (0x80: zero).
  struct alignas(32) Window2 {
    uint8_t rg[2][32];  // [half][byte]: the [R, 0, G, 0] dword of each output
    uint8_t b[2][32];   // [B, 0, 0, 0]; the 1 of [B, 1] is or'd in
    int32_t base[2];
    bool fits;
  };
  std::vector<Window2> windows2;
  bool all_fit2 = false;

  ColumnMap() = default;
  ColumnMap(const std::vector<int64_t>& cols, int64_t channels, int64_t width) {
    n = int32_t(cols.size());
    c = int32_t(channels);
    row_bytes = int32_t(width * channels);
    const size_t padded = (cols.size() + 15) / 16 * 16;
    px.resize(cols.size());
    for (size_t j = 0; j < cols.size(); ++j) px[j] = int32_t(cols[j] * channels);
    gather_ok = row_bytes >= 4;
    goff.assign(padded, 0);
    gshift.assign(padded, 0);
    if (gather_ok)
      for (size_t j = 0; j < cols.size(); ++j) {
        goff[j] = std::min(px[j], row_bytes - 4);
        gshift[j] = 8 * (px[j] - goff[j]);
      }
    if (row_bytes < 128) {
      lo_mask = row_bytes >= 64 ? ~0ULL : (1ULL << row_bytes) - 1;
      hi_mask = row_bytes <= 64 ? 0 : (1ULL << (row_bytes - 64)) - 1;
    }
    contiguous = c == 1;
    for (int32_t j = 1; contiguous && j < n; ++j) contiguous = px[size_t(j)] == px[size_t(j - 1)] + 1;
    all_fit2 = c == 3 && row_bytes >= 32;
    for (int32_t j0 = 0; c == 3 && j0 < n; j0 += 8) {
      Window2 w2;
      std::memset(&w2, 0x80, sizeof w2);
      w2.fits = row_bytes >= 32;
      for (int32_t lane = 0; lane < 2; ++lane) {
        const int32_t jl = j0 + 4 * lane, cnt = std::min(4, n - jl);
        w2.base[lane] = 0;
        if (cnt <= 0 || !w2.fits) continue;
        w2.base[lane] = std::min(px[size_t(jl)], row_bytes - 32);
        if (px[size_t(jl + cnt - 1)] + 2 - w2.base[lane] >= 32) {
          w2.fits = false;
          continue;
        }
        for (int32_t l = 0; l < cnt; ++l) {
          const int32_t rel = px[size_t(jl + l)] - w2.base[lane];
          const auto put = [&](uint8_t(&idx)[2][32], int32_t at, int32_t src) {
            idx[src / 16][16 * lane + 4 * l + at] = uint8_t(src % 16);
          };
          put(w2.rg, 0, rel), put(w2.rg, 2, rel + 1), put(w2.b, 0, rel + 2);
        }
      }
      all_fit2 = all_fit2 && w2.fits;
      windows2.push_back(w2);
    }
    // RGB maps whose every chunk lies in 64 bytes (e.g. every pixel of a row: 48 bytes per 16)
    // take one load and one-table permutes per chunk; the rest take 128-byte windows.
    all_fit64 = c == 3;
    for (int32_t j0 = 0; all_fit64 && j0 < n; j0 += 16) {
      const int32_t base = row_bytes >= 64 ? std::min(px[size_t(j0)], row_bytes - 64) : 0;
      all_fit64 = px[size_t(std::min(n, j0 + 16) - 1)] + 2 - base < 64;
    }
    const int32_t span = all_fit64 ? 64 : 128;
    const int32_t k = c == 1 ? 64 : 16;
    for (int32_t j0 = 0; j0 < n; j0 += k) {
      Window win{};
      const int32_t cnt = std::min(k, n - j0);
      win.base = row_bytes >= span ? std::min(px[size_t(j0)], row_bytes - span) : 0;
      win.fits = px[size_t(j0 + cnt - 1)] + c - 1 - win.base < span;
      all_fit = all_fit && win.fits;
      for (int32_t l = 0; win.fits && l < cnt; ++l) {
        const int32_t rel = px[size_t(j0 + l)] - win.base;
        if (c == 1) {
          win.a[l] = uint8_t(rel);
        } else {  // bytes the permute's mask leaves alone keep these values: the 0s and the 1
          win.a[4 * l] = uint8_t(rel), win.a[4 * l + 2] = uint8_t(rel + 1);
          win.b[4 * l] = uint8_t(rel + 2), win.b[4 * l + 2] = 1;
        }
      }
      windows.push_back(win);
    }
  }
};

// Box-average taps along one axis: output i (of m) averages source pixels start[i] ..
// start[i] + count[i] - 1 (of n, crop-relative) with integer weights summing to exactly 2^q.
struct AreaTaps {
  std::vector<int32_t> start, count, offset, weight;  // weights of output i at weight[offset[i] ...]
  int32_t max_count = 0;
};

inline AreaTaps area_taps(int64_t n, int64_t m, int q) {
  // In units of 1/m source pixel, source pixel k spans [k m, (k+1) m) and output i spans
  // [i n, (i+1) n): overlaps are exact integers. Rounding the cumulative overlap (not each
  // overlap) keeps every weight within 1 of exact and makes the weights sum to 2^q.
  AreaTaps t;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t lo = i * n, hi = lo + n, k0 = lo / m, k1 = (hi - 1) / m;
    t.start.push_back(int32_t(k0));
    t.count.push_back(int32_t(k1 - k0 + 1));
    t.offset.push_back(int32_t(t.weight.size()));
    int64_t cum = 0, prev = 0;
    for (int64_t k = k0; k <= k1; ++k) {
      cum += std::min(hi, (k + 1) * m) - std::max(lo, k * m);
      const int64_t rounded = ((cum << q) + n / 2) / n;
      t.weight.push_back(int32_t(rounded - prev));
      prev = rounded;
    }
    t.max_count = std::max(t.max_count, int32_t(k1 - k0 + 1));
  }
  return t;
}

inline std::vector<int64_t> nearest_index(int64_t n, int64_t m, int64_t first) {
  std::vector<int64_t> idx(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) idx[size_t(i)] = first + ((2 * i + 1) * n) / (2 * m);
  return idx;
}

struct Plan {
  Geometry g;
  int64_t ch, cw;
  std::vector<int32_t> rows;  // nearest: source row of each output row; area: every crop row
  ColumnMap cols;             // nearest: sampled columns; area: every crop column
  AreaTaps ytaps;             // area: crop-relative rows of each output row
  int32_t xtaps = 0, owp = 0; // area: taps per output column (padded with zero weights), ow padded to 16
  std::vector<int32_t> xidx, xw;  // area: tap-major [t * owp + j]: crop-relative column and weight
  // area, AVX-512: chunk k (outputs [16k, 16k + 16)) reads the 64 row sums from hbase[k]; for
  // tap pair q, the word permute hpairs[k * xpairs + q].idx puts columns (2q, 2q + 1) of each
  // output in its dword lane and vpmaddwd weighs them with .w. Chunks spanning more than 64
  // columns gather instead (and no tables are built when no chunk can fit).
  struct alignas(64) Pair {
    int16_t idx[32];
    int16_t w[32];
  };
  int32_t xpairs = 0;
  std::vector<Pair> hpairs;  // [k * xpairs + q]
  std::vector<int32_t> hbase;
  std::vector<uint8_t> hfits;
  // area, AVX2: the same per 8 outputs, each 128-bit lane (4 outputs) reading 16 row sums from
  // hbase2[2k + lane] through vpshufb on two 16-byte halves (0x80: zero).
  struct alignas(32) Pair2 {
    uint8_t idx[2][32];
    int16_t w[16];
  };
  std::vector<Pair2> hpairs2;  // [k * xpairs + q]
  std::vector<int32_t> hbase2;
  std::vector<uint8_t> hfits2;

  explicit Plan(const Geometry& geo) : g(geo), ch(geo.bottom - geo.top), cw(geo.right - geo.left) {
    if (g.interp == Interp::kNearest) {
      for (int64_t r : nearest_index(ch, g.oh, g.top)) rows.push_back(int32_t(r));
      cols = ColumnMap(nearest_index(cw, g.ow, g.left), g.c, g.w);
      return;
    }
    std::vector<int64_t> all(static_cast<size_t>(cw));
    for (int64_t x = 0; x < cw; ++x) all[size_t(x)] = g.left + x;
    cols = ColumnMap(all, g.c, g.w);
    for (int64_t y = g.top; y < g.bottom; ++y) rows.push_back(int32_t(y));
    ytaps = area_taps(ch, g.oh, kAreaQy);
    const AreaTaps xt = area_taps(cw, g.ow, kAreaQx);
    xtaps = xt.max_count;
    owp = int32_t((g.ow + 15) / 16 * 16);
    xidx.assign(size_t(xtaps) * size_t(owp), 0);
    xw.assign(size_t(xtaps) * size_t(owp), 0);
    for (int64_t j = 0; j < g.ow; ++j)
      for (int32_t t = 0; t < xt.count[size_t(j)]; ++t) {
        xidx[size_t(t) * size_t(owp) + size_t(j)] = xt.start[size_t(j)] + t;
        xw[size_t(t) * size_t(owp) + size_t(j)] = xt.weight[size_t(xt.offset[size_t(j)] + t)];
      }
    xpairs = (xtaps + 1) / 2;
    for (int32_t j0 = 0; j0 < owp && xtaps > 64; j0 += 16) hbase.push_back(0), hfits.push_back(false);
    for (int32_t j0 = 0; j0 < owp && xtaps <= 64; j0 += 16) {
      const int32_t base = xt.start[size_t(std::min<int64_t>(j0, g.ow - 1))];
      bool fits = true;
      std::vector<Pair> pairs(size_t(xpairs), Pair{});
      for (int32_t l = 0; l < 16 && j0 + l < g.ow; ++l) {
        const size_t j = size_t(j0 + l);
        for (int32_t t = 0; t < xt.count[j]; ++t) {
          const int32_t rel = xt.start[j] + t - base;
          fits = fits && rel < 64;
          pairs[size_t(t / 2)].idx[2 * l + t % 2] = int16_t(rel & 63);
          pairs[size_t(t / 2)].w[2 * l + t % 2] = int16_t(xt.weight[size_t(xt.offset[j] + t)]);
        }
      }
      hbase.push_back(base);
      hfits.push_back(fits);
      hpairs.insert(hpairs.end(), pairs.begin(), pairs.end());
    }
    for (int32_t j0 = 0; j0 < owp && xtaps > 16; j0 += 8) hbase2.push_back(0), hbase2.push_back(0), hfits2.push_back(false);
    for (int32_t j0 = 0; j0 < owp && xtaps <= 16; j0 += 8) {
      bool fits = true;
      std::vector<Pair2> pairs(static_cast<size_t>(xpairs));
      for (auto& pr : pairs) std::memset(&pr, 0, sizeof pr), std::memset(pr.idx, 0x80, sizeof pr.idx);
      for (int32_t lane = 0; lane < 2; ++lane) {
        const int32_t jl = std::min<int32_t>(j0 + 4 * lane, int32_t(g.ow) - 1);
        const int32_t base = xt.start[size_t(jl)];
        hbase2.push_back(base);
        for (int32_t l = 0; l < 4 && j0 + 4 * lane + l < g.ow; ++l) {
          const size_t j = size_t(j0 + 4 * lane + l);
          for (int32_t t = 0; t < xt.count[j]; ++t) {
            const int32_t rel = xt.start[j] + t - base;  // in int16 units
            fits = fits && rel < 16;
            Pair2& pr = pairs[size_t(t / 2)];
            const int32_t at = 16 * lane + 4 * l + 2 * (t % 2);
            pr.idx[(2 * rel) / 16 % 2][at] = uint8_t((2 * rel) % 16);
            pr.idx[(2 * rel) / 16 % 2][at + 1] = uint8_t((2 * rel) % 16 + 1);
            pr.w[8 * lane + 2 * l + t % 2] = int16_t(xt.weight[size_t(xt.offset[j] + t)]);
          }
        }
      }
      hfits2.push_back(fits);
      hpairs2.insert(hpairs2.end(), pairs.begin(), pairs.end());
    }
  }
};

// Plans for the last few geometries (an env uses one; tests and tools a handful).
class PlanCache {
 public:
  std::shared_ptr<const Plan> get(const Geometry& g) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < plans_.size(); ++i)
      if (plans_[i]->g == g) {
        if (i != 0) std::rotate(plans_.begin(), plans_.begin() + long(i), plans_.begin() + long(i) + 1);
        return plans_[0];
      }
    auto plan = std::make_shared<const Plan>(g);
    plans_.insert(plans_.begin(), plan);
    if (plans_.size() > kMaxPlans) plans_.pop_back();
    return plan;
  }
  static constexpr size_t kMaxPlans = 16;

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<const Plan>> plans_;  // most recently used first
};

// ---- row kernels: sample one output row from a packed source row (and the previous frame's) ----

namespace scalar {

template <int C, bool kPrev, Gray G>
void row_t(const ColumnMap& m, const uint8_t* a, const uint8_t* b, uint8_t* out, int32_t j0, int32_t j1) {
  for (int32_t j = j0; j < j1; ++j) {
    const uint8_t* p = a + m.px[size_t(j)];
    if (C == 1) {
      out[j] = kPrev ? std::max(p[0], b[m.px[size_t(j)]]) : p[0];
      continue;
    }
    uint32_t r = p[0], g = p[1], bl = p[2];
    if (kPrev) {
      const uint8_t* q = b + m.px[size_t(j)];
      r = std::max<uint32_t>(r, q[0]);
      g = std::max<uint32_t>(g, q[1]);
      bl = std::max<uint32_t>(bl, q[2]);
    }
    out[j] = G == Gray::kLuma ? luma(r, g, bl) : mean3(r, g, bl);
  }
}

template <bool kPrev>
void row_p(const ColumnMap& m, Gray g, const uint8_t* a, const uint8_t* b, uint8_t* out, int32_t j0, int32_t j1) {
  if (m.c == 1) return row_t<1, kPrev, Gray::kLuma>(m, a, b, out, j0, j1);
  if (g == Gray::kLuma) return row_t<3, kPrev, Gray::kLuma>(m, a, b, out, j0, j1);
  return row_t<3, kPrev, Gray::kMean>(m, a, b, out, j0, j1);
}

inline void row(const ColumnMap& m, Gray g, const uint8_t* a, const uint8_t* b, uint8_t* out, int32_t j0, int32_t j1) {
  if (b) return row_p<true>(m, g, a, b, out, j0, j1);
  return row_p<false>(m, g, a, b, out, j0, j1);
}

// acc[x] = (sum_t w[t] * rows[t][x] + 8) >> 4 for x in [x0, n)
inline void vertical(const uint8_t* const* rows, const int32_t* w, int32_t taps, int64_t n, int16_t* acc,
                     int64_t x0 = 0) {
  for (int64_t x = x0; x < n; ++x) {
    int32_t s = 1 << (kAreaVShift - 1);
    for (int32_t t = 0; t < taps; ++t) s += w[t] * rows[t][x];
    acc[x] = int16_t(s >> kAreaVShift);
  }
}

inline void horizontal(const Plan& p, const int16_t* acc, uint8_t* out) {
  constexpr int32_t kShift = kAreaShift;
  for (int64_t j = 0; j < p.g.ow; ++j) {
    int32_t s = 1 << (kShift - 1);
    for (int32_t t = 0; t < p.xtaps; ++t)
      s += p.xw[size_t(t) * size_t(p.owp) + size_t(j)] * acc[p.xidx[size_t(t) * size_t(p.owp) + size_t(j)]];
    out[j] = uint8_t(s >> kShift);
  }
}

}  // namespace scalar

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DQNFAST_X86_SIMD 1

namespace avx2 {
#define DQNFAST_AVX2 __attribute__((target("avx2")))

// Gray value in the low byte of each dword lane of v = [R, G, B, junk] (RGB) or [Y, junk...].
template <int C, Gray G>
DQNFAST_AVX2 inline __m256i gray8(__m256i v) {
  if (C == 1) return _mm256_and_si256(v, _mm256_set1_epi32(0xFF));
  const __m256i rb = _mm256_and_si256(v, _mm256_set1_epi32(0x00FF00FF));
  const __m256i g = _mm256_and_si256(_mm256_srli_epi32(v, 8), _mm256_set1_epi32(0xFF));
  if (G == Gray::kLuma) {
    __m256i y = _mm256_madd_epi16(rb, _mm256_set1_epi32((kLumaB << 16) | kLumaR));
    y = _mm256_add_epi32(y, _mm256_madd_epi16(g, _mm256_set1_epi32(kLumaG)));
    y = _mm256_add_epi32(y, _mm256_set1_epi32(1 << (kLumaShift - 1)));
    return _mm256_srli_epi32(y, kLumaShift);
  }
  __m256i s = _mm256_add_epi32(_mm256_madd_epi16(rb, _mm256_set1_epi32(0x00010001)), g);
  return _mm256_srli_epi32(_mm256_mullo_epi32(s, _mm256_set1_epi32(kMeanMul)), kMeanShift);
}

// The low bytes of 8 dword lanes, as 8 consecutive bytes (low 64 bits).
DQNFAST_AVX2 inline __m128i pack8(__m256i y) {
  const __m256i lowbytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i t = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(y, lowbytes), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
  return _mm256_castsi256_si128(t);
}

template <int C, bool kPrev, Gray G>
DQNFAST_AVX2 void row_t(const ColumnMap& m, const uint8_t* a, const uint8_t* b, uint8_t* out) {
  int32_t j = 0;
  if (m.gather_ok)
    for (; j + 8 <= m.n; j += 8) {
      const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.goff.data() + j));
      const __m256i sh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.gshift.data() + j));
      __m256i v = _mm256_srlv_epi32(_mm256_i32gather_epi32(reinterpret_cast<const int*>(a), idx, 1), sh);
      if (kPrev)  // bytes line up channel for channel, so a bytewise max is the per-channel max
        v = _mm256_max_epu8(v, _mm256_srlv_epi32(_mm256_i32gather_epi32(reinterpret_cast<const int*>(b), idx, 1), sh));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), pack8(gray8<C, G>(v)));
    }
  scalar::row_t<C, kPrev, G>(m, a, b, out, j, m.n);
}

DQNFAST_AVX2 inline __m256i load2x16(const uint8_t* p, const int32_t* base, int32_t off) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + base[0] + off))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + base[1] + off)), 1);
}

// Bytes from a 32-byte window given as its two 16-byte halves (a lambda would not inherit the
// target attribute).
DQNFAST_AVX2 inline __m256i pick(__m256i lo, __m256i hi, const uint8_t (&idx)[2][32]) {
  return _mm256_or_si256(_mm256_shuffle_epi8(lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(idx[0]))),
                         _mm256_shuffle_epi8(hi, _mm256_load_si256(reinterpret_cast<const __m256i*>(idx[1]))));
}

// Gray dwords of outputs [j, j + 8) of an RGB map: vpshufb windows where they fit, else gathers.
template <bool kPrev, Gray G>
DQNFAST_AVX2 inline __m256i chunk8(const ColumnMap& m, const uint8_t* a, const uint8_t* b, int32_t j) {
  const ColumnMap::Window2& w = m.windows2[size_t(j / 8)];
  if (!w.fits) {
    const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.goff.data() + j));
    const __m256i sh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.gshift.data() + j));
    __m256i v = _mm256_srlv_epi32(_mm256_i32gather_epi32(reinterpret_cast<const int*>(a), idx, 1), sh);
    if (kPrev) v = _mm256_max_epu8(v, _mm256_srlv_epi32(_mm256_i32gather_epi32(reinterpret_cast<const int*>(b), idx, 1), sh));
    return gray8<3, G>(v);
  }
  __m256i lo = load2x16(a, w.base, 0), hi = load2x16(a, w.base, 16);
  if (kPrev) {
    lo = _mm256_max_epu8(lo, load2x16(b, w.base, 0));
    hi = _mm256_max_epu8(hi, load2x16(b, w.base, 16));
  }
  const __m256i rg = pick(lo, hi, w.rg), b1 = _mm256_or_si256(pick(lo, hi, w.b), _mm256_set1_epi32(0x10000));
  if (G == Gray::kLuma) {
    const __m256i y = _mm256_add_epi32(_mm256_madd_epi16(rg, _mm256_set1_epi32((kLumaG << 16) | kLumaR)),
                                       _mm256_madd_epi16(b1, _mm256_set1_epi32((1 << (kLumaShift - 1) << 16) | kLumaB)));
    return _mm256_srli_epi32(y, kLumaShift);
  }
  const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(rg, _mm256_set1_epi32(0x00010001)),
                                       _mm256_madd_epi16(b1, _mm256_set1_epi32(1)));
  return _mm256_srli_epi32(_mm256_madd_epi16(sum, _mm256_set1_epi32(kMeanMul)), kMeanShift);
}

// RGB rows, 32 outputs per store: three packs interleave four chunks by lane, a dword permute
// restores the order.
template <bool kPrev, Gray G>
DQNFAST_AVX2 void row_rgb(const ColumnMap& m, const uint8_t* a, const uint8_t* b, uint8_t* out) {
  if (!m.gather_ok && !m.all_fit2) return scalar::row_t<3, kPrev, G>(m, a, b, out, 0, m.n);
  const __m256i zero = _mm256_setzero_si256(), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int32_t j = 0; j < m.n; j += 32) {
    const int32_t cnt = std::min(32, m.n - j);
    const __m256i y0 = chunk8<kPrev, G>(m, a, b, j);
    const __m256i y1 = cnt > 8 ? chunk8<kPrev, G>(m, a, b, j + 8) : zero;
    const __m256i y2 = cnt > 16 ? chunk8<kPrev, G>(m, a, b, j + 16) : zero;
    const __m256i y3 = cnt > 24 ? chunk8<kPrev, G>(m, a, b, j + 24) : zero;
    const __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(_mm256_packus_epi32(y0, y1), _mm256_packus_epi32(y2, y3)), order);
    if (cnt == 32) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), bytes);
    } else {
      alignas(32) uint8_t tmp[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), bytes);
      std::memcpy(out + j, tmp, size_t(cnt));
    }
  }
}

template <bool kPrev>
DQNFAST_AVX2 void row_p(const ColumnMap& m, Gray g, const uint8_t* a, const uint8_t* b, uint8_t* out) {
  if (m.c == 1) return row_t<1, kPrev, Gray::kLuma>(m, a, b, out);
  if (g == Gray::kLuma) return row_rgb<kPrev, Gray::kLuma>(m, a, b, out);
  return row_rgb<kPrev, Gray::kMean>(m, a, b, out);
}

DQNFAST_AVX2 inline void row(const ColumnMap& m, Gray g, const uint8_t* a, const uint8_t* b, uint8_t* out) {
  if (b) return row_p<true>(m, g, a, b, out);
  return row_p<false>(m, g, a, b, out);
}

DQNFAST_AVX2 inline void vertical(const uint8_t* const* rows, const int32_t* w, int32_t taps, int64_t n, int16_t* acc) {
  int64_t x = 0;
  for (; x + 8 <= n; x += 8) {
    __m256i s = _mm256_set1_epi32(1 << (kAreaVShift - 1));
    for (int32_t t = 0; t < taps; ++t) {
      const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[t] + x)));
      s = _mm256_add_epi32(s, _mm256_mullo_epi32(px, _mm256_set1_epi32(w[t])));
    }
    s = _mm256_srli_epi32(s, kAreaVShift);  // <= 32640: the saturating pack is exact
    const __m256i words = _mm256_permute4x64_epi64(_mm256_packus_epi32(s, s), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + x), _mm256_castsi256_si128(words));
  }
  scalar::vertical(rows, w, taps, n, acc, x);
}

// Row sums are int16; a 4-byte gather at column c holds c in its low half.
DQNFAST_AVX2 inline void horizontal(const Plan& p, const int16_t* acc, uint8_t* out) {
  constexpr int32_t kShift = kAreaShift;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(acc);
  for (int64_t j = 0, k = 0; j < p.g.ow; j += 8, ++k) {  // owp pads the tap tables to whole vectors
    __m256i s = _mm256_set1_epi32(1 << (kShift - 1));
    if (p.hfits2[size_t(k)]) {  // acc is padded past the row: the 32-byte loads stay inside it
      const int32_t base[2] = {2 * p.hbase2[size_t(2 * k)], 2 * p.hbase2[size_t(2 * k + 1)]};
      const __m256i lo = load2x16(bytes, base, 0), hi = load2x16(bytes, base, 16);
      for (int32_t q = 0; q < p.xpairs; ++q) {
        const Plan::Pair2& pr = p.hpairs2[size_t(k * p.xpairs + q)];
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(pr.w));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(pick(lo, hi, pr.idx), w));
      }
    }
    for (int32_t t = 0; t < p.xtaps && !p.hfits2[size_t(k)]; ++t) {
      const size_t at = size_t(t) * size_t(p.owp) + size_t(j);
      const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.xidx.data() + at));
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.xw.data() + at));
      const __m256i v = _mm256_and_si256(_mm256_i32gather_epi32(reinterpret_cast<const int*>(acc), idx, 2),
                                         _mm256_set1_epi32(0xFFFF));
      s = _mm256_add_epi32(s, _mm256_mullo_epi32(v, w));
    }
    const __m128i y = pack8(_mm256_srli_epi32(s, kShift));
    if (j + 8 <= p.g.ow) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), y);
    } else {
      alignas(16) uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), y);
      std::memcpy(out + j, tmp, size_t(p.g.ow - j));
    }
  }
}
#undef DQNFAST_AVX2
}  // namespace avx2

namespace avx512 {
#define DQNFAST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

// Gray dwords from the 16-bit pairs [R, G] and [B, 1] of each lane (see ColumnMap::Window).
template <Gray G>
DQNFAST_AVX512 inline __m512i gray16(__m512i rg, __m512i b1) {
  if (G == Gray::kLuma) {
    const __m512i y = _mm512_add_epi32(_mm512_madd_epi16(rg, _mm512_set1_epi32((kLumaG << 16) | kLumaR)),
                                       _mm512_madd_epi16(b1, _mm512_set1_epi32((1 << (kLumaShift - 1) << 16) | kLumaB)));
    return _mm512_srli_epi32(y, kLumaShift);
  }
  const __m512i s = _mm512_add_epi32(_mm512_madd_epi16(rg, _mm512_set1_epi32(0x00010001)),
                                     _mm512_madd_epi16(b1, _mm512_set1_epi32(1)));
  return _mm512_srli_epi32(_mm512_madd_epi16(s, _mm512_set1_epi32(kMeanMul)), kMeanShift);  // s < 2^15
}

// Dwords [p, junk...] (gray) or [R, G, B, junk] (RGB) at 16 outputs from j, kept inside the row.
template <bool kPrev>
DQNFAST_AVX512 inline __m512i gather16(const ColumnMap& m, const uint8_t* a, const uint8_t* b, int32_t j) {
  const __m512i idx = _mm512_loadu_si512(m.goff.data() + j);
  const __m512i sh = _mm512_loadu_si512(m.gshift.data() + j);
  __m512i v = _mm512_srlv_epi32(_mm512_i32gather_epi32(idx, a, 1), sh);
  if (kPrev) v = _mm512_max_epu8(v, _mm512_srlv_epi32(_mm512_i32gather_epi32(idx, b, 1), sh));
  return v;
}

// The 128 bytes at base (maxed with the previous frame's); masked loads never touch bytes
// outside a short row.
template <bool kPrev>
DQNFAST_AVX512 inline void window(const ColumnMap& m, const uint8_t* a, const uint8_t* b, int32_t base, __m512i& lo,
                                  __m512i& hi) {
  lo = _mm512_maskz_loadu_epi8(m.lo_mask, a + base);
  hi = _mm512_maskz_loadu_epi8(m.hi_mask, a + base + 64);
  if (kPrev) {
    lo = _mm512_max_epu8(lo, _mm512_maskz_loadu_epi8(m.lo_mask, b + base));
    hi = _mm512_max_epu8(hi, _mm512_maskz_loadu_epi8(m.hi_mask, b + base + 64));
  }
}

// Gray dwords of outputs [j, j + 16). Windows that fit are permuted; the rest are gathered
// (ColumnMap guarantees one or the other is possible unless the row is under 4 bytes).
template <bool kPrev, Gray G, int kAllFit>
DQNFAST_AVX512 inline __m512i chunk_rgb(const ColumnMap& m, const uint8_t* a, const uint8_t* b, int32_t j) {
  const ColumnMap::Window& win = m.windows[size_t(j / 16)];
  if (kAllFit == 64) {  // e.g. the area path's every-pixel map: 48 bytes per 16 pixels
    __m512i v = _mm512_maskz_loadu_epi8(m.lo_mask, a + win.base);
    if (kPrev) v = _mm512_max_epu8(v, _mm512_maskz_loadu_epi8(m.lo_mask, b + win.base));
    // Bytes the mask skips come from the first operand: the 0s, and the 1 of [B, 1].
    const __m512i rg = _mm512_maskz_permutexvar_epi8(0x5555555555555555ULL, _mm512_load_si512(win.a), v);
    const __m512i b1 = _mm512_mask_permutexvar_epi8(_mm512_set1_epi32(0x10000), 0x1111111111111111ULL,
                                                    _mm512_load_si512(win.b), v);
    return gray16<G>(rg, b1);
  }
  if (kAllFit || win.fits) {
    __m512i lo, hi;
    window<kPrev>(m, a, b, win.base, lo, hi);
    const __m512i rg = _mm512_mask2_permutex2var_epi8(lo, _mm512_load_si512(win.a), 0x5555555555555555ULL, hi);
    const __m512i b1 = _mm512_mask2_permutex2var_epi8(lo, _mm512_load_si512(win.b), 0x1111111111111111ULL, hi);
    return gray16<G>(rg, b1);
  }
  // vpshufb indexes bytes within each 128-bit lane: dword k of a lane starts at byte 4k.
  const __m512i lane_dword = _mm512_set_epi32(12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0);
  const __m512i v = gather16<kPrev>(m, a, b, j);
  const __m512i rg_idx = _mm512_add_epi32(_mm512_set1_epi32(int32_t(0x80018000u)), _mm512_mullo_epi32(lane_dword, _mm512_set1_epi32(0x00010001)));
  const __m512i b_idx = _mm512_add_epi32(_mm512_set1_epi32(int32_t(0x80808002u)), lane_dword);
  const __m512i rg = _mm512_shuffle_epi8(v, rg_idx);
  const __m512i b1 = _mm512_or_si512(_mm512_shuffle_epi8(v, b_idx), _mm512_set1_epi32(0x10000));
  return gray16<G>(rg, b1);
}

// Four vectors of 16 dwords (values <= 255) as 64 consecutive bytes: two saturating packs
// interleave them by 128-bit lane, one byte permute restores the order.
DQNFAST_AVX512 inline __m512i pack64(__m512i y0, __m512i y1, __m512i y2, __m512i y3) {
  alignas(64) static const uint8_t order[64] = {
      0,  1,  2,  3,  16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51, 4,  5,  6,  7,  20, 21,
      22, 23, 36, 37, 38, 39, 52, 53, 54, 55, 8,  9,  10, 11, 24, 25, 26, 27, 40, 41, 42, 43,
      56, 57, 58, 59, 12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63};
  const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(y0, y1), _mm512_packus_epi32(y2, y3));
  return _mm512_permutexvar_epi8(_mm512_load_si512(order), bytes);
}

inline uint64_t low_bits(int32_t n) { return n >= 64 ? ~0ULL : (1ULL << n) - 1; }

template <bool kPrev, Gray G, int kAllFit>
DQNFAST_AVX512 void rows_rgb(const ColumnMap& m, const uint8_t* const* a, const uint8_t* const* b, int64_t nrows,
                             uint8_t* out, int64_t stride) {
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* ra = a[r];
    const uint8_t* rb = kPrev ? b[r] : nullptr;
    for (int32_t j = 0; j < m.n; j += 64) {
      const int32_t cnt = std::min(64, m.n - j);
      const __m512i y0 = chunk_rgb<kPrev, G, kAllFit>(m, ra, rb, j);
      const __m512i y1 = cnt > 16 ? chunk_rgb<kPrev, G, kAllFit>(m, ra, rb, j + 16) : zero;
      const __m512i y2 = cnt > 32 ? chunk_rgb<kPrev, G, kAllFit>(m, ra, rb, j + 32) : zero;
      const __m512i y3 = cnt > 48 ? chunk_rgb<kPrev, G, kAllFit>(m, ra, rb, j + 48) : zero;
      _mm512_mask_storeu_epi8(out + r * stride + j, low_bits(cnt), pack64(y0, y1, y2, y3));
    }
  }
}

template <bool kPrev>
DQNFAST_AVX512 void rows_gray(const ColumnMap& m, const uint8_t* const* a, const uint8_t* const* b, int64_t nrows,
                              uint8_t* out, int64_t stride) {
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* ra = a[r];
    const uint8_t* rb = kPrev ? b[r] : nullptr;
    uint8_t* o = out + r * stride;
    for (int32_t j = 0, k = 0; j < m.n; j += 64, ++k) {
      const int32_t cnt = std::min(64, m.n - j);
      const ColumnMap::Window& win = m.windows[size_t(k)];
      if (win.fits) {
        __m512i lo, hi;
        window<kPrev>(m, ra, rb, win.base, lo, hi);
        _mm512_mask_storeu_epi8(o + j, low_bits(cnt), _mm512_permutex2var_epi8(lo, _mm512_load_si512(win.a), hi));
        continue;
      }
      for (int32_t s = j; s < j + cnt; s += 16) {
        const __m512i v = _mm512_and_si512(gather16<kPrev>(m, ra, rb, s), _mm512_set1_epi32(0xFF));
        _mm512_mask_cvtepi32_storeu_epi8(o + s, __mmask16(low_bits(std::min(16, j + cnt - s))), v);
      }
    }
  }
}

template <bool kPrev>
DQNFAST_AVX512 void rows_p(const ColumnMap& m, Gray g, const uint8_t* const* a, const uint8_t* const* b, int64_t nrows,
                           uint8_t* out, int64_t stride) {
  if (m.c == 1) return rows_gray<kPrev>(m, a, b, nrows, out, stride);
  // kAllFit: 64 = every window in one 64-byte load, 1 = in two, 0 = some chunks are gathered.
  if (g == Gray::kLuma) {
    if (m.all_fit64) return rows_rgb<kPrev, Gray::kLuma, 64>(m, a, b, nrows, out, stride);
    if (m.all_fit) return rows_rgb<kPrev, Gray::kLuma, 1>(m, a, b, nrows, out, stride);
    return rows_rgb<kPrev, Gray::kLuma, 0>(m, a, b, nrows, out, stride);
  }
  if (m.all_fit64) return rows_rgb<kPrev, Gray::kMean, 64>(m, a, b, nrows, out, stride);
  if (m.all_fit) return rows_rgb<kPrev, Gray::kMean, 1>(m, a, b, nrows, out, stride);
  return rows_rgb<kPrev, Gray::kMean, 0>(m, a, b, nrows, out, stride);
}

DQNFAST_AVX512 inline void rows(const ColumnMap& m, Gray g, const uint8_t* const* a, const uint8_t* const* b,
                                int64_t nrows, uint8_t* out, int64_t stride) {
  if (b) return rows_p<true>(m, g, a, b, nrows, out, stride);
  return rows_p<false>(m, g, a, b, nrows, out, stride);
}

DQNFAST_AVX512 inline void vertical(const uint8_t* const* rows, const int32_t* w, int32_t taps, int64_t n, int16_t* acc) {
  for (int64_t x = 0; x < n; x += 16) {
    const __mmask16 mask = __mmask16(low_bits(int32_t(std::min<int64_t>(16, n - x))));
    __m512i s = _mm512_set1_epi32(1 << (kAreaVShift - 1));
    for (int32_t t = 0; t < taps; ++t) {  // a masked load reads nothing past the row's end
      const __m128i bytes = _mm512_castsi512_si128(_mm512_maskz_loadu_epi8(__mmask64(mask), rows[t] + x));
      // pixel (high word 0) times weight (< 2^15) with vpmaddwd: cheaper than a 32-bit multiply
      s = _mm512_add_epi32(s, _mm512_madd_epi16(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(w[t])));
    }
    _mm512_mask_cvtepi32_storeu_epi16(acc + x, mask, _mm512_srli_epi32(s, kAreaVShift));
  }
}

// acc holds at least 64 readable int16 past the row (Scratch pads it), so windows need no mask.
DQNFAST_AVX512 inline void horizontal(const Plan& p, const int16_t* acc, uint8_t* out) {
  for (int64_t j = 0, k = 0; j < p.g.ow; j += 16, ++k) {
    __m512i s = _mm512_set1_epi32(1 << (kAreaShift - 1));
    if (p.hfits[size_t(k)]) {
      const __m512i lo = _mm512_loadu_si512(acc + p.hbase[size_t(k)]);
      const __m512i hi = _mm512_loadu_si512(acc + p.hbase[size_t(k)] + 32);
      for (int32_t q = 0; q < p.xpairs; ++q) {
        const Plan::Pair& pr = p.hpairs[size_t(k * p.xpairs + q)];
        const __m512i v = _mm512_permutex2var_epi16(lo, _mm512_load_si512(pr.idx), hi);
        s = _mm512_add_epi32(s, _mm512_madd_epi16(v, _mm512_load_si512(pr.w)));
      }
    } else {
      for (int32_t t = 0; t < p.xtaps; ++t) {
        const size_t at = size_t(t) * size_t(p.owp) + size_t(j);
        const __m512i idx = _mm512_loadu_si512(p.xidx.data() + at);
        const __m512i w = _mm512_loadu_si512(p.xw.data() + at);
        const __m512i v = _mm512_and_si512(_mm512_i32gather_epi32(idx, acc, 2), _mm512_set1_epi32(0xFFFF));
        s = _mm512_add_epi32(s, _mm512_mullo_epi32(v, w));
      }
    }
    const __mmask16 mask = __mmask16(low_bits(int32_t(std::min<int64_t>(16, p.g.ow - j))));
    _mm512_mask_cvtepi32_storeu_epi8(out + j, mask, _mm512_srli_epi32(s, kAreaShift));
  }
}
#undef DQNFAST_AVX512
}  // namespace avx512
#endif  // x86 SIMD

// Output row r (at out + r * stride) samples packed source row a[r] (maxed with b[r] if b).
inline void sample_rows(SimdLevel level, const ColumnMap& m, Gray g, const uint8_t* const* a, const uint8_t* const* b,
                        int64_t nrows, uint8_t* out, int64_t stride) {
  if (m.contiguous) {  // a copy, or a max the compiler vectorises; the same bytes on every path
    for (int64_t r = 0; r < nrows; ++r) {
      const uint8_t* pa = a[r] + m.px[0];
      uint8_t* o = out + r * stride;
      if (!b) {
        std::memcpy(o, pa, size_t(m.n));
        continue;
      }
      const uint8_t* pb = b[r] + m.px[0];
      for (int32_t j = 0; j < m.n; ++j) o[j] = std::max(pa[j], pb[j]);
    }
    return;
  }
#ifdef DQNFAST_X86_SIMD
  if (level == SimdLevel::kAvx512) return avx512::rows(m, g, a, b, nrows, out, stride);
  for (int64_t r = 0; r < nrows && level == SimdLevel::kAvx2; ++r) avx2::row(m, g, a[r], b ? b[r] : nullptr, out + r * stride);
  if (level == SimdLevel::kAvx2) return;
#endif
  (void)level;
  for (int64_t r = 0; r < nrows; ++r) scalar::row(m, g, a[r], b ? b[r] : nullptr, out + r * stride, 0, m.n);
}

inline void vertical(SimdLevel level, const uint8_t* const* rows, const int32_t* w, int32_t taps, int64_t n,
                     int16_t* acc) {
#ifdef DQNFAST_X86_SIMD
  if (level == SimdLevel::kAvx512) return avx512::vertical(rows, w, taps, n, acc);
  if (level == SimdLevel::kAvx2) return avx2::vertical(rows, w, taps, n, acc);
#endif
  (void)level;  // only the x86 paths need it
  scalar::vertical(rows, w, taps, n, acc);
}

inline void horizontal(SimdLevel level, const Plan& p, const int16_t* acc, uint8_t* out) {
#ifdef DQNFAST_X86_SIMD
  if (level == SimdLevel::kAvx512) return avx512::horizontal(p, acc, out);
  if (level == SimdLevel::kAvx2) return avx2::horizontal(p, acc, out);
#endif
  (void)level;  // only the x86 paths need it
  scalar::horizontal(p, acc, out);
}

// ---- frames -------------------------------------------------------------------------------------

// A batch of frames in memory: pixel (n, y, x, k) is at data + n fs + y rs + x xs + k cs (bytes,
// any sign). data is null for "no previous frame".
struct Source {
  const uint8_t* data = nullptr;
  int64_t fs = 0, rs = 0, xs = 0, cs = 0;
};

struct Request {
  const Plan* plan = nullptr;  // owned by the caller for the duration of run()
  Gray gray = Gray::kLuma;
  Source frame, prev;
  int64_t n = 1;          // frames
  uint8_t* out = nullptr; // n * oh * ow bytes, C-contiguous
  SimdLevel level = SimdLevel::kScalar;
};

struct Scratch {  // per worker thread; grows to the largest plan it has run
  std::vector<uint8_t> rows_a, rows_b, gray;  // packed copies of strided rows; the area path's gray crop
  std::vector<int16_t> acc;                   // area row sums, padded: see avx512::horizontal
  std::vector<const uint8_t*> ptr_a, ptr_b, taps;
};

inline bool packed(const Source& s, int64_t c) { return s.xs == c && (c == 1 || s.cs == 1); }

// Pointers to packed source rows ys[0..n) of one frame: the rows themselves when their pixels
// are packed, else copies of the crop's columns (at the same byte offsets) in `buf`.
inline void fetch_rows(const Plan& p, const Source& s, const uint8_t* frame, const int32_t* ys, int64_t n,
                       std::vector<uint8_t>& buf, std::vector<const uint8_t*>& ptrs) {
  const int64_t c = p.g.c, rb = p.g.w * c;
  ptrs.resize(size_t(n));
  if (packed(s, c)) {
    for (int64_t i = 0; i < n; ++i) ptrs[size_t(i)] = frame + ys[i] * s.rs;
    return;
  }
  if (buf.size() < size_t(n * rb)) buf.assign(size_t(n * rb), 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* row = frame + ys[i] * s.rs;
    uint8_t* d = buf.data() + i * rb;
    if (c == 1)
      for (int64_t x = p.g.left; x < p.g.right; ++x) d[x] = row[x * s.xs];
    else
      for (int64_t x = p.g.left; x < p.g.right; ++x) {
        const uint8_t* q = row + x * s.xs;
        d[3 * x] = q[0], d[3 * x + 1] = q[s.cs], d[3 * x + 2] = q[2 * s.cs];
      }
    ptrs[size_t(i)] = d;
  }
}

inline void run_nearest(const Request& r, const uint8_t* a, const uint8_t* b, uint8_t* out, Scratch& sc) {
  const Plan& p = *r.plan;
  fetch_rows(p, r.frame, a, p.rows.data(), p.g.oh, sc.rows_a, sc.ptr_a);
  if (b) fetch_rows(p, r.prev, b, p.rows.data(), p.g.oh, sc.rows_b, sc.ptr_b);
  sample_rows(r.level, p.cols, r.gray, sc.ptr_a.data(), b ? sc.ptr_b.data() : nullptr, p.g.oh, out, p.g.ow);
}

inline void run_area(const Request& r, const uint8_t* a, const uint8_t* b, uint8_t* out, Scratch& sc) {
  const Plan& p = *r.plan;
  const int64_t cw = p.cw;
  // 1. the crop in gray (max-pooled first), 2. each output row's weighted sum of crop rows,
  // 3. each output pixel's weighted sum of that row's columns.
  if (sc.gray.size() < size_t(p.ch * cw)) sc.gray.resize(size_t(p.ch * cw));
  if (sc.acc.size() < size_t(cw + 64)) sc.acc.assign(size_t(cw + 64), 0);
  if (sc.taps.size() < size_t(p.ytaps.max_count)) sc.taps.resize(size_t(p.ytaps.max_count));
  fetch_rows(p, r.frame, a, p.rows.data(), p.ch, sc.rows_a, sc.ptr_a);
  if (b) fetch_rows(p, r.prev, b, p.rows.data(), p.ch, sc.rows_b, sc.ptr_b);
  sample_rows(r.level, p.cols, r.gray, sc.ptr_a.data(), b ? sc.ptr_b.data() : nullptr, p.ch, sc.gray.data(), cw);
  for (int64_t i = 0; i < p.g.oh; ++i) {
    const int32_t n = p.ytaps.count[size_t(i)], y0 = p.ytaps.start[size_t(i)];
    for (int32_t t = 0; t < n; ++t) sc.taps[size_t(t)] = sc.gray.data() + (y0 + t) * cw;
    vertical(r.level, sc.taps.data(), p.ytaps.weight.data() + p.ytaps.offset[size_t(i)], n, cw, sc.acc.data());
    horizontal(r.level, p, sc.acc.data(), out + i * p.g.ow);
  }
}

inline void run_range(const Request& r, int64_t begin, int64_t end, Scratch& sc) {
  const int64_t frame_out = r.plan->g.oh * r.plan->g.ow;
  for (int64_t f = begin; f < end; ++f) {
    const uint8_t* a = r.frame.data + f * r.frame.fs;
    const uint8_t* b = r.prev.data ? r.prev.data + f * r.prev.fs : nullptr;
    if (r.plan->g.interp == Interp::kNearest)
      run_nearest(r, a, b, r.out + f * frame_out, sc);
    else
      run_area(r, a, b, r.out + f * frame_out, sc);
  }
}

// Threading policy for batches: a second thread costs tens of microseconds to start and only
// pays when a core is free, so it is used only for batches of at least min_work source-pixel
// visits (2^22: about 100 frames with area, 600 with nearest, i.e. calls of a few milliseconds).
struct ThreadPolicy {
  int max_threads = 2;
  int64_t min_work = int64_t(1) << 22;
};
inline ThreadPolicy& thread_policy() {
  static ThreadPolicy policy;
  return policy;
}

inline int64_t work_of(const Request& r) {
  const Plan& p = *r.plan;
  const int64_t per = p.g.interp == Interp::kNearest ? p.g.oh * p.g.ow : p.ch * p.cw + p.g.oh * p.g.ow;
  return per * r.n;
}

// Runs the request; call without the GIL. Each frame is written by exactly one thread.
inline void run(const Request& r, const ThreadPolicy& policy) {
  thread_local Scratch main_scratch;
  int threads = policy.max_threads;
  if (r.n < 2 || work_of(r) < policy.min_work) threads = 1;
  threads = int(std::min<int64_t>(threads, r.n));
  if (threads <= 1) return run_range(r, 0, r.n, main_scratch);
  std::vector<std::thread> workers;
  std::vector<Scratch> scratch(size_t(threads - 1));
  const int64_t per = (r.n + threads - 1) / threads;
  try {
    for (int t = 1; t < threads; ++t) {
      const int64_t b = std::min(r.n, t * per), e = std::min(r.n, (t + 1) * per);
      workers.emplace_back([&r, b, e, &sc = scratch[size_t(t - 1)]] { run_range(r, b, e, sc); });
    }
  } catch (const std::system_error&) {  // no thread to be had: do the rest here
    for (size_t t = workers.size() + 1; t < size_t(threads); ++t)
      run_range(r, std::min<int64_t>(r.n, int64_t(t) * per), std::min<int64_t>(r.n, int64_t(t + 1) * per),
                main_scratch);
  }
  run_range(r, 0, std::min(r.n, per), main_scratch);
  for (auto& w : workers) w.join();
}

}  // namespace pre
}  // namespace dqnfast
