"""Head deltas from the fleet transport (docs/fleet-transport.md).

`odl fleet collect` verifies every message a device sends (its signature,
round, sequence number, base model, head shape and values) and writes the
accepted ones as DIR/<device>.delta. read_delta reads such a file for an
aggregator:

    meta, arrays = odl.read_delta("deltas/7.delta")
    meta["examples"], meta["round"], meta["tensors"][0]["node"]
    arrays[0]          # float32: the device's head minus the global head, tensor 0

The file is checked again (framing, CRCs, layout, lengths, finite values)
but not its signature: that needs the device's key, and was checked when
the message arrived.
"""
import ctypes
import json
import os

from . import _lib
from ._lib import lib as _c

try:
    if os.environ.get("ODL_NO_NUMPY"):
        raise ImportError("ODL_NO_NUMPY is set")
    import numpy as _np
except ImportError:
    _np = None

__all__ = ["read_delta"]


def read_delta(path):
    """Reads a head-delta file. Returns (meta, arrays): meta is a dict with
    device, round, seq, examples, boundary (the first node of the head),
    base_id (hex SHA-256 of the global model it applies to), signed, bytes
    and tensors (a list of {node, which: "weights"/"bias", count}); arrays
    holds one float32 array per tensor, in the same order (NumPy arrays, or
    lists without NumPy). Weights are flattened as odl stores them (PyTorch's
    layout, row-major)."""
    from . import OdlError  # the package's error type (defined after this module is imported)

    err = ctypes.create_string_buffer(512)
    h = _c.odl_capi_delta_load(os.fsencode(path), err, len(err))
    if not h:
        raise OdlError(-4, err.value.decode(errors="replace"))
    try:
        cap = 4096
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = _c.odl_capi_delta_meta_json(h, buf, cap)
            if n < cap:
                meta = json.loads(buf.value.decode())
                break
            cap = n + 1
        arrays = []
        for i in range(_c.odl_capi_delta_n_tensors(h)):
            count = _c.odl_capi_delta_tensor_count(h, i)
            if _np is not None:
                a = _np.empty(count, dtype=_np.float32)
                ptr = a.ctypes.data_as(_lib.P_float)
            else:
                a = (ctypes.c_float * count)()
                ptr = ctypes.cast(a, _lib.P_float)
            s = _c.odl_capi_delta_tensor_copy(h, i, ptr, count, err, len(err))
            if s < 0:
                raise OdlError(s, err.value.decode(errors="replace"))
            arrays.append(a if _np is not None else list(a))
        return meta, arrays
    finally:
        _c.odl_capi_delta_free(h)
