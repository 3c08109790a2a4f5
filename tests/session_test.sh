#!/usr/bin/env bash
# The README's safe-personalisation scenario, end to end through the CLI:
# drift detected on the user's sensor (gain:0.7,0.2), a good update accepted
# that raises the accuracy the gate reports (and the drifted test set's), a
# mislabelled update rolled back, a rollback, and the same log giving the same bytes.
set -u
odl=$1
src=$(cd "$(dirname "$0")/.." && pwd)
data=/usr/share/datasets/fashion-mnist
pass=0 fail=0
ok() { echo "ok  $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
if [ ! -d "$data" ]; then echo "skip: $data missing"; echo "0 passed, 0 failed"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$odl" train --data "$data" --epochs 1 --limit 12000 --seed 0 --quiet -o base.odl >/dev/null || { bad train; echo "$pass passed, $fail failed"; exit 1; }
shift=gain:0.7,0.2
run() { "$odl" session --model base.odl --data "$data" --shift $shift --events "$src/examples/session/events.csv" --quiet "$@"; }
out=$(run --store store 2>&1); echo "$out"
echo "$out" | grep -qE "drift detected at prediction [0-9]+: [0-9]+ predictions after the first drifted sample" && ok drift || bad drift
delay=$(echo "$out" | sed -nE 's/.*: ([0-9]+) predictions after the first drifted sample/\1/p' | head -1)
[ -n "$delay" ] && [ "$delay" -le 150 ] && ok "drift within 150 samples ($delay)" || bad "drift delay '$delay'"
echo "$out" | grep -q "no drifted sample yet" && bad "false drift alarm" || ok "no false alarm"
echo "$out" | grep -q "update accepted" && ok "good update accepted" || bad "good update"
# the good update helps: the held-out user examples' accuracy it reports rises
# ("new B -> A on N"), and so does the whole drifted test set's
good=$(echo "$out" | grep -m1 -- "-> update accepted")
gain=$(echo "$good" | sed -nE 's/.*new ([0-9.]+) -> ([0-9.]+) on ([0-9]+).*/\1 \2 \3/p')
set -- $gain
[ $# -eq 3 ] && awk -v b="$1" -v a="$2" 'BEGIN { exit !(a > b) }' && ok "good update raises the held-out accuracy ($1 -> $2 on $3)" ||
    bad "good update shows no gain: '$good'"
echo "$good" | grep -q "earlier user" && bad "the first update names an earlier user set it did not measure" ||
    ok "the first update names only the sets it measured"
echo "$out" | grep -q "update rolled back" && ok "mislabelled update rolled back" || bad "mislabelled update"
echo "$out" | grep -q "rollback 1: version 1 is current" && ok rollback || bad rollback
echo "$out" | grep -q -- "-1\.000" && bad "sentinel -1.000 in the session output" || ok "no sentinel values"
echo "$out" | grep -qE "rejected so far: *$" && bad "empty 'rejected so far:'" || ok "'rejected so far' never empty"
acc_of() { "$odl" eval "$1" --data "$data" --shift $shift 2>/dev/null | sed -nE '1s/^accuracy ([0-9.]+)%.*/\1/p'; }
a_base=$(acc_of base.odl); a_v2=$([ -f session-v2.odl ] && acc_of session-v2.odl)
[ -n "$a_v2" ] && ok "saved version evaluates" || bad "saved version"
[ -n "$a_base" ] && [ -n "$a_v2" ] && awk -v b="$a_base" -v a="$a_v2" 'BEGIN { exit !(a > b + 3) }' &&
    ok "the drifted test set: base $a_base% -> saved version $a_v2%" || bad "drifted test set: base '$a_base' -> v2 '$a_v2'"
cp session-v2.odl first.odl
run >/dev/null 2>&1
cmp -s session-v2.odl first.odl && ok "replay is bit-identical" || bad "replay differs"
# the store: the base (v1), the accepted update (v2); the session rolled back to v1
vs=$("$odl" versions --store store 2>&1); echo "$vs"
echo "$vs" | grep -qE "^ +\* v1 .*base" && ok "store: v1 (base) current after the session's rollback" || bad "store current"
echo "$vs" | grep -qE "^ +v2 +v1 .*update accepted" && ok "store: v2 is the accepted update" || bad "store v2"
"$odl" rollback --store store --to 2 >/dev/null 2>&1 && "$odl" versions --store store 2>&1 | grep -qE "^ +\* v2" && ok "store: back to v2" || bad "store --to 2"
"$odl" rollback --store store --steps 5 >/dev/null 2>err.txt; [ $? -ne 0 ] && grep -q "^odl: " err.txt && ok "store: too many steps refused" || bad "store steps"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
