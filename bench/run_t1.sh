#!/bin/sh
# docs/protocol.md T1 and M1: odl (bench_core) and PyTorch (bench/torch_t1.py, one
# and two threads) in one invocation, interleaved over several rounds; prints
# the table (median of the per-round medians, ratio odl/PyTorch), callgrind
# instruction counts per odl row, and the peak RSS of an S1 replay adaptation
# process for both. See docs/speed.md.
#
# usage: bench/run_t1.sh [-b BUILD_DIR] [-r REPS] [-n ROUNDS] [-w WORK_DIR]
#                        [--no-callgrind] [--no-m1]
#   BUILD_DIR  a Release build of odl           (default: build)
#   REPS       calls per row and round          (default: 200)
#   ROUNDS     odl/PyTorch rounds, interleaved  (default: 3)
#   WORK_DIR   raw JSON, callgrind files, the M1 base model (default: a temp dir)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=build reps=200 rounds=3 work= callgrind=1 m1=1
while [ $# -gt 0 ]; do
    case $1 in
    -b) build=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    -n) rounds=$2; shift 2 ;;
    -w) work=$2; shift 2 ;;
    --no-callgrind) callgrind=0; shift ;;
    --no-m1) m1=0; shift ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
    esac
done
data=/usr/share/datasets/fashion-mnist
py=/usr/bin/python3
bench=$build/bench/bench_core
odl=$build/odl
[ -x "$bench" ] || { echo "run_t1: $bench not found (build first)" >&2; exit 1; }
if [ -z "$work" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

echo "T1: $rounds rounds of odl, PyTorch 1 thread, PyTorch 2 threads ($reps reps per row)" >&2
i=1
while [ "$i" -le "$rounds" ]; do
    "$bench" --data "$data" --reps "$reps" >"$work/odl_$i.json"
    OMP_NUM_THREADS=1 "$py" "$here/torch_t1.py" --data "$data" --reps "$reps" --threads 1 >"$work/torch1_$i.json"
    OMP_NUM_THREADS=2 "$py" "$here/torch_t1.py" --data "$data" --reps "$reps" --threads 2 >"$work/torch2_$i.json"
    i=$((i + 1))
done

: >"$work/callgrind.txt"
if [ "$callgrind" = 1 ] && command -v valgrind >/dev/null; then
    echo "T1: callgrind instruction counts" >&2
    for spec in raw_b1:20 raw_b16:4 latent_b1:200 latent_b16:200 infer_b1:20 full_b16:2 train_b64:1; do
        row=${spec%%:*} n=${spec#*:}
        out=$work/callgrind.$row
        valgrind --tool=callgrind --toggle-collect=bench_row_iters --callgrind-out-file="$out" \
            "$bench" --data "$data" --row "$row" --iters "$n" >/dev/null 2>&1
        ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" | head -n1)
        [ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out" | head -n1)
        echo "$row $n $ir" >>"$work/callgrind.txt"
    done
fi

: >"$work/m1.txt"
if [ "$m1" = 1 ] && [ -x "$odl" ] && [ -x /usr/bin/time ]; then
    echo "M1: peak RSS of an S1 replay adaptation (odl adapt, and PyTorch)" >&2
    [ -f "$work/base.odl" ] || "$odl" train --data "$data" --limit 4096 --epochs 1 --quiet -o "$work/base.odl" >/dev/null
    # the model a device receives carries its replay buffer (filled on the host
    # from the original data, not measured); the device's S1 adaptation then
    # goes on from it: that process is what M1 measures
    "$odl" adapt "$work/base.odl" --data "$data" --limit 100 --shift gain:0.8,0.1 --strategy replay \
        --replay-from "$data" --replay-size 200 --quiet -o "$work/shipped.odl" >/dev/null
    /usr/bin/time -f %M -o "$work/rss_odl" "$odl" adapt "$work/shipped.odl" --data "$data" --limit 100 \
        --shift gain:0.8,0.1 --strategy replay --quiet -o "$work/adapted.odl" >/dev/null
    /usr/bin/time -f %M -o "$work/rss_torch" "$py" "$here/torch_t1.py" --s1 --data "$data" >/dev/null
    echo "odl $(tail -n1 "$work/rss_odl")" >>"$work/m1.txt"
    echo "pytorch $(tail -n1 "$work/rss_torch")" >>"$work/m1.txt"
fi

"$py" "$here/t1_table.py" "$work"
