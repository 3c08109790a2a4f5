#!/usr/bin/python3
"""Independent tools for tests/fleet/mqtt_test.sh: read and forge head-delta
messages with nothing but Python's struct, zlib and hmac (docs/format.md,
"Head deltas"), so the C encoder and verifier are checked against a second
implementation of the layout.

    delta_tool.py check-mac MSG KEYFILE            the AUTH MAC = HMAC-SHA256(key, bytes before AUTH)
    delta_tool.py strip-auth MSG OUT               header + DLTA + END (unsigned)
    delta_tool.py flip MSG OUT OFFSET [--mend-crc] flip a bit of the DLTA payload's byte OFFSET
    delta_tool.py nan MSG OUT KEYFILE              a NaN in the first value, CRC mended, signed again
    delta_tool.py compare DIR GLOBAL.odl DEV=ADAPTED.odl ...
                                                   DIR/DEV.delta holds ADAPTED - GLOBAL, bit for bit
"""
import hashlib
import hmac
import struct
import sys
import zlib

import numpy as np

MAGIC = b"\x89ODL\r\n\x1a\n"


def chunks(b):
    """(offset, type, payload) for each chunk, CRCs checked."""
    assert b[:8] == MAGIC, "bad magic"
    pos, out = 16, []
    while True:
        t, crc, n = struct.unpack_from("<4sIQ", b, pos)
        payload = b[pos + 16:pos + 16 + n]
        assert crc == zlib.crc32(b[pos:pos + 4] + b[pos + 8:pos + 16] + payload), "CRC"
        out.append((pos, t, payload))
        pos += 16 + n + (-n % 16)
        if t == b"END ":
            assert pos == len(b), "bytes after END"
            return out


def mend_crc(b, pos):
    n = struct.unpack_from("<Q", b, pos + 8)[0]
    struct.pack_into("<I", b, pos + 4, zlib.crc32(bytes(b[pos:pos + 4] + b[pos + 8:pos + 16 + n])))


def read_key(path):
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            return bytes.fromhex(line)
    raise SystemExit("no key in " + path)


def sign(b, key):
    """Signs b (header, DLTA, AUTH, END) again in place."""
    auth = [c for c in chunks_nocheck(b) if c[1] == b"AUTH"][0][0]
    b[auth + 32:auth + 64] = hmac.new(key, bytes(b[:auth]), hashlib.sha256).digest()
    mend_crc(b, auth)


def chunks_nocheck(b):
    pos, out = 16, []
    while pos < len(b):
        t, _, n = struct.unpack_from("<4sIQ", b, pos)
        out.append((pos, t))
        pos += 16 + n + (-n % 16)
    return out


def dlta(b):
    """The DLTA payload's fields and its tensors as float32 arrays."""
    (_, t, p), = [c for c in chunks(b) if c[1] == b"DLTA"]
    ver, dev, seq, rnd, ex, boundary, nt = struct.unpack_from("<IIQIIiI", p, 0)
    assert ver == 1
    table = [struct.unpack_from("<IIQ", p, 64 + 16 * i) for i in range(nt)]
    off, arrays = 64 + 16 * nt, []
    for node, which, count in table:
        arrays.append(((node, which), np.frombuffer(p, dtype="<f4", count=count, offset=off).copy()))
        off += 4 * count + (-4 * count % 16)
    assert off == len(p)
    return dict(device=dev, seq=seq, round=rnd, examples=ex, boundary=boundary), arrays


def model_params(path):
    """{(node, which): float32 array} from a .odl model's TENS chunks."""
    b = open(path, "rb").read()
    out = {}
    for _, t, p in chunks(b):
        if t == b"TENS":
            layer, which, dtype, ndim, count = struct.unpack_from("<IIIIQ", p, 0)
            assert dtype == 0 and ndim == 1
            out[(layer, which)] = np.frombuffer(p, dtype="<f4", count=count, offset=32).copy()
    return out


def main(argv):
    cmd = argv[1]
    if cmd == "check-mac":
        b = open(argv[2], "rb").read()
        auth = [c for c in chunks(b) if c[1] == b"AUTH"][0]
        want = hmac.new(read_key(argv[3]), b[:auth[0]], hashlib.sha256).digest()
        assert auth[2][:4] == b"\x01\0\0\0" and auth[2][4:8] == b"\x01\0\0\0", "AUTH layout/algorithm"
        assert auth[2][16:48] == want, "the AUTH MAC is not HMAC-SHA256(key, bytes before AUTH)"
        print("mac ok")
    elif cmd == "strip-auth":
        b = open(argv[2], "rb").read()
        cs = chunks(b)
        auth = [c for c in cs if c[1] == b"AUTH"][0][0]
        end = [c for c in cs if c[1] == b"END "][0][0]
        open(argv[3], "wb").write(b[:auth] + b[end:])
    elif cmd == "flip":
        b = bytearray(open(argv[2], "rb").read())
        pos = [c for c in chunks(b) if c[1] == b"DLTA"][0][0]
        b[pos + 16 + int(argv[4])] ^= 0x10
        if "--mend-crc" in argv:
            mend_crc(b, pos)
        open(argv[3], "wb").write(b)
    elif cmd == "nan":
        b = bytearray(open(argv[2], "rb").read())
        pos, _, p = [c for c in chunks(b) if c[1] == b"DLTA"][0]
        nt = struct.unpack_from("<I", p, 28)[0]
        struct.pack_into("<f", b, pos + 16 + 64 + 16 * nt, float("nan"))
        mend_crc(b, pos)
        sign(b, read_key(argv[4]))
        open(argv[3], "wb").write(b)
    elif cmd == "compare":
        d, glob = argv[2], model_params(argv[3])
        for spec in argv[4:]:
            dev, adapted = spec.split("=", 1)
            meta, arrays = dlta(open("%s/%s.delta" % (d, dev), "rb").read())
            assert meta["device"] == int(dev), meta
            mine = model_params(adapted)
            for key, a in arrays:
                want = (mine[key] - glob[key]).astype(np.float32)
                assert a.dtype == np.float32 and np.array_equal(a, want), "device %s tensor %s differs" % (dev, key)
            assert {k for k, _ in arrays} == {k for k in glob if k[0] >= meta["boundary"]}, "head tensors"
        print("compare ok: %d deltas" % (len(argv) - 4))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
