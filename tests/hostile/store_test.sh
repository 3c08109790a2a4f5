#!/usr/bin/env bash
# The version store under hostile conditions, through the CLI: several
# writers at once, a store held by another process, symlinks planted in the
# store, a slot file that lies about its length, and a session on a store
# that already has versions.
set -u
odl=$1
src=$2
data=/usr/share/datasets/fashion-mnist
pass=0 fail=0
ok() { echo "ok  $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
if [ ! -d "$data" ]; then echo "skip: $data missing"; echo "0 passed, 0 failed"; exit 0; fi
tmp=$(mktemp -d)
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp"
"$odl" train --data "$data" --epochs 1 --limit 12000 --seed 0 --quiet -o base.odl >/dev/null || { bad train; echo "$pass passed, $fail failed"; exit 1; }
# the README scenario up to the first accepted update (and its save)
head -n 954 "$src/examples/session/events.csv" > short.csv
session() { "$odl" session --data "$data" --shift gain:0.8,0.1 --events short.csv --quiet "$@"; }
session --model base.odl --store S >s1.txt 2>&1 && grep -q "stored as version 2 in S" s1.txt && ok "store made: v1 base, v2 update" || { cat s1.txt; bad "store made"; }

# 1. several writers at once: 4 processes x 10 rollbacks between v1 and v2.
# Each takes the lock for its read-modify-write; every one succeeds, and the
# store has no damaged record afterwards.
for w in 1 2 3 4; do
    ( for k in 1 2 3 4 5 6 7 8 9 10; do
          "$odl" rollback --store S --to $(( (k + w) % 2 + 1 )) >/dev/null 2>>"err$w.txt" && echo ok >>"done$w.txt"
      done ) &
done
wait
n=$(cat done*.txt 2>/dev/null | wc -l)
[ "$n" -eq 40 ] && ok "40 concurrent rollbacks all succeed" || { cat err*.txt | sort | uniq -c | head -5; bad "concurrent rollbacks: $n of 40 succeeded"; }
"$odl" versions --store S >v.txt 2>ve.txt && [ ! -s ve.txt ] && grep -qE "^ +\* v[12] " v.txt && ok "store intact after concurrent writers" || { cat ve.txt; bad "store after concurrent writers"; }

# concurrent sessions on one store: each either stores a distinct version or
# refuses because another one changed the store under it; nothing is lost
for w in 1 2 3; do session --store S >"cs$w.txt" 2>&1 & done
wait
ids=$(grep -ho "stored as version [0-9]*" cs*.txt | awk '{print $4}' | sort)
refused=$(grep -l "changed during the session" cs*.txt | wc -l)
nid=$(echo "$ids" | grep -c .)
[ "$nid" -ge 1 ] && [ $((nid + refused)) -eq 3 ] && [ "$(echo "$ids" | uniq | grep -c .)" -eq "$nid" ] && ok "concurrent sessions: $nid stored, $refused refused" || { cat cs*.txt; bad "concurrent sessions"; }
"$odl" versions --store S >v.txt 2>ve.txt
all=1; for i in $ids; do grep -qE "^ +\*? *v$i " v.txt || all=0; done
[ "$all" -eq 1 ] && [ ! -s ve.txt ] && ok "every stored version is listed, none damaged" || { cat v.txt ve.txt; bad "stored versions listed"; }

# 2. a store held by another process: a clear error naming it (no waiting)
( exec 9<>S/LOCK; flock -x 9; echo "$BASHPID" >S/LOCK; exec sleep 60 ) &
holder=$!
for _ in $(seq 50); do [ -s S/LOCK ] && break; sleep 0.1; done
ODL_STORE_WAIT=0 "$odl" rollback --store S --to 1 >/dev/null 2>err.txt; rc=$?
[ $rc -eq 1 ] && grep -q "store S is in use by pid $holder" err.txt && ok "held store: 'in use by pid $holder'" || { cat err.txt; bad "held store (rc $rc)"; }
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; holder=
"$odl" rollback --store S --to 1 >/dev/null 2>err.txt && ok "released when the holder exits" || { cat err.txt; bad "lock released"; }

# 3. symlinks planted in the store are never written through
printf 'precious\n' > victim
for f in head-a.odls.tmp head-b.odls.tmp slot-00.odls.tmp slot-01.odls.tmp slot-02.odls.tmp slot-03.odls.tmp slot-04.odls.tmp slot-05.odls.tmp; do
    ln -sf "$tmp/victim" "S/$f"
done
"$odl" rollback --store S --to 2 >/dev/null 2>err.txt && [ "$(cat victim)" = precious ] && ok "rollback: planted head-*.tmp links not followed" || { cat err.txt; bad "rollback through a planted link"; }
for f in slot-00.odls.tmp slot-01.odls.tmp slot-02.odls.tmp slot-03.odls.tmp slot-04.odls.tmp slot-05.odls.tmp; do ln -sf "$tmp/victim" "S/$f"; done
session --store S >s2.txt 2>&1 && grep -q "stored as version" s2.txt && [ "$(cat victim)" = precious ] && ok "session --store: planted slot-*.tmp links not followed" || { cat s2.txt; bad "session through a planted link"; }
ls S | grep -q '\.tmp$' && bad "stale temporary files left" || ok "no temporary files left in the store"
mkdir T && cp S/STORE S/slot-00.odls T/ && ln -s "$tmp/victim" T/slot-01.odls
"$odl" versions --store T >/dev/null 2>err.txt; grep -q "symlink" err.txt && [ "$(cat victim)" = precious ] && ok "a slot file that is a symlink is refused, not read" || { cat err.txt; bad "symlinked slot"; }

# 4. a slot whose header claims 200 MB: refused from its trailer at once
mkdir L && cp S/STORE L/ && cp S/slot-00.odls L/slot-00.odls
/usr/bin/python3 - L/slot-00.odls <<'PY' || bad "crafting the slot"
import struct, sys, zlib
p = sys.argv[1]
h = bytearray(open(p, "rb").read()[:256])
h[32:36] = struct.pack("<I", 200 << 20)
h[252:256] = struct.pack("<I", zlib.crc32(bytes(h[:252])) & 0xFFFFFFFF)
open(p, "wb").write(bytes(h) + bytes(4096 - 256))
with open(p.replace("slot-00", "slot-01"), "wb") as f:  # the same, sparse, 200 MB
    f.write(bytes(h) + bytes(4096 - 256))
    f.truncate((200 << 20) + 4096)
PY
"$odl" versions --store L >out.txt 2>err.txt; rc=$?
[ $rc -eq 0 ] && grep -q "2 damaged or incomplete records skipped" err.txt && grep -q "trailer" err.txt && ok "200 MB length lie refused from the trailer" || { cat out.txt err.txt; bad "length lie (rc $rc)"; }

# 5. a session on a store that has versions goes on from its current one
"$odl" rollback --store S --to 2 >/dev/null
session --model base.odl --store S >s3.txt 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "its current one (v2) is not base.odl: leave out --model" s3.txt && ok "session refuses a --model that is not the store's current" || { cat s3.txt; bad "session --model on a used store (rc $rc)"; }
cat > back.csv <<'CSV'
rollback,1
CSV
"$odl" session --data "$data" --events back.csv --store S >s4.txt 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "only 0 earlier version" s4.txt && ok "a resumed session cannot roll back past where it started" || { cat s4.txt; bad "resumed rollback (rc $rc)"; }
session --store S >s5.txt 2>&1; rc=$?
new=$(sed -nE 's/.*stored as version ([0-9]+) in S/\1/p' s5.txt)
[ $rc -eq 0 ] && [ -n "$new" ] && grep -q "version $new\$" s5.txt && "$odl" versions --store S 2>/dev/null | grep -qE "^ +\* v$new +v2 " && ok "resumed from v2: the session's v$new is the store's v$new (parent v2)" || { cat s5.txt; bad "resumed session"; }
printf 'rollback,1\n' > back.csv
"$odl" session --data "$data" --events short.csv --store S --quiet >/dev/null 2>&1
cat short.csv back.csv > upback.csv
"$odl" session --data "$data" --shift gain:0.8,0.1 --events upback.csv --store S --quiet >s6.txt 2>&1
cur=$(sed -nE 's/.*rollback 1: version ([0-9]+) is current/\1/p' s6.txt)
[ -n "$cur" ] && "$odl" versions --store S 2>/dev/null | grep -qE "^ +\* v$cur " && ok "after the log's rollback the session and the store agree (v$cur)" || { cat s6.txt; "$odl" versions --store S; bad "session and store agree after rollback"; }

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
