// dqnfast._core: the private native module (import dqnfast instead). One binding file per
// component; their argument parsers are shared (args.hpp).
#include <pybind11/pybind11.h>

#include "bindings/args.hpp"

namespace dqnfast::bindings {
void bind_replay(py::module_& m);      // replay.cpp
void bind_preprocess(py::module_& m);  // preprocess.cpp
void bind_palette(py::module_& m);     // palette.cpp
}  // namespace dqnfast::bindings

PYBIND11_MODULE(_core, m) {
  namespace b = dqnfast::bindings;
  m.doc() = "dqnfast native core (private: import dqnfast instead)";
  b::init_numpy_scalar_types();
  b::bind_replay(m);
  b::bind_preprocess(m);
  b::bind_palette(m);
}
