#!/usr/bin/env bash
# tests/fleet/mqtt_test.sh — the fleet transport end to end: a Mosquitto
# broker on a free loopback port, devices publishing signed head deltas
# (good ones, and unsigned, tampered, corrupted, replayed, out-of-shape,
# unknown, stale, wrongly signed and NaN ones), `odl fleet collect` counting
# why it refused each, the accepted deltas read back equal to the devices'
# heads minus the global head (by an independent Python reader, and by
# odl.read_delta), replays refused across runs, a timeout, a second broker
# with TLS and a password file, and hostile key files and arguments.
#
#   bash tests/fleet/mqtt_test.sh PATH/TO/odl SOURCE_DIR
#
# Skips (exit 0, with a message) only when the mosquitto broker is not
# installed; CI installs it (scripts/test.sh), so CI runs this.
set -u
ODL=$1
SRC=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
BUILD=$(dirname "$ODL")
PY=/usr/bin/python3
TOOL=$SRC/tests/fleet/delta_tool.py
DATA=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}

MOSQUITTO=$(command -v mosquitto || true)
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
if [ -z "$MOSQUITTO" ]; then
    echo "SKIP: the mosquitto broker is not installed (Debian: apt-get install mosquitto)"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_mqtt_test.XXXXXX") || exit 2
BROKER_PID=
cleanup() {
    local pid
    for pid in $BROKER_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 2
umask 022

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
# run NAME CMD...: must succeed
run() {
    local name=$1
    shift
    if "$@" >out.txt 2>err.txt; then ok "$name"; else fail "$name" "exit $?: $(head -c 400 err.txt | tr '\n' '|')"; fi
}
# refuse NAME STATUS NEEDLE -- CMD...: exits STATUS with one "odl: " line holding NEEDLE
refuse() {
    local name=$1 want=$2 needle=$3
    shift 4
    "$@" >out.txt 2>err.txt
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit $rc (want $want): $(head -c 300 err.txt | tr '\n' '|')"
    elif [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -q '^odl: ' err.txt || ! grep -qF -- "$needle" err.txt; then
        fail "$name" "stderr '$(head -c 300 err.txt | tr '\n' '|')' is not one 'odl: ' line with '$needle'"
    else
        ok "$name"
    fi
}

# ---- the models: a global edge-cnn and four devices adapted to their own users ----
"$ODL" train --data "$DATA" --arch edge-cnn --epochs 1 --limit 2000 --seed 0 -o global.odl --quiet >/dev/null ||
    { echo "FAIL cannot train the global model"; exit 1; }
shifts=("gain:0.8,0.1" "gain:1.2,-0.1" "translate:1,1" "translate:-2,0" "gain:0.9,0")
for i in 1 2 3 4 5; do
    "$ODL" adapt global.odl --data "$DATA" --limit $((30 + 10 * i)) --seed "$i" --strategy naive --epochs 2 \
        --shift "${shifts[$((i - 1))]}" -o "a$i.odl" --quiet >/dev/null ||
        { echo "FAIL cannot adapt device $i"; exit 1; }
done

# ---- keys: devices 1-5 known to the server; device 6 has a key the server lacks ----
: >keys.txt
chmod 600 keys.txt
for i in 1 2 3 4 5 6; do
    "$ODL" fleet keygen --device "$i" -o "k$i.key" >line.txt || { echo "FAIL keygen $i"; exit 1; }
    [ "$i" -le 5 ] && cat line.txt >>keys.txt
done
if [ "$(stat -c %a k1.key)" = 600 ] && [ "$(wc -c <k1.key)" -eq 65 ]; then ok "keygen writes a 0600 key of 64 hex digits"
else fail "keygen" "mode $(stat -c %a k1.key), $(wc -c <k1.key) bytes"; fi
refuse "keygen never overwrites a key" 1 "exists" -- "$ODL" fleet keygen --device 1 -o k1.key

# ---- the broker ------------------------------------------------------------------------
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# (as root, Mosquitto would switch to the 'mosquitto' user, who cannot read this private directory)
cat >mosquitto.conf <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
user $(id -un)
EOF
"$MOSQUITTO" -c mosquitto.conf >broker.log 2>&1 &
BROKER_PID=$!
for _ in $(seq 50); do
    $PY -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
    sleep 0.1
done
B=127.0.0.1:$PORT

# collect R N TIMEOUT OUT [OPTION...]: starts a collector in the background, waits until it listens
collect() {
    local r=$1 n=$2 t=$3 o=$4
    shift 4
    "$ODL" fleet collect --broker "$B" --keys keys.txt --global global.odl --round "$r" --count "$n" \
        --timeout "$t" --out "$o" "$@" >"$o.json" 2>"$o.err" &
    COLLECTOR=$!
    for _ in $(seq 300); do
        grep -q "listening on" "$o.err" 2>/dev/null && return 0
        kill -0 "$COLLECTOR" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL the collector did not start: $(cat "$o.err")"
    exit 1
}
pub() { "$ODL" fleet publish --broker "$B" "$@" >>pub.log 2>&1 || fail "publish $*" "$(tail -2 pub.log | tr '\n' '|')"; }
delta() { # delta DEV ROUND SEQ [KEYDEV] [extra...]: a message file m<DEV>_<SEQ>.delta, not published
    local dev=$1 round=$2 seq=$3 keydev=${4:-$1}
    shift 4 2>/dev/null || shift $#
    "$ODL" fleet publish "a$dev.odl" --global global.odl --device "$dev" --key-file "k$keydev.key" --round "$round" \
        --seq "$seq" --out "m${dev}_$seq.delta" "$@" >/dev/null
}

# ---- round 1 -------------------------------------------------------------------------
collect 1 4 120 got
delta 5 1 1 && $PY "$TOOL" check-mac m5_1.delta k5.key >/dev/null &&
    ok "the AUTH MAC equals Python's HMAC-SHA256 over the bytes before it" || fail "mac" "differs"
$PY "$TOOL" strip-auth m5_1.delta unsigned.delta && pub --message unsigned.delta
$PY "$TOOL" flip m5_1.delta tampered.delta 200 --mend-crc && pub --message tampered.delta
$PY "$TOOL" flip m5_1.delta corrupt.delta 200 && pub --message corrupt.delta
pub a5.odl --global global.odl --device 5 --key-file k5.key --round 1 --seq 2 --unfreeze 1   # another head
pub a5.odl --global global.odl --device 6 --key-file k6.key --round 1 --seq 1                # unknown device
pub a5.odl --global global.odl --device 5 --key-file k5.key --round 0 --seq 3                # stale round
pub a5.odl --global global.odl --device 5 --key-file k1.key --round 1 --seq 4                # another's key
$PY "$TOOL" nan m5_1.delta nan.delta k5.key && pub --message nan.delta
delta 1 1 1 && pub --message m1_1.delta
pub --message m1_1.delta                                                                       # replay
for i in 2 3 4; do pub "a$i.odl" --global global.odl --device "$i" --key-file "k$i.key" --round 1 --seq 1 \
    --examples $((10 * i)); done
wait "$COLLECTOR"
rc=$?
[ $rc -eq 0 ] && ok "collect: 4 devices, exit 0" || fail "collect" "exit $rc: $(tail -3 got.err | tr '\n' '|')"
$PY - got.json <<'EOF' && ok "collect: the summary counts every refusal under its reason" || fail "summary" "$(cat got.json)"
import json, sys
s = json.load(open(sys.argv[1]))
want = {"malformed": 1, "unsupported_version": 0, "unsigned": 1, "unknown_device": 1, "bad_signature": 2,
        "stale_round": 1, "future_round": 0, "replay": 1, "wrong_base": 0, "out_of_shape": 1, "non_finite": 1}
assert s["refused"] == want, s["refused"]
assert s["accepted"] == 4 and s["received"] == 13 and s["refused_total"] == 9 and s["complete"] is True, s
assert s["devices"] == [1, 2, 3, 4] and s["bytes_per_delta"] == 2816, s
EOF
[ "$(ls got/*.delta | wc -l)" -eq 4 ] && cmp -s got/1.delta m1_1.delta && ok "accepted deltas written as received" ||
    fail "outputs" "$(ls got)"
run "accepted deltas = adapted head - global head, bit for bit (Python reader)" \
    $PY "$TOOL" compare got global.odl 1=a1.odl 2=a2.odl 3=a3.odl 4=a4.odl
if grep -q "ODL_SANITIZE:BOOL=ON" "$BUILD/CMakeCache.txt" 2>/dev/null || [ ! -e "$BUILD/libodl_py.so" ]; then
    echo "skip odl.read_delta (a sanitizer build's library cannot load into Python)"
else
    run "odl.read_delta gives the same arrays and metadata" env ODL_LIBRARY="$BUILD" PYTHONPATH="$SRC/python" \
        $PY -c "
import sys, numpy as np, odl
sys.path.insert(0, '$SRC/tests/fleet')
import delta_tool as t
for dev in (1, 2, 3, 4):
    meta, arrays = odl.read_delta('got/%d.delta' % dev)
    ref_meta, ref = t.dlta(open('got/%d.delta' % dev, 'rb').read())
    assert meta['device'] == dev and meta['round'] == 1 and meta['seq'] == 1 and meta['signed'], meta
    assert meta['examples'] == (1 if dev == 1 else 10 * dev), meta
    assert [(x['node'], {'weights': 0, 'bias': 1}[x['which']]) for x in meta['tensors']] == [k for k, _ in ref]
    assert all(a.dtype == np.float32 and np.array_equal(a, r) for a, (_, r) in zip(arrays, ref))
try:
    odl.read_delta('global.odl'); raise SystemExit('a model file was read as a delta')
except odl.OdlError as e:
    assert 'DLTA' in str(e), e
"
fi
grep -qx "1 1" got/sequence.state && grep -qx "4 1" got/sequence.state && ok "sequence state written" ||
    fail "state" "$(cat got/sequence.state)"

# ---- a later run: the old message is a replay; a newer one is accepted ----------------
collect 1 1 60 got
pub --message m1_1.delta
delta 1 1 2 && pub --message m1_2.delta
wait "$COLLECTOR"
rc=$?
$PY -c "
import json; s = json.load(open('got.json'))
assert s['refused']['replay'] == 1 and s['accepted'] == 1 and s['devices'] == [1], s" 2>/dev/null && [ $rc -eq 0 ] &&
    grep -qx "1 2" got/sequence.state && ok "a replay across runs is refused (state file); seq 2 accepted" ||
    fail "replay across runs" "exit $rc: $(cat got.json)"

# ---- nothing arrives: a timeout -------------------------------------------------------
collect 1 1 1 late
wait "$COLLECTOR"
rc=$?
[ $rc -eq 3 ] && grep -q '"complete": false' late.json && ok "a timeout short of N: exit 3, complete false" ||
    fail "timeout" "exit $rc: $(cat late.json)"

# ---- TLS and broker users ---------------------------------------------------------------
BROKER1_PID=$BROKER_PID
if ! command -v openssl >/dev/null || ! command -v mosquitto_passwd >/dev/null; then
    fail "TLS" "openssl or mosquitto_passwd missing (Debian: openssl, mosquitto)"
else
    mkcert() { # mkcert NAME CN: an EC key and a certificate signed by ca (self-signed when NAME is a CA)
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
            -subj "/CN=$2" 2>/dev/null
    }
    for ca in ca other_ca; do
        mkcert $ca "odl test $ca" &&
            openssl x509 -req -in $ca.csr -signkey $ca.key -out $ca.crt -days 2 2>/dev/null
    done
    mkcert server localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
        -extfile san.ext 2>/dev/null
    mosquitto_passwd -b -c passwd.txt device secret-device 2>/dev/null
    mosquitto_passwd -b passwd.txt server secret-server 2>/dev/null
    printf 'secret-server\n' >server.pw && printf 'secret-device\n' >device.pw && printf 'wrong\n' >wrong.pw
    chmod 600 server.pw device.pw wrong.pw
    PORT2=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >tls.conf <<EOF2
listener $PORT2 127.0.0.1
cafile $WORK/ca.crt
certfile $WORK/server.crt
keyfile $WORK/server.key
allow_anonymous false
password_file $WORK/passwd.txt
persistence false
user $(id -un)
EOF2
    "$MOSQUITTO" -c tls.conf >broker2.log 2>&1 &
    BROKER_PID="$BROKER1_PID $!"
    for _ in $(seq 50); do
        $PY -c "import socket; socket.create_connection(('127.0.0.1', $PORT2), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
    B=127.0.0.1:$PORT2
    collect 1 1 60 tls --tls-ca ca.crt --username server --password-file server.pw
    T=(--broker "127.0.0.1:$PORT2" --tls-ca ca.crt --username device)
    pub a2.odl --global global.odl --device 2 --key-file k2.key --round 1 --seq 2 "${T[@]}" --password-file device.pw
    wait "$COLLECTOR"
    rc=$?
    delta 2 1 2
    if [ $rc -eq 0 ] && grep -q '"accepted": 1' tls.json && cmp -s tls/2.delta m2_2.delta; then
        ok "over TLS with broker users: the delta collected as sent"
    else
        fail "TLS collect" "exit $rc: $(cat tls.json tls.err | tr '\n' '|')"
    fi
    refuse "a wrong broker password" 1 "refused the connection" -- "$ODL" fleet publish --message m1_1.delta \
        "${T[@]}" --password-file wrong.pw --timeout 5
    refuse "a broker certificate from another CA" 1 "TLS" -- "$ODL" fleet publish --message m1_1.delta \
        --broker "127.0.0.1:$PORT2" --tls-ca other_ca.crt --username device --password-file device.pw --timeout 5
    refuse "plain TCP to a TLS port" 1 "no answer" -- "$ODL" fleet publish --message m1_1.delta \
        --broker "127.0.0.1:$PORT2" --username device --password-file device.pw --timeout 2
    chmod 644 device.pw
    refuse "a password file others can read" 1 "chmod 600" -- "$ODL" fleet publish --message m1_1.delta "${T[@]}" \
        --password-file device.pw
    B=127.0.0.1:$PORT
fi

# ---- hostile key files, state files and arguments -------------------------------------
cp k1.key open.key && chmod 644 open.key
refuse "a key file others can read" 1 "chmod 600" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file open.key --round 1 --seq 9 --out x.delta
ln -s k1.key link.key
refuse "a key file that is a symlink" 1 "symbolic link" -- "$ODL" fleet publish a1.odl --global global.odl \
    --device 1 --key-file link.key --round 1 --seq 9 --out x.delta
mkdir dir.key
refuse "a key file that is a directory" 1 "not a regular file" -- "$ODL" fleet publish a1.odl --global global.odl \
    --device 1 --key-file dir.key --round 1 --seq 9 --out x.delta
mkfifo fifo.key && chmod 600 fifo.key
refuse "a key file that is a FIFO (no hang)" 1 "not a regular file" -- "$ODL" fleet publish a1.odl \
    --global global.odl --device 1 --key-file fifo.key --round 1 --seq 9 --out x.delta
printf 'zz%062d\n' 0 >bad.key && chmod 600 bad.key
refuse "a key that is not hex" 1 "hex digits" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file bad.key --round 1 --seq 9 --out x.delta
printf '%030d\n' 0 >short.key && chmod 600 short.key
refuse "a key under 16 bytes" 1 "32..128 hex digits" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file short.key --round 1 --seq 9 --out x.delta
head -c 5000 /dev/zero | tr '\0' 'a' >big.key && chmod 600 big.key
refuse "a key file over its size limit" 1 "limit" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file big.key --round 1 --seq 9 --out x.delta
{ cat k1.key; cat k2.key; } >two.key && chmod 600 two.key
refuse "a key file with two keys" 1 "more than one key" -- "$ODL" fleet publish a1.odl --global global.odl \
    --device 1 --key-file two.key --round 1 --seq 9 --out x.delta
{ head -1 keys.txt; head -1 keys.txt; } >dup.txt && chmod 600 dup.txt
refuse "a keys file with a device twice" 1 "two keys" -- "$ODL" fleet collect --broker "$B" --keys dup.txt \
    --global global.odl --round 1 --count 1 --timeout 1 --out dup
printf '1 00112233445566778899aabbccddeeff\n4294967296 00112233445566778899aabbccddeeff\n' >range.txt
chmod 600 range.txt
refuse "a keys file with a device id out of range" 1 "line 2" -- "$ODL" fleet collect --broker "$B" \
    --keys range.txt --global global.odl --round 1 --count 1 --timeout 1 --out rng
chmod 644 keys.txt
refuse "a keys file others can read" 1 "chmod 600" -- "$ODL" fleet collect --broker "$B" --keys keys.txt \
    --global global.odl --round 1 --count 1 --timeout 1 --out k644
chmod 600 keys.txt
mkdir st && printf 'odl-fleet-seq 1\n5 3\n2 1\n' >st/sequence.state
refuse "a sequence state out of order" 1 "increasing order" -- "$ODL" fleet collect --broker "$B" --keys keys.txt \
    --global global.odl --round 1 --count 1 --timeout 1 --out st
printf 'odl-fleet-seq 1\n5 3\n' >st/sequence.state && chmod 666 st/sequence.state
refuse "a sequence state others can change" 1 "others may change it" -- "$ODL" fleet collect --broker "$B" \
    --keys keys.txt --global global.odl --round 1 --count 1 --timeout 1 --out st
ln -s x.delta link.delta 2>/dev/null
refuse "publish --out never writes through a symlink" 1 "link.delta" -- "$ODL" fleet publish a1.odl \
    --global global.odl --device 1 --key-file k1.key --round 1 --seq 9 --out link.delta
refuse "publish needs somewhere to send" 2 "nowhere to send" -- "$ODL" fleet publish a1.odl --global global.odl \
    --device 1 --key-file k1.key --round 1 --seq 9
refuse "a bad broker address" 2 "port" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file k1.key --round 1 --seq 9 --broker localhost
refuse "sequence numbers start at 1" 2 "--seq" -- "$ODL" fleet publish a1.odl --global global.odl --device 1 \
    --key-file k1.key --round 1 --seq 0 --out x.delta
refuse "a device id out of range" 2 "--device" -- "$ODL" fleet publish a1.odl --global global.odl \
    --device 4294967296 --key-file k1.key --round 1 --seq 1 --out x.delta
refuse "a broker that is not there" 1 "cannot connect" -- "$ODL" fleet publish --message m1_1.delta \
    --broker 127.0.0.1:1 --timeout 2
refuse "collect needs its options" 2 "needs --broker" -- "$ODL" fleet collect --broker "$B"
refuse "a topic with a wildcard" 2 "--topic" -- "$ODL" fleet publish --message m1_1.delta --broker "$B" --topic 'a/#'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
