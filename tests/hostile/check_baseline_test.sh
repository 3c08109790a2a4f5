#!/usr/bin/env bash
# ports/cortex-m/check_baseline.py, the firmware's 10% cost check: a cost over
# +10%, a baseline value no longer measured, a measured value the baseline
# does not hold (a new strategy's insn_update_<name>) and malformed lines all
# fail; costs within 10% or shrinking pass; the recorded baseline parses.
set -u
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
check=$src/ports/cortex-m/check_baseline.py
py=${PYTHON:-python3}
pass=0 fail=0
ok() { echo "ok  $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# comment\ninsn_update_lwf 1000\nbytes_learner_lwf 500\n' >"$tmp/base.txt"
# run NAME EXPECTED_RC NEEDLE MEASURED_CONTENT
run() {
    printf "$4" >"$tmp/meas.txt"
    "$py" "$check" "$tmp/base.txt" "$tmp/meas.txt" >"$tmp/out.txt" 2>&1
    rc=$?
    if [ "$rc" -eq "$2" ] && grep -q -- "$3" "$tmp/out.txt" && ! grep -q Traceback "$tmp/out.txt"; then ok "$1"
    else bad "$1 (exit $rc): $(tail -3 "$tmp/out.txt")"; fi
}
run "equal costs pass" 0 "^ok" 'insn_update_lwf 1000\nbytes_learner_lwf 500\n'
run "+10% passes" 0 "^ok" 'insn_update_lwf 1100\nbytes_learner_lwf 500\n'
run "shrinking passes" 0 "^ok" 'insn_update_lwf 10\nbytes_learner_lwf 5\n'
run "+11% fails" 1 "OVER" 'insn_update_lwf 1110\nbytes_learner_lwf 500\n'
run "a baseline value not measured fails" 1 "MISSING" 'insn_update_lwf 1000\n'
run "a new measured value fails until recorded" 1 "NOT IN THE BASELINE" \
    'insn_update_lwf 1000\nbytes_learner_lwf 500\ninsn_update_ncm 7\n'
run "a malformed line is named" 1 "meas.txt:2" 'insn_update_lwf 1000\nbytes_learner_lwf 5 0\n'
run "a non-integer value is named" 1 "not an integer" 'insn_update_lwf 1000\nbytes_learner_lwf lots\n'
cp "$src/ports/cortex-m/baseline.txt" "$tmp/meas.txt"
"$py" "$check" "$src/ports/cortex-m/baseline.txt" "$tmp/meas.txt" >"$tmp/out.txt" 2>&1 &&
    grep -q "insn_update_lwf" "$tmp/out.txt" && ok "the recorded baseline parses and holds per-strategy costs" ||
    bad "the recorded baseline: $(tail -3 "$tmp/out.txt")"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
