// dqnfast._core.FrameStore: the frame-store replay memory (dqnfast.ReplayBuffer subclasses it).
// The constructor takes arguments already checked in Python (replay.py); the per-call arrays and
// scalars are checked here; the store's own rules (add() before start_episode(), env ranges,
// shared-frames batches need n_step == 1, ...) live in the C++ core, which throws.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings/args.hpp"
#include "dqnfast/frame_store.hpp"
#include "dqnfast/io.hpp"
#include "dqnfast/prioritized.hpp"

namespace dqnfast::bindings {
namespace {

struct BoundStore {
  std::unique_ptr<FrameStore> store;
  Shape frame_shape;
  Shape state_shape;  // (stack, *frame_shape)

  Shape batched(py::ssize_t n, const Shape& shape) const {
    Shape s{n};
    s.insert(s.end(), shape.begin(), shape.end());
    return s;
  }
  // The (planes, height, width) a shift moves: the last two axes of a frame (the Python side has
  // checked that shift > 0 comes with a frame of at least two axes and fits it).
  ShiftGeometry shift_geometry() const {
    ShiftGeometry g;
    const size_t nd = frame_shape.size();
    if (nd < 2) throw py::value_error("shift needs frames of at least two axes (..., height, width)");
    g.height = uint64_t(frame_shape[nd - 2]);
    g.width = uint64_t(frame_shape[nd - 1]);
    for (size_t d = 0; d + 2 < nd; ++d) g.planes *= uint64_t(frame_shape[d]);
    return g;
  }
  PrioritizedStore* per(const char* what) const {
    auto* p = dynamic_cast<PrioritizedStore*>(store.get());
    if (!p) throw py::type_error(std::string(what) + " needs a PrioritizedReplayBuffer");
    return p;
  }
  uint32_t env_arg(py::handle env) const {
    const int64_t e = int_arg(env, "env");
    store->check_env(e);
    return uint32_t(e);
  }
  // Rows' env ids: `envs` (unique, in range) or all streams in order when None. Any array-like of
  // integers, as numpy takes it: an integer ndarray, a list or tuple of ints, or anything
  // numpy.asarray makes an integer array of (a range, another library's tensor). A bool or a float
  // is refused, also inside a list, where numpy.asarray would turn [0, True] into integers.
  std::vector<uint32_t> envs_arg(py::handle envs) const {
    std::vector<uint32_t> out;
    if (envs.is_none()) {
      for (uint32_t e = 0; e < store->num_envs(); ++e) out.push_back(e);
      return out;
    }
    std::vector<int64_t> ids;
    PyObject* o = envs.ptr();
    if (PyList_Check(o) || PyTuple_Check(o)) {
      const bool list = PyList_Check(o);
      const Py_ssize_t n = list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);
      for (Py_ssize_t i = 0; i < n; ++i) {
        py::handle item(list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i));
        if (!is_int(item))
          throw py::type_error("envs must be integers, got " + type_name(item) + " at position " + std::to_string(i));
        ids.push_back(int_arg(item, "envs"));
      }
    } else {
      if (!py::isinstance<py::array>(envs)) {
        // A scalar or a string is no array of env ids (numpy would make a 0-d or a str array of it).
        if (PyBool_Check(o) || PyLong_Check(o) || PyFloat_Check(o) || PyUnicode_Check(o) || PyBytes_Check(o) ||
            PyObject_TypeCheck(o, numpy_number) || Py_TYPE(o) == numpy_bool)
          throw py::type_error("envs must be an array-like of integers, got " + type_name(envs));
      }
      py::object arr = py::isinstance<py::array>(envs) ? py::reinterpret_borrow<py::object>(envs)
                                                       : py::module_::import("numpy").attr("asarray")(envs);
      auto v = vector_arg<int64_t>(arr, "envs", "iu", "integers");
      ids.assign(v.data(), v.data() + v.shape(0));
    }
    std::vector<bool> seen(store->num_envs(), false);
    for (const int64_t id : ids) {
      store->check_env(id);
      const auto e = uint32_t(id);
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
  // strides alone; anything else is refused, since the copies write through raw pointers. (Whether
  // this store may fill a shared layout is the core's rule: FrameStore::check_out.)
  struct FrameOut {
    uint8_t* obs;
    uint8_t* next_obs;
    uint64_t row_stride;  // 0: dense rows
    bool shared;
  };
  FrameOut frame_outputs(py::ssize_t n, py::handle obs, py::handle next_obs) const {
    const Shape sb = batched(n, state_shape);
    ArrayStruct* o = typed_array<uint8_t>(obs, "obs", sb.data(), sb.size());
    if (!writeable(o)) throw py::value_error("obs must be writeable");
    ArrayStruct* no = typed_array<uint8_t>(next_obs, "next_obs", sb.data(), sb.size());
    if (!writeable(no)) throw py::value_error("next_obs must be writeable");
    auto* op = reinterpret_cast<uint8_t*>(o->data);
    auto* np = reinterpret_cast<uint8_t*>(no->data);
    const uint64_t fb = store->frame_bytes();
    if (shared_layout(o, no)) return {op, np, (uint64_t(store->stack()) + 1) * fb, true};
    const char* shared_hint =
        " (or obs and next_obs must be the views frames[:, :stack] and frames[:, 1:] of one uint8 "
        "(B, stack + 1, *frame_shape) array: see dqnfast.empty_batch(..., shared_frames=True))";
    if (!c_contiguous(o)) throw py::value_error(std::string("obs must be C-contiguous") + shared_hint);
    if (!c_contiguous(no)) throw py::value_error(std::string("next_obs must be C-contiguous") + shared_hint);
    const uint64_t bytes = uint64_t(n) * store->stack() * fb;
    if (bytes && op < np + bytes && np < op + bytes)
      throw py::value_error("obs and next_obs must not share memory, unless they are the two views of a "
                            "shared-frames array (dqnfast.empty_batch(..., shared_frames=True))");
    return {op, np, 0, false};
  }
  // obs / next_obs (shapes already checked) are exactly the shared-frames layout. A dimension of
  // length 1 is never stepped along, so its stride does not matter (numpy's rule for contiguity).
  bool shared_layout(const ArrayStruct* o, const ArrayStruct* no) const {
    const auto fb = py::ssize_t(store->frame_bytes());
    if (no->data != o->data + fb) return false;
    const int nd = o->nd;
    py::ssize_t want = 1;  // C order within a frame
    for (int d = nd - 1; d >= 0; --d) {
      if (d == 1) want = fb;
      if (d == 0) want = (py::ssize_t(store->stack()) + 1) * fb;
      if (o->dimensions[d] > 1 && (o->strides[d] != want || no->strides[d] != want)) return false;
      if (d >= 2) want *= o->dimensions[d];
    }
    return true;
  }
  // The output arrays of a Batch for n rows (obs / next_obs only when frames are copied).
  TransitionOut outputs(py::ssize_t n, py::handle batch, bool frames = true) const {
    if (!PyTuple_Check(batch.ptr())) throw py::type_error("out must be a dqnfast.Batch, got " + type_name(batch));
    if (PyTuple_GET_SIZE(batch.ptr()) != 8) throw py::type_error("out must be a dqnfast.Batch of 8 arrays");
    const auto field = [&](Py_ssize_t i) { return py::handle(PyTuple_GET_ITEM(batch.ptr(), i)); };
    FrameOut f{nullptr, nullptr, 0, false};
    if (frames) f = frame_outputs(n, field(0), field(3));
    return {f.obs,
            f.next_obs,
            out_array<int64_t>(field(1), "action", &n, 1),
            out_array<float>(field(2), "reward", &n, 1),
            out_array<bool>(field(4), "terminated", &n, 1),
            out_array<bool>(field(5), "truncated", &n, 1),
            out_array<int64_t>(field(6), "index", &n, 1),
            out_array<float>(field(7), "discount", &n, 1),
            f.row_stride,
            f.shared};
  }
};

std::unique_ptr<BoundStore> make_store(uint64_t capacity, const std::vector<uint64_t>& frame_shape, uint32_t stack,
                                       uint32_t num_envs, uint64_t seed, bool pad_first, py::handle storage_path,
                                       uint32_t n_step, double gamma, std::optional<double> alpha) {
  auto bs = std::make_unique<BoundStore>();
  uint64_t frame_bytes = 1;
  for (uint64_t d : frame_shape) {
    frame_bytes *= d;
    bs->frame_shape.push_back(py::ssize_t(d));
  }
  bs->state_shape = bs->batched(py::ssize_t(stack), bs->frame_shape);
  const std::string storage = storage_path.is_none() ? "" : path_arg(storage_path, "storage_path");
  try {
    if (alpha)
      bs->store = std::make_unique<PrioritizedStore>(capacity, frame_bytes, stack, num_envs, seed, pad_first, storage,
                                                     n_step, gamma, *alpha);
    else
      bs->store = std::make_unique<FrameStore>(capacity, frame_bytes, stack, num_envs, seed, pad_first, storage, n_step,
                                               gamma);
  } catch (const std::bad_alloc&) {
    PyErr_SetString(PyExc_MemoryError, ("cannot allocate a replay buffer of capacity " + std::to_string(capacity) +
                                        " frames of " + std::to_string(frame_bytes) + " bytes")
                                           .c_str());
    throw py::error_already_set();
  }
  return bs;
}

}  // namespace

void bind_replay(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const io::OsError& e) {
      PyErr_SetString(e.err() == ENOENT ? PyExc_FileNotFoundError : PyExc_OSError, e.what());
    }
  });
  py::class_<BoundStore> cls(m, "FrameStore", "Native frame-store replay memory (use dqnfast.ReplayBuffer).");
  cls.attr("MAX_STACK") = FrameStore::kMaxStack;
  cls.attr("MAX_N_STEP") = FrameStore::kMaxNStep;
  cls.def(py::init(&make_store), py::arg("capacity"), py::arg("frame_shape"), py::arg("stack"), py::arg("num_envs"),
          py::arg("seed"), py::arg("pad_first"), py::arg("storage_path"), py::arg("n_step"), py::arg("gamma"),
          py::arg("alpha") = py::none(), "Arguments as dqnfast.ReplayBuffer checks them; alpha: prioritized.")
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
      .def("episode_active", [](const BoundStore& b, py::handle env) { return b.store->episode_active(b.env_arg(env)); },
           py::arg("env") = 0, "Whether add() may be called for env (an episode was started and has not ended).")
      .def(
          "start_episode",
          [](BoundStore& b, py::handle frame, py::handle env) {
            const uint32_t e = b.env_arg(env);
            const py::array f = in_array(frame, "frame", b.frame_shape);
            NoGil nogil;
            return b.store->start_episode(e, static_cast<const uint8_t*>(f.data()));
          },
          py::arg("frame"), py::arg("env") = 0)
      .def(
          "add",
          [](BoundStore& b, py::handle action, py::handle reward, py::handle next_frame, py::handle terminated,
             py::handle truncated, py::handle env) {
            const uint32_t e = b.env_arg(env);
            const StepRecord step{int_arg(action, "action"), float(number_arg(reward, "reward")),
                                  flag_arg(terminated, "terminated"), flag_arg(truncated, "truncated")};
            const py::array f = in_array(next_frame, "next_frame", b.frame_shape);
            NoGil nogil;
            return b.store->add(e, step, static_cast<const uint8_t*>(f.data()));
          },
          py::arg("action"), py::arg("reward"), py::arg("next_frame"), py::arg("terminated"),
          py::arg("truncated") = false, py::arg("env") = 0)
      .def(
          "start_episodes",
          [](BoundStore& b, py::handle frames, py::handle envs) {
            const std::vector<uint32_t> ids = b.envs_arg(envs);
            const py::array f = in_array(frames, "frames", b.batched(py::ssize_t(ids.size()), b.frame_shape));
            NoGil nogil;
            b.store->start_episodes(ids.size(), ids.data(), static_cast<const uint8_t*>(f.data()));
          },
          py::arg("frames"), py::arg("envs") = py::none(),
          "Start new episodes: row i of frames is the first frame of env envs[i] (all envs when None).")
      .def(
          "add_batch",
          [](BoundStore& b, py::handle actions, py::handle rewards, py::handle next_frames, py::handle terminated,
             py::handle truncated, py::handle envs) {
            const std::vector<uint32_t> ids = b.envs_arg(envs);
            const auto n = py::ssize_t(ids.size());
            const auto act = vector_arg<int64_t>(actions, "actions", "iu", "integers", n);
            const auto rew = vector_arg<float>(rewards, "rewards", "iuf", "numbers", n);
            const auto term = vector_arg<bool>(terminated, "terminated", "b", "bools", n);
            Vec<bool> trunc;
            if (!truncated.is_none()) trunc = vector_arg<bool>(truncated, "truncated", "b", "bools", n);
            const py::array f = in_array(next_frames, "next_frames", b.batched(n, b.frame_shape));
            std::vector<StepRecord> steps(static_cast<size_t>(n));
            for (py::ssize_t i = 0; i < n; ++i)
              steps[size_t(i)] = {act.at(i), rew.at(i), term.at(i), truncated.is_none() ? false : trunc.at(i)};
            NoGil nogil;
            b.store->add_many(ids.size(), ids.data(), steps.data(), static_cast<const uint8_t*>(f.data()));
          },
          py::arg("actions"), py::arg("rewards"), py::arg("next_frames"), py::arg("terminated"),
          py::arg("truncated") = py::none(), py::arg("envs") = py::none(),
          "One step for several streams: row i belongs to env envs[i] (all envs, in order, when None).")
      .def(
          "stacked",
          [](BoundStore& b, py::handle env, py::handle out) {
            const uint32_t e = b.env_arg(env);
            py::object result = out.is_none() ? py::array(py::dtype::of<uint8_t>(), b.state_shape)
                                              : py::reinterpret_borrow<py::object>(out);
            uint8_t* dst = out_array<uint8_t>(result, "out", b.state_shape);
            {
              NoGil nogil;
              b.store->stacked(e, dst);
            }
            return result;
          },
          py::arg("env") = 0, py::arg("out") = py::none(),
          "The state env acts on now, (stack, *frame_shape) uint8, oldest frame first.")
      // The _*_into methods take a batch_size the Python methods have checked; a wrong one can
      // only fail the shape checks of `out`.
      .def("_sample_into",
           [](BoundStore& b, py::ssize_t batch_size, py::handle out, uint32_t shift) {
             const TransitionOut o = b.outputs(batch_size, out);
             const ShiftGeometry g = shift ? b.shift_geometry() : ShiftGeometry{};
             NoGil nogil;
             b.store->sample(size_t(batch_size), o, shift, &g);
           },
           py::arg("batch_size"), py::arg("out"), py::arg("shift") = 0)
      // Public (DeviceReplayBuffer and the SB3 buffer use it): a batch_size that does not match the
      // arrays fails their shape checks, a negative one included.
      .def("sample_slots_into",
           [](BoundStore& b, py::ssize_t batch_size, py::handle obs_slots, py::handle next_slots, py::handle out) {
             const Shape ss{batch_size, py::ssize_t(b.store->stack())};
             int64_t* os = out_array<int64_t>(obs_slots, "obs_slots", ss);
             int64_t* ns = out_array<int64_t>(next_slots, "next_slots", ss);
             const TransitionOut o = b.outputs(batch_size, out, /*frames=*/false);
             NoGil nogil;
             b.store->sample_slots(size_t(batch_size), os, ns, o);
           },
           py::arg("batch_size"), py::arg("obs_slots"), py::arg("next_slots"), py::arg("out"),
           "Draw batch_size transitions as sample() draws them (the same random stream), but write the\n"
           "frame-slot index of each frame instead of the frames: obs_slots[i] and next_slots[i] (int64,\n"
           "(batch_size, stack), C-contiguous, oldest frame first) hold slot = frame index % capacity, or -1\n"
           "for zero padding (with pad='first' padding is the slot of the episode's first frame). out is a\n"
           "dqnfast.Batch whose obs and next_obs are ignored (None will do) and whose other fields, each of\n"
           "length batch_size, receive the transitions' action, reward, flags, index and discount. For\n"
           "gathering the frames elsewhere from a copy of frames_view() (DeviceReplayBuffer's device mirror)\n"
           "or for drawing indices only (the SB3 buffer). Raises ValueError if the buffer holds no\n"
           "sampleable transition; an array of the wrong shape, dtype or layout raises before anything is drawn.")
      .def_property_readonly("alpha", [](const BoundStore& b) { return b.per("alpha")->alpha(); })
      .def_property_readonly("max_priority", [](const BoundStore& b) { return b.per("max_priority")->max_priority(); },
                             "The largest priority set so far (new transitions get it); starts at 1.")
      .def("_leaf",  // for tests: priority^alpha held for a slot
           [](const BoundStore& b, py::handle slot) {
             const int64_t s = int_arg(slot, "slot");
             if (s < 0 || uint64_t(s) >= b.store->capacity()) throw py::index_error("slot out of range");
             return b.per("_leaf")->leaf(uint64_t(s));
           })
      .def("_sample_prioritized_into",
           [](BoundStore& b, py::ssize_t batch_size, double beta, py::handle out, py::handle weights,
              uint32_t shift) {
             PrioritizedStore* ps = b.per("sample");
             const TransitionOut o = b.outputs(batch_size, out);
             float* w = out_array<float>(weights, "weights", &batch_size, 1);
             const ShiftGeometry g = shift ? b.shift_geometry() : ShiftGeometry{};
             NoGil nogil;
             ps->sample_prioritized(size_t(batch_size), beta, o, w, shift, &g);
           },
           py::arg("batch_size"), py::arg("beta"), py::arg("out"), py::arg("weights"), py::arg("shift") = 0)
      .def(
          "update_priorities",
          [](BoundStore& b, py::handle index, py::handle priorities) {
            PrioritizedStore* ps = b.per("update_priorities");
            const auto idx = vector_arg<int64_t>(index, "index", "iu", "integers");
            const auto pri = vector_arg<double>(priorities, "priorities", "iuf", "numbers");
            if (idx.shape(0) != pri.shape(0))
              throw py::value_error("index and priorities must have the same length, got " +
                                    std::to_string(idx.shape(0)) + " and " + std::to_string(pri.shape(0)));
            for (py::ssize_t i = 0; i < pri.shape(0); ++i)
              if (!(pri.at(i) >= 0.0) || !std::isfinite(pri.at(i)))
                throw py::value_error("priorities must be finite and >= 0, got " + std::to_string(pri.at(i)) +
                                      " at position " + std::to_string(i));
            NoGil nogil;
            return ps->update_priorities(size_t(idx.shape(0)), idx.data(), pri.data());
          },
          py::arg("index"), py::arg("priorities"),
          "Set the priorities of the transitions with these indices (from Batch.index); indices of\n"
          "transitions overwritten since they were sampled are skipped. Returns how many were applied.")
      .def("_sample_sequences_into",
           [](BoundStore& b, py::ssize_t batch_size, py::ssize_t length, py::handle out) {
             if (!PyTuple_Check(out.ptr()) || PyTuple_GET_SIZE(out.ptr()) != 7)
               throw py::type_error("out must be a dqnfast.SequenceBatch");
             const auto field = [&](Py_ssize_t i) { return py::handle(PyTuple_GET_ITEM(out.ptr(), i)); };
             const Shape fs = b.batched(batch_size, b.batched(length + 1, b.frame_shape)), ss{batch_size, length};
             const SequenceOut o{out_array<uint8_t>(field(0), "frames", fs),  out_array<int64_t>(field(1), "action", ss),
                                 out_array<float>(field(2), "reward", ss),    out_array<bool>(field(3), "terminated", ss),
                                 out_array<bool>(field(4), "truncated", ss),  out_array<bool>(field(5), "mask", ss),
                                 out_array<int64_t>(field(6), "index", &batch_size, 1)};
             NoGil nogil;
             b.store->sample_sequences(size_t(batch_size), uint32_t(length), o);
           })
      .def("_gather_into",
           [](BoundStore& b, py::handle indices, py::handle out) {
             const auto idx = vector_arg<int64_t>(indices, "indices", "iu", "integers");
             const TransitionOut o = b.outputs(idx.shape(0), out);
             NoGil nogil;
             b.store->gather(size_t(idx.shape(0)), idx.data(), o);
           })
      .def("valid_indices",
           [](const BoundStore& b) {
             std::vector<uint64_t> v;
             {
               NoGil nogil;
               v = b.store->valid_indices();
             }
             return py::array_t<int64_t>(py::ssize_t(v.size()), reinterpret_cast<const int64_t*>(v.data()));
           },
           "Sorted indices of every sampleable transition (a scan of the store: for tests and tools).")
      .def(
          "save",
          [](const BoundStore& b, py::handle path, bool durable) {
            const std::string p = path_arg(path, "path");
            const std::vector<uint64_t> dims(b.frame_shape.begin(), b.frame_shape.end());
            NoGil nogil;
            b.store->save(p, dims, durable);
          },
          py::arg("path"), py::arg("durable") = true,
          "Write everything (frames, metadata, cursor, episode state, RNG counter) to path atomically: a\n"
          "temporary file, fsync (unless durable=False), rename. Call it while no thread is adding.")
      .def_static(
          "_snapshot_info",
          [](py::handle path) {
            const std::string p = path_arg(path, "path");
            FrameStore::Snapshot h;
            {
              NoGil nogil;
              h = FrameStore::read_snapshot_header(p);
            }
            using namespace py::literals;
            py::dict d("capacity"_a = h.capacity, "frame_shape"_a = py::tuple(py::cast(h.dims)), "stack"_a = h.stack,
                       "num_envs"_a = h.num_envs, "seed"_a = h.seed, "pad"_a = h.pad_first ? "first" : "zero",
                       "n_step"_a = h.n_step, "gamma"_a = h.gamma());
            if (h.kind == 1) d["alpha"] = h.alpha();
            return d;
          },
          "The constructor arguments stored in a snapshot (its header and size are checked).")
      .def("_load_from",
           [](BoundStore& b, py::handle path) {
             const std::string p = path_arg(path, "path");
             NoGil nogil;
             b.store->load(p);
           })
      .def(
          "frames_view",
          [](py::object self) {
            const BoundStore& b = self.cast<const BoundStore&>();
            const Shape shape = b.batched(py::ssize_t(b.store->capacity()), b.frame_shape);
            py::array view(py::dtype::of<uint8_t>(), shape, b.store->frames_data(), self);  // keeps the buffer alive
            py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return view;
          },
          "A numpy view of the frame store's own memory, uint8 (capacity, *frame_shape): row slot holds the\n"
          "frame whose index % capacity is slot; rows not written yet are zero. No copy is made: the view\n"
          "keeps the buffer alive and shows later writes as they happen (frames added after the call, and\n"
          "rows being overwritten while another thread adds). It is read-only (stored frames can only\n"
          "change through start_episode/add), so it cannot be used to alter the store. For\n"
          "DeviceReplayBuffer, which copies it into its device mirror, and for benchmarks and tests.")
      // `dqnfast bench replay`'s baseline (and its test): memcpy of the same frames, no checks.
      .def("memcpy_baseline", [](const BoundStore& b, py::handle indices, py::handle obs, py::handle next_obs) {
        const auto idx = vector_arg<int64_t>(indices, "indices", "iu", "integers");
        const BoundStore::FrameOut f = b.frame_outputs(idx.shape(0), obs, next_obs);  // either layout
        TransitionOut o{};
        o.obs = f.obs, o.next_obs = f.next_obs, o.row_stride = f.row_stride, o.shared = f.shared;
        NoGil nogil;
        b.store->memcpy_baseline(size_t(idx.shape(0)), idx.data(), o);
      },
      py::arg("indices"), py::arg("obs"), py::arg("next_obs"),
      "A benchmark's lower bound, not a sampler: memcpy the stored frames of the transitions with these\n"
      "indices (one-step, as stored) into obs and next_obs, laid out as gather() lays them out (separate\n"
      "arrays, or one shared block), with no validity checks at all: an index that is not sampleable,\n"
      "or that was overwritten, copies whatever its slot holds, and padding is read as slot 0's frame.\n"
      "Only the arrays are checked (shape, dtype, layout). Used by `dqnfast bench replay` as the cost of the\n"
      "copies alone, to compare sample() and gather() with.");
}

}  // namespace dqnfast::bindings
