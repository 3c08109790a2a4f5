"""A small PEP 517 build backend for the odl Python package (pyproject.toml).

It builds libodl_py.so and the odl tool with CMake from the repository this
directory belongs to (or takes them from $ODL_BUILD_DIR, an existing build
directory) and writes a wheel holding python/odl, odl/libodl_py.so and
odl/bin/odl. It needs only the standard library, CMake and a C compiler, so
pip installs offline and without downloading build dependencies."""
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

NAME, VERSION = "odl", "0.1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _say(msg):
    print("odl_build: " + msg, file=sys.stderr, flush=True)


def _built(dirpath):
    lib = os.path.join(dirpath, "libodl_py.so")
    tool = os.path.join(dirpath, "odl")
    return (lib, tool) if os.path.exists(lib) and os.path.exists(tool) else None


def _build_native(tmp):
    pre = os.environ.get("ODL_BUILD_DIR")
    if pre:
        found = _built(pre)
        if not found:
            raise RuntimeError("ODL_BUILD_DIR=%s holds no libodl_py.so and odl (cmake --build it first)" % pre)
        _say("using libodl_py.so and odl from " + pre)
        return found
    if not os.path.isfile(os.path.join(REPO, "CMakeLists.txt")):
        raise RuntimeError("odl_build: %s is not inside the odl source tree; set ODL_BUILD_DIR" % HERE)
    b = os.path.join(tmp, "cmake")
    jobs = str(min(os.cpu_count() or 1, 4))
    _say("building libodl_py.so and odl with CMake in %s (about a minute on 2 cores)" % b)
    subprocess.check_call(["cmake", "-S", REPO, "-B", b, "-DCMAKE_BUILD_TYPE=Release", "-DODL_BUILD_PYTHON=ON"],
                          stdout=sys.stderr)
    subprocess.check_call(["cmake", "--build", b, "-j" + jobs, "--target", "odl_py", "odl_cli"], stdout=sys.stderr)
    return _built(b)


def _tag():
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-" + plat


def _metadata():
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: On-device learning for edge devices: the odl C "
            "core from Python\nRequires-Python: >=3.9\n" % (NAME, VERSION))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _distinfo():
    return "%s-%s.dist-info" % (NAME, VERSION)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, _distinfo())
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(_metadata())
    return _distinfo()


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arc, digest, len(data))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    tmp = tempfile.mkdtemp(prefix="odl-wheel-")
    try:
        lib, tool = _build_native(tmp)
        files = []
        pkg = os.path.join(HERE, "odl")
        for name in sorted(os.listdir(pkg)):
            if name.endswith(".py") and name != "_install.py":
                with open(os.path.join(pkg, name), "rb") as f:
                    files.append(("odl/" + name, f.read(), 0o644))
        with open(os.path.realpath(lib), "rb") as f:
            files.append(("odl/libodl_py.so", f.read(), 0o755))
        with open(os.path.realpath(tool), "rb") as f:
            files.append(("odl/bin/odl", f.read(), 0o755))
        di = _distinfo()
        files.append((di + "/METADATA", _metadata().encode(), 0o644))
        files.append((di + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: odl_build\nRoot-Is-Purelib: false\nTag: %s\n"
                                      % _tag()).encode(), 0o644))
        record = [_record_line(a, d) for a, d, _ in files] + [di + "/RECORD,,"]
        files.append((di + "/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
        wheel = "%s-%s-%s.whl" % (NAME, VERSION, _tag())
        path = os.path.join(wheel_directory, wheel)
        with zipfile.ZipFile(path + ".part", "w", zipfile.ZIP_DEFLATED) as z:
            for arc, data, mode in files:
                zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
                zi.external_attr = (0o100000 | mode) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(zi, data)
        os.replace(path + ".part", path)
        _say("wrote " + wheel)
        return wheel
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


build_editable = None  # editable installs: use PYTHONPATH=python with ODL_LIBRARY=build instead
del build_editable
