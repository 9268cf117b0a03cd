// dqnfast._core.PaletteResizer: the gymnasium wrapper's direct ALE path (see cpp/dqnfast/palette.hpp).
// Its crop and size go through preprocess's own parser, so both say the same about the same mistake.
#include <string>

#include "bindings/args.hpp"
#include "bindings/geometry.hpp"
#include "dqnfast/palette.hpp"

namespace dqnfast::bindings {

void bind_palette(py::module_& m) {
  py::class_<PaletteResizer>(m, "PaletteResizer",
                             "Nearest resize of an emulator's palette-index screen to gray through a learned table "
                             "(dqnfast.wrappers uses it; see cpp/dqnfast/palette.hpp).")
      .def(py::init([](py::handle screen_shape, py::handle crop, py::handle size) {
             int64_t hw[2];
             fixed_ints(screen_shape, "screen_shape", "a tuple of 2 ints (height, width)", "screen_shape entries", hw);
             if (hw[0] <= 0 || hw[1] <= 0) throw py::value_error("screen_shape entries must be positive");
             pre::Geometry g{hw[0], hw[1], 1, 0, hw[0], 0, hw[1], 84, 84, pre::Interp::kNearest};
             crop_and_size_args(crop, size, g);
             try {
               return std::make_unique<PaletteResizer>(g.h, g.w, g.top, g.bottom, g.left, g.right, g.oh, g.ow);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(std::string("PaletteResizer: ") + e.what() + " (screen_shape " +
                                     ints_str({g.h, g.w}) + ", size " + ints_str({g.oh, g.ow}) + ")");
             }
           }),
           py::arg("screen_shape"), py::arg("crop"), py::arg("size"))
      .def(
          "gather",
          [](const PaletteResizer& p, py::handle screen, py::handle out) {
            const py::array s = in_array(screen, "screen", {p.height(), p.width()});
            uint8_t* dst = out_array<uint8_t>(out, "out", {p.out_h(), p.out_w()});
            NoGil nogil;
            return p.gather(static_cast<const uint8_t*>(s.data()), dst);
          },
          py::arg("screen"), py::arg("out"),
          "out = the gray value of each sampled pixel's palette index; False if one has not been learned yet "
          "(out is then partly written).")
      .def(
          "learn",
          [](PaletteResizer& p, py::handle screen, py::handle gray) {
            const py::array s = in_array(screen, "screen", {p.height(), p.width()});
            const py::array g = in_array(gray, "gray", {p.height(), p.width()});
            NoGil nogil;
            return p.learn(static_cast<const uint8_t*>(s.data()), static_cast<const uint8_t*>(g.data()));
          },
          py::arg("screen"), py::arg("gray"),
          "Learn index -> gray from the index screen and gray screen of one frame; False (nothing learned) "
          "if they map an index to two gray values.")
      .def(
          "gray_of",
          [](const PaletteResizer& p, py::handle index) {
            const int64_t i = int_arg(index, "index");
            if (i < 0 || i > 255) throw py::index_error("palette index must be in [0, 255], got " + std::to_string(i));
            return p.gray_of(uint8_t(i));
          },
          py::arg("index"), "The gray value learned for a palette index, or -1.");
}

}  // namespace dqnfast::bindings
