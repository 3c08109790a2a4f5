#!/usr/bin/env bash
# Every learner strategy through `odl session --strategy`: the README's
# scenario (a good update accepted, a mislabelled one rolled back), the
# strategy named in the store's versions, its state carried by the store to
# the next session, and shadow evaluation deciding a candidate.
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
ev="$src/examples/session/events.csv"
for st in replay ewc ewc-online lwf ncm slda bias unfreeze; do
    out=$("$odl" session --model base.odl --data "$data" --shift gain:0.7,0.2 --events "$ev" --strategy "$st" \
          --store "store-$st" 2>&1)
    echo "$out" | grep -q "^strategy: $st" && ok "$st: named" || bad "$st: named"
    echo "$out" | grep -q "update accepted" && ok "$st: good update accepted" || bad "$st: good update"
    echo "$out" | grep -q "update rolled back" && ok "$st: mislabelled update rolled back" || bad "$st: mislabelled update"
    "$odl" versions --store "store-$st" 2>&1 | grep -qE "v2 .*$st" && ok "$st: the store's v2 names the strategy" \
        || bad "$st: store strategy"
done
# the store carries the strategy's state: a second session goes on from it
for st in ewc ncm slda; do
    "$odl" rollback --store "store-$st" --to 2 >/dev/null 2>&1
    out=$("$odl" session --store "store-$st" --data "$data" --shift gain:0.7,0.2 --events "$ev" --strategy "$st" 2>&1)
    echo "$out" | grep -q "^strategy: $st (state from the store's version)" && ok "$st: state from the store" \
        || bad "$st: state from the store"
done
# bad names are refused with the choices
"$odl" session --model base.odl --data "$data" --events "$ev" --strategy sgd >/dev/null 2>err.txt
[ $? -eq 2 ] && grep -q "replay, ewc" err.txt && ok "unknown strategy refused" || bad "unknown strategy"
# shadow evaluation: the accepted update waits, then is decided
out=$("$odl" session --model base.odl --data "$data" --shift gain:0.7,0.2 --events "$ev" --shadow 10 --store sh 2>&1)
echo "$out" | grep -q "a candidate for the next 10" && ok "shadow: candidate waits" || bad "shadow: candidate"
echo "$out" | grep -qE "shadow: candidate (promoted|dropped): [0-9.]+ of 10 right" && ok "shadow: decided" \
    || bad "shadow: decided"
echo "$out" | grep -qE "^shadow: [0-9]+ promoted, [0-9]+ dropped" && ok "shadow: summary" || bad "shadow: summary"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
