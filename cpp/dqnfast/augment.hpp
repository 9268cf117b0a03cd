// Random-shift augmentation of sampled states (DrQ, Kostrikov et al. 2021), done while the frames
// are copied out of the store: no padded frame and no second pass over the batch.
//
// DrQ pads each frame by P pixels on every side, repeating its edge pixels, and crops it back to
// its size at a random offset. With the offset (dy, dx) in [-P, P]^2 that is
//     out[y][x] = in[clamp(y + dy, 0, H - 1)][clamp(x + dx, 0, W - 1)],
// so no padded frame is ever built (see shifted_copy). A frame is (..., H, W): every leading axis is a plane shifted alike.
//
// One offset serves every frame of a state; obs and next_obs draw their own (as DrQ does), except
// in the shared-frames layout, where they are views of one array and share one offset per row.
// The offsets come from their own counter-based stream, CallRng(seed ^ kShiftMix, call), drawn row
// by row before the row is read, so a shifted sample() draws exactly the transitions an unshifted
// one with the same call number would; dqnfast.replay_reference.shift_offsets replicates the stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dqnfast/rng.hpp"

namespace dqnfast {

constexpr uint64_t kShiftMix = 0xA0761D6478BD642FULL;

struct ShiftGeometry {
  uint64_t planes = 1;  // product of the frame's leading axes
  uint64_t height = 0;  // second-to-last axis
  uint64_t width = 0;   // last axis
};

struct ShiftOffsets {  // one row's offsets, each in [-pad, pad]
  int64_t dy = 0, dx = 0;    // obs
  int64_t ndy = 0, ndx = 0;  // next_obs
  bool same() const { return dy == ndy && dx == ndx; }
};

// The offsets of one sample call, row after row.
class ShiftStream {
 public:
  ShiftStream(uint64_t seed, uint64_t call, uint32_t pad, bool shared)
      : rng_(seed ^ kShiftMix, call), pad_(pad), shared_(shared) {}
  ShiftOffsets next() {
    ShiftOffsets o;
    if (pad_ == 0) return o;
    o.dy = draw();
    o.dx = draw();
    if (shared_) {
      o.ndy = o.dy, o.ndx = o.dx;
    } else {
      o.ndy = draw();
      o.ndx = draw();
    }
    return o;
  }

 private:
  int64_t draw() { return int64_t(rng_.below(2 * uint64_t(pad_) + 1)) - int64_t(pad_); }
  CallRng rng_;
  uint32_t pad_;
  bool shared_;
};

// dst = src shifted by (dy, dx), |dy| < height and |dx| < width; dst and src do not overlap.
// `copy(dst, src, n)` reads the source (the store's racy_copy: the caller checks the slot's
// seqlock afterwards); edge pixels are then taken from dst, never re-read from the source.
//
// The rows that read an unclamped source row are one contiguous block of the source, moved by
// dx: a single copy puts every such row's pixels in place, and spills |dx| pixels of the next
// source row into each row's edge, which the edge fill then overwrites. Clamped rows repeat the
// first or last of them. So a shifted frame costs one bulk copy plus a few bytes per row.
template <typename Copy>
inline void shifted_copy(uint8_t* dst, const uint8_t* src, const ShiftGeometry& g, int64_t dy, int64_t dx, Copy copy) {
  const int64_t h = int64_t(g.height), w = int64_t(g.width);
  const int64_t s = dx >= 0 ? dx : -dx;       // pixels of a row that come from its edge
  const int64_t y0 = dy < 0 ? -dy : 0;         // rows [y0, y1) read source rows y + dy, unclamped
  const int64_t y1 = dy > 0 ? h - dy : h;
  const size_t bulk = size_t((y1 - y0) * w - s);
  for (uint64_t p = 0; p < g.planes; ++p) {
    const uint8_t* sp = src + p * g.height * g.width;
    uint8_t* dp = dst + p * g.height * g.width;
    if (dx >= 0) {
      copy(dp + y0 * w, sp + (y0 + dy) * w + dx, bulk);
      for (int64_t y = y0; y < y1; ++y) {
        uint8_t* row = dp + y * w;
        const uint8_t edge = row[w - s - 1];  // the source row's last pixel
        for (int64_t x = w - s; x < w; ++x) row[x] = edge;
      }
    } else {
      copy(dp + y0 * w + s, sp + (y0 + dy) * w, bulk);
      for (int64_t y = y0; y < y1; ++y) {
        uint8_t* row = dp + y * w;
        const uint8_t edge = row[s];  // the source row's first pixel
        for (int64_t x = 0; x < s; ++x) row[x] = edge;
      }
    }
    for (int64_t y = 0; y < y0; ++y) std::memcpy(dp + y * w, dp + y0 * w, size_t(w));
    for (int64_t y = y1; y < h; ++y) std::memcpy(dp + y * w, dp + (y1 - 1) * w, size_t(w));
  }
}

}  // namespace dqnfast
