// The one set of argument parsers the bindings share: a Python object in, a C++ value out, or a
// TypeError / ValueError that names the argument. Only per-call arguments come through here; what
// is checked once per object (ReplayBuffer's constructor) is checked in Python.
//
// Arrays are read straight from numpy's array struct: these run on every add() and preprocess()
// call, where a py::dtype or a std::vector per argument is measurable.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

namespace dqnfast::bindings {

namespace py = pybind11;
using Shape = std::vector<py::ssize_t>;
using ArrayStruct = py::detail::PyArray_Proxy;

// ---- messages ------------------------------------------------------------------------------------

inline std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

inline std::string shape_str(const py::ssize_t* shape, size_t nd) {
  std::string s = "(";
  for (size_t i = 0; i < nd; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (nd == 1 ? ",)" : ")");
}
inline std::string shape_str(const Shape& s) { return shape_str(s.data(), s.size()); }

inline std::string ints_str(std::initializer_list<int64_t> v) {
  std::string s = "(";
  for (auto it = v.begin(); it != v.end(); ++it) s += (it == v.begin() ? "" : ", ") + std::to_string(*it);
  return s + ")";
}

// ---- scalars -------------------------------------------------------------------------------------

// numpy.number and numpy.bool_, looked up once when _core is imported (module.cpp), so that no
// per-call check imports numpy.
inline PyTypeObject* numpy_number = nullptr;
inline PyTypeObject* numpy_bool = nullptr;
inline void init_numpy_scalar_types() {
  py::module_ np = py::module_::import("numpy");  // the references are kept for the process's life
  numpy_number = reinterpret_cast<PyTypeObject*>(py::object(np.attr("number")).release().ptr());
  numpy_bool = reinterpret_cast<PyTypeObject*>(py::object(np.attr("bool_")).release().ptr());
}

// Python ints and integer scalars (numpy.int64, ...); not bools, which are flags, nor floats.
inline bool is_int(py::handle obj) {
  PyObject* o = obj.ptr();
  if (PyLong_CheckExact(o)) return true;
  if (PyBool_Check(o) || PyFloat_Check(o) || Py_TYPE(o) == numpy_bool) return false;
  return PyLong_Check(o) || PyIndex_Check(o);
}

inline int64_t int_arg(py::handle obj, const char* name) {
  if (!is_int(obj)) throw py::type_error(std::string(name) + " must be an int, got " + type_name(obj));
  py::object index;  // the Python int of an integer scalar (numpy.int64, ...)
  PyObject* i = obj.ptr();
  if (!PyLong_Check(i)) {
    index = py::reinterpret_steal<py::object>(PyNumber_Index(i));
    if (!index) throw py::error_already_set();
    i = index.ptr();
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i, &overflow);
  if (overflow) throw py::value_error(std::string(name) + " out of range: " + std::string(py::str(i)));
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// ints, floats and numpy numbers; not bools.
inline double number_arg(py::handle obj, const char* name) {
  PyObject* o = obj.ptr();
  if (PyFloat_CheckExact(o)) return PyFloat_AS_DOUBLE(o);
  if (PyBool_Check(o) || !(PyFloat_Check(o) || PyLong_Check(o) || PyObject_TypeCheck(o, numpy_number)))
    throw py::type_error(std::string(name) + " must be a number, got " + type_name(obj));
  const double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// True / False or numpy.bool_; not ints.
inline bool flag_arg(py::handle obj, const char* name) {
  PyObject* o = obj.ptr();
  if (o == Py_True) return true;
  if (o == Py_False) return false;
  if (Py_TYPE(o) == numpy_bool) return PyObject_IsTrue(o) == 1;
  throw py::type_error(std::string(name) + " must be a bool, got " + type_name(obj));
}

// N ints from a tuple or list; `form` describes the whole argument and `what` its entries in errors.
template <size_t N>
void fixed_ints(py::handle obj, const char* name, const char* form, const char* what, int64_t (&v)[N]) {
  PyObject* o = obj.ptr();
  const bool tuple = PyTuple_Check(o);
  if (!tuple && !PyList_Check(o)) throw py::type_error(std::string(name) + " must be " + form + ", got " + type_name(obj));
  const Py_ssize_t n = tuple ? PyTuple_GET_SIZE(o) : PyList_GET_SIZE(o);
  if (n != Py_ssize_t(N))
    throw py::value_error(std::string(name) + " must be " + form + ", got " + std::to_string(n) + " values");
  for (size_t i = 0; i < N; ++i)
    v[i] = int_arg(tuple ? PyTuple_GET_ITEM(o, Py_ssize_t(i)) : PyList_GET_ITEM(o, Py_ssize_t(i)), what);
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

// A str or os.PathLike (not bytes) as a std::string.
inline std::string path_arg(py::handle path, const char* name) {
  if (PyUnicode_Check(path.ptr())) return py::cast<std::string>(path);
  PyObject* fs = PyOS_FSPath(path.ptr());
  if (!fs || !PyUnicode_Check(fs)) {
    Py_XDECREF(fs);
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be a str or os.PathLike, got " + type_name(path));
  }
  return py::cast<std::string>(py::reinterpret_steal<py::object>(fs));
}

// ---- arrays --------------------------------------------------------------------------------------

// The array struct of a numpy.ndarray (borrowed: valid while obj is), else a TypeError.
// `of` (say "integers") completes the message.
inline ArrayStruct* ndarray_arg(py::handle obj, const char* name, const char* of = nullptr) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray" + (of ? std::string(" of ") + of : "") +
                         ", got " + type_name(obj));
  return py::detail::array_proxy(obj.ptr());
}

inline int type_num(const ArrayStruct* a) { return py::detail::array_descriptor_proxy(a->descr)->type_num; }
inline char dtype_kind(const ArrayStruct* a) { return py::detail::array_descriptor_proxy(a->descr)->kind; }
inline std::string dtype_str(const ArrayStruct* a) { return py::str(py::handle(a->descr)); }

// Whether an array's elements are exactly T: T's own type number in this machine's byte order
// (numpy writes that '=', or '|' for single bytes), else numpy's own test, under which int64 is
// also 'longlong' where that is 8 bytes.
template <typename T>
bool holds(const ArrayStruct* a) {
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  if (d->type_num == py::detail::npy_format_descriptor<T>::value && (d->byteorder == '=' || d->byteorder == '|'))
    return true;
  return py::detail::npy_api::get().PyArray_EquivTypes_(a->descr, py::dtype::of<T>().ptr());
}

template <typename T>
void check_dtype(const ArrayStruct* a, const char* name) {
  if (!holds<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                         dtype_str(a));
}

inline void check_shape(const ArrayStruct* a, const char* name, const py::ssize_t* shape, size_t nd) {
  if (size_t(a->nd) != nd || !std::equal(shape, shape + nd, a->dimensions))
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape, nd) + ", got " +
                          shape_str(a->dimensions, size_t(a->nd)));
}

// An ndarray of T with exactly `shape` (strides unchecked).
template <typename T>
ArrayStruct* typed_array(py::handle obj, const char* name, const py::ssize_t* shape, size_t nd) {
  ArrayStruct* a = ndarray_arg(obj, name);
  check_dtype<T>(a, name);
  check_shape(a, name, shape, nd);
  return a;
}

inline bool writeable(const ArrayStruct* a) { return a->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_; }
inline bool c_contiguous(const ArrayStruct* a) { return a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_; }

// An input of uint8 `shape`, returned C-contiguous: the array itself, or a packed copy if strided.
inline py::array in_array(py::handle obj, const char* name, const Shape& shape) {
  const ArrayStruct* a = typed_array<uint8_t>(obj, name, shape.data(), shape.size());
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  return c_contiguous(a) ? arr : py::array::ensure(arr, py::array::c_style);
}

// An output of T `shape`, written in place: C-contiguous and writeable, never copied.
template <typename T>
T* out_array(py::handle obj, const char* name, const py::ssize_t* shape, size_t nd) {
  ArrayStruct* a = typed_array<T>(obj, name, shape, nd);
  if (!c_contiguous(a)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (!writeable(a)) throw py::value_error(std::string(name) + " must be writeable");
  return reinterpret_cast<T*>(a->data);
}
template <typename T>
T* out_array(py::handle obj, const char* name, const Shape& shape) {
  return out_array<T>(obj, name, shape.data(), shape.size());
}

// A 1-D array of n values (any n when n < 0) of the given numpy kinds ("iu", "iuf", "b"), converted
// to T within them.
template <typename T>
using Vec = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
Vec<T> vector_arg(py::handle obj, const char* name, const char* kinds, const char* what, py::ssize_t n = -1) {
  const ArrayStruct* a = ndarray_arg(obj, name, what);
  if (!std::strchr(kinds, dtype_kind(a)))
    throw py::type_error(std::string(name) + " must be an array of " + what + ", got dtype " + dtype_str(a));
  if (n < 0 && a->nd != 1)
    throw py::value_error(std::string(name) + " must be 1-D, got shape " + shape_str(a->dimensions, size_t(a->nd)));
  if (n >= 0) check_shape(a, name, &n, 1);
  Vec<T> v = Vec<T>::ensure(obj);  // the kind check above keeps this cast within ints, or within numbers
  if (!v) throw py::error_already_set();
  return v;
}

// ---- the GIL ------------------------------------------------------------------------------------

// Releases the GIL for the scope: copies and kernels run without it. (The raw save/restore is
// cheaper than py::gil_scoped_release, which looks up pybind11's internals on every call.)
class NoGil {
 public:
  NoGil() : ts_(PyEval_SaveThread()) {}
  ~NoGil() { PyEval_RestoreThread(ts_); }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;

 private:
  PyThreadState* ts_;
};

}  // namespace dqnfast::bindings
