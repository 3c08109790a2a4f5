"""Finds and loads libodl_py.so (the core + host I/O + the flat C API of
include/odl/capi.h) and declares the prototypes for ctypes.

Search order:
  1. $ODL_LIBRARY: the library file, or a directory holding it
  2. this package's own directory (where `pip install ./python` puts it)
  3. the install libdir, relative to this package (written by cmake/python.cmake)
  4. ctypes.util.find_library("odl_py") and the dynamic loader's path
     (LD_LIBRARY_PATH, ld.so.cache)
"""
import ctypes
import ctypes.util
import os

ABI = 1
_NAMES = ("libodl_py.so", "libodl_py.so.0")

c_int, c_int32, c_int64, c_uint64 = ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
c_float, c_double, c_size_t, c_char_p, c_void_p = (ctypes.c_float, ctypes.c_double, ctypes.c_size_t,
                                                   ctypes.c_char_p, ctypes.c_void_p)
P_float = ctypes.POINTER(c_float)
P_double = ctypes.POINTER(c_double)
P_int32 = ctypes.POINTER(c_int32)
P_int64 = ctypes.POINTER(c_int64)

_here = os.path.dirname(os.path.abspath(__file__))


def _install_dirs():
    try:
        from . import _install  # written at install time
    except ImportError:
        return None, None
    lib = os.path.normpath(os.path.join(_here, _install.LIBDIR))
    bindir = os.path.normpath(os.path.join(_here, _install.BINDIR))
    return lib, bindir


def _candidates():
    env = os.environ.get("ODL_LIBRARY")
    if env:
        if os.path.isdir(env):
            for n in _NAMES:
                yield os.path.join(env, n)
        else:
            yield env
        return  # an explicit choice: nothing else
    for n in _NAMES:
        yield os.path.join(_here, n)
    lib, _ = _install_dirs()
    if lib:
        for n in _NAMES:
            yield os.path.join(lib, n)
    found = ctypes.util.find_library("odl_py")
    if found:
        yield found
    yield "libodl_py.so.0"
    yield "libodl_py.so"


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        return lib, path
    raise ImportError("odl: cannot find libodl_py.so; set ODL_LIBRARY to the library or its directory "
                      "(a build directory, or <prefix>/lib after cmake --install). Tried: " + "; ".join(tried))


lib, path = _load()


def _proto(name, restype, *argtypes):
    try:
        f = getattr(lib, name)
    except AttributeError:
        raise ImportError("odl: %s has no %s: it is older than this package (rebuild or reinstall both, e.g. "
                          "python3 -m pip install ./python)" % (path, name)) from None
    f.restype = restype
    f.argtypes = list(argtypes)


E = (c_char_p, c_size_t)  # err, errcap

_proto("odl_capi_version", c_char_p)
_proto("odl_capi_abi", c_int)
_proto("odl_capi_status_str", c_char_p, c_int)
_proto("odl_capi_reason_str", c_char_p, c_int)
_proto("odl_capi_reason_count", c_int)

_proto("odl_capi_model_load", c_void_p, c_char_p, *E)
_proto("odl_capi_model_free", None, c_void_p)
_proto("odl_capi_model_shape", c_int, c_void_p, P_int32)
_proto("odl_capi_model_input_size", c_int32, c_void_p)
_proto("odl_capi_model_n_classes", c_int32, c_void_p)
_proto("odl_capi_model_info_json", c_size_t, c_void_p, c_char_p, c_size_t)
_proto("odl_capi_model_predict", c_int, c_void_p, P_float, c_int32, P_int32, P_float, P_float, *E)
_proto("odl_capi_model_save", c_int, c_void_p, c_char_p, *E)
_proto("odl_capi_model_param_list", c_int, c_void_p, c_int, P_int32, P_int32, P_int64, c_int)
_proto("odl_capi_model_get_param", c_int, c_void_p, c_int32, c_int32, P_float, c_int64, *E)
_proto("odl_capi_model_set_param", c_int, c_void_p, c_int32, c_int32, P_float, c_int64, *E)

_proto("odl_capi_learner_new", c_void_p, c_void_p, c_int32, c_uint64, c_char_p, *E)
_proto("odl_capi_learner_free", None, c_void_p)
_proto("odl_capi_learner_bytes", c_size_t, c_void_p)
_proto("odl_capi_learner_seed", c_int, c_void_p, P_float, P_int32, c_int32, *E)
_proto("odl_capi_learner_predict", c_int, c_void_p, P_float, c_int32, P_int32, P_float, P_int32, *E)
_proto("odl_capi_learner_feedback", c_int, c_void_p, P_float, c_int32, P_int32, *E)
_proto("odl_capi_learner_mark", c_int, c_void_p, P_float, c_int32, P_int32, *E)
_proto("odl_capi_learner_update", c_int, c_void_p, *E)
_proto("odl_capi_learner_calibrate", c_int, c_void_p, *E)
_proto("odl_capi_learner_rollback", c_int, c_void_p, c_int32, *E)
_proto("odl_capi_learner_status_json", c_size_t, c_void_p, c_char_p, c_size_t)
_proto("odl_capi_learner_status_ints", c_int, c_void_p, P_int64, c_int)
_proto("odl_capi_learner_model", c_void_p, c_void_p, *E)
_proto("odl_capi_learner_save", c_int, c_void_p, c_char_p, *E)

_proto("odl_capi_drift_new", c_void_p, c_char_p, c_char_p, *E)
_proto("odl_capi_drift_free", None, c_void_p)
_proto("odl_capi_drift_update", c_int, c_void_p, c_double)
_proto("odl_capi_drift_update_many", c_int64, c_void_p, P_double, c_int64, P_int32)
_proto("odl_capi_drift_reset", None, c_void_p)
_proto("odl_capi_drift_t", c_int64, c_void_p)
_proto("odl_capi_drift_alarms", c_int64, c_void_p)
_proto("odl_capi_drift_state_json", c_size_t, c_void_p, c_char_p, c_size_t)
_proto("odl_capi_sample_stats", c_int, P_float, c_size_t, P_float, P_float)
_proto("odl_capi_sample_stats_many", c_int, P_float, c_int32, c_int32, P_float, P_float)

_proto("odl_capi_data_load", c_void_p, c_char_p, c_char_p, c_char_p, c_int32, c_char_p, *E)
_proto("odl_capi_data_free", None, c_void_p)
_proto("odl_capi_data_shape", c_int, c_void_p, P_int32)
_proto("odl_capi_data_copy", c_int, c_void_p, P_float, P_int32)
_proto("odl_capi_shift", c_int, c_char_p, P_float, c_int32, c_int32, c_int32, c_int32, *E)

_proto("odl_capi_model_new", c_void_p, c_char_p, c_int32, c_int32, c_int32, c_int32, c_uint64, *E)
_proto("odl_capi_model_freeze", c_int, c_void_p, c_int32, *E)
_proto("odl_capi_model_first_trainable", c_int32, c_void_p)
_proto("odl_capi_model_plan_json", c_size_t, c_void_p, c_int32, c_int, c_char_p, c_size_t)
_proto("odl_capi_trainer_new", c_void_p, c_void_p, c_int32, c_float, c_uint64, *E)
_proto("odl_capi_trainer_free", None, c_void_p)
_proto("odl_capi_trainer_epoch", c_int, c_void_p, P_float, P_int32, c_int32, P_float, P_float, *E)

_proto("odl_capi_delta_load", c_void_p, c_char_p, *E)
_proto("odl_capi_delta_free", None, c_void_p)
_proto("odl_capi_delta_meta_json", c_size_t, c_void_p, c_char_p, c_size_t)
_proto("odl_capi_delta_n_tensors", c_int32, c_void_p)
_proto("odl_capi_delta_tensor_count", c_int64, c_void_p, c_int32)
_proto("odl_capi_delta_tensor_copy", c_int, c_void_p, c_int32, P_float, c_int64, *E)
_proto("odl_capi_model_delta_id", c_int, c_void_p, c_int32, c_char_p, P_int32, *E)

if lib.odl_capi_abi() != ABI:
    raise ImportError("odl: %s has C API revision %d; this package needs %d (rebuild or reinstall both)"
                      % (path, lib.odl_capi_abi(), ABI))


def tool_candidates():
    """Where the `odl` command-line tool may be, best first."""
    env = os.environ.get("ODL_TOOL")
    if env:
        yield env
    yield os.path.join(_here, "bin", "odl")  # a pip-installed package carries the tool
    _, bindir = _install_dirs()
    if bindir:
        yield os.path.join(bindir, "odl")
    # a build directory holds libodl_py.so and the odl tool side by side
    yield os.path.join(os.path.dirname(os.path.abspath(path)), "odl") if os.sep in path else ""
