#!/usr/bin/env bash
# tests/hostile/data_test.sh — data that does not fit the model, and data
# (or models) that ask for more memory than the tool may take.
#
#   bash tests/hostile/data_test.sh PATH/TO/odl SOURCE_DIR
#
# Each case must end as one "odl: " line on stderr with the expected exit
# status (never a crash, a sanitizer report or a silent run); the last line
# is "N passed, N failed".
set -u
ODL=$1
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_data_test.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
TIMEOUT=
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 120"

# expect NAME STATUS NEEDLE... -- ARGS...: odl ARGS exits STATUS with one
# "odl: " line on stderr containing every NEEDLE.
expect() {
    local name=$1 want=$2
    shift 2
    local needles=()
    while [ "$1" != "--" ]; do
        needles+=("$1")
        shift
    done
    shift
    $TIMEOUT "$ODL" "$@" >out.txt 2>err.txt
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit status $rc (want $want): $(head -c 300 err.txt | tr '\n' '|')"
        return
    fi
    if [ "$(wc -l <err.txt)" -ne 1 ] || ! head -n 1 err.txt | grep -q '^odl: '; then
        fail "$name" "stderr is not one 'odl: ' line: $(head -c 300 err.txt | tr '\n' '|')"
        return
    fi
    local n
    for n in ${needles[@]+"${needles[@]}"}; do
        if ! grep -qF -- "$n" err.txt; then
            fail "$name" "'$(cat err.txt)' does not mention '$n'"
            return
        fi
    done
    ok "$name"
}

# ---- a small model on 2 features, and data of other shapes -------------------
awk 'BEGIN { srand(1); print "label,x,y"; for (i = 0; i < 300; i++) { c = i % 3;
     printf "%d,%.3f,%.3f\n", c, c * 2 + rand(), (c == 2) * 3 + rand() } }' >two.csv
awk 'BEGIN { srand(2); print "label,x"; for (i = 0; i < 300; i++) printf "%d,%.3f\n", i % 3, rand() }' >one.csv
"$ODL" train --data two.csv --arch mlp:8 --epochs 1 --quiet -o base.odl >/dev/null 2>&1 ||
    { echo "FAIL setup: odl train"; echo "0 passed, 1 failed"; exit 1; }
printf 'predict,orig,0\npredict,orig,1\nlabel,user,2,1\nlabel,user,3,2\nupdate\n' >ev.csv

expect "session: one-feature --data" 1 "one.csv" "1x1x1" "1x1x2" -- \
    session --model base.odl --data one.csv --events ev.csv --quiet
expect "session: one-feature --old" 1 "one.csv" "1x1x1" "1x1x2" -- \
    session --model base.odl --data two.csv --old one.csv --events ev.csv --quiet
expect "adapt: one-feature --replay-from" 1 "one.csv" "1x1x1" "1x1x2" -- \
    adapt base.odl --data two.csv --replay-from one.csv --strategy replay -o out.odl --quiet
expect "adapt: one-feature --data" 1 "one.csv" "1x1x1" "1x1x2" -- \
    adapt base.odl --data one.csv --strategy naive -o out.odl --quiet
expect "eval: one-feature --data" 1 "1x1x1" "1x1x2" -- eval base.odl --data one.csv
expect "quantize: one-feature --calib" 1 "one.csv" "1x1x1" "1x1x2" -- \
    quantize base.odl --calib one.csv -o q.odl

# IDX images of 28x27 for a 28x28 model: a clear error, not a misaligned run
if [ -x "$PY" ]; then
    "$PY" - <<'PYEOF'
import gzip, struct
def idx(path, n, h, w, fill=7, labels=True):
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, h, w) + bytes([fill]) * (n * h * w))
    if labels:
        with open(path.replace("images", "labels").replace("idx3", "idx1"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + bytes([k % 10 for k in range(n)]))
idx("sq-images-idx3-ubyte", 40, 28, 28)
idx("odd-images-idx3-ubyte", 40, 28, 27)
# a header claiming 30 images of 8192x8192 in an 8 KB file, plain and gzip
with open("big-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 30, 8192, 8192) + bytes(8192))
with open("big-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, 30) + bytes(30))
with gzip.open("bigz-images-idx3-ubyte.gz", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 30, 8192, 8192) + bytes(8192))
with gzip.open("bigz-labels-idx1-ubyte.gz", "wb") as f:
    f.write(struct.pack(">II", 0x801, 30) + bytes(30))
# a gzip bomb: 64 MB of zeros declared honestly (a few tens of KB compressed)
n = 1000
with gzip.open("bomb-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
    f.write(struct.pack(">IIII", 0x803, n, 256, 256))
    f.write(bytes(256 * 256) * n)
with gzip.open("bomb-labels-idx1-ubyte.gz", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(n))
with gzip.open("bomb.csv.gz", "wb", compresslevel=9) as f:
    f.write(b"0" + b",0" * (1 << 24) + b"\n")
PYEOF
    "$ODL" train --data sq-images-idx3-ubyte --arch mlp:4 --epochs 1 --quiet -o sq.odl >/dev/null 2>&1 ||
        fail "setup" "odl train on 28x28 IDX"
    printf 'predict,orig,0\nlabel,user,1,1\nupdate\n' >ev2.csv
    expect "session: 28x27 IDX for a 28x28 model" 1 "1x28x27" "1x28x28" -- \
        session --model sq.odl --data odd-images-idx3-ubyte --events ev2.csv --quiet
    expect "eval: 28x27 IDX for a 28x28 model" 1 "1x28x27" "1x28x28" -- \
        eval sq.odl --data odd-images-idx3-ubyte
    expect "adapt: 28x27 IDX --replay-from" 1 "1x28x27" "1x28x28" -- \
        adapt sq.odl --data sq-images-idx3-ubyte --replay-from odd-images-idx3-ubyte --strategy replay \
        -o out.odl --quiet
    mkdir -p mixed
    cp sq-images-idx3-ubyte mixed/train-images-idx3-ubyte
    cp sq-labels-idx1-ubyte mixed/train-labels-idx1-ubyte
    cp odd-images-idx3-ubyte mixed/t10k-images-idx3-ubyte
    cp odd-labels-idx1-ubyte mixed/t10k-labels-idx1-ubyte
    expect "experiment: 28x27 test split, 28x28 train split" 1 "1x28x27" "1x28x28" -- \
        experiment s1 --data mixed --seeds 1
    expect "IDX header: 30 images of 8192x8192 in 8 KB" 1 "truncated" "30 images of 8192x8192" -- \
        eval sq.odl --data big-images-idx3-ubyte
    expect "IDX header (gzip): 30 images of 8192x8192" 1 "memory limit" "--max-memory" -- \
        eval sq.odl --data bigz-images-idx3-ubyte.gz
    expect "gzip IDX bomb over --max-memory" 1 "memory limit" "--max-memory" -- \
        eval sq.odl --data bomb-images-idx3-ubyte.gz --max-memory 16M
    expect "gzip CSV bomb over --max-memory" 1 "memory limit" "--max-memory" -- \
        eval base.odl --data bomb.csv.gz --max-memory 8M
fi

# ---- files that end oddly, bad command lines -----------------------------------
gzip -c two.csv >tail.csv.gz && printf 'junk' >>tail.csv.gz
expect "gzip CSV with data after the stream" 1 "after the end of the gzip stream" -- \
    eval base.odl --data tail.csv.gz
expect "train --classes 9-0 (a bad command line)" 2 "9-0" -- train --data two.csv --classes 9-0 -o x.odl
expect "eval --classes 9-0 (a bad command line)" 2 "9-0" -- eval base.odl --data two.csv --classes 9-0
expect "train --arch mlp:0 (a bad command line)" 2 "mlp:0" -- train --data two.csv --arch mlp:0 -o x.odl
expect "train --arch mlp:4,-1 (a bad command line)" 2 "mlp:4,-1" -- train --data two.csv --arch mlp:4,-1 -o x.odl

# ---- the memory limit ----------------------------------------------------------
expect "model plan over --max-memory" 1 "memory limit" "--max-memory" -- \
    eval base.odl --data two.csv --max-memory 1K
expect "learner plan over --max-memory (global option first)" 1 "memory limit" -- \
    --max-memory=2K session --model base.odl --data two.csv --events ev.csv --quiet
expect "--max-memory: not a size" 2 "--max-memory" -- eval base.odl --data two.csv --max-memory lots
expect "--max-memory: zero" 2 "--max-memory" -- info base.odl --max-memory 0
expect "--max-memory: no value" 2 "--max-memory" -- info base.odl --max-memory
if "$ODL" eval base.odl --data two.csv --max-memory 64M >out.txt 2>err.txt; then
    ok "--max-memory 64M: a small model runs"
else
    fail "--max-memory 64M: a small model runs" "$(head -c 300 err.txt)"
fi

# a model file whose replay capacity field alone was raised (2^24 slots): the
# learner's plan is refused against the limit before the buffer is allocated
if [ -x "$PY" ] && "$ODL" adapt base.odl --data two.csv --replay-from two.csv --strategy replay -o rp.odl \
    --quiet >/dev/null 2>&1; then
    "$PY" - <<'PYEOF'
import struct, zlib
b = bytearray(open("rp.odl", "rb").read())
p = 16
while p < len(b):
    t, ln = bytes(b[p:p + 4]), struct.unpack("<Q", b[p + 8:p + 16])[0]
    if t == b"RPLY":
        b[p + 20:p + 24] = struct.pack("<i", 1 << 24)
        b[p + 4:p + 8] = struct.pack("<I", zlib.crc32(bytes(b[p:p + 4]) + bytes(b[p + 8:p + 16 + ln])))
    p += 16 + (ln + 15) // 16 * 16
open("rp_big.odl", "wb").write(b)
PYEOF
    expect "raised replay capacity over --max-memory" 1 "memory limit" "--max-memory" -- \
        adapt rp_big.odl --data two.csv --strategy replay -o out.odl --quiet --max-memory 100M
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
