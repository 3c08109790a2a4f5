#!/usr/bin/env bash
# odl info --budget: every strategy with its bytes and the instructions per
# update the Cortex-M4F firmware measured. The numbers are embedded from
# ports/cortex-m/baseline.txt when odl is built: the table must show exactly
# the baseline's values (a stale or hand-copied table fails here), --baseline
# F must read F instead, and a budget where nothing fits must say what would.
set -u
odl=$1
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
base=$src/ports/cortex-m/baseline.txt
data=/usr/share/datasets/fashion-mnist
pass=0 fail=0
ok() { echo "ok  $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the counts are the edge-cnn firmware's: they are shown for an edge-cnn model
[ -d "$data" ] || { echo "FAIL Fashion-MNIST not at $data (scripts/deps.sh installs dataset-fashion-mnist)"; exit 1; }
"$odl" train --data "$data" --arch edge-cnn --epochs 1 --limit 300 --seed 0 --quiet -o "$tmp/cnn.odl" >/dev/null 2>&1
model=$tmp/cnn.odl
strategies="replay ewc ewc-online lwf ncm slda bias unfreeze"

# the strategy rows: "name fp32 fits int8 fits insn"
rows() { awk '/^  strategy +FP32 base/ { on = 1; next } on && /^  [a-z-]+ / { print } on && !/^  / { on = 0 }' "$1"; }
insn_of() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }' "$2"; }

"$odl" info "$model" --budget 1M >"$tmp/out.txt" 2>&1
rows "$tmp/out.txt" >"$tmp/rows.txt"
[ "$(wc -l <"$tmp/rows.txt")" -eq 8 ] && ok "budget: a row for each of the 8 strategies" ||
    bad "budget: rows: $(cat "$tmp/rows.txt")"
n_measured=0
for st in $strategies; do
    key=insn_update_$(echo "$st" | tr - _)
    want=$(insn_of "$key" "$base")
    got=$(awk -v s="$st" '$1 == s { print $6 }' "$tmp/rows.txt")
    [ "$want" != "-" ] && n_measured=$((n_measured + 1))
    [ "$got" = "$want" ] && ok "budget: $st's instructions per update are baseline.txt's ($want)" ||
        bad "budget: $st shows '$got', baseline.txt has '$want'"
done
# every strategy the firmware runs on the device has a measured cost (unfreeze and slda do not fit 128 KB)
[ "$n_measured" -ge 6 ] && ok "budget: the baseline measures $n_measured strategies" ||
    bad "budget: only $n_measured strategies measured in baseline.txt"
grep -q "^recommended: --strategy [a-z-]* ([0-9]* bytes):" "$tmp/out.txt" && [ -n "$(grep -A1 '^recommended:' "$tmp/out.txt" | tail -1 | tr -d ' ')" ] &&
    ok "budget: a recommendation with its reason" || bad "budget: no recommendation: $(tail -3 "$tmp/out.txt")"

"$odl" info "$src/tests/data/mlp-1.0.odl" --budget 1M >"$tmp/mlp.txt" 2>&1
[ -z "$(rows "$tmp/mlp.txt" | awk '$6 != "-"')" ] && ok "budget: no edge-cnn counts for another model" ||
    bad "budget: an mlp shows the edge-cnn firmware's counts: $(rows "$tmp/mlp.txt")"

# --baseline F: F's numbers, not the embedded ones; an unreadable F is an error
printf 'insn_update_lwf 1234567\n' >"$tmp/b.txt"
"$odl" info "$model" --budget 1M --baseline "$tmp/b.txt" >"$tmp/out2.txt" 2>&1
rows "$tmp/out2.txt" | awk '$1 == "lwf" { print $6 }' | grep -qx 1234567 && ok "budget: --baseline F is read" ||
    bad "budget: --baseline F not read"
"$odl" info "$model" --budget 1M --baseline "$tmp/none.txt" >/dev/null 2>"$tmp/err.txt"
[ $? -eq 2 ] && grep -q -- "--baseline" "$tmp/err.txt" && ok "budget: a missing --baseline file is an error" ||
    bad "budget: missing --baseline accepted"

# an edge-cnn whose FP32 inference alone exceeds 64K: the answer names what fits
if [ -d "$data" ]; then
    "$odl" info "$tmp/cnn.odl" --budget 64K >"$tmp/out3.txt" 2>&1
    rc=$?
    grep -q "INT8 base" "$tmp/out3.txt" && grep -qE "^  --strategy [a-z-]+ .*fits \([0-9]+ bytes\)" "$tmp/out3.txt" &&
        ok "budget 64K, FP32 edge-cnn: says which strategy fits, with the INT8 base" ||
        bad "budget 64K: $(tail -4 "$tmp/out3.txt")"
    [ $rc -ne 0 ] && ok "budget 64K: exits non-zero (nothing fits as asked)" || bad "budget 64K: exit 0"
    bytes=$(grep -oE "fits \([0-9]+ bytes\)" "$tmp/out3.txt" | grep -oE "[0-9]+" | head -1)
    [ -n "$bytes" ] && [ "$bytes" -le 65536 ] && ok "budget 64K: the suggestion fits ($bytes bytes)" ||
        bad "budget 64K: suggestion of '$bytes' bytes"
    # the suggested options reproduce a fitting plan
    opts=$(grep -oE "^  --strategy [a-z-]+ .* fits" "$tmp/out3.txt" | sed 's/ fits$//')
    "$odl" info "$tmp/cnn.odl" --budget 64K $opts >"$tmp/out4.txt" 2>&1
    rows "$tmp/out4.txt" | awk -v s="$(echo $opts | awk '{print $2}')" '$1 == s { print $5 }' | grep -qx yes &&
        ok "budget 64K: with the suggested options it fits (INT8 base)" || bad "budget 64K: '$opts' does not fit"
else
    echo "skip: $data missing (the edge-cnn checks)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
