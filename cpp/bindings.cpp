// The only file that knows about Python: validates arguments at the boundary, releases the GIL
// around the C++ calls, and allocates Python objects only while holding it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "dqnfast/frame_store.hpp"
#include "dqnfast/prioritized.hpp"

namespace py = pybind11;
using namespace dqnfast;

namespace {

// ---- argument checks shared by the bindings ----------------------------------------------------

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

bool same_shape(const py::array& a, const std::vector<py::ssize_t>& shape) {
  if (size_t(a.ndim()) != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (a.shape(py::ssize_t(i)) != shape[i]) return false;
  return true;
}

py::array as_ndarray(py::handle obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " + type_name(obj));
  return py::reinterpret_borrow<py::array>(obj);
}

// A uint8 array of exactly `shape`; returned C-contiguous (a copy if it was strided).
py::array uint8_array(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape) {
  py::array a = as_ndarray(obj, name);
  if (a.dtype().kind() != 'u' || a.itemsize() != 1)
    throw py::type_error(std::string(name) + " must have dtype uint8, got " + std::string(py::str(a.dtype())));
  if (!same_shape(a, shape))
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim())));
  if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
  return a;
}

// An output array: exact dtype and shape, C-contiguous and writeable (written in place, never copied).
template <typename T>
T* out_array(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape) {
  py::array a = as_ndarray(obj, name);
  if (!a.dtype().is(py::dtype::of<T>()) && !(a.dtype().kind() == py::dtype::of<T>().kind() && a.itemsize() == sizeof(T)))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " + shape_str(got));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return static_cast<T*>(a.mutable_data());
}

// A 1-D array of n values of the given numpy kinds, converted to T (only within those kinds).
template <typename T>
using Vec = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
Vec<T> vector_arg(py::handle obj, const char* name, py::ssize_t n, const char* kinds,
                                              const char* what) {
  py::array a = as_ndarray(obj, name);
  if (std::string(kinds).find(a.dtype().kind()) == std::string::npos)
    throw py::type_error(std::string(name) + " must be an array of " + what + ", got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",), got " +
                          shape_str(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim())));
  Vec<T> v = Vec<T>::ensure(a);  // the kind check above keeps this cast within ints or within numbers
  if (!v) throw py::error_already_set();
  return v;
}

bool flag_arg(py::handle obj, const char* name) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  if (py::isinstance(obj, py::module_::import("numpy").attr("bool_"))) return PyObject_IsTrue(obj.ptr()) == 1;
  throw py::type_error(std::string(name) + " must be a bool, got " + type_name(obj));
}

int64_t int_arg(py::handle obj, const char* name) {
  if (PyLong_CheckExact(obj.ptr())) {  // fast path for plain ints
    const long long v = PyLong_AsLongLong(obj.ptr());
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return v;
  }
  if (PyFloat_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw py::type_error(std::string(name) + " must be an integer, got " + type_name(obj));
  return py::cast<int64_t>(py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr())));
}

std::string path_arg(py::handle path) {
  py::object fs = py::module_::import("os").attr("fspath")(path);  // TypeError for non-paths
  if (!py::isinstance<py::str>(fs)) throw py::type_error("path must be a str or os.PathLike, got bytes");
  return py::cast<std::string>(fs);
}

// ---- ReplayBuffer --------------------------------------------------------------------------------

struct BoundStore {
  std::unique_ptr<FrameStore> store;
  std::vector<py::ssize_t> frame_shape;
  std::vector<py::ssize_t> state_shape;  // (stack, *frame_shape)

  std::vector<py::ssize_t> batched(py::ssize_t n, const std::vector<py::ssize_t>& shape) const {
    std::vector<py::ssize_t> s{n};
    s.insert(s.end(), shape.begin(), shape.end());
    return s;
  }
  PrioritizedStore* prioritized() const { return dynamic_cast<PrioritizedStore*>(store.get()); }
  PrioritizedStore* per(const char* what) const {
    PrioritizedStore* p = prioritized();
    if (!p) throw py::type_error(std::string(what) + " needs a PrioritizedReplayBuffer");
    return p;
  }
  uint32_t env_arg(int64_t env) const {
    store->check_env(env);
    return uint32_t(env);
  }
  // Rows' env ids: `envs` (unique, in range) or all streams in order when None.
  std::vector<uint32_t> envs_arg(py::handle envs) const {
    std::vector<uint32_t> out;
    if (envs.is_none()) {
      for (uint32_t e = 0; e < store->num_envs(); ++e) out.push_back(e);
      return out;
    }
    py::array a = as_ndarray(envs, "envs");
    if (a.ndim() != 1) throw py::value_error("envs must be 1-D");
    auto ids = vector_arg<int64_t>(a, "envs", a.shape(0), "iu", "integers");
    std::vector<bool> seen(store->num_envs(), false);
    for (py::ssize_t i = 0; i < ids.shape(0); ++i) {
      const uint32_t e = env_arg(ids.at(i));
      if (seen[e]) throw py::value_error("envs lists env " + std::to_string(e) + " twice");
      seen[e] = true;
      out.push_back(e);
    }
    return out;
  }
  // Where obs and next_obs of n rows go. Two layouts are accepted:
  //  - standard: two C-contiguous (n, stack, *frame_shape) arrays that do not overlap;
  //  - shared frames: the views frames[:, :stack] and frames[:, 1:] of one (n, stack + 1,
  //    *frame_shape) array, i.e. strides ((stack + 1) * fb, fb, C order within a frame) and next_obs
  //    starting exactly one frame after obs. Each frame of a row is then written once.
  // Both uint8 and writeable, in every case. Which layout it is follows from the data pointers and
  // strides alone; anything else is refused, since the copies write through raw pointers.
  struct FrameOut {
    uint8_t* obs;
    uint8_t* next_obs;
    uint64_t row_stride;  // 0: dense rows
    bool shared;
  };
  FrameOut frame_outputs(py::ssize_t n, py::handle obs, py::handle next_obs) const {
    const auto sb = batched(n, state_shape);
    py::array o = frame_out_array(obs, "obs", sb), no = frame_out_array(next_obs, "next_obs", sb);
    auto* op = static_cast<uint8_t*>(o.mutable_data());
    auto* np = static_cast<uint8_t*>(no.mutable_data());
    const uint64_t fb = store->frame_bytes(), rows = (uint64_t(store->stack()) + 1) * fb;
    if (shared_layout(o, no)) return {op, np, rows, true};
    const char* shared_hint =
        " (or obs and next_obs must be the views frames[:, :stack] and frames[:, 1:] of one uint8 "
        "(B, stack + 1, *frame_shape) array: see dqnfast.empty_batch(..., shared_frames=True))";
    if (!(o.flags() & py::array::c_style)) throw py::value_error(std::string("obs must be C-contiguous") + shared_hint);
    if (!(no.flags() & py::array::c_style))
      throw py::value_error(std::string("next_obs must be C-contiguous") + shared_hint);
    const uint64_t bytes = uint64_t(n) * store->stack() * fb;
    if (bytes && op < np + bytes && np < op + bytes)
      throw py::value_error("obs and next_obs must not share memory, unless they are the two views of a "
                            "shared-frames array (dqnfast.empty_batch(..., shared_frames=True))");
    return {op, np, 0, false};
  }
  // A uint8, writeable array of exactly `shape` (strides are checked by the caller).
  static py::array frame_out_array(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape) {
    py::array a = as_ndarray(obj, name);
    if (a.dtype().kind() != 'u' || a.itemsize() != 1)
      throw py::type_error(std::string(name) + " must have dtype uint8, got " + std::string(py::str(a.dtype())));
    std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
    if (got != shape)
      throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " + shape_str(got));
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    return a;
  }
  // obs / next_obs (shapes already checked) are exactly the shared-frames layout. A dimension of
  // length 1 is never stepped along, so its stride does not matter (numpy's rule for contiguity).
  bool shared_layout(const py::array& o, const py::array& no) const {
    const auto fb = py::ssize_t(store->frame_bytes());
    if (static_cast<const uint8_t*>(no.data()) != static_cast<const uint8_t*>(o.data()) + fb) return false;
    const auto nd = o.ndim();
    std::vector<py::ssize_t> want(size_t(nd), 0);
    py::ssize_t inner = 1;  // C order within a frame
    for (py::ssize_t d = nd - 1; d >= 2; --d) {
      want[size_t(d)] = inner;
      inner *= o.shape(d);
    }
    want[1] = fb;
    want[0] = (py::ssize_t(store->stack()) + 1) * fb;
    for (py::ssize_t d = 0; d < nd; ++d)
      if (o.shape(d) > 1 && (o.strides(d) != want[size_t(d)] || no.strides(d) != want[size_t(d)])) return false;
    return true;
  }
  // Validates a Batch of output arrays for n rows (obs/next_obs may be None when not copied).
  TransitionOut outputs(py::ssize_t n, py::handle batch, bool frames = true) const {
    if (!py::isinstance<py::tuple>(batch)) throw py::type_error("out must be a dqnfast.Batch, got " + type_name(batch));
    py::tuple t = py::reinterpret_borrow<py::tuple>(batch);
    if (t.size() != 8) throw py::type_error("out must be a dqnfast.Batch of 8 arrays");
    FrameOut f{nullptr, nullptr, 0, false};
    if (frames) f = frame_outputs(n, t[0], t[3]);
    if (f.shared && store->n_step() > 1)
      throw py::value_error("a shared-frames batch (next_obs = obs shifted by one frame) needs n_step == 1, but this "
                            "buffer has n_step=" + std::to_string(store->n_step()) +
                            ", where next_obs is the state n steps later: use separate obs and next_obs arrays "
                            "(empty_batch(..., shared_frames=False))");
    const std::vector<py::ssize_t> vb{n};
    return {f.obs,
            f.next_obs,
            out_array<int64_t>(t[1], "action", vb),
            out_array<float>(t[2], "reward", vb),
            out_array<bool>(t[4], "terminated", vb),
            out_array<bool>(t[5], "truncated", vb),
            out_array<int64_t>(t[6], "index", vb),
            out_array<float>(t[7], "discount", vb),
            f.row_stride,
            f.shared};
  }
};

void bind_replay(py::module_& m) {
  py::class_<BoundStore>(m, "FrameStore", "Native frame-store replay memory (use dqnfast.ReplayBuffer).")
      .def(py::init([](py::handle capacity, py::handle frame_shape, py::handle stack, py::handle num_envs,
                       py::handle seed, py::handle pad, py::handle storage_path, py::handle n_step, py::handle gamma,
                       py::handle alpha) {
             const int64_t cap = int_arg(capacity, "capacity"), st = int_arg(stack, "stack"),
                           ne = int_arg(num_envs, "num_envs");
             if (cap <= 0) throw py::value_error("capacity must be positive, got " + std::to_string(cap));
             if (st <= 0) throw py::value_error("stack must be positive, got " + std::to_string(st));
             if (ne <= 0) throw py::value_error("num_envs must be positive, got " + std::to_string(ne));
             if (!py::isinstance<py::tuple>(frame_shape) && !py::isinstance<py::list>(frame_shape))
               throw py::type_error("frame_shape must be a tuple of positive ints, got " + type_name(frame_shape));
             auto bs = std::make_unique<BoundStore>();
             uint64_t frame_bytes = 1;
             for (py::handle d : frame_shape) {
               const int64_t v = int_arg(d, "frame_shape entries");
               if (v <= 0) throw py::value_error("frame_shape entries must be positive, got " + std::to_string(v));
               if (frame_bytes > (uint64_t(1) << 40) / uint64_t(v)) throw py::value_error("frame_shape is too large");
               frame_bytes *= uint64_t(v);
               bs->frame_shape.push_back(v);
             }
             if (bs->frame_shape.empty()) throw py::value_error("frame_shape must have at least one dimension");
             uint64_t s;
             if (seed.is_none()) {
               std::random_device rd;
               s = (uint64_t(rd()) << 32) ^ rd();
             } else {
               const int64_t v = int_arg(seed, "seed");
               if (v < 0) throw py::value_error("seed must be non-negative");
               s = uint64_t(v);
             }
             if (!py::isinstance<py::str>(pad)) throw py::type_error("pad must be 'zero' or 'first', got " + type_name(pad));
             const std::string pad_s = py::cast<std::string>(pad);
             if (pad_s != "zero" && pad_s != "first")
               throw py::value_error("pad must be 'zero' or 'first', got '" + pad_s + "'");
             const int64_t n = int_arg(n_step, "n_step");
             if (n < 1) throw py::value_error("n_step must be >= 1, got " + std::to_string(n));
             if (n > int64_t(FrameStore::kMaxNStep))
               throw py::value_error("n_step must be at most " + std::to_string(FrameStore::kMaxNStep));
             if (!PyFloat_Check(gamma.ptr()) && !PyLong_Check(gamma.ptr()) &&
                 !py::isinstance(gamma, py::module_::import("numpy").attr("number")))
               throw py::type_error("gamma must be a number, got " + type_name(gamma));
             const double g = py::cast<double>(gamma);
             if (!(g >= 0.0 && g <= 1.0)) throw py::value_error("gamma must be in [0, 1], got " + std::string(py::str(gamma)));
             double a = 0.0;
             if (!alpha.is_none()) {
               if (!PyFloat_Check(alpha.ptr()) && !PyLong_Check(alpha.ptr()) &&
                   !py::isinstance(alpha, py::module_::import("numpy").attr("number")))
                 throw py::type_error("alpha must be a number, got " + type_name(alpha));
               a = py::cast<double>(alpha);
               if (!(a >= 0.0) || !std::isfinite(a)) throw py::value_error("alpha must be finite and >= 0");
             }
             std::string storage;
             if (!storage_path.is_none()) {
               py::object fs = py::module_::import("os").attr("fspath")(storage_path);  // str or os.PathLike
               if (!py::isinstance<py::str>(fs)) throw py::type_error("storage_path must be a str or os.PathLike path");
               storage = py::cast<std::string>(fs);
             }
             if (st > int64_t(FrameStore::kMaxStack))
               throw py::value_error("stack must be at most " + std::to_string(FrameStore::kMaxStack));
             bs->state_shape = {st};
             bs->state_shape.insert(bs->state_shape.end(), bs->frame_shape.begin(), bs->frame_shape.end());
             try {
               if (alpha.is_none())
                 bs->store = std::make_unique<FrameStore>(uint64_t(cap), frame_bytes, uint32_t(st), uint32_t(ne), s,
                                                          pad_s == "first", storage, uint32_t(n), g);
               else
                 bs->store = std::make_unique<PrioritizedStore>(uint64_t(cap), frame_bytes, uint32_t(st), uint32_t(ne), s,
                                                                pad_s == "first", storage, uint32_t(n), g, a);
             } catch (const std::bad_alloc&) {
               PyErr_SetString(PyExc_MemoryError, ("cannot allocate a replay buffer of capacity " + std::to_string(cap) +
                                                   " frames of " + std::to_string(frame_bytes) + " bytes")
                                                      .c_str());
               throw py::error_already_set();
             }
             return bs;
           }),
           py::arg("capacity"), py::arg("frame_shape") = py::make_tuple(84, 84), py::arg("stack") = 4,
           py::arg("num_envs") = 1, py::arg("seed") = py::none(), py::arg("pad") = "zero",
           py::arg("storage_path") = py::none(), py::arg("n_step") = 1, py::arg("gamma") = 0.99,
           py::arg("alpha") = py::none())
      .def_property_readonly("capacity", [](const BoundStore& b) { return b.store->capacity(); })
      .def_property_readonly("frame_shape", [](const BoundStore& b) { return py::tuple(py::cast(b.frame_shape)); })
      .def_property_readonly("stack", [](const BoundStore& b) { return b.store->stack(); })
      .def_property_readonly("num_envs", [](const BoundStore& b) { return b.store->num_envs(); })
      .def_property_readonly("seed", [](const BoundStore& b) { return b.store->seed(); })
      .def_property_readonly("pad", [](const BoundStore& b) { return b.store->pad_first() ? "first" : "zero"; })
      .def_property_readonly("n_step", [](const BoundStore& b) { return b.store->n_step(); })
      .def_property_readonly("gamma", [](const BoundStore& b) { return b.store->gamma(); })
      .def_property_readonly("nbytes", [](const BoundStore& b) { return b.store->nbytes(); },
                             "Bytes held by the store: frames plus per-slot metadata.")
      .def_property_readonly("writes", [](const BoundStore& b) { return b.store->writes(); },
                             "Frames written so far (episode starts and steps); the next index handed out.")
      .def("__len__", [](const BoundStore& b) { return b.store->size(); })
      .def("episode_active", [](const BoundStore& b, int64_t env) { return b.store->episode_active(b.env_arg(env)); },
           py::arg("env") = 0, "Whether add() may be called for env (an episode was started and has not ended).")
      .def(
          "start_episode",
          [](BoundStore& b, py::handle frame, int64_t env) {
            const uint32_t e = b.env_arg(env);
            py::array f = uint8_array(frame, "frame", b.frame_shape);
            const auto* p = static_cast<const uint8_t*>(f.data());
            py::gil_scoped_release nogil;
            return b.store->start_episode(e, p);
          },
          py::arg("frame"), py::arg("env") = 0)
      .def(
          "add",
          [](BoundStore& b, py::handle action, py::handle reward, py::handle next_frame, py::handle terminated,
             py::handle truncated, int64_t env) {
            const uint32_t e = b.env_arg(env);
            StepRecord step;
            step.action = int_arg(action, "action");
            if (!PyFloat_Check(reward.ptr()) && !PyLong_Check(reward.ptr()) &&
                !py::isinstance(reward, py::module_::import("numpy").attr("number")))
              throw py::type_error("reward must be a number, got " + type_name(reward));
            step.reward = float(py::cast<double>(reward));
            step.terminated = flag_arg(terminated, "terminated");
            step.truncated = flag_arg(truncated, "truncated");
            py::array f = uint8_array(next_frame, "next_frame", b.frame_shape);
            const auto* p = static_cast<const uint8_t*>(f.data());
            py::gil_scoped_release nogil;
            return b.store->add(e, step, p);
          },
          py::arg("action"), py::arg("reward"), py::arg("next_frame"), py::arg("terminated"),
          py::arg("truncated") = false, py::arg("env") = 0)
      .def(
          "start_episodes",
          [](BoundStore& b, py::handle frames, py::handle envs) {
            const std::vector<uint32_t> ids = b.envs_arg(envs);
            py::array f = uint8_array(frames, "frames", b.batched(py::ssize_t(ids.size()), b.frame_shape));
            const auto* p = static_cast<const uint8_t*>(f.data());
            py::gil_scoped_release nogil;
            b.store->start_episodes(ids.size(), ids.data(), p);
          },
          py::arg("frames"), py::arg("envs") = py::none(),
          "Start new episodes: row i of frames is the first frame of env envs[i] (all envs when None).")
      .def(
          "add_batch",
          [](BoundStore& b, py::handle actions, py::handle rewards, py::handle next_frames, py::handle terminated,
             py::handle truncated, py::handle envs) {
            const std::vector<uint32_t> ids = b.envs_arg(envs);
            const auto n = py::ssize_t(ids.size());
            auto act = vector_arg<int64_t>(actions, "actions", n, "iu", "integers");
            auto rew = vector_arg<float>(rewards, "rewards", n, "iuf", "numbers");
            auto term = vector_arg<bool>(terminated, "terminated", n, "b", "bools");
            Vec<bool> trunc;
            if (!truncated.is_none()) trunc = vector_arg<bool>(truncated, "truncated", n, "b", "bools");
            py::array f = uint8_array(next_frames, "next_frames", b.batched(n, b.frame_shape));
            std::vector<StepRecord> steps(static_cast<size_t>(n));
            for (py::ssize_t i = 0; i < n; ++i) {
              steps[size_t(i)] = {act.at(i), rew.at(i), term.at(i), truncated.is_none() ? false : trunc.at(i)};
            }
            const auto* p = static_cast<const uint8_t*>(f.data());
            py::gil_scoped_release nogil;
            b.store->add_many(ids.size(), ids.data(), steps.data(), p);
          },
          py::arg("actions"), py::arg("rewards"), py::arg("next_frames"), py::arg("terminated"),
          py::arg("truncated") = py::none(), py::arg("envs") = py::none(),
          "One step for several streams: row i belongs to env envs[i] (all envs, in order, when None).")
      .def(
          "stacked",
          [](BoundStore& b, int64_t env, py::handle out) {
            const uint32_t e = b.env_arg(env);
            py::array result = out.is_none() ? py::array(py::dtype::of<uint8_t>(), b.state_shape)
                                             : py::reinterpret_borrow<py::array>(out);
            uint8_t* dst = out_array<uint8_t>(result, "out", b.state_shape);
            {
              py::gil_scoped_release nogil;
              b.store->stacked(e, dst);
            }
            return result;
          },
          py::arg("env") = 0, py::arg("out") = py::none(),
          "The state env acts on now, (stack, *frame_shape) uint8, oldest frame first.")
      .def(
          "_sample_into",
          [](BoundStore& b, py::ssize_t batch_size, py::handle out) {
            if (batch_size <= 0) throw py::value_error("batch_size must be positive, got " + std::to_string(batch_size));
            const TransitionOut o = b.outputs(batch_size, out);
            py::gil_scoped_release nogil;
            b.store->sample(size_t(batch_size), o);
          })
      .def(
          "_sample_slots_into",
          [](BoundStore& b, py::ssize_t batch_size, py::handle obs_slots, py::handle next_slots, py::handle out) {
            if (batch_size <= 0) throw py::value_error("batch_size must be positive, got " + std::to_string(batch_size));
            const std::vector<py::ssize_t> ss{batch_size, py::ssize_t(b.store->stack())};
            int64_t* os = out_array<int64_t>(obs_slots, "obs_slots", ss);
            int64_t* ns = out_array<int64_t>(next_slots, "next_slots", ss);
            const TransitionOut o = b.outputs(batch_size, out, /*frames=*/false);
            py::gil_scoped_release nogil;
            b.store->sample_slots(size_t(batch_size), os, ns, o);
          })
      .def_property_readonly("prioritized", [](const BoundStore& b) { return b.prioritized() != nullptr; })
      .def_property_readonly("alpha", [](const BoundStore& b) { return b.per("alpha")->alpha(); })
      .def_property_readonly("max_priority", [](const BoundStore& b) { return b.per("max_priority")->max_priority(); },
                             "The largest priority set so far (new transitions get it); starts at 1.")
      .def("_leaf", [](const BoundStore& b, int64_t slot) {
        if (slot < 0 || uint64_t(slot) >= b.store->capacity()) throw py::index_error("slot out of range");
        return b.per("_leaf")->leaf(uint64_t(slot));
      })
      .def(
          "_sample_prioritized_into",
          [](BoundStore& b, py::ssize_t batch_size, double beta, py::handle out, py::handle weights) {
            PrioritizedStore* ps = b.per("sample");
            if (batch_size <= 0) throw py::value_error("batch_size must be positive, got " + std::to_string(batch_size));
            if (!(beta >= 0.0) || !std::isfinite(beta)) throw py::value_error("beta must be finite and >= 0");
            const TransitionOut o = b.outputs(batch_size, out);
            float* w = out_array<float>(weights, "weights", {batch_size});
            py::gil_scoped_release nogil;
            ps->sample_prioritized(size_t(batch_size), beta, o, w);
          })
      .def(
          "update_priorities",
          [](BoundStore& b, py::handle index, py::handle priorities) {
            PrioritizedStore* ps = b.per("update_priorities");
            py::array ia = as_ndarray(index, "index"), pa = as_ndarray(priorities, "priorities");
            if (ia.ndim() != 1 || pa.ndim() != 1) throw py::value_error("index and priorities must be 1-D");
            if (ia.shape(0) != pa.shape(0))
              throw py::value_error("index and priorities must have the same length, got " + std::to_string(ia.shape(0)) +
                                    " and " + std::to_string(pa.shape(0)));
            auto idx = vector_arg<int64_t>(ia, "index", ia.shape(0), "iu", "integers");
            auto pri = vector_arg<double>(pa, "priorities", pa.shape(0), "iuf", "numbers");
            for (py::ssize_t i = 0; i < pri.shape(0); ++i)
              if (!(pri.at(i) >= 0.0) || !std::isfinite(pri.at(i)))
                throw py::value_error("priorities must be finite and >= 0, got " + std::to_string(pri.at(i)) +
                                      " at position " + std::to_string(i));
            py::gil_scoped_release nogil;
            return ps->update_priorities(size_t(idx.shape(0)), idx.data(), pri.data());
          },
          py::arg("index"), py::arg("priorities"),
          "Set the priorities of the transitions with these indices (from Batch.index); indices of\n"
          "transitions overwritten since they were sampled are skipped. Returns how many were applied.")
      .def(
          "_sample_sequences_into",
          [](BoundStore& b, py::ssize_t batch_size, py::ssize_t length, py::handle out) {
            if (batch_size <= 0) throw py::value_error("batch_size must be positive, got " + std::to_string(batch_size));
            if (length <= 0) throw py::value_error("length must be positive, got " + std::to_string(length));
            if (length > 1000000) throw py::value_error("length must be at most 1000000");
            if (!py::isinstance<py::tuple>(out) || py::len(out) != 7)
              throw py::type_error("out must be a dqnfast.SequenceBatch");
            py::tuple t = py::reinterpret_borrow<py::tuple>(out);
            std::vector<py::ssize_t> fs{batch_size, length + 1};
            fs.insert(fs.end(), b.frame_shape.begin(), b.frame_shape.end());
            const std::vector<py::ssize_t> ss{batch_size, length}, vb{batch_size};
            const SequenceOut o{out_array<uint8_t>(t[0], "frames", fs),   out_array<int64_t>(t[1], "action", ss),
                                out_array<float>(t[2], "reward", ss),     out_array<bool>(t[3], "terminated", ss),
                                out_array<bool>(t[4], "truncated", ss),   out_array<bool>(t[5], "mask", ss),
                                out_array<int64_t>(t[6], "index", vb)};
            py::gil_scoped_release nogil;
            b.store->sample_sequences(size_t(batch_size), uint32_t(length), o);
          })
      .def(
          "_gather_into",
          [](BoundStore& b, py::handle indices, py::handle out) {
            py::array a = as_ndarray(indices, "indices");
            if (a.ndim() != 1) throw py::value_error("indices must be 1-D");
            auto idx = vector_arg<int64_t>(a, "indices", a.shape(0), "iu", "integers");
            const TransitionOut o = b.outputs(a.shape(0), out);
            py::gil_scoped_release nogil;
            b.store->gather(size_t(idx.shape(0)), idx.data(), o);
          })
      .def("valid_indices",
           [](const BoundStore& b) {
             std::vector<uint64_t> v;
             {
               py::gil_scoped_release nogil;
               v = b.store->valid_indices();
             }
             py::array_t<int64_t> out(py::ssize_t(v.size()));
             std::copy(v.begin(), v.end(), out.mutable_data());
             return out;
           },
           "Sorted indices of every sampleable transition (a scan of the store: for tests and tools).")
      .def(
          "save",
          [](const BoundStore& b, py::handle path, bool durable) {
            const std::string p = path_arg(path);
            std::vector<uint64_t> dims(b.frame_shape.begin(), b.frame_shape.end());
            py::gil_scoped_release nogil;
            b.store->save(p, dims, durable);
          },
          py::arg("path"), py::arg("durable") = true,
          "Write everything (frames, metadata, cursor, episode state, RNG counter) to path atomically: a\n"
          "temporary file, fsync (unless durable=False), rename. Call it while no thread is adding.")
      .def_static(
          "_snapshot_info",
          [](py::handle path) {
            const std::string p = path_arg(path);
            FrameStore::Snapshot h;
            {
              py::gil_scoped_release nogil;
              h = FrameStore::read_snapshot_header(p);
            }
            py::tuple shape(h.dims.size());
            for (size_t i = 0; i < h.dims.size(); ++i) shape[i] = py::int_(h.dims[i]);
            py::dict d;
            d["capacity"] = h.capacity;
            d["frame_shape"] = shape;
            d["stack"] = h.stack;
            d["num_envs"] = h.num_envs;
            d["seed"] = h.seed;
            d["pad"] = h.pad_first ? "first" : "zero";
            d["n_step"] = h.n_step;
            d["gamma"] = h.gamma();
            if (h.kind == 1) d["alpha"] = h.alpha();
            return d;
          },
          "The constructor arguments stored in a snapshot (its header and size are checked).")
      .def(
          "_load_from",
          [](BoundStore& b, py::handle path) {
            const std::string p = path_arg(path);
            py::gil_scoped_release nogil;
            b.store->load(p);
          })
      .def(
          "_frames_view",
          [](py::object self) {
            const BoundStore& b = self.cast<const BoundStore&>();
            std::vector<py::ssize_t> shape{py::ssize_t(b.store->capacity())};
            shape.insert(shape.end(), b.frame_shape.begin(), b.frame_shape.end());
            py::array view(py::dtype::of<uint8_t>(), shape, b.store->frames_data(), self);  // keeps the buffer alive
            py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return view;
          },
          "Read-only zero-copy view of the frame slots, (capacity, *frame_shape): slot = index % capacity.")
      .def("_memcpy_baseline", [](const BoundStore& b, py::handle indices, py::handle obs, py::handle next_obs) {
        auto idx = vector_arg<int64_t>(indices, "indices", as_ndarray(indices, "indices").shape(0), "i", "integers");
        const auto n = idx.shape(0);
        const BoundStore::FrameOut f = b.frame_outputs(n, obs, next_obs);  // either layout
        TransitionOut o{};
        o.obs = f.obs, o.next_obs = f.next_obs, o.row_stride = f.row_stride, o.shared = f.shared;
        py::gil_scoped_release nogil;
        b.store->memcpy_baseline(size_t(n), idx.data(), o);
      });
}

}  // namespace

// ==== preprocess (issue 3): dqnfast.preprocess and its test hooks ================================
// preprocess is a plain METH_FASTCALL builtin rather than a pybind11 def: its whole budget is
// about a microsecond per frame, and pybind11's overload dispatcher and keyword matching cost a
// good part of that. Arguments are still checked here, before the GIL is released.
#include "dqnfast/palette.hpp"
#include "dqnfast/preprocess.hpp"

namespace {
namespace pre = dqnfast::pre;

pre::PlanCache& plan_cache() {
  static pre::PlanCache cache;
  return cache;
}

// Python ints and integer-like scalars (numpy.int64, ...), but not bools or floats.
bool is_int(py::handle h) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o) || PyFloat_Check(o)) return false;
  return PyLong_Check(o) || (PyIndex_Check(o) && !py::isinstance(h, py::module_::import("numpy").attr("bool_")));
}

int64_t int_value(py::handle h, const char* what) {
  if (PyLong_Check(h.ptr())) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
    if (overflow) throw py::value_error(std::string(what) + " are out of range");
    return v;
  }
  auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  return int_value(i, what);
}

// A frame argument: its layout, batch size, and where each pixel is. Parsed straight from the
// array struct: this runs on every call, and a std::vector or a py::dtype here is measurable.
struct FrameArg {
  bool batched = false;
  int64_t n = 1, h = 0, w = 0, c = 1;
  int nd = 0;
  py::ssize_t shape[4] = {};
  pre::Source src;
  const uint8_t* lo = nullptr;  // lowest and one past the highest byte the array spans
  const uint8_t* hi = nullptr;
  std::vector<py::ssize_t> shape_vec() const { return {shape, shape + nd}; }
  bool same_shape(const FrameArg& o) const { return nd == o.nd && std::equal(shape, shape + nd, o.shape); }
};

FrameArg frame_arg(py::handle obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of uint8, got " + type_name(obj));
  auto* arr = py::detail::array_proxy(obj.ptr());
  if (py::detail::array_descriptor_proxy(arr->descr)->type_num != py::detail::npy_api::NPY_UBYTE_)
    throw py::type_error(std::string(name) + " must have dtype uint8, got " +
                         std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype())));
  FrameArg f;
  const int nd = arr->nd;
  const py::ssize_t* st = arr->strides;
  if (nd < 2 || nd > 4) {
    throw py::value_error(std::string(name) + " must have shape (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3), got " +
                          shape_str(std::vector<py::ssize_t>(arr->dimensions, arr->dimensions + nd)));
  }
  f.nd = nd;
  std::copy(arr->dimensions, arr->dimensions + nd, f.shape);
  const auto bad_channels = [&](py::ssize_t c) {
    return py::value_error(std::string(name) + " has " + std::to_string(c) + " channels (shape " +
                           shape_str(f.shape_vec()) +
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
  if (f.h == 0 || f.w == 0) throw py::value_error(std::string(name) + " is empty (shape " + shape_str(f.shape_vec()) + ")");
  if (f.w * f.c > (int64_t(1) << 30) || f.h > (int64_t(1) << 30))  // plans index rows and bytes with int32
    throw py::value_error(std::string(name) + " is too large (shape " + shape_str(f.shape_vec()) + ")");
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

std::string ints_str(std::initializer_list<int64_t> v) {
  std::string s = "(";
  for (auto it = v.begin(); it != v.end(); ++it) s += (it == v.begin() ? "" : ", ") + std::to_string(*it);
  return s + ")";
}

// N ints from a tuple or list into v; `what` names the entries in errors ("crop entries").
template <size_t N>
void fixed_ints(py::handle obj, const char* name, const char* form, const char* what, int64_t (&v)[N]) {
  PyObject* o = obj.ptr();
  const bool tuple = PyTuple_Check(o);
  if (!tuple && !PyList_Check(o)) throw py::type_error(std::string(name) + " must be " + form + ", got " + type_name(obj));
  const Py_ssize_t n = tuple ? PyTuple_GET_SIZE(o) : PyList_GET_SIZE(o);
  if (n != Py_ssize_t(N))
    throw py::value_error(std::string(name) + " must be " + form + ", got " + std::to_string(n) + " values");
  for (size_t i = 0; i < N; ++i) {
    py::handle h = tuple ? PyTuple_GET_ITEM(o, Py_ssize_t(i)) : PyList_GET_ITEM(o, Py_ssize_t(i));
    if (!is_int(h)) throw py::type_error(std::string(what) + " must be an int, got " + type_name(h));
    v[i] = int_value(h, what);
  }
}

// One of two names; literals from Python source are interned, so a pointer compare usually decides.
template <typename E>
E choice_arg(py::handle obj, const char* name, PyObject* a, PyObject* b, E ea, E eb) {
  if (obj.ptr() == a) return ea;
  if (obj.ptr() == b) return eb;
  if (!PyUnicode_Check(obj.ptr())) throw py::type_error(std::string(name) + " must be a str, got " + type_name(obj));
  if (PyUnicode_Compare(obj.ptr(), a) == 0) return ea;
  if (PyUnicode_Compare(obj.ptr(), b) == 0) return eb;
  throw py::value_error(std::string(name) + " must be " + std::string(py::repr(a)) + " or " + std::string(py::repr(b)) +
                        ", got " + std::string(py::repr(obj)));
}

PyObject* interned(const char* s) { return PyUnicode_InternFromString(s); }  // kept for the process's life

// The uint8 output, written in place: exact shape, C-contiguous, writeable. The checks are
// inlined for the common case; out_array() words the error when one fails.
uint8_t* out_arg(py::handle out, const py::ssize_t* shape, int nd) {
  if (py::isinstance<py::array>(out)) {
    auto* arr = py::detail::array_proxy(out.ptr());
    const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    if (py::detail::array_descriptor_proxy(arr->descr)->type_num == py::detail::npy_api::NPY_UBYTE_ && arr->nd == nd &&
        std::equal(shape, shape + nd, arr->dimensions) && (arr->flags & need) == need)
      return reinterpret_cast<uint8_t*>(arr->data);
  }
  return out_array<uint8_t>(out, "out", std::vector<py::ssize_t>(shape, shape + nd));
}

py::object new_uint8(const py::ssize_t* shape, int nd) {
  auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_UBYTE_);  // NewFromDescr steals it
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, nd, const_cast<py::ssize_t*>(shape), nullptr,
                                          nullptr, 0, nullptr);
  if (!a) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(a);
}

// The plan for g: this thread's last one, else the shared cache. The thread-local reference
// also keeps the plan alive while a call without the GIL uses it, whatever the cache evicts.
const pre::Plan* plan_for(const pre::Geometry& g) {
  thread_local std::shared_ptr<const pre::Plan> last;
  if (!last || !(last->g == g)) last = plan_cache().get(g);
  return last.get();
}

// crop (None: the whole g.h x g.w frame) and size (None: keep g's; an int or (height, width)) into g.
void crop_and_size_args(py::handle crop, py::handle size, pre::Geometry& g) {
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
      g.oh = g.ow = int_value(size, "size");
    } else {
      int64_t v[2];
      fixed_ints(size, "size", "an int or a tuple of 2 ints (height, width)", "size entries", v);
      g.oh = v[0], g.ow = v[1];
    }
    if (g.oh <= 0 || g.ow <= 0 || g.oh > (1 << 20) || g.ow > (1 << 20))
      throw py::value_error("size (height, width) = " + ints_str({g.oh, g.ow}) + " must be positive and at most 2**20");
  }
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
      throw py::value_error("prev must have the same shape as frame " + shape_str(f.shape_vec()) + ", got " +
                            shape_str(p.shape_vec()));
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
    req.out = out_arg(out, shape, ond);
    const size_t bytes = size_t(f.n * g.oh * g.ow);
    const auto overlaps = [&](const FrameArg& a) { return req.out < a.hi && a.lo < req.out + bytes; };
    if (bytes && overlaps(f)) throw py::value_error("out must not share memory with frame");
    if (bytes && !prev.is_none() && overlaps(p)) throw py::value_error("out must not share memory with prev");
    result = py::reinterpret_borrow<py::object>(out);
  }
  if (f.n == 0) return result;
  req.plan = plan_for(g);
  req.level = dqnfast::simd_level();
  const pre::ThreadPolicy policy = pre::thread_policy();
  // Without the GIL from here: the kernel touches no Python object. (The raw save/restore is
  // cheaper than gil_scoped_release, which looks up pybind11's internals on every call.)
  PyThreadState* ts = PyEval_SaveThread();
  try {
    pre::run(req, policy);
  } catch (...) {
    PyEval_RestoreThread(ts);
    throw;
  }
  PyEval_RestoreThread(ts);
  return result;
}

// preprocess(frame, *, prev=None, crop=None, size=(84, 84), gray="luma", interp="nearest", out=None)
PyObject* py_preprocess(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"frame", "prev", "crop", "size", "gray", "interp", "out"};
  constexpr size_t kCount = sizeof(kNames) / sizeof(kNames[0]);
  static PyObject* interned[kCount] = {};
  try {
    if (!interned[0])
      for (size_t i = 0; i < kCount; ++i) interned[i] = PyUnicode_InternFromString(kNames[i]);
    PyObject* vals[kCount] = {};
    if (nargs > 1)
      throw py::type_error("preprocess() takes 1 positional argument (frame) but " + std::to_string(nargs) +
                           " were given; the others are keyword-only");
    if (nargs == 1) vals[0] = args[0];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      size_t i = 0;
      while (i < kCount && key != interned[i]) ++i;  // call sites pass interned names
      if (i == kCount)
        for (i = 0; i < kCount && PyUnicode_Compare(key, interned[i]) != 0; ++i) {
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

void bind_preprocess(py::module_& m) {
  static PyMethodDef def = {"preprocess", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_preprocess)),
                            METH_FASTCALL | METH_KEYWORDS, kPreprocessDoc};
  m.add_object("preprocess", py::reinterpret_steal<py::object>(PyCFunction_NewEx(&def, nullptr, m.attr("__name__").ptr())));

  const char* env = std::getenv("DQNFAST_SIMD");
  if (env && *env) {
    try {
      dqnfast::parse_simd(env);
    } catch (const std::invalid_argument& e) {
      if (PyErr_WarnEx(PyExc_RuntimeWarning, (std::string("DQNFAST_SIMD ignored: ") + e.what()).c_str(), 1) < 0)
        throw py::error_already_set();
    }
  }
  m.def("_simd_level", [] { return std::string(dqnfast::simd_name(dqnfast::simd_level())); },
        "The SIMD path preprocess uses now: 'scalar', 'avx2' or 'avx512'.");
  m.def("_simd_supported", [] {
    std::vector<std::string> v;
    for (int l = 0; l <= int(dqnfast::detect_simd()); ++l) v.push_back(dqnfast::simd_name(dqnfast::SimdLevel(l)));
    return v;
  }, "The SIMD paths this CPU can run, slowest first.");
  m.def("_set_simd", [](const std::string& name) {
    try {
      dqnfast::set_simd_level(dqnfast::parse_simd(name));
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
    return std::string(dqnfast::simd_name(dqnfast::simd_level()));
  }, py::arg("level"), "Force a SIMD path ('scalar' | 'avx2' | 'avx512' | 'auto'); returns the one now in use.");
  m.def("_set_threads", [](int max_threads, int64_t min_work) {
    if (max_threads < 1 || max_threads > 64) throw py::value_error("max_threads must be in [1, 64]");
    if (min_work < 0) throw py::value_error("min_work must be non-negative");
    pre::thread_policy() = {max_threads, min_work};
  }, py::arg("max_threads") = 2, py::arg("min_work") = int64_t(1) << 22,
        "Batched preprocess: use up to max_threads threads once a batch has min_work pixel visits.");
  m.def("_threads", [] { return py::make_tuple(pre::thread_policy().max_threads, pre::thread_policy().min_work); });
}

}  // namespace
// ---- palette screens (the wrapper's direct ALE path) ---------------------------------------------

void bind_palette(py::module_& m) {
  py::class_<PaletteResizer>(m, "_PaletteResizer",
                             "Nearest resize of an emulator's palette-index screen to gray through a learned table "
                             "(dqnfast.wrappers uses it; see cpp/dqnfast/palette.hpp).")
      .def(py::init([](py::handle screen_shape, py::handle crop, py::handle size) {
             int64_t hw[2];
             fixed_ints(screen_shape, "screen_shape", "a tuple of 2 ints (height, width)", "screen_shape entries", hw);
             if (hw[0] <= 0 || hw[1] <= 0) throw py::value_error("screen_shape entries must be positive");
             pre::Geometry g{hw[0], hw[1], 1, 0, hw[0], 0, hw[1], 84, 84, pre::Interp::kNearest};
             crop_and_size_args(crop, size, g);  // preprocess's own checks and messages
             try {
               return std::make_unique<PaletteResizer>(g.h, g.w, g.top, g.bottom, g.left, g.right, g.oh, g.ow);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(std::string("_PaletteResizer: ") + e.what() + " (screen_shape " +
                                     ints_str({g.h, g.w}) + ", size " + ints_str({g.oh, g.ow}) + ")");
             }
           }),
           py::arg("screen_shape"), py::arg("crop"), py::arg("size"))
      .def(
          "gather",
          [](const PaletteResizer& p, py::handle screen, py::handle out) {
            py::array s = uint8_array(screen, "screen", {p.height(), p.width()});
            const uint8_t* src = static_cast<const uint8_t*>(s.data());
            uint8_t* dst = out_array<uint8_t>(out, "out", {p.out_h(), p.out_w()});
            py::gil_scoped_release nogil;
            return p.gather(src, dst);
          },
          py::arg("screen"), py::arg("out"),
          "out = the gray value of each sampled pixel's palette index; False if one has not been learned yet "
          "(out is then partly written).")
      .def(
          "learn",
          [](PaletteResizer& p, py::handle screen, py::handle gray) {
            py::array s = uint8_array(screen, "screen", {p.height(), p.width()});
            py::array g = uint8_array(gray, "gray", {p.height(), p.width()});
            const uint8_t* sp = static_cast<const uint8_t*>(s.data());
            const uint8_t* gp = static_cast<const uint8_t*>(g.data());
            py::gil_scoped_release nogil;
            return p.learn(sp, gp);
          },
          py::arg("screen"), py::arg("gray"),
          "Learn index -> gray from the index screen and gray screen of one frame; False (nothing learned) "
          "if they map an index to two gray values.")
      .def(
          "gray_of",
          [](const PaletteResizer& p, int64_t index) {
            if (index < 0 || index > 255) throw py::index_error("palette index must be in [0, 255], got " + std::to_string(index));
            return p.gray_of(uint8_t(index));
          },
          py::arg("index"), "The gray value learned for a palette index, or -1.");
}

// ==== end of preprocess (issue 3) ===============================================================

PYBIND11_MODULE(_core, m) {
  m.doc() = "dqnfast native core (private: import dqnfast instead)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const io::OsError& e) {
      PyErr_SetString(e.err() == ENOENT ? PyExc_FileNotFoundError : PyExc_OSError, e.what());
    }
  });
  bind_replay(m);
  // ---- preprocess (issue 3) is bound below this line ----
  bind_preprocess(m);
  bind_palette(m);
}
