"""odl — on-device learning, from Python.

A ctypes binding over libodl_py.so (the C library's flat API,
include/odl/capi.h): no compiled extension. NumPy is optional: inputs may be
lists or NumPy arrays; outputs are NumPy arrays when NumPy can be imported
(set ODL_NO_NUMPY=1 to get lists anyway).

    import odl
    m = odl.Model.edge_cnn(classes=10)         # or odl.load("base.odl")
    m.fit(x, y, epochs=1, batch_size=32, validation_data=(xv, yv))
    m.evaluate(xv, yv)                         # {"loss": ..., "accuracy": ...}
    probs = m.predict(x)                       # (n, classes) probabilities; m.logits(x)
    classes, conf = m.classify(x)              # x: (n, 784) or (n, 1, 28, 28), float 0..1
    m.freeze("head"); m.summary(); m.save("m.odl")
    a = odl.adapt(m, x_user, y_user, strategy="replay", replay_from=DATA)
    L = odl.Learner(m, max_classes=10, seed=0)
    L.seed(old_x, old_y)                       # the data the device ships with
    L.feedback(x_user, labels)                 # -> Feedback(s): accepted or the reason
    u = L.update()                             # -> Update: accepted or rolled back
    L.rollback(); L.status(); L.save("personal.odl")
    z = odl.ZScore(ref_n=500)                  # drift detectors
    z.update(std)                              # True when drift is detected
    res = odl.read_experiment("results.json")  # odl experiment --json

See docs/python.md.
"""
import ctypes
import json
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from . import _lib
from ._lib import lib as _c
from .experiment import ExperimentResults, ExperimentRow, read_experiment, run_experiment, find_tool
from .transport import read_delta

try:
    if os.environ.get("ODL_NO_NUMPY"):
        raise ImportError("ODL_NO_NUMPY is set")
    import numpy as _np
except ImportError:
    _np = None

__all__ = [
    "OdlError", "version", "library_path", "HAVE_NUMPY", "load", "Model", "Learner", "Prediction", "Feedback",
    "Update", "Status", "Detector", "ZScore", "PageHinkley", "Adwin", "ConfidenceEWMA", "sample_stats",
    "Dataset", "load_data", "shift", "REASONS", "ExperimentResults", "ExperimentRow", "read_experiment",
    "run_experiment", "find_tool", "History", "adapt", "STRATEGIES", "import_model", "ImportRefused",
    "read_delta",
]

__version__ = _c.odl_capi_version().decode()
HAVE_NUMPY = _np is not None
library_path = _lib.path

# status codes (odl/status.h)
OK, EVENT_DRIFT, EVENT_ROLLED_BACK, EVENT_REJECTED = 0, 1, 2, 3
ERR_NUMERIC = -11
REASONS = [_c.odl_capi_reason_str(i).decode() for i in range(_c.odl_capi_reason_count())]


def version():
    """The C library's version string."""
    return _c.odl_capi_version().decode()


class OdlError(RuntimeError):
    """A call into the library failed. .status is the odl_status code (< 0),
    .name its name (e.g. "ODL_ERR_ARG: bad argument")."""

    def __init__(self, status, message):
        self.status = status
        self.name = _c.odl_capi_status_str(status).decode()
        super().__init__(message or self.name)


_ERRCAP = 512


def _errbuf():
    return ctypes.create_string_buffer(_ERRCAP)


def _check(status, err):
    if status < 0:
        raise OdlError(status, err.value.decode(errors="replace"))
    return status


def _path(p):
    return os.fsencode(p)


def _opt(s):
    return s.encode() if s is not None else None


def _options(kw):
    """Keyword arguments as the C API's "key=value,..." string."""
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        parts.append("%s=%s" % (k, v))
    return ",".join(parts).encode() if parts else None


def _json(fn, *args):
    cap = 4096
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = fn(*args, buf, cap)
        if n < cap:
            return json.loads(buf.value.decode())
        cap = n + 1


# ---- arrays ---------------------------------------------------------------------

def _flatten(x, out):
    if isinstance(x, (list, tuple)) or (hasattr(x, "__iter__") and not isinstance(x, (str, bytes))
                                        and not hasattr(x, "__float__")):
        for v in x:
            _flatten(v, out)
    else:
        out.append(float(x))


class _Floats:
    """x as a contiguous float32 buffer: .ptr, .count (values), kept alive."""

    def __init__(self, x):
        if _np is not None:
            if getattr(x, "dtype", None) is not None and _np.dtype(x.dtype) == _np.uint8:
                raise ValueError(_UINT8_MSG)
            a = _np.ascontiguousarray(x, dtype=_np.float32)
            self.keep, self.count = a, a.size
            self.ptr = a.ctypes.data_as(_lib.P_float)
            self.np = a
        else:
            flat = []
            _flatten(x, flat)
            buf = (ctypes.c_float * len(flat))(*flat)
            self.keep, self.count, self.ptr, self.np = buf, len(flat), ctypes.cast(buf, _lib.P_float), None


def _sample_values(x):
    """Values in one sample of x when x is a batch (its first axis the samples),
    or None when that cannot be told (a flat sequence of numbers)."""
    if _np is not None and hasattr(x, "shape"):
        shape = tuple(x.shape)
        if len(shape) < 2:
            return None
        n = 1
        for v in shape[1:]:
            n *= int(v)
        return n, shape[1:]
    if isinstance(x, (list, tuple)) and x and not _is_scalar(x[0]):
        first = []
        _flatten(x[0], first)
        return len(first), None
    return None


def _samples(x, size, what="x", shape=None):
    """(buffer, n) for n samples of `size` values each. A batch whose samples
    have another shape (e.g. 28x27 images for a 28x28 model) is refused, even
    when its total happens to be a multiple of `size`."""
    f = _Floats(x)
    want = "x".join(str(v) for v in shape) if shape else str(size)
    if f.count != size:
        per = _sample_values(x)
        if per is not None and per[0] != size:
            got = "x".join(str(v) for v in per[1]) if per[1] is not None else str(per[0])
            raise ValueError("%s: samples of %s (%d values); the model takes %s (%d values)"
                             % (what, got, per[0], want, size))
    if size <= 0 or f.count % size or f.count == 0:
        raise ValueError("%s: %d values is not a whole number of samples of %s (%d values)"
                         % (what, f.count, want, size))
    return f, f.count // size


_INT32_MIN, _INT32_MAX = -2 ** 31, 2 ** 31 - 1

_UINT8_MSG = ("x: uint8 values (0..255) are not taken as they are: odl models expect float inputs in 0..1. "
              "Pass scale=1/255 (fit, evaluate, predict, classify, logits) or give x.astype('float32') / 255")


def _scaled(x, scale):
    """x multiplied by `scale` as float32 (None: x unchanged; uint8 is refused later)."""
    if scale is None:
        return x
    if _np is not None:
        return _np.asarray(x, dtype=_np.float32) * _np.float32(scale)
    flat = []
    _flatten(x, flat)
    return [v * float(scale) for v in flat]


def _int32(v, what="label"):
    """A whole number that fits int32, or ValueError: never wrapped (2**32 + 1
    is not 1) nor truncated (1.5 is not 1)."""
    try:
        iv = int(v)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("%s: %r is not a whole number" % (what, v)) from None
    if iv != v:
        raise ValueError("%s: %r is not a whole number" % (what, v))
    if iv < _INT32_MIN or iv > _INT32_MAX:
        raise ValueError("%s: %d is outside %d..%d" % (what, iv, _INT32_MIN, _INT32_MAX))
    return iv


def _labels(y, n):
    if _np is not None and not isinstance(y, (list, tuple)):
        raw = _np.asarray(y).reshape(-1)
        if raw.size and raw.dtype.kind not in "iub":
            if raw.dtype.kind != "f" or not _np.all(_np.isfinite(raw)) or _np.any(raw != _np.floor(raw)):
                raise ValueError("labels: not all whole numbers (dtype %s)" % raw.dtype)
        if raw.size and (raw.min() < _INT32_MIN or raw.max() > _INT32_MAX):
            raise ValueError("labels: values outside %d..%d (min %s, max %s)"
                             % (_INT32_MIN, _INT32_MAX, raw.min(), raw.max()))
        a = _np.ascontiguousarray(raw, dtype=_np.int32)
        if a.size != n:
            raise ValueError("labels: %d labels for %d samples" % (a.size, n))
        return a, a.ctypes.data_as(_lib.P_int32)
    vals = [_int32(v) for v in y]
    if len(vals) != n:
        raise ValueError("labels: %d labels for %d samples" % (len(vals), n))
    buf = (ctypes.c_int32 * n)(*vals)
    return buf, ctypes.cast(buf, _lib.P_int32)


def _out(ctype, n):
    """An output array: NumPy when available, else a ctypes array (converted by _ret)."""
    if _np is not None:
        a = _np.zeros(n, dtype={ctypes.c_float: _np.float32, ctypes.c_int32: _np.int32,
                                ctypes.c_double: _np.float64}[ctype])
        return a, a.ctypes.data_as(ctypes.POINTER(ctype))
    buf = (ctype * n)()
    return buf, ctypes.cast(buf, ctypes.POINTER(ctype))


def _ret(a, shape=None):
    if _np is not None:
        return a.reshape(shape) if shape is not None else a
    vals = list(a)
    if shape is not None and len(shape) == 2:
        r, c = shape
        return [vals[i * c:(i + 1) * c] for i in range(r)]
    return vals


def _is_scalar(v):
    if _np is not None and isinstance(v, _np.ndarray):
        return v.ndim == 0
    return not isinstance(v, (list, tuple)) and not hasattr(v, "__len__")


# ---- models ------------------------------------------------------------------------

class Model:
    """A model on the C core: loaded (odl.load) or built (Model.edge_cnn,
    Model.mlp), trained with fit, frozen with freeze, saved with save.

    Inputs are float32 arrays of n samples (any shape holding n × input_size
    values, e.g. (n, 1, 28, 28)), values in 0..1; uint8 images are refused
    unless scale= is given (scale=1/255)."""

    def __init__(self, handle, source=None):
        if not handle:
            raise OdlError(-1, "no model")
        self._h = ctypes.c_void_p(handle)
        self.source = source
        shape = (ctypes.c_int32 * 5)()
        _c.odl_capi_model_shape(self._h, shape)
        self.input_shape = (shape[0], shape[1], shape[2])
        self.n_classes = shape[3]
        self.n_layers = shape[4]
        self.input_size = shape[0] * shape[1] * shape[2]
        self._trainer = None   # (key, handle): optimizer state kept across fit calls
        self.modified = False  # trained or frozen since it was loaded
        self.imported_from = None  # the ONNX/TFLite file, for a model from import_model

    @classmethod
    def edge_cnn(cls, input_shape=(1, 28, 28), classes=10, seed=0):
        """A new edge-cnn (the standard small CNN of docs/protocol.md) for
        input_shape (c, h, w) and `classes` outputs, initialised from `seed`."""
        return cls._new("edge-cnn", input_shape, classes, seed)

    @classmethod
    def mlp(cls, hidden=(32, 16), input_shape=(1, 28, 28), classes=10, seed=0):
        """A new MLP: flatten, dense+ReLU of each width in `hidden`, dense `classes`."""
        if not hidden:
            raise ValueError("mlp: hidden needs at least one width, e.g. (32, 16)")
        return cls._new("mlp:" + ",".join(str(_int32(h, "hidden width")) for h in hidden), input_shape, classes,
                        seed)

    @classmethod
    def _new(cls, arch, input_shape, classes, seed):
        if len(input_shape) != 3:
            raise ValueError("input_shape: %r is not (channels, height, width)" % (input_shape,))
        c, h, w = (_int32(v, "input_shape") for v in input_shape)
        err = _errbuf()
        hd = _c.odl_capi_model_new(arch.encode(), c, h, w, _int32(classes, "classes"), int(seed), err, _ERRCAP)
        if not hd:
            raise OdlError(-1, err.value.decode(errors="replace"))
        m = cls(hd, arch)
        m.modified = True
        return m

    def close(self):
        """Releases the C model (also done when the object is collected)."""
        self._drop_trainer()
        if getattr(self, "_h", None):
            _c.odl_capi_model_free(self._h)
            self._h = None

    def _drop_trainer(self):
        t = getattr(self, "_trainer", None)
        if t:
            _c.odl_capi_trainer_free(t[1])
            self._trainer = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _name(self):
        return self.source or self.imported_from or "?"

    def __repr__(self):
        i = self.info()
        return "odl.Model(%s, input %s, %d classes, %d params, %d trainable)" % (
            self._name(), "x".join(map(str, self.input_shape)), self.n_classes, i["params"],
            i["trainable_params"])

    def info(self):
        """Layers, parameter counts and the inference memory plan (a dict).
        The plan is for batches of up to info()["inference_plan"]["max_batch"]
        samples (64, what predict uses); `odl info` plans for batch 1 unless
        given --batch. See plan() for any batch."""
        return _json(_c.odl_capi_model_info_json, self._h)

    @property
    def params(self):
        """Parameters in all layers."""
        return self.info()["params"]

    @property
    def trainable_params(self):
        """Parameters that fit() changes (those above the freeze boundary)."""
        return self.info()["trainable_params"]

    @property
    def first_trainable(self):
        """Index of the first trainable layer (len(layers) when all are frozen)."""
        return _c.odl_capi_model_first_trainable(self._h)

    def plan(self, batch_size=1, train=False):
        """The exact memory plan (bytes per kind and total) for this model at
        `batch_size`, for inference or (train=True) for training its trainable part."""
        cap = 1024
        buf = ctypes.create_string_buffer(cap)
        _c.odl_capi_model_plan_json(self._h, _int32(batch_size, "batch_size"), 1 if train else 0, buf, cap)
        out = json.loads(buf.value.decode())
        if out is None:
            raise ValueError("plan: batch_size %r is not a positive whole number" % (batch_size,))
        return out

    def freeze(self, upto="head"):
        """Freezes layers below `upto`: "head" keeps only the last layer with
        parameters trainable, an int is the first trainable layer's index,
        None (or 0) makes every layer trainable. Returns the model."""
        layers = self.info()["layers"]
        if upto is None:
            b = 0
        elif upto == "head":
            b = max(i for i, l in enumerate(layers) if l["params"] > 0)
        else:
            b = _int32(upto, "freeze upto")
        err = _errbuf()
        _check(_c.odl_capi_model_freeze(self._h, b, err, _ERRCAP), err)
        self._drop_trainer()
        self.modified = True
        return self

    def summary(self, batch_size=1, budget=None, print_fn=print):
        """Prints (with print_fn) and returns a table of the layers (type,
        output shape, parameters, trainable), the parameter counts and the
        memory plans for inference and training at `batch_size`; `budget`
        (bytes, e.g. 256 * 1024) adds whether the on-device learner fits (its
        default plan with the frozen weights in flash, as `odl info --budget`
        counts it) and whether the training plan above (weights in RAM) does."""
        i = self.info()
        lines = ["odl.Model %s: input %s, %d classes" % (self._name(), "x".join(map(str, self.input_shape)),
                                                          self.n_classes),
                 "  #  layer       output        params  trainable"]
        for k, l in enumerate(i["layers"]):
            lines.append("%3d  %-10s  %-12s %7d  %s" % (k, l["type"], "x".join(map(str, l["output"])), l["params"],
                                                         "yes" if l["trainable"] and l["params"] else
                                                         ("-" if not l["params"] else "frozen")))
        lines.append("parameters: %d, trainable: %d" % (i["params"], i["trainable_params"]))
        for train in (False, True):
            p = self.plan(batch_size, train)
            kinds = ", ".join("%s %d" % (k, v) for k, v in p.items() if k not in ("mode", "max_batch", "total") and v)
            lines.append("memory plan, %s, batch %d: %d bytes (%s)" % (p["mode"], batch_size, p["total"], kinds))
        if budget is not None:
            fits = lambda n: "fits" if n <= budget else "does NOT fit"
            try:  # the device: the learner's arena + the frozen base's inference RAM, its weights in flash
                with Learner(self) as L:
                    learner = L.bytes
                p1 = self.plan(1, False)
                device = learner + p1["total"] - p1.get("params", 0)
                lines.append("budget %d bytes: the on-device learner (replay, frozen weights in flash, as odl "
                             "info --budget) needs %d: %s (%+d bytes)" % (budget, device, fits(device), budget - device))
            except (OdlError, ValueError):
                pass  # no learner over this model (e.g. no dense head): the training plan alone
            t = self.plan(batch_size, True)["total"]
            lines.append("budget %d bytes: training this model in RAM (weights included, batch %d) needs %d: %s "
                         "(%+d bytes)" % (budget, batch_size, t, fits(t), budget - t))
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text

    def fit(self, x, y, epochs=1, batch_size=32, lr=1e-3, validation_data=None, callbacks=None, verbose=0,
            seed=0, scale=None):
        """Trains the trainable layers (softmax cross-entropy, Adam at `lr`)
        for `epochs` shuffled passes over (x, y). validation_data: (x_val,
        y_val) evaluated after each epoch. callbacks: callables f(epoch, logs)
        or objects with on_epoch_end(epoch, logs); logs holds loss, accuracy
        (on x after the epoch) and val_loss/val_accuracy. verbose=1 prints a
        line per epoch. Optimizer state carries over between fit calls with
        the same batch_size and lr. Returns a History."""
        x = _scaled(x, scale)
        f, n = _samples(x, self.input_size)
        keep, py = _labels(y, n)
        key = (int(batch_size), float(lr), self.first_trainable)
        if not self._trainer or self._trainer[0] != key:
            self._drop_trainer()
            err = _errbuf()
            t = _c.odl_capi_trainer_new(self._h, _int32(batch_size, "batch_size"), float(lr), int(seed), err,
                                        _ERRCAP)
            if not t:
                raise OdlError(-1, err.value.decode(errors="replace"))
            self._trainer = (key, ctypes.c_void_p(t))
        hist = History()
        cbs = list(callbacks or [])
        for e in range(int(epochs)):
            loss, acc = ctypes.c_float(), ctypes.c_float()
            err = _errbuf()
            _check(_c.odl_capi_trainer_epoch(self._trainer[1], f.ptr, py, n, ctypes.byref(loss), ctypes.byref(acc),
                                             err, _ERRCAP), err)
            self.modified = True
            logs = {"loss": loss.value, "accuracy": acc.value}
            if validation_data is not None:
                v = self.evaluate(validation_data[0], validation_data[1], scale=scale)
                logs["val_loss"], logs["val_accuracy"] = v["loss"], v["accuracy"]
            hist._add(e, logs)
            if verbose:
                print("epoch %d/%d: %s" % (e + 1, epochs, " ".join("%s %.4f" % kv for kv in logs.items())))
            for cb in cbs:
                (cb.on_epoch_end if hasattr(cb, "on_epoch_end") else cb)(e, logs)
        return hist

    def evaluate(self, x, y, scale=None):
        """{"loss": mean cross-entropy, "accuracy": fraction right} on (x, y)."""
        lg = self.logits(x, scale=scale)
        if _np is not None:
            lg = _np.asarray(lg, dtype=_np.float64)
            ys = _np.asarray(y).reshape(-1).astype(_np.int64)
            if ys.size != lg.shape[0]:
                raise ValueError("labels: %d labels for %d samples" % (ys.size, lg.shape[0]))
            mx = lg.max(axis=1, keepdims=True)
            lse = mx[:, 0] + _np.log(_np.exp(lg - mx).sum(axis=1))
            ok = (ys >= 0) & (ys < self.n_classes)
            loss = float(_np.mean(lse[ok] - lg[ok, ys[ok]])) if ok.any() else float("nan")
            return {"loss": loss, "accuracy": float(_np.mean(lg.argmax(axis=1) == ys))}
        import math
        ys = list(y)
        if len(ys) != len(lg):
            raise ValueError("labels: %d labels for %d samples" % (len(ys), len(lg)))
        tot, right = 0.0, 0
        for row, t in zip(lg, ys):
            mx = max(row)
            tot += mx + math.log(sum(math.exp(v - mx) for v in row)) - row[int(t)]
            right += int(row.index(mx) == t)
        return {"loss": tot / max(1, len(ys)), "accuracy": right / max(1, len(ys))}

    def _forward(self, x, logits):
        f, n = _samples(x, self.input_size, shape=self.input_shape)
        cls, pc = _out(ctypes.c_int32, n)
        conf, pf = _out(ctypes.c_float, n)
        lg, pl = _out(ctypes.c_float, n * self.n_classes) if logits else (None, None)
        err = _errbuf()
        _check(_c.odl_capi_model_predict(self._h, f.ptr, n, pc, pf, pl, err, _ERRCAP), err)
        return cls, conf, lg, n

    def classify(self, x, scale=None):
        """(classes, confidences) for n samples (x: n × input_size values, any
        shape); confidence is the largest softmax probability."""
        cls, conf, _, _ = self._forward(_scaled(x, scale), False)
        return _ret(cls), _ret(conf)

    def predict(self, x, scale=None):
        """Class probabilities (softmax of the logits), n × n_classes."""
        _, _, lg, n = self._forward(_scaled(x, scale), True)
        if _np is not None:
            z = lg.reshape(n, self.n_classes).astype(_np.float64)
            z = _np.exp(z - z.max(axis=1, keepdims=True))
            return (z / z.sum(axis=1, keepdims=True)).astype(_np.float32)
        import math
        out = []
        for row in _ret(lg, (n, self.n_classes)):
            mx = max(row)
            e = [math.exp(v - mx) for v in row]
            out.append([v / sum(e) for v in e])
        return out

    def logits(self, x, scale=None):
        """The logits, n × n_classes."""
        _, _, lg, n = self._forward(_scaled(x, scale), True)
        return _ret(lg, (n, self.n_classes))

    def accuracy(self, x, y, scale=None):
        """The fraction of samples classified as their label."""
        cls, _ = self.classify(x, scale=scale)
        ys = list(y) if _np is None else _np.asarray(y).reshape(-1)
        right = sum(int(a == b) for a, b in zip(cls, ys))
        return right / max(1, len(ys))

    def _param_list(self, trainable_only):
        n = _c.odl_capi_model_param_list(self._h, 1 if trainable_only else 0, None, None, None, 0)
        layer, which = (ctypes.c_int32 * max(n, 1))(), (ctypes.c_int32 * max(n, 1))()
        count = (ctypes.c_int64 * max(n, 1))()
        _c.odl_capi_model_param_list(self._h, 1 if trainable_only else 0, layer, which, count, n)
        return [(layer[i], which[i], count[i]) for i in range(n)]

    def _param_shape(self, layer, which, count, layers):
        units = layers[layer]["units"] if layer < len(layers) else 0
        if which == 0 and units > 0 and count % units == 0 and count != units:
            return (units, count // units)  # weights: one row per output unit
        return (count,)

    def get_weights(self, trainable_only=True):
        """The parameters as a list of float32 arrays (a copy), in layer order,
        each layer's weights (units x inputs) then its bias: only the trainable
        layers (the head after freeze("head"), a learner's head) by default,
        every layer with trainable_only=False. Without NumPy: flat lists."""
        layers = self.info()["layers"]
        out = []
        for layer, which, count in self._param_list(trainable_only):
            buf, ptr = _out(ctypes.c_float, count)
            err = _errbuf()
            _check(_c.odl_capi_model_get_param(self._h, layer, which, ptr, count, err, _ERRCAP), err)
            out.append(_ret(buf, self._param_shape(layer, which, count, layers)) if _np is not None else list(buf))
        return out

    def set_weights(self, weights, trainable_only=True):
        """Sets the parameters from a list shaped like get_weights(trainable_only)
        returns (same count of arrays, same number of values in each; finite).
        Nothing is changed when any array is refused. Returns the model."""
        tensors = self._param_list(trainable_only)
        weights = list(weights)
        if len(weights) != len(tensors):
            raise ValueError("set_weights: %d arrays given; the model's %s parameters are %d arrays (%s)" % (
                len(weights), "trainable" if trainable_only else "", len(tensors),
                ", ".join("layer %d %s %d" % (l, "bias" if w else "weights", c) for l, w, c in tensors)))
        bufs = []
        for k, ((layer, which, count), a) in enumerate(zip(tensors, weights)):
            f = _Floats(a)
            if f.count != count:
                shape = tuple(getattr(a, "shape", (f.count,)))
                raise ValueError("set_weights: array %d (layer %d %s) has %d values %s; the model needs %d" % (
                    k, layer, "bias" if which else "weights", f.count, shape, count))
            if _np is not None and not _np.all(_np.isfinite(f.np)):
                raise ValueError("set_weights: array %d (layer %d %s) holds non-finite values" % (
                    k, layer, "bias" if which else "weights"))
            bufs.append(f)
        for (layer, which, count), f in zip(tensors, bufs):
            err = _errbuf()
            _check(_c.odl_capi_model_set_param(self._h, layer, which, f.ptr, count, err, _ERRCAP), err)
        self._drop_trainer()  # its optimizer state belongs to the old values
        self.modified = True
        return self

    def save(self, path):
        """Writes the model to PATH atomically (an .odl file; odl.load and the odl tool read it)."""
        err = _errbuf()
        _check(_c.odl_capi_model_save(self._h, _path(path), err, _ERRCAP), err)

    def export_tflite(self, path, fp32=False, tool=None):
        """Writes the model as a TensorFlow Lite flatbuffer at `path` (atomically)
        with `odl export --tflite`, for TFLite, TFLite Micro or ArmNN
        (docs/tflite.md). A model as loaded (not trained or frozen since)
        exports from its file, so an INT8 import goes back as INT8 unless
        fp32=True; a changed model is saved first and exports as FP32 (and
        without its tensor names). odl.import_model reads the file back.
        Raises ImportRefused (a ValueError) with the tool's message when the
        model cannot be exported."""
        import shutil
        import tempfile
        tool = tool or find_tool()
        work = tempfile.mkdtemp(prefix="odl-export-")
        try:
            src = self.source if (self.source and not self.modified and os.path.isfile(self.source)) else None
            if src is None:
                src = os.path.join(work, "model.odl")
                self.save(src)
            cmd = [tool, "export", src, "--tflite", os.fspath(path)]
            if fp32:
                cmd.append("--fp32")
            _run_tool(cmd, "odl export --tflite")
        finally:
            shutil.rmtree(work, ignore_errors=True)


class History:
    """What fit() returns, as Keras: .history maps "loss", "accuracy",
    "val_loss", "val_accuracy" to one value per epoch; .epoch lists the epochs."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def _add(self, e, logs):
        self.epoch.append(e)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        last = ", ".join("%s %.4f" % (k, v[-1]) for k, v in self.history.items())
        return "odl.History(%d epochs%s)" % (len(self.epoch), ": " + last if last else "")


def load(path):
    """Loads an .odl model file for inference."""
    err = _errbuf()
    h = _c.odl_capi_model_load(_path(path), err, _ERRCAP)
    if not h:
        raise OdlError(-4, err.value.decode(errors="replace"))
    return Model(h, os.fspath(path))


# ---- learner ------------------------------------------------------------------------

@dataclass
class Prediction:
    cls: int
    confidence: float
    drift: bool = False


@dataclass
class Feedback:
    accepted: bool
    reason: str = "none"  # why it was refused (odl_reason): "outlier", "contradicts ...", ...
    status: int = 0


@dataclass
class Status:
    """The learner's counters and its last gate decision (odl_learner_status).
    last_{old,new,user}_{before,after} are accuracies in [0, 1] on the guard set,
    the update's held-out examples and earlier updates' held-out examples;
    None when that set was not measured (its last_*_n count is 0)."""
    version: int = 0
    predictions: int = 0
    feedback: int = 0
    accepted_examples: int = 0
    marks_right: int = 0
    marks_wrong: int = 0
    rejected: Dict[str, int] = field(default_factory=dict)
    updates: int = 0
    updates_accepted: int = 0
    updates_rolled_back: int = 0
    rollbacks: int = 0
    drift_events: int = 0
    last_drift_at: int = 0
    collected: int = 0
    held_out: int = 0
    active_classes: int = 0
    user_guard: int = 0
    last_accepted: int = 0
    last_old_before: Optional[float] = None
    last_old_after: Optional[float] = None
    last_new_before: Optional[float] = None
    last_new_after: Optional[float] = None
    last_user_before: Optional[float] = None
    last_user_after: Optional[float] = None
    # examples each last_* accuracy was measured on; 0 (and the accuracies None): not measured
    last_old_n: int = 0
    last_new_n: int = 0
    last_user_n: int = 0
    last_decision: str = ""
    bytes: int = 0
    strategy: str = "replay"
    shadow_active: int = 0
    shadow_scored: int = 0
    shadow_promoted: int = 0
    shadow_dropped: int = 0
    shadow_candidate_correct: Optional[float] = None
    shadow_current_correct: Optional[float] = None
    shadow_decision: str = ""

    @classmethod
    def from_dict(cls, d):
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Update:
    accepted: bool
    decision: str
    version: int
    status: Status

    @property
    def rolled_back(self):
        return not self.accepted


class Learner:
    """The learner façade (odl/learner.h) over a Model: predict, feedback,
    mark, update (gated, automatic rollback), calibrate, rollback, status.

    max_classes: head outputs (room for new classes); None = the model's.
    seed: every random choice comes from one generator seeded with it.
    Other keyword options change odl_learner_cfg_defaults(): boundary,
    max_collected, holdout_every, guard_size, versions, replay (capacity),
    replay_f32, replay_balanced, epochs, batch, lr, outlier_k, outlier_min,
    confident, dup_eps, max_dups, max_class_share, new_target, max_old_drop,
    new_weight, require_avg_not_worse, bias_step, drift, drift_ref_n, drift_z,
    drift_alpha, conf_ref_n, conf_z, conf_alpha, strategy ("replay", "ewc",
    "ewc-online", "lwf", "ncm", "slda", "bias", "unfreeze"), ewc_lambda,
    ewc_decay, lwf_weight, lwf_T, slda_shrinkage, stats_window, shadow (an
    accepted update waits as a candidate over this many labelled or marked
    samples; 0 = off), shadow_margin."""

    def __init__(self, model, max_classes=None, seed=0, **options):
        if isinstance(model, (str, bytes, os.PathLike)):
            model = load(model)
        self.model = model
        err = _errbuf()
        max_classes = _int32(max_classes or 0, "max_classes")
        seed = int(seed)
        if seed < 0 or seed >= 2 ** 64:
            raise ValueError("seed: %d is outside 0..2**64-1" % seed)
        h = _c.odl_capi_learner_new(model._h, max_classes, seed, _options(options), err, _ERRCAP)
        if not h:
            raise OdlError(-1, err.value.decode(errors="replace"))
        self._h = ctypes.c_void_p(h)
        self.input_size = model.input_size
        self.input_shape = model.input_shape

    def close(self):
        if getattr(self, "_h", None):
            _c.odl_capi_learner_free(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def bytes(self):
        """Bytes of the learner's arena (its exact plan)."""
        return _c.odl_capi_learner_bytes(self._h)

    def seed(self, x, y):
        """The old data the device ships with (replay, guard set, class statistics)."""
        f, n = _samples(x, self.input_size, shape=self.input_shape)
        keep, py = _labels(y, n)
        err = _errbuf()
        _check(_c.odl_capi_learner_seed(self._h, f.ptr, py, n, err, _ERRCAP), err)

    def predict(self, x):
        """(classes, confidences, drift) for n samples; drift[i] is True when the
        learner's drift monitors fired on prediction i."""
        f, n = _samples(x, self.input_size, shape=self.input_shape)
        cls, pc = _out(ctypes.c_int32, n)
        conf, pf = _out(ctypes.c_float, n)
        st, ps = _out(ctypes.c_int32, n)
        err = _errbuf()
        _check(_c.odl_capi_learner_predict(self._h, f.ptr, n, pc, pf, ps, err, _ERRCAP), err)
        drift = [int(v) == EVENT_DRIFT for v in st]
        if _np is not None:
            drift = _np.array(drift, dtype=bool)
        return _ret(cls), _ret(conf), drift

    def predict_one(self, x):
        """One sample: a Prediction(cls, confidence, drift)."""
        cls, conf, drift = self.predict(x)
        if len(cls) != 1:
            raise ValueError("predict_one: x holds %d samples" % len(cls))
        return Prediction(int(cls[0]), float(conf[0]), bool(drift[0]))

    def _give(self, fn, x, values, what):
        f, n = _samples(x, self.input_size, shape=self.input_shape)
        single = _is_scalar(values)
        vals = [values] * n if single else (list(values) if _np is None else _np.asarray(values).reshape(-1))
        if len(vals) != n:
            raise ValueError("%s: %d values for %d samples" % (what, len(vals), n))
        if single and n != 1:
            raise ValueError("%s: one value for %d samples" % (what, n))
        out = []
        why = ctypes.c_int32(0)
        err = _errbuf()
        base = ctypes.cast(f.ptr, ctypes.c_void_p).value
        for i in range(n):
            p = ctypes.cast(ctypes.c_void_p(base + 4 * i * self.input_size), _lib.P_float)
            s = _check(fn(self._h, p, _int32(vals[i], what), ctypes.byref(why), err, _ERRCAP), err)
            out.append(Feedback(s == OK, REASONS[why.value] if s != OK else "none", s))
        return out[0] if single else out

    def feedback(self, x, label):
        """Labelled example(s): label an int (one sample) or a sequence (one per
        sample). Returns a Feedback, or a list of them."""
        return self._give(_c.odl_capi_learner_feedback, x, label, "feedback")

    def mark(self, x, correct):
        """Right (True) / wrong (False) mark(s) on the prediction for x."""
        if _is_scalar(correct):
            correct = int(bool(correct))
        else:
            correct = [int(bool(c)) for c in correct]
        return self._give(_c.odl_capi_learner_mark, x, correct, "mark")

    def _decision(self, s):
        st = self.status()
        return Update(s == OK, st.last_decision, st.version, st)

    def update(self):
        """Learns what was collected; the evaluation gate accepts it or rolls it back."""
        err = _errbuf()
        return self._decision(_check(_c.odl_capi_learner_update(self._h, err, _ERRCAP), err))

    def calibrate(self):
        """Per-class biases from the marks, through the same gate."""
        err = _errbuf()
        return self._decision(_check(_c.odl_capi_learner_calibrate(self._h, err, _ERRCAP), err))

    def rollback(self, steps=1):
        """Restores the head of `steps` accepted versions ago; returns the version now current.
        Before any accepted update there is nothing to undo: OdlError says so."""
        err = _errbuf()
        steps = _int32(steps, "rollback steps")
        s = _c.odl_capi_learner_rollback(self._h, steps, err, _ERRCAP)
        if s < 0:
            st = self.status()
            if st.updates_accepted - st.rollbacks <= 0 and steps >= 1:
                raise OdlError(s, "rollback: nothing to undo: no update has been accepted yet (version %d is the "
                                  "model the learner started from)" % st.version)
            _check(s, err)
        return self.status().version

    def __repr__(self):
        st = self.status()
        return "odl.Learner(version %d, %d updates accepted, %d rolled back, %d bytes)" % (
            st.version, st.updates_accepted, st.updates_rolled_back, self.bytes)

    def status(self):
        """Counters and the last update's decision (a Status)."""
        return Status.from_dict(_json(_c.odl_capi_learner_status_json, self._h))

    def current_model(self):
        """The current model (base + head, active classes, biases folded in) as a new Model."""
        err = _errbuf()
        h = _c.odl_capi_learner_model(self._h, err, _ERRCAP)
        if not h:
            raise OdlError(-1, err.value.decode(errors="replace"))
        return Model(h, "learner v%d" % self.status().version)

    def get_weights(self):
        """The current head (layers from the learner's boundary on, calibration
        biases folded in) as a list of float32 arrays, like Model.get_weights.
        To start a learner from a given head: model.set_weights(head), then
        Learner(model) (the learner copies the head when it is created)."""
        return self.current_model().get_weights(trainable_only=True)

    def save(self, path):
        """Writes the current model to PATH (atomically); odl.load reads it back."""
        err = _errbuf()
        _check(_c.odl_capi_learner_save(self._h, _path(path), err, _ERRCAP), err)


# ---- drift --------------------------------------------------------------------------

class Detector:
    """A drift detector (odl/drift.h). kind: "zscore", "ph", "adwin" or "conf";
    options are the fields of its configuration (library defaults otherwise).
    update(value) returns True when drift is detected; non-finite values are
    ignored (returning False), as in C."""

    kind = None

    def __init__(self, kind=None, **options):
        kind = kind or self.kind
        err = _errbuf()
        h = _c.odl_capi_drift_new(kind.encode(), _options(options), err, _ERRCAP)
        if not h:
            raise OdlError(-1, err.value.decode(errors="replace"))
        self._h = ctypes.c_void_p(h)
        self.kind = kind

    def close(self):
        if getattr(self, "_h", None):
            _c.odl_capi_drift_free(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def update(self, value):
        return _c.odl_capi_drift_update(self._h, float(value)) == EVENT_DRIFT

    def update_many(self, values):
        """Feeds every value; returns the indices at which drift was detected."""
        if _np is not None and not isinstance(values, (list, tuple)):
            a = _np.ascontiguousarray(values, dtype=_np.float64).reshape(-1)
            st = _np.zeros(a.size, dtype=_np.int32)
            _c.odl_capi_drift_update_many(self._h, a.ctypes.data_as(_lib.P_double), a.size,
                                          st.ctypes.data_as(_lib.P_int32))
            return _np.nonzero(st == EVENT_DRIFT)[0]
        vals = [float(v) for v in values]
        buf = (ctypes.c_double * len(vals))(*vals)
        st = (ctypes.c_int32 * len(vals))()
        _c.odl_capi_drift_update_many(self._h, buf, len(vals), st)
        idx = [i for i, s in enumerate(st) if s == EVENT_DRIFT]
        return _np.array(idx, dtype=_np.int64) if _np is not None else idx

    def reset(self):
        """Forgets what was learned (keeps the configuration, t and alarms)."""
        _c.odl_capi_drift_reset(self._h)

    @property
    def t(self):
        return _c.odl_capi_drift_t(self._h)

    @property
    def alarms(self):
        return _c.odl_capi_drift_alarms(self._h)

    def state(self):
        """Kind, configuration and internal statistics (a dict)."""
        return _json(_c.odl_capi_drift_state_json, self._h)

    def __repr__(self):
        return "odl.%s(t=%d, alarms=%d)" % (type(self).__name__, self.t, self.alarms)


class ZScore(Detector):
    """Welford baseline + EWMA z-tests (ref_n, alpha, z, min_run, check_var, z_var)."""
    kind = "zscore"

    def __init__(self, **options):
        super().__init__(None, **options)


class PageHinkley(Detector):
    """Two-sided Page-Hinkley (warmup, delta, lambda_, alpha). `lambda` is a Python
    keyword: pass lambda_=..."""
    kind = "ph"

    def __init__(self, **options):
        if "lambda_" in options:
            options["lambda"] = options.pop("lambda_")
        super().__init__(None, **options)


class Adwin(Detector):
    """ADWIN (delta, m, max_rows, clock, min_sub)."""
    kind = "adwin"

    def __init__(self, **options):
        super().__init__(None, **options)


class ConfidenceEWMA(Detector):
    """EWMA of the prediction confidence (ref_n, alpha, z, min_run, two_sided)."""
    kind = "conf"

    def __init__(self, **options):
        super().__init__(None, **options)


def sample_stats(x, size=None):
    """Mean and standard deviation of one sample's values (size=None), or of each
    of the samples of `size` values in x (arrays)."""
    if size is None:
        f = _Floats(x)
        m, s = ctypes.c_float(), ctypes.c_float()
        st = _c.odl_capi_sample_stats(f.ptr, f.count, ctypes.byref(m), ctypes.byref(s))
        if st < 0:
            raise OdlError(st, "sample_stats: empty or non-finite input")
        return m.value, s.value
    f, n = _samples(x, int(size))
    mean, pm = _out(ctypes.c_float, n)
    std, ps = _out(ctypes.c_float, n)
    st = _c.odl_capi_sample_stats_many(f.ptr, n, int(size), pm, ps)
    if st < 0:
        raise OdlError(st, "sample_stats: non-finite input")
    return _ret(mean), _ret(std)


# ---- data ---------------------------------------------------------------------------

@dataclass
class Dataset:
    x: object          # n × c × h × w float32 (NumPy), or a list of n flat lists
    y: object          # n labels
    shape: tuple       # (c, h, w)
    n_classes: int

    def __len__(self):
        return len(self.y)


def load_data(path, split=None, classes=None, limit=0, shift=None):
    """Loads an MNIST-style IDX directory, IDX images file or CSV file with the
    library's own readers. split: "train" | "test" (None: train for a
    directory); classes: "0-7", "8,9"; limit: at most this many samples;
    shift: "gain:A,B" or "translate:DX,DY"."""
    err = _errbuf()
    h = _c.odl_capi_data_load(_path(path), _opt(split), _opt(classes), _int32(limit, "limit"), _opt(shift), err,
                              _ERRCAP)
    if not h:
        raise OdlError(-8, err.value.decode(errors="replace"))
    try:
        sh = (ctypes.c_int32 * 5)()
        _c.odl_capi_data_shape(h, sh)
        n, c, hh, w, nc = list(sh)
        size = c * hh * w
        x, px = _out(ctypes.c_float, n * size)
        y, py = _out(ctypes.c_int32, n)
        _c.odl_capi_data_copy(h, px, py)
    finally:
        _c.odl_capi_data_free(h)
    if _np is not None:
        return Dataset(x.reshape(n, c, hh, w), y, (c, hh, w), nc)
    vals = list(x)
    return Dataset([vals[i * size:(i + 1) * size] for i in range(n)], list(y), (c, hh, w), nc)


def shift(x, spec, shape):
    """x (n samples of shape c×h×w) through a shift spec ("gain:0.8,0.1",
    "translate:2,0"); returns a new array of x's shape (without NumPy: a list
    of n flat sample lists, or one flat list for a single flat sample)."""
    c, hh, w = shape
    f, n = _samples(x, c * hh * w)
    if f.np is not None:
        a = f.np.copy()
        ptr = a.ctypes.data_as(_lib.P_float)
    else:
        a = (ctypes.c_float * f.count)()
        ctypes.memmove(a, f.ptr, 4 * f.count)
        ptr = ctypes.cast(a, _lib.P_float)
    err = _errbuf()
    _check(_c.odl_capi_shift(_opt(spec), ptr, n, c, hh, w, err, _ERRCAP), err)
    if f.np is not None:
        return a.reshape(_np.shape(x))
    vals, size = list(a), c * hh * w
    if n == 1 and not (isinstance(x, (list, tuple)) and x and isinstance(x[0], (list, tuple))):
        return vals
    return [vals[i * size:(i + 1) * size] for i in range(n)]


# ---- adaptation (odl adapt) ---------------------------------------------------------

STRATEGIES = ("naive", "replay", "ewc", "lwf", "full", "ncm", "slda")


def adapt(model, x, y, strategy="replay", replay_from=None, epochs=10, batch_size=16, lr=1e-3, seed=0,
          replay_size=None, replay_balanced=False, replay_int8=False, ewc_lambda=None, new_classes=False,
          unfreeze=0, scale=None, output=None, tool=None):
    """Adapts `model` to a user's labelled examples (x, y) with one of the
    strategies (naive, replay, ewc, lwf, full, ncm, slda) and returns the
    adapted Model. It runs `odl adapt` (the same C core) on the model's file
    and the examples, so the adapted file keeps the learner state (replay
    buffer, EWC anchors, class statistics) for the next adapt.

    replay_from: the original training data (an IDX directory or file) the
    replay buffer, EWC's Fisher and class statistics come from; needed the
    first time for replay, ewc, ncm and slda. output: where to write the
    adapted .odl (default: a temporary file, kept while the Model lives)."""
    import subprocess
    import tempfile
    if strategy not in STRATEGIES:
        raise ValueError("adapt: strategy %r is not one of %s" % (strategy, ", ".join(STRATEGIES)))
    if isinstance(model, (str, bytes, os.PathLike)):
        model = load(model)
    tool = tool or find_tool()
    work = tempfile.mkdtemp(prefix="odl-adapt-")
    try:
        src = model.source if (model.source and not model.modified and os.path.isfile(model.source)) else None
        if src is None:
            src = os.path.join(work, "base.odl")
            model.save(src)
        x = _scaled(x, scale)
        f, n = _samples(x, model.input_size)
        keep, _ = _labels(y, n)
        ys = list(keep)
        csv = os.path.join(work, "user.csv")
        with open(csv, "w") as fh:
            if f.np is not None:
                rows = f.np.reshape(n, model.input_size)
                for i in range(n):
                    fh.write("%d," % int(ys[i]) + ",".join("%.9g" % v for v in rows[i].tolist()) + "\n")
            else:
                vals = [f.keep[i] for i in range(f.count)]
                for i in range(n):
                    row = vals[i * model.input_size:(i + 1) * model.input_size]
                    fh.write("%d," % int(ys[i]) + ",".join("%.9g" % v for v in row) + "\n")
        out = os.fspath(output) if output else os.path.join(tempfile.mkdtemp(prefix="odl-adapted-"), "adapted.odl")
        cmd = [tool, "adapt", src, "--data", csv, "--shape", "x".join(map(str, model.input_shape)),
               "--strategy", strategy, "--epochs", str(int(epochs)), "--batch", str(int(batch_size)),
               "--lr", repr(float(lr)), "--seed", str(int(seed)), "--json", "--quiet", "-o", out]
        if replay_from:
            cmd += ["--replay-from", os.fspath(replay_from)]
        if replay_size:
            cmd += ["--replay-size", str(int(replay_size))]
        if replay_balanced:
            cmd.append("--replay-balanced")
        if replay_int8:
            cmd.append("--replay-int8")
        if ewc_lambda is not None:
            cmd += ["--ewc-lambda", repr(float(ewc_lambda))]
        if new_classes:
            cmd.append("--new-classes")
        if unfreeze:
            cmd += ["--unfreeze", str(int(unfreeze))]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode != 0:
            raise OdlError(-1, "odl adapt failed (exit %d): %s" % (p.returncode, (p.stderr or p.stdout).strip()))
        m = load(out)
        m.adapt_report = json.loads(p.stdout.strip().splitlines()[-1])
        return m
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


# ---- import (odl import) ------------------------------------------------------------

class ImportRefused(OdlError, ValueError):
    """The odl tool refused an import or export: the file is not a model it can
    read, an operator or attribute odl does not support, a bad --input-shape or
    --head, an output it cannot write. The message is the tool's own (it names
    the node, tensor or option). Both an OdlError (a RuntimeError) and a
    ValueError; .exit_code is the tool's exit status."""

    def __init__(self, message, exit_code):
        self.exit_code = exit_code
        super().__init__(-1, message)


def _run_tool(cmd, what):
    """Runs the odl tool; its stdout, or ImportRefused (a refusal: exit 1 or 2
    with a message) / OdlError (it crashed or said nothing)."""
    import subprocess
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode == 0:
        return p.stdout
    msg = (p.stderr or p.stdout).strip()
    if p.returncode in (1, 2) and msg:
        raise ImportRefused("%s failed: %s" % (what, msg), p.returncode)
    raise OdlError(-1, "%s failed (%s): %s" % (
        what, "killed by signal %d" % -p.returncode if p.returncode < 0 else "exit %d" % p.returncode,
        msg or "no message"))


def _shape_arg(input_shape):
    """(c, h, w) or "CxHxW" as the tool's "CxHxW"; ValueError otherwise."""
    try:
        if isinstance(input_shape, str):
            dims = [int(v) if v.strip().isdigit() else None for v in input_shape.lower().split("x")]
        else:
            dims = [_int32(v, "input_shape") for v in input_shape]
    except (TypeError, ValueError):
        dims = None
    if dims and None in dims:
        dims = None
    if not dims or len(dims) != 3 or min(dims) < 1:
        raise ValueError("input_shape: %r is not (channels, height, width) of positive whole numbers, "
                         "e.g. (1, 49, 10) or \"1x49x10\"" % (input_shape,))
    return "x".join(map(str, dims))


def import_model(path, *, input_shape=None, head="auto", out=None, tool=None):
    """Imports an ONNX model (PyTorch's torch.onnx.export, tf2onnx, ...) or a
    TensorFlow Lite model (chosen by content) and returns it as a Model,
    frozen below its head, ready for fit, odl.adapt, odl.Learner and
    export_tflite. It runs `odl import` (docs/onnx.md, docs/tflite.md lists
    what imports).

    input_shape: (c, h, w) or "CxHxW", for an ONNX model whose sample shape is
    dynamic ([N, F] models: (F, 1, 1); [N, C, L]: (C, L, 1)). head: "auto"
    (before the last layer with parameters) or the name of a tensor of the
    model where the trainable head starts (a refusal lists the names that
    can be). out: where to keep the .odl file; None imports into a temporary
    directory that is removed before returning (the Model lives in memory).
    The tool's report is in the Model's .import_log.

    Raises FileNotFoundError for a missing file (or tool), ValueError for a
    bad input_shape or head, and ImportRefused (a ValueError and an OdlError)
    with the tool's one-line reason when it refuses the model."""
    import shutil
    import tempfile
    src = os.fspath(path)
    if not os.path.isfile(src):
        raise FileNotFoundError("import_model: %s: no such file" % src)
    if not isinstance(head, str) or not head:
        raise ValueError("import_model: head %r is not \"auto\" or a tensor name" % (head,))
    tool = tool or find_tool()
    work = None
    try:
        if out is None:
            work = tempfile.mkdtemp(prefix="odl-import-")
            dst = os.path.join(work, "model.odl")
        else:
            dst = os.fspath(out)
        cmd = [tool, "import", src, "-o", dst, "--head", head]
        if input_shape is not None:
            cmd += ["--input-shape", _shape_arg(input_shape)]
        log = _run_tool(cmd, "odl import %s" % src)
        m = load(dst)
        if work is not None:
            m.source = None  # the file is about to go; save() writes one
        m.imported_from = src
        m.import_log = "".join(l for l in log.splitlines(True) if work is None or not l.startswith("wrote "))
        return m
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
