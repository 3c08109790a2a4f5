#!/usr/bin/env bash
# tests/fleet/round_test.sh — one federated round as a deployment runs it: a
# Mosquitto broker on a free loopback port, a global edge-cnn, six devices
# adapting to their own drifted Fashion-MNIST users (one of them poisoning:
# its delta reversed and boosted, claiming many examples) and publishing
# signed head deltas (plus an unsigned message); the collector with a
# persistent session (deltas published while it is not running reach it
# when it comes back; with a clean session they do not); `odl fleet
# aggregate` with the median publishing a version that beats the global
# model on the held-out drifted data; plain averaging worse than the median
# with the poisoner; deltas against another model or head, corrupt, unsigned
# or of another round set aside again by the aggregator, counted by reason;
# the new global head back to a device as a retained message signed by the
# server (publish-global / fetch-global): the device's copy equal to the
# server's model, replays, a wrong key, a damaged message and a device
# already up to date refused, and its next delta accepted by the server.
#
#   bash tests/fleet/round_test.sh PATH/TO/odl SOURCE_DIR
#
# Skips (exit 0, with a message) when the mosquitto broker or Fashion-MNIST
# is missing; CI installs both.
set -u
ODL=$1
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
BUILD=$(dirname "$ODL")
PY=/usr/bin/python3
TOOL=$SRC/tests/fleet/delta_tool.py
DATA=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
export ODL_LIBRARY=$BUILD ODL_TOOL=$ODL PYTHONPATH=$SRC/python

MOSQUITTO=$(command -v mosquitto || true)
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
if [ -z "$MOSQUITTO" ]; then
    echo "SKIP: the mosquitto broker is not installed (Debian: apt-get install mosquitto)"
    exit 0
fi
[ -d "$DATA" ] || { echo "SKIP: $DATA missing"; exit 0; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_round_test.XXXXXX") || exit 2
BROKER_PID=
COLLECTOR=
cleanup() {
    [ -n "$COLLECTOR" ] && kill "$COLLECTOR" 2>/dev/null
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 2
umask 022

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# ---- the global model and six devices ---------------------------------------------------
# The fleet's users see dimmer, washed-out images than the global model was
# trained on (gain 0.5..0.6, offset 0.2..0.3), each its own; the server's
# held-out set has the family's middle drift.
"$ODL" train --data "$DATA" --arch edge-cnn --epochs 1 --limit 3000 --seed 0 -o global.odl --quiet >/dev/null ||
    { echo "FAIL cannot train the global model"; exit 1; }
shifts=("gain:0.5,0.25" "gain:0.55,0.3" "gain:0.6,0.2" "gain:0.5,0.2" "gain:0.6,0.3" "gain:0.55,0.25")
for i in 1 2 3 4 5 6; do
    "$ODL" adapt global.odl --data "$DATA" --limit 300 --seed "$i" --strategy replay --replay-from "$DATA" --epochs 3 \
        --shift "${shifts[$((i - 1))]}" -o "a$i.odl" --quiet >/dev/null ||
        { echo "FAIL cannot adapt device $i"; exit 1; }
done
# device 6 is compromised: it sends its change reversed and ten times larger
$PY - <<'EOF' || { echo "FAIL cannot make the poisoned model"; exit 1; }
import odl
g, a = odl.load("global.odl"), odl.load("a6.odl")
gw, aw = g.get_weights(False), a.get_weights(False)
a.set_weights([x + (-10.0) * (y - x) for x, y in zip(gw, aw)], False)
a.save("a6.odl")
EOF
: >keys.txt
chmod 600 keys.txt
for i in 1 2 3 4 5 6; do
    "$ODL" fleet keygen --device "$i" -o "k$i.key" >>keys.txt || { echo "FAIL keygen $i"; exit 1; }
done

# ---- the broker ---------------------------------------------------------------------------
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >mosquitto.conf <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 10000
user $(id -un)
EOF
"$MOSQUITTO" -c mosquitto.conf >broker.log 2>&1 &
BROKER_PID=$!
for _ in $(seq 50); do
    $PY -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
    sleep 0.1
done
B=127.0.0.1:$PORT

# collect N TIMEOUT NAME [OPTION...]: a collector for round 1 into deltas/, in the background
collect() {
    local n=$1 t=$2 o=$3
    shift 3
    "$ODL" fleet collect --broker "$B" --keys keys.txt --global global.odl --round 1 --count "$n" \
        --timeout "$t" --out deltas --client-id odl-round-test --quiet "$@" >"$o.json" 2>"$o.err" &
    COLLECTOR=$!
    for _ in $(seq 300); do
        grep -q "listening on" "$o.err" 2>/dev/null && return 0
        kill -0 "$COLLECTOR" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL the collector did not start: $(cat "$o.err")"
    exit 1
}
finish() { wait "$COLLECTOR"; local rc=$?; COLLECTOR=; return $rc; }
# pub DEV [--examples N]: device DEV's delta, round 1, seq 1
pub() {
    local i=$1
    shift
    "$ODL" fleet publish "a$i.odl" --global global.odl --device "$i" --key-file "k$i.key" --round 1 --seq 1 \
        --broker "$B" "$@" >>pub.log 2>&1 || fail "publish device $i" "$(tail -2 pub.log | tr '\n' '|')"
}
examples=(0 300 300 300 300 300 3000)   # the poisoner claims ten times the others' examples

# ---- collection: three devices while the collector runs, three while it is away ----------
collect 3 60 first
for i in 1 2 3; do pub "$i" --examples "${examples[$i]}"; done
finish && grep -q '"accepted": 3' first.json && grep -q "a new persistent session" first.err &&
    ok "collector: devices 1-3 while it runs (a new persistent session)" ||
    fail "first collection" "$(cat first.json first.err | tr '\n' '|')"
for i in 4 5 6; do pub "$i" --examples "${examples[$i]}"; done
"$ODL" fleet publish a5.odl --global global.odl --device 5 --key-file k5.key --round 1 --seq 7 --out m5.delta \
    >/dev/null && $PY "$TOOL" strip-auth m5.delta unsigned.delta &&
    "$ODL" fleet publish --message unsigned.delta --broker "$B" >>pub.log 2>&1 || fail "unsigned" "not published"
collect 3 30 second
finish
rc=$?
$PY - <<'EOF' && [ $rc -eq 0 ] && grep -q "resumed the broker's session" second.err &&
import json
s = json.load(open("second.json"))
assert s["accepted"] == 3 and s["devices"] == [4, 5, 6], s
assert s["refused"]["unsigned"] == 1 and s["refused_total"] == 1, s
EOF
    ok "collector: the deltas published while it was away arrive when it comes back (persistent session)" ||
    fail "persistent session" "exit $rc: $(cat second.json second.err | tr '\n' '|')"
[ "$(ls deltas/*.delta | wc -l)" -eq 6 ] && ok "six deltas collected" || fail "deltas" "$(ls deltas)"

# the control: with a clean session, a delta published while no collector runs is lost
"$ODL" fleet publish a1.odl --global global.odl --device 1 --key-file k1.key --round 1 --seq 2 --out m1.delta \
    >/dev/null
"$ODL" fleet collect --broker "$B" --keys keys.txt --global global.odl --round 1 --count 1 --timeout 1 \
    --out clean --client-id odl-round-clean --session-expiry 0 >clean0.json 2>/dev/null
"$ODL" fleet publish --message m1.delta --broker "$B" >>pub.log 2>&1
"$ODL" fleet collect --broker "$B" --keys keys.txt --global global.odl --round 1 --count 1 --timeout 2 \
    --out clean --client-id odl-round-clean --session-expiry 0 >clean.json 2>clean.err
rc=$?
[ $rc -eq 3 ] && grep -q '"received": 0' clean.json && ok "control: a clean session misses what was sent while away" ||
    fail "clean session control" "exit $rc: $(cat clean.json)"

# ---- the server's round: median, gated, published ------------------------------------------
HELD=(--heldout "$DATA" --heldout-shift "gain:0.55,0.25" --original "$DATA" --limit 2000)
"$ODL" fleet aggregate --deltas deltas --global global.odl --rule median "${HELD[@]}" --versions versions \
    --round 1 -o new.odl >median.json 2>median.err
rc=$?
cat median.json | head -c 2000; echo
$PY - "$rc" <<'EOF' && ok "median: a new version that beats the global model on the held-out drifted data" ||
import hashlib, json, sys, odl, numpy as np
rc = int(sys.argv[1])
s = json.load(open("median.json"))
assert rc == 0 and s["status"] == "published" and s["used"] == 6 and s["refused_total"] == 0, (rc, s)
assert s["devices"] == [1, 2, 3, 4, 5, 6] and s["weights"]["6"] == 3000, s
assert s["after"]["drifted"] > s["before"]["drifted"] + 0.01, s
idx = json.load(open("versions/index.json"))
assert [e.get("file") for e in idx] == ["v0001.odl", "v0002.odl"], idx
assert open("new.odl", "rb").read() == open("versions/v0002.odl", "rb").read()
assert idx[1]["sha256"] == hashlib.sha256(open("new.odl", "rb").read()).hexdigest()
assert idx[0]["sha256"] == hashlib.sha256(open("global.odl", "rb").read()).hexdigest()
# the published model is what was evaluated: same accuracy, from the file
d = odl.load_data("/usr/share/datasets/fashion-mnist", "test", limit=2000)
x = odl.shift(np.asarray(d.x, np.float32), "gain:0.55,0.25", d.shape)
assert abs(odl.load("new.odl").accuracy(x, d.y) - s["after"]["drifted"]) < 1e-9
# only the head moved
g, n = odl.load("global.odl").get_weights(False), odl.load("new.odl").get_weights(False)
assert all(np.array_equal(a, b) for a, b in zip(g[:-2], n[:-2])) and not np.array_equal(g[-2], n[-2])
EOF
    fail "median round" "exit $rc: $(cat median.err)"

# ---- the new global head back to the devices: a retained message signed by the server --------
"$ODL" fleet keygen --device 0 -o server.key >/dev/null && "$ODL" fleet keygen --device 0 -o other.key >/dev/null
"$ODL" fleet publish-global new.odl --global global.odl --key-file server.key --round 1 --seq 1 --broker "$B" \
    >pubg.log 2>&1 || fail "publish-global" "$(cat pubg.log)"
fetch() { # fetch NAME GLOBAL KEY: a device takes the global head
    "$ODL" fleet fetch-global --broker "$B" --global "$2" --server-key "$3" --state dev.seq -o "$1.odl" \
        --timeout 10 >"$1.json" 2>"$1.err"
}
fetch fetched global.odl server.key
rc=$?
$PY - "$rc" <<'EOF2' && ok "fetch-global: the device's copy of the new global model is the server's, bit for bit" ||
import json, sys, odl, numpy as np
import odl.fleet as fl
rc = int(sys.argv[1])
s = json.load(open("fetched.json"))
assert rc == 0 and s["status"] == "updated" and s["round"] == 1 and s["seq"] == 1, (rc, s)
a, b = odl.load("fetched.odl"), odl.load("new.odl")
assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(False), b.get_weights(False)))
assert fl.model_identity(a) == fl.model_identity(b)
EOF2
    fail "fetch-global" "exit $rc: $(cat fetched.json fetched.err | tr '\n' '|')"
# why the server nudges a new head (odl.fleet.device_exact): values shrinking towards 0 come back
# wrong from old + (new - old) in float32 (a device's copy would then have another identity)
$PY - <<'EOF2' && ok "device_exact: old + (new - old) gives every nudged value back, bit for bit" ||
import numpy as np, odl.fleet as fl
r = np.random.default_rng(0)
old = r.standard_normal(10000).astype(np.float32)
new = (r.standard_normal(10000) * 1e-3).astype(np.float32)
back = lambda o, n: (o + (n - o)).astype(np.float32)
assert (back(old, new) != new).sum() > 5000            # without the nudge most would differ
e = fl.device_exact(old, new)
assert np.array_equal(back(old, e), e) and np.abs(e - new).max() < 1e-6
same = (new + np.float32(0.5)).astype(np.float32)      # values of similar size: nothing moves
assert np.array_equal(fl.device_exact(same - np.float32(0.25), same), same)
EOF2
    fail "device_exact" "a value does not come back"
fetch again global.odl server.key
rc=$?
[ $rc -eq 3 ] && grep -q '"reason": "replay"' again.json && [ ! -e again.odl ] &&
    ok "fetch-global: the same message again is a replay" || fail "fetch replay" "exit $rc: $(cat again.json)"
rm -f dev.seq
fetch forged global.odl other.key
rc=$?
[ $rc -eq 3 ] && grep -q '"reason": "bad_signature"' forged.json && [ ! -e forged.odl ] &&
    ok "fetch-global: a head not signed by the server's key is refused" || fail "fetch key" "exit $rc: $(cat forged.json)"
fetch twice fetched.odl server.key
rc=$?
[ $rc -eq 3 ] && grep -q '"reason": "wrong_base"' twice.json && grep -q "already the new one" twice.err &&
    ok "fetch-global: a device already on the new model is told so" || fail "fetch twice" "exit $rc: $(cat twice.json)"
# a damaged retained message (the broker's, or a forger's): refused, nothing written
$PY "$TOOL" flip m5.delta damaged.delta 200 && "$ODL" fleet publish-global --message damaged.delta --broker "$B" \
    >>pubg.log 2>&1
rm -f dev.seq
fetch damaged global.odl server.key
rc=$?
[ $rc -eq 3 ] && grep -q '"reason": "malformed"' damaged.json && [ ! -e damaged.odl ] && [ ! -e dev.seq ] &&
    ok "fetch-global: a damaged message is refused" || fail "fetch damaged" "exit $rc: $(cat damaged.json)"
# round 2: a device learning from its fetched copy sends a delta the server takes against new.odl
"$ODL" adapt fetched.odl --data "$DATA" --limit 200 --seed 9 --strategy replay --replay-from "$DATA" --epochs 2 \
    --shift "gain:0.55,0.25" -o r2.odl --quiet >/dev/null && mkdir r2 &&
    "$ODL" fleet publish r2.odl --global fetched.odl --device 1 --key-file k1.key --round 2 --seq 2 \
        --out r2/1.delta >/dev/null
"$ODL" fleet aggregate --deltas r2 --global new.odl --rule median "${HELD[@]}" --round 2 -o r2new.odl >r2.json \
    2>/dev/null
grep -q '"used": 1' r2.json && ok "round 2: a delta made against the fetched copy applies to the server's model" ||
    fail "round 2" "$(cat r2.json)"

# ---- the same deltas with plain averaging: the poisoner drags it down ------------------------
"$ODL" fleet aggregate --deltas deltas --global global.odl --rule fedavg "${HELD[@]}" --versions versions-avg \
    --round 1 -o avg.odl >fedavg.json 2>fedavg.err
rc=$?
$PY - "$rc" <<'EOF' && ok "fedavg with the poisoner is worse than the median (and refused by the gate)" ||
import json, os, sys
rc = int(sys.argv[1])
m, f = json.load(open("median.json")), json.load(open("fedavg.json"))
print("held-out drifted: global %.4f, median %.4f, fedavg %.4f; original: global %.4f, median %.4f, fedavg %.4f" % (
    m["before"]["drifted"], m["after"]["drifted"], f["after"]["drifted"], m["before"]["original"],
    m["after"]["original"], f["after"]["original"]))
assert f["after"]["drifted"] < m["after"]["drifted"] - 0.01, (f["after"], m["after"])
assert rc == 3 and f["status"] == "refused" and not os.path.exists("avg.odl"), (rc, f["status"])
idx = json.load(open("versions-avg/index.json"))
assert [e.get("file") for e in idx] == ["v0001.odl", None] and idx[1]["status"] == "refused", idx
EOF
    fail "fedavg round" "exit $rc: $(cat fedavg.err)"

# a cap on the weight a device may claim: the poisoner's 3,000 examples count as 300
"$ODL" fleet aggregate --deltas deltas --global global.odl --rule fedavg "${HELD[@]}" --max-examples 300 \
    -o capped.odl >capped.json 2>/dev/null
$PY -c "
import json; s = json.load(open('capped.json')); f = json.load(open('fedavg.json'))
assert s['weights']['6'] == 300 and s['weights']['1'] == 300, s['weights']
assert s['after']['drifted'] > f['after']['drifted'], (s['after'], f['after'])" &&
    ok "--max-examples caps a device's claimed weight (fedavg less hurt)" || fail "max-examples" "$(cat capped.json)"

# ---- the aggregator checks every file again ------------------------------------------------
mkdir mixed && cp deltas/*.delta mixed/
"$ODL" fleet publish a2.odl --global new.odl --device 2 --key-file k2.key --round 1 --seq 5 \
    --out mixed/wrongbase.delta >/dev/null                                  # made against another model
"$ODL" fleet publish a3.odl --global global.odl --device 3 --key-file k3.key --round 1 --seq 5 --unfreeze 1 \
    --out mixed/shape.delta >/dev/null                                      # another head
"$ODL" fleet publish a4.odl --global global.odl --device 4 --key-file k4.key --round 2 --seq 5 \
    --out mixed/future.delta >/dev/null                                     # another round
$PY "$TOOL" flip deltas/5.delta mixed/corrupt.delta 200                     # a damaged file
cp unsigned.delta mixed/unsigned.delta
cp deltas/1.delta mixed/1copy.delta                                         # device 1 twice
printf 'not a delta' >mixed/junk.delta
"$ODL" fleet aggregate --deltas mixed --global global.odl --rule median "${HELD[@]}" --round 1 \
    -o mixed.odl >mixed.json 2>mixed.err
rc=$?
$PY - "$rc" <<'EOF' && ok "aggregate refuses again what does not belong, counted by reason; the rest as before" ||
import json, sys
rc = int(sys.argv[1])
s, m = json.load(open("mixed.json")), json.load(open("median.json"))
want = {"malformed": 2, "unsigned": 1, "wrong_base": 1, "out_of_shape": 1, "stale_round": 0, "future_round": 1,
        "duplicate_device": 1}
assert s["refused"] == want, s["refused"]
assert rc == 0 and s["used"] == 6 and s["after"] == m["after"], (rc, s)
assert open("mixed.odl", "rb").read() == open("new.odl", "rb").read()
EOF
    fail "aggregate refusals" "exit $rc: $(cat mixed.json mixed.err | tr '\n' '|')"

# ---- hostile arguments ----------------------------------------------------------------------
"$ODL" fleet aggregate --deltas nowhere --global global.odl --rule median "${HELD[@]}" -o x.odl >/dev/null 2>err.txt
rc=$?
[ $rc -eq 1 ] && grep -q "^odl: fleet aggregate: --deltas nowhere is not a directory" err.txt &&
    ok "a missing deltas directory: one line, exit 1" || fail "missing dir" "exit $rc: $(cat err.txt)"
"$ODL" fleet aggregate --deltas deltas --global global.odl --rule median "${HELD[@]}" -o global.odl \
    >/dev/null 2>err.txt
rc=$?
[ $rc -eq 1 ] && grep -q "the global model itself" err.txt && ok "never writes over the global model" ||
    fail "-o global" "exit $rc: $(cat err.txt)"
ln -s new.odl link.odl
"$ODL" fleet aggregate --deltas deltas --global global.odl --rule median "${HELD[@]}" -o link.odl \
    >/dev/null 2>err.txt
rc=$?
[ $rc -eq 1 ] && [ -L link.odl ] && ok "never writes through a symlink" || fail "-o symlink" "exit $rc: $(cat err.txt)"
mkdir empty
"$ODL" fleet aggregate --deltas empty --global global.odl --rule median "${HELD[@]}" -o e.odl >e.json 2>/dev/null
rc=$?
[ $rc -eq 3 ] && grep -q '"status": "refused"' e.json && [ ! -e e.odl ] && ok "no deltas: refused, exit 3" ||
    fail "no deltas" "exit $rc: $(cat e.json)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
