// dqnfast.preprocess and its hooks for tests and benchmarks (simd_level, set_simd, _set_threads, ...).
// preprocess is a plain METH_FASTCALL builtin rather than a pybind11 def: its whole budget is
// about a microsecond per frame, and pybind11's overload dispatcher and keyword matching cost a
// good part of that. Its arguments are checked here, on every call, before the GIL is released.
#include <pybind11/stl.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bindings/args.hpp"
#include "bindings/geometry.hpp"
#include "dqnfast/cpu_features.hpp"
#include "dqnfast/preprocess.hpp"

namespace dqnfast::bindings {
namespace {

pre::PlanCache& plan_cache() {
  static pre::PlanCache cache;
  return cache;
}

// The plan for g: this thread's last one, else the shared cache. The thread-local reference
// also keeps the plan alive while a call without the GIL uses it, whatever the cache evicts.
const pre::Plan* plan_for(const pre::Geometry& g) {
  thread_local std::shared_ptr<const pre::Plan> last;
  if (!last || !(last->g == g)) last = plan_cache().get(g);
  return last.get();
}

// A frame argument: its layout, batch size, and where each pixel is (any strides).
struct FrameArg {
  bool batched = false;
  int64_t n = 1, h = 0, w = 0, c = 1;
  int nd = 0;
  py::ssize_t shape[4] = {};
  pre::Source src;
  const uint8_t* lo = nullptr;  // lowest and one past the highest byte the array spans
  const uint8_t* hi = nullptr;
  std::string shape_string() const { return shape_str(shape, size_t(nd)); }
  bool same_shape(const FrameArg& o) const { return nd == o.nd && std::equal(shape, shape + nd, o.shape); }
};

FrameArg frame_arg(py::handle obj, const char* name) {
  const ArrayStruct* arr = ndarray_arg(obj, name, "uint8");
  check_dtype<uint8_t>(arr, name);
  const int nd = arr->nd;
  const py::ssize_t* st = arr->strides;
  if (nd < 2 || nd > 4)
    throw py::value_error(std::string(name) + " must have shape (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3), got " +
                          shape_str(arr->dimensions, size_t(nd)));
  FrameArg f;
  f.nd = nd;
  std::copy(arr->dimensions, arr->dimensions + nd, f.shape);
  const auto bad_channels = [&](py::ssize_t c) {
    return py::value_error(std::string(name) + " has " + std::to_string(c) + " channels (shape " + f.shape_string() +
                           "); expected RGB (H, W, 3) or gray (H, W) frames, or (N, ...) batches of them");
  };
  if (nd == 2) {
    f.h = f.shape[0], f.w = f.shape[1];
    f.src = {nullptr, 0, st[0], st[1], 0};
  } else if (nd == 3 && f.shape[2] == 3) {
    f.c = 3, f.h = f.shape[0], f.w = f.shape[1];
    f.src = {nullptr, 0, st[0], st[1], st[2]};
  } else if (nd == 3 && f.shape[2] <= 4) {  // (H, W, 1|2|4): a channel axis, not a gray batch
    throw bad_channels(f.shape[2]);
  } else if (nd == 3) {
    f.batched = true, f.n = f.shape[0], f.h = f.shape[1], f.w = f.shape[2];
    f.src = {nullptr, st[0], st[1], st[2], 0};
  } else if (f.shape[3] == 3) {
    f.batched = true, f.c = 3, f.n = f.shape[0], f.h = f.shape[1], f.w = f.shape[2];
    f.src = {nullptr, st[0], st[1], st[2], st[3]};
  } else {
    throw bad_channels(f.shape[3]);
  }
  if (f.h == 0 || f.w == 0) throw py::value_error(std::string(name) + " is empty (shape " + f.shape_string() + ")");
  if (f.w * f.c > (int64_t(1) << 30) || f.h > (int64_t(1) << 30))  // plans index rows and bytes with int32
    throw py::value_error(std::string(name) + " is too large (shape " + f.shape_string() + ")");
  f.src.data = reinterpret_cast<const uint8_t*>(arr->data);
  // The byte span, for the overlap check against `out`.
  f.lo = f.hi = f.src.data;
  for (int d = 0; d < nd; ++d) {
    const int64_t reach = (int64_t(f.shape[d]) - 1) * st[d];
    (reach < 0 ? f.lo : f.hi) += reach;
  }
  f.hi += 1;
  return f;
}

PyObject* interned(const char* s) { return PyUnicode_InternFromString(s); }  // kept for the process's life

py::object new_uint8(const py::ssize_t* shape, int nd) {
  auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_UBYTE_);  // NewFromDescr steals it
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, nd, const_cast<py::ssize_t*>(shape), nullptr,
                                          nullptr, 0, nullptr);
  if (!a) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(a);
}

py::object preprocess_impl(py::handle frame, py::handle prev, py::handle crop, py::handle size, py::handle gray,
                           py::handle interp, py::handle out) {
  static PyObject* const kLuma = interned("luma");
  static PyObject* const kMean = interned("mean");
  static PyObject* const kNearest = interned("nearest");
  static PyObject* const kArea = interned("area");
  const FrameArg f = frame_arg(frame, "frame");
  pre::Request req;
  req.frame = f.src;
  req.n = f.n;
  FrameArg p;
  if (!prev.is_none()) {
    p = frame_arg(prev, "prev");
    if (!f.same_shape(p))
      throw py::value_error("prev must have the same shape as frame " + f.shape_string() + ", got " + p.shape_string());
    req.prev = p.src;
  }
  pre::Geometry g{f.h, f.w, f.c, 0, f.h, 0, f.w, 84, 84, pre::Interp::kNearest};
  crop_and_size_args(crop, size, g);
  if (!gray.is_none()) req.gray = choice_arg(gray, "gray", kLuma, kMean, pre::Gray::kLuma, pre::Gray::kMean);
  if (!interp.is_none())
    g.interp = choice_arg(interp, "interp", kNearest, kArea, pre::Interp::kNearest, pre::Interp::kArea);

  const py::ssize_t oshape[3] = {py::ssize_t(f.n), py::ssize_t(g.oh), py::ssize_t(g.ow)};
  const py::ssize_t* shape = f.batched ? oshape : oshape + 1;
  const int ond = f.batched ? 3 : 2;
  py::object result;
  if (out.is_none()) {
    result = new_uint8(shape, ond);
    req.out = reinterpret_cast<uint8_t*>(py::detail::array_proxy(result.ptr())->data);
  } else {
    req.out = out_array<uint8_t>(out, "out", shape, size_t(ond));
    const size_t bytes = size_t(f.n * g.oh * g.ow);
    const auto overlaps = [&](const FrameArg& a) { return req.out < a.hi && a.lo < req.out + bytes; };
    if (bytes && overlaps(f)) throw py::value_error("out must not share memory with frame");
    if (bytes && !prev.is_none() && overlaps(p)) throw py::value_error("out must not share memory with prev");
    result = py::reinterpret_borrow<py::object>(out);
  }
  if (f.n == 0) return result;
  req.plan = plan_for(g);
  req.level = simd_level();
  const pre::ThreadPolicy policy = pre::thread_policy();
  {
    NoGil nogil;  // the kernel touches no Python object
    pre::run(req, policy);
  }
  return result;
}

// preprocess(frame, *, prev=None, crop=None, size=(84, 84), gray="luma", interp="nearest", out=None)
PyObject* py_preprocess(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"frame", "prev", "crop", "size", "gray", "interp", "out"};
  constexpr size_t kCount = sizeof(kNames) / sizeof(kNames[0]);
  static PyObject* names[kCount] = {};
  try {
    if (!names[0])
      for (size_t i = 0; i < kCount; ++i) names[i] = interned(kNames[i]);
    PyObject* vals[kCount] = {};
    if (nargs > 1)
      throw py::type_error("preprocess() takes 1 positional argument (frame) but " + std::to_string(nargs) +
                           " were given; the others are keyword-only");
    if (nargs == 1) vals[0] = args[0];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      size_t i = 0;
      while (i < kCount && key != names[i]) ++i;  // call sites pass interned names
      if (i == kCount)
        for (i = 0; i < kCount && PyUnicode_Compare(key, names[i]) != 0; ++i) {
        }
      if (i == kCount) throw py::type_error("preprocess() got an unexpected keyword argument " + std::string(py::repr(key)));
      if (vals[i]) throw py::type_error("preprocess() got multiple values for argument '" + std::string(kNames[i]) + "'");
      vals[i] = args[nargs + k];
    }
    if (!vals[0]) throw py::type_error("preprocess() missing required argument 'frame'");
    const auto arg = [&](size_t i) { return vals[i] ? py::handle(vals[i]) : py::handle(Py_None); };
    return preprocess_impl(arg(0), arg(1), arg(2), arg(3), arg(4), arg(5), arg(6)).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

const char* const kPreprocessDoc =
    "preprocess(frame, *, prev=None, crop=None, size=(84, 84), gray='luma', interp='nearest', out=None)\n--\n\n"
    "Max-pool, grayscale, crop and resize Atari frames into uint8 (see dqnfast.preprocess).";

}  // namespace

void bind_preprocess(py::module_& m) {
  static PyMethodDef def = {"preprocess", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_preprocess)),
                            METH_FASTCALL | METH_KEYWORDS, kPreprocessDoc};
  m.add_object("preprocess", py::reinterpret_steal<py::object>(PyCFunction_NewEx(&def, nullptr, m.attr("__name__").ptr())));

  const char* env = std::getenv("DQNFAST_SIMD");
  if (env && *env) {
    try {
      parse_simd(env);
    } catch (const std::invalid_argument& e) {
      if (PyErr_WarnEx(PyExc_RuntimeWarning, (std::string("DQNFAST_SIMD ignored: ") + e.what()).c_str(), 1) < 0)
        throw py::error_already_set();
    }
  }
  // Hooks for tests and `dqnfast bench preprocess`.
  m.def("simd_level", [] { return std::string(simd_name(simd_level())); },
        "The SIMD path preprocess uses now: 'scalar', 'avx2' or 'avx512' (the best this CPU runs, unless\n"
        "DQNFAST_SIMD or set_simd chose another). dqnfast.preprocessing.simd_level() reports it.");
  m.def("_simd_supported", [] {
    std::vector<std::string> v;
    for (int l = 0; l <= int(detect_simd()); ++l) v.push_back(simd_name(SimdLevel(l)));
    return v;
  }, "The SIMD paths this CPU can run, slowest first.");
  m.def("set_simd", [](const std::string& name) {
    try {
      set_simd_level(parse_simd(name));
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
    return std::string(simd_name(simd_level()));
  }, py::arg("level"),
        "Force a SIMD path for every later preprocess call in this process, all threads: 'scalar' | 'avx2' |\n"
        "'avx512', or 'auto' for the best this CPU runs. Returns the one now in use; ValueError for a name\n"
        "that is unknown or a path this CPU cannot run. For tests and `dqnfast bench preprocess` (each path\n"
        "gives the same bytes); set it back with 'auto'.");
  m.def("_set_threads", [](int max_threads, int64_t min_work) {
    if (max_threads < 1 || max_threads > 64) throw py::value_error("max_threads must be in [1, 64]");
    if (min_work < 0) throw py::value_error("min_work must be non-negative");
    pre::thread_policy() = {max_threads, min_work};
  }, py::arg("max_threads") = 2, py::arg("min_work") = int64_t(1) << 22,
        "Batched preprocess: use up to max_threads threads once a batch has min_work pixel visits.");
  m.def("_threads", [] { return py::make_tuple(pre::thread_policy().max_threads, pre::thread_policy().min_work); });
}

}  // namespace dqnfast::bindings
