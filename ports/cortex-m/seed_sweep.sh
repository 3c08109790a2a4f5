#!/usr/bin/env bash
# ports/cortex-m/seed_sweep.sh — how much the firmware's results owe to its
# random stream: builds firmware.c natively (host_target.c; arenas enlarged
# for 64-bit pointers, so the learners' sizes and guard sets match the
# device's; the headline strategies only) and runs both scenarios with the
# learner's random stream seeded 1..N (the device uses FW_SEED 7). Prints,
# per seed, the drift's original and drifted gains in points and the new
# classes' accuracy and old-class change, and how many seeds meet each
# scenario's targets (drifted +8 with original down 1 at most; new classes
# 80% with old down 3 at most). Needs run.sh's generated data (build-mcu/gen)
# and a host build (build/libodl.a). SWEEP_VERBOSE=1 prints each seed's
# drift gate decisions.
#
#   bash ports/cortex-m/seed_sweep.sh [N] [-DFW_DRIFT_STRATEGY=ODL_STRATEGY_REPLAY ...]
#   bash ports/cortex-m/seed_sweep.sh 8 -DFW_NOISE_EXAMPLES=0     # the gate counting every example
#   bash ports/cortex-m/seed_sweep.sh 8 -DFW_GATE_OFF             # diagnosis: every update accepted
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GEN=${ODL_MCU_BUILD:-$ROOT/build-mcu}/gen
LIB=${ODL_HOST_BUILD:-$ROOT/build}/libodl.a
N=8
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then N=$1; shift; fi
[ -s "$GEN/data.c" ] && [ -s "$LIB" ] || { echo "seed_sweep.sh: run ports/cortex-m/run.sh and build the host first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in data model_data model8_data; do cc -O1 -c -I"$GEN" "$GEN/$f.c" -o "$tmp/$f.o"; done
met=0 nmet=0
for seed in $(seq 1 "$N"); do
    # host structures are larger: arena B grows by the difference in the learner's and head source's handles
    cc -std=c11 -O2 -Wall -Wextra -Wshadow -Werror -ffp-contract=off -I"$ROOT/include" -I"$ROOT/ports/cortex-m" -I"$GEN" \
        -DFW_ARENA_A=16384 -DFW_ARENA_B="${SWEEP_ARENA_B:-82800}" -DSTORE_HANDLE=1500 -DFW_EVAL_SMALL=1 -DFW_HEADLINE_ONLY -DFW_SEED="$seed" "$@" \
        "$ROOT/ports/cortex-m/firmware.c" "$ROOT/ports/cortex-m/host_target.c" "$tmp"/*.o "$LIB" -lm -o "$tmp/fw"
    "$tmp/fw" >"$tmp/log" || true
    [ "${SWEEP_VERBOSE:-0}" = 1 ] && grep -E '^\[drift\] update' "$tmp/log" | head -"${SWEEP_VERBOSE_LINES:-5}" | sed 's/^/    /'
    line=$(grep -m1 '^STRATEGY scenario=drift' "$tmp/log" || true)
    nline=$(grep -m1 '^SCENARIO new-classes' "$tmp/log" || true)
    read -r st ab aa bb ba <<<"$(echo "$line" | sed -E 's/.*strategy=([a-z-]+) .*a_before=([0-9]+) a_after=([0-9]+) b_before=([0-9]+) b_after=([0-9]+).*/\1 \2 \3 \4 \5/')"
    da=$((aa - ab)) db=$((ba - bb))
    ok=no
    if [ $db -ge 80 ] && [ $da -ge -10 ]; then ok=yes; met=$((met + 1)); fi
    read -r nst nob noa nnb nna <<<"$(echo "$nline" | sed -E 's/.*strategy=([a-z-]+) old_before=([0-9]+) old_after=([0-9]+) new_before=([0-9]+) new_after=([0-9]+).*/\1 \2 \3 \4 \5/')"
    nok=no
    if [ "$nna" -ge 800 ] && [ $((noa - nob)) -ge -30 ]; then nok=yes; nmet=$((nmet + 1)); fi
    awk -v s="$seed" -v st="$st" -v a="$da" -v b="$db" -v ok="$ok" -v nst="$nst" -v no="$((noa - nob))" -v nn="$nna" -v nok="$nok" \
        'BEGIN { printf "seed %2d  %-10s original %+5.1f  drifted %+5.1f  targets met: %-3s | new classes (%s) %5.1f%%, old %+5.1f  targets met: %s\n", s, st, a / 10, b / 10, ok, nst, nn / 10, no / 10, nok }'
done
echo "$met of $N seeds meet the drift targets; $nmet of $N the new-class targets"
