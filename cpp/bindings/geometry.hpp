// crop and size arguments into a pre::Geometry: preprocess() parses them on every call, and the
// palette resizer's constructor with the same checks and messages.
#pragma once

#include <string>

#include "bindings/args.hpp"
#include "dqnfast/preprocess.hpp"

namespace dqnfast::bindings {

// crop (None: the whole g.h x g.w frame) and size (None: keep g's; an int or (height, width)) into g.
inline void crop_and_size_args(py::handle crop, py::handle size, pre::Geometry& g) {
  if (!crop.is_none()) {
    int64_t v[4];
    fixed_ints(crop, "crop", "a tuple of 4 ints (top, bottom, left, right)", "crop entries", v);
    g.top = v[0], g.bottom = v[1], g.left = v[2], g.right = v[3];
    const auto what = [&] { return "crop (top, bottom, left, right) = " + ints_str({v[0], v[1], v[2], v[3]}); };
    if (g.top < 0 || g.left < 0 || g.bottom > g.h || g.right > g.w)
      throw py::value_error(what() + " is outside the " + std::to_string(g.h) + "x" + std::to_string(g.w) + " frame");
    if (g.bottom <= g.top || g.right <= g.left) throw py::value_error(what() + " is empty");
  }
  if (!size.is_none()) {
    if (is_int(size)) {
      g.oh = g.ow = int_arg(size, "size");
    } else {
      int64_t v[2];
      fixed_ints(size, "size", "an int or a tuple of 2 ints (height, width)", "size entries", v);
      g.oh = v[0], g.ow = v[1];
    }
    if (g.oh <= 0 || g.ow <= 0 || g.oh > (1 << 20) || g.ow > (1 << 20))
      throw py::value_error("size (height, width) = " + ints_str({g.oh, g.ow}) + " must be positive and at most 2**20");
  }
}

}  // namespace dqnfast::bindings
