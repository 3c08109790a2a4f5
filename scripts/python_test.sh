#!/usr/bin/env bash
# The examples and the Python binding against a build directory: trains a
# small base model (and a classes-0-7 one) into a temporary directory, runs
# examples/personalise, new_class and drift_watch, the Python tests
# (python/tests/test_odl.py, with NumPy and again with ODL_NO_NUMPY=1), checks
# that examples/personalise.py makes the same decisions as personalise.c, and
# that the package installed by `cmake --install` imports from the installed
# copy with /usr/bin/python3. Prints "N passed, N failed" last.
# Usage: bash scripts/python_test.sh [build-dir] [--c-only] [--no-install]
#   --c-only      only the C examples (sanitizer builds: ctypes cannot load an
#                 ASan library into an unsanitised interpreter)
#   --no-install  skip the temporary-prefix install check
# ODL_TEST_EXPERIMENT=0 skips run_experiment('s1') (about 35 s).
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=build c_only=0 install=1
for a in "$@"; do
    case $a in
        --c-only) c_only=1 ;;
        --no-install) install=0 ;;
        *) build=$a ;;
    esac
done
build=$(cd "$build" 2>/dev/null && pwd) || { echo "python_test: no build directory '$1'" >&2; echo "0 passed, 1 failed"; exit 1; }
data=/usr/share/datasets/fashion-mnist
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)
tmp=$(mktemp -d /tmp/odl-pytest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log
passed=0 failed=0

check() {  # check NAME COMMAND...: output to $log, shown when it fails
    local name=$1; shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "ok    $name"
    else
        failed=$((failed + 1)); echo "FAIL  $name"; tail -30 "$log" | sed 's/^/      /'
    fi
}
show() { sed 's/^/      /' "$log"; }

if [ ! -d "$data" ]; then echo "skip: $data missing"; echo "0 passed, 0 failed"; exit 0; fi
for t in odl examples/personalise examples/new_class examples/drift_watch; do
    [ -x "$build/$t" ] || { echo "python_test: $build/$t is not built (cmake --build $build)" >&2; echo "0 passed, 1 failed"; exit 1; }
done

check "train base.odl (1 epoch, 12000 samples)" \
    "$build/odl" train --data "$data" --epochs 1 --limit 12000 --seed 0 --quiet -o "$tmp/base.odl"
check "train base8.odl (classes 0-7)" \
    "$build/odl" train --data "$data" --classes 0-7 --epochs 1 --limit 12000 --seed 0 --quiet -o "$tmp/base8.odl"

check "example personalise (accepted, then rolled back)" "$build/examples/personalise" "$tmp/base.odl" "$data"; show
cp "$log" "$tmp/personalise_c.out"
check "example new_class (classes 8, 9 added)" "$build/examples/new_class" "$tmp/base8.odl" "$data"; show
check "example drift_watch (z-score on per-sample std)" "$build/examples/drift_watch" "$data"; show

if [ $c_only -eq 0 ]; then
    if [ ! -e "$build/libodl_py.so" ]; then
        echo "python_test: $build/libodl_py.so is not built" >&2; failed=$((failed + 1))
    else
        export ODL_LIBRARY=$build ODL_TOOL=$build/odl ODL_TEST_MODEL=$tmp/base.odl
        export ODL_TEST_EXPERIMENT=${ODL_TEST_EXPERIMENT:-1}
        check "python tests (numpy: $($py -c 'import numpy' 2>/dev/null && echo yes || echo no))" \
            env PYTHONPATH="$src/python" $py "$src/python/tests/test_odl.py"; tail -1 "$log" | sed 's/^/      /'
        check "python tests (ODL_NO_NUMPY=1)" \
            env ODL_NO_NUMPY=1 ODL_TEST_EXPERIMENT=0 PYTHONPATH="$src/python" $py "$src/python/tests/test_odl.py"
        tail -1 "$log" | sed 's/^/      /'
        check "example personalise.py" env PYTHONPATH="$src/python" $py "$src/examples/personalise.py" "$tmp/base.odl" "$data"; show
        # the same decisions and accuracies as the C program, line for line
        grep -E '^(accuracy|ok|FAIL)' "$tmp/personalise_c.out" > "$tmp/c.lines"
        grep -E '^(accuracy|ok|FAIL)' "$log" > "$tmp/py.lines"
        check "personalise.py gives personalise.c's decisions and accuracies" diff "$tmp/c.lines" "$tmp/py.lines"
        unset ODL_LIBRARY ODL_TOOL
        if [ $install -eq 1 ]; then
            # the installed copy: package + libodl_py.so found relative to each other
            prefix=$tmp/prefix
            check "cmake --install $build --prefix <tmp>" cmake --install "$build" --prefix "$prefix"
            pkg=$(find "$prefix" -path '*dist-packages/odl/__init__.py' | head -1)
            site=$(dirname "$(dirname "$pkg")")
            check "installed: odl package, _install.py, libodl_py.so" \
                test -n "$pkg" -a -f "$site/odl/_install.py" -a -e "$prefix/lib/libodl_py.so.0"
            check "installed package imports and finds its library" env PYTHONPATH="$site" $py -c "
import odl, os, sys
assert odl.__file__.startswith('$site'), odl.__file__
assert os.path.realpath(odl.library_path).startswith(os.path.realpath('$prefix')), odl.library_path
assert os.path.realpath(odl.find_tool()) == os.path.realpath('$prefix/bin/odl'), odl.find_tool()
print(odl.__version__, odl.library_path)"; show
            check "installed package: example personalise.py" \
                env PYTHONPATH="$site" $py "$src/examples/personalise.py" "$tmp/base.odl" "$data"
            check "installed package: tests" \
                env PYTHONPATH="$site" ODL_TEST_INSTALLED=1 ODL_TEST_EXPERIMENT=0 $py "$src/python/tests/test_odl.py"
            tail -1 "$log" | sed 's/^/      /'
        fi
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
