#!/usr/bin/env bash
# tests/hostile/fs_test.sh — the file system and the event log as an attacker
# (or a careless user) would use them: outputs that must not replace what is
# there, event logs that try to write elsewhere or hide events, write errors,
# text that ends up in C comments or on a terminal.
#
#   bash tests/hostile/fs_test.sh PATH/TO/odl SOURCE_DIR
#
# Prints "ok  NAME" / "FAIL NAME: WHY" per check and "N passed, N failed" last.
# Runs as root in CI: nothing here relies on permissions being refused.
set -u
ODL=$1
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_fs_test.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# run ARGS...: odl with a time limit; rc, out.txt, err.txt
run() {
    timeout 60 "$ODL" "$@" >out.txt 2>err.txt
    rc=$?
}
# one_error NAME NEEDLE: the last run failed (not a crash or timeout) with
# one "odl: " line on stderr that mentions NEEDLE
one_error() {
    local why=""
    if [ "$rc" -eq 0 ]; then why="exit status 0"
    elif [ "$rc" -ge 124 ]; then why="exit status $rc (crash or timeout)"
    elif [ "$(wc -l <err.txt)" -ne 1 ]; then why="$(wc -l <err.txt) lines on stderr: $(head -c 300 err.txt | tr '\n' '|')"
    elif ! grep -q "^odl: " err.txt; then why="stderr: $(head -c 200 err.txt)"
    elif ! grep -qF -- "$2" err.txt; then why="'$(cat err.txt)' does not mention '$2'"
    fi
    if [ -z "$why" ]; then ok "$1"; else fail "$1" "$why"; fi
}
no_tmp_left() { # NAME DIR: no *.tmp file left in DIR
    if ls "$2"/*.tmp >/dev/null 2>&1 || ls "$2"/.*.tmp >/dev/null 2>&1; then
        fail "$1" "left: $(ls "$2"/*.tmp "$2"/.*.tmp 2>/dev/null | tr '\n' ' ')"
    else ok "$1"; fi
}

# ---- a small base model (three 2-D blobs, an MLP: a second to train) --------
awk 'BEGIN { srand(1); print "label,x,y"
    for (i = 0; i < 300; i++) { c = i % 3; printf "%d,%.4f,%.4f\n", c, 3 * c + rand(), c + rand() } }' >data.csv
"$ODL" train --data data.csv --arch mlp:8 --epochs 2 --quiet -o base.odl >/dev/null 2>&1 ||
    { echo "FAIL cannot train a base model"; echo "0 passed, 1 failed"; exit 1; }
echo precious >victim.txt
victim_intact() { printf 'precious\n' | cmp -s - victim.txt; }

# ---- outputs never replace what they should not ---------------------------
ln -s victim.txt link.odl
run train --data data.csv --arch mlp:8 --epochs 1 --quiet -o link.odl
one_error "train -o SYMLINK refused" "symbolic link"
[ -L link.odl ] && victim_intact && ok "the symlink and its target are untouched" ||
    fail "symlink output" "link.odl replaced or victim.txt changed"

mkfifo pipe.odl
run train --data data.csv --arch mlp:8 --epochs 1 --quiet -o pipe.odl
one_error "train -o FIFO refused" "pipe"
[ -p pipe.odl ] && ok "the FIFO is still a FIFO" || fail "FIFO output" "pipe.odl was replaced"

if [ "$(id -u)" = 0 ] && mknod nulldev.odl c 1 3 2>/dev/null; then
    # a device node of our own (as /dev/full, which root replaced before)
    run train --data data.csv --arch mlp:8 --epochs 1 --quiet -o nulldev.odl
    one_error "train -o DEVICE refused" "device"
    [ -c nulldev.odl ] && ok "the device node is still a device" || fail "device output" "replaced by a file"
    rm -f nulldev.odl
else
    echo "ok  train -o DEVICE (skipped: not root)"; passed=$((passed + 1))
fi

# a symlink planted at the old fixed temporary name is neither followed nor reused
ln -s victim.txt planted.odl.tmp
run train --data data.csv --arch mlp:8 --epochs 1 --quiet -o planted.odl
if [ "$rc" -eq 0 ] && [ -f planted.odl ] && [ ! -L planted.odl ] && victim_intact && [ -L planted.odl.tmp ]; then
    ok "a planted PATH.tmp symlink is not followed"
else
    fail "planted PATH.tmp" "rc $rc, victim changed or $(ls -l planted.odl* | tr '\n' ' ')"
fi
rm -f planted.odl.tmp

# checked before the work starts, and never over an input
run train --data data.csv --arch mlp:8 --epochs 1 -o /nonexistent/x.odl
one_error "train -o in a missing directory fails" "/nonexistent"
cat out.txt err.txt | grep -q "epoch\|trained" && fail "train -o checked first" "it trained: $(head -c 100 out.txt)" ||
    ok "train -o checked before training"
run train --data data.csv --arch mlp:8 --epochs 1 --report /nonexistent/r.html -o y.odl
one_error "train --report in a missing directory fails" "/nonexistent"
[ -e y.odl ] && fail "train --report checked first" "y.odl written" || ok "train --report checked before training"
cp data.csv data2.csv
run train --data data2.csv --arch mlp:8 --epochs 1 --quiet -o data2.csv
one_error "train -o INPUT refused" "names the input"
cmp -s data.csv data2.csv && ok "the input is untouched" || fail "train -o INPUT" "data2.csv changed"
[ "$rc" -eq 2 ] && ok "output = input exits 2" || fail "output = input exit status" "$rc"
cp base.odl b2.odl
run export-c b2.odl -o b2.odl
one_error "export-c -o INPUT refused" "names the input"
cp base.odl b3.odl
run export-c b3.odl -o e.c --header b3.odl
one_error "export-c --header INPUT refused" "names the input"
run export-c base.odl -o e.c --header e.c
one_error "export-c --header = -o refused" "names the input"
cp base.odl b4.odl
run info b4.odl --report b4.odl
one_error "info --report INPUT refused" "names the input"
cmp -s base.odl b2.odl && cmp -s base.odl b3.odl && cmp -s base.odl b4.odl && ok "inputs untouched by refused outputs" ||
    fail "inputs" "an input changed"
run adapt base.odl --data data.csv --strategy naive --epochs 1 -o /nonexistent/a.odl
one_error "adapt -o in a missing directory fails" "/nonexistent"
[ -s out.txt ] && fail "adapt -o checked first" "it ran: $(head -c 100 out.txt)" || ok "adapt -o checked before adapting"
run quantize base.odl --calib data.csv -o /nonexistent/q.odl
one_error "quantize -o in a missing directory fails" "/nonexistent"
[ -s out.txt ] && fail "quantize -o checked first" "it ran: $(head -c 100 out.txt)" || ok "quantize -o checked before calibrating"
no_tmp_left "no temporary file left in the working directory" .

# ---- the event log ----------------------------------------------------------
sess() { run session --model base.odl --data data.csv --events "$@"; }
printf 'predict,orig,1\nsave,/tmp/odl_fs_test_abs.odl\n' >abs.log
rm -f /tmp/odl_fs_test_abs.odl
sess abs.log
one_error "save,/absolute refused" "plain file name"
[ -e /tmp/odl_fs_test_abs.odl ] && fail "save,/absolute" "written" || ok "save,/absolute writes nothing"
printf 'save,../up.odl\n' >up.log
mkdir -p sub
(cd sub && timeout 60 "$ODL" session --model ../base.odl --data ../data.csv --events ../up.log >../out.txt 2>../err.txt)
rc=$?
one_error "save,../x refused" "plain file name"
[ -e up.odl ] && fail "save,../x" "written" || ok "save,../x writes nothing"
mkdir -p outd
ln -s ../victim.txt outd/hit.odl
printf 'predict,orig,1\nsave,hit.odl\n' >link.log
sess link.log --out-dir outd
one_error "save onto a symlink in --out-dir refused" "symbolic link"
victim_intact && [ -L outd/hit.odl ] && ok "save did not follow the symlink" || fail "save symlink" "followed"
printf 'predict,orig,1\nsave,good.odl\n' >good.log
sess good.log --out-dir outd --quiet
[ "$rc" -eq 0 ] && [ -f outd/good.odl ] && [ ! -e good.odl ] && ok "save,FILE lands in --out-dir" ||
    fail "save in --out-dir" "rc $rc: $(head -c 200 err.txt)"
sess good.log --out-dir /nonexistent
one_error "--out-dir missing refused" "--out-dir"
cp data.csv data3.csv
printf 'save,data3.csv\n' >over.log
run session --model base.odl --data data3.csv --events over.log
one_error "save over an input refused" "names the input"

# a long comment line hides nothing: lines are read whole
# (the old reader cut lines at 511 bytes: the rest ran as a line of its own)
{ printf '#'; head -c 510 /dev/zero | tr '\0' 'a'; printf 'save,hidden.odl\npredict,orig,1\n'; } >long.log
sess long.log --quiet
[ "$rc" -eq 0 ] && [ ! -e hidden.odl ] && ok "a save hidden after byte 512 of a comment does not run" ||
    fail "hidden save" "rc $rc, hidden.odl $( [ -e hidden.odl ] && echo written || echo absent)"
{ head -c 2000 /dev/zero | tr '\0' '#'; printf '\npredict,orig,x\n'; } >lineno.log
sess lineno.log
one_error "line numbers stay exact after a long line" "lineno.log:2:"

printf 'label,user,5,4294967297\n' >wrap.log
sess wrap.log
one_error "label 4294967297 refused, not class 1" "LABEL"
printf 'label,user,5,-1\n' >neg.log
sess neg.log
one_error "negative label refused" "LABEL"
printf 'predict,orig, 1\n' >sp.log
sess sp.log
one_error "INDEX with a space refused" "INDEX"
printf 'predict,orig,4294967296\n' >big.log
sess big.log
one_error "INDEX 2^32 refused" "INDEX"
printf 'rollback,1x\n' >rb.log
sess rb.log
one_error "rollback,1x refused" "STEPS"
printf 'update,now\n' >extra.log
sess extra.log
one_error "extra fields refused" "expected update"
printf 'predict,orig,1\npredict\0,orig,1\n' >nul.log
sess nul.log
one_error "a NUL byte refused" "NUL"
sess "$WORK"
one_error "--events DIRECTORY refused" "regular file"
sess /dev/zero
one_error "--events /dev/zero refused (no hang)" "regular file"
printf '# only a comment\n\n   \n' >empty.log
sess empty.log
one_error "a log with no events refused" "no events"
printf 'predict,orig,1\nupdate\npredict,orig,300\n' >range.log
sess range.log
one_error "INDEX beyond the data refused" "out of range"
grep -q "update" out.txt && fail "log checked first" "events ran before the bad line" || ok "nothing runs before the whole log is checked"
no_tmp_left "no temporary file left by sessions" .
no_tmp_left "no temporary file left in --out-dir" outd

# the session's versions for a store never go through a predictable name:
# plant symlinks at the old /tmp/odl-session-PID.odl(.tmp) for the very pid
# (labels the learner accepts: sample i is of class i % 3, so an update runs)
awk 'BEGIN { for (i = 0; i < 30; i++) printf "label,orig,%d,%d\n", i, i % 3; print "update" }' >store.log
echo precious >victim2.txt
bash -c 'echo $$ >pid.txt; ln -s "$1" /tmp/odl-session-$$.odl.tmp; ln -s "$1" /tmp/odl-session-$$.odl
    exec "$2" session --model base.odl --data data.csv --events store.log --store st_pred --quiet' _ \
    "$WORK/victim2.txt" "$ODL" >/dev/null 2>err.txt
rc=$?
pid=$(cat pid.txt)
printf 'precious\n' | cmp -s - victim2.txt && [ "$rc" -eq 0 ] && ok "session --store ignores planted /tmp/odl-session-PID files" ||
    fail "predictable session temp" "rc $rc, victim2.txt overwritten or: $(head -c 200 err.txt)"
rm -f "/tmp/odl-session-$pid.odl.tmp" "/tmp/odl-session-$pid.odl"

# a session ended by SIGTERM removes its temporary directory and files
mkdir -p tmpd
awk 'BEGIN { for (i = 0; i < 3000000; i++) printf "predict,orig,%d\n", i % 300; print "update" }' >long_run.log
TMPDIR=$WORK/tmpd timeout 120 "$ODL" session --model base.odl --data data.csv --events long_run.log --store st_kill \
    --quiet >/dev/null 2>&1 &
spid=$!
for _ in $(seq 300); do ls tmpd | grep -q odl-session && break; sleep 0.1; done
seen=$(ls tmpd)
sleep 0.2
kill -TERM "$spid" 2>/dev/null
wait "$spid"
rc=$?
if [ "$rc" -ne 143 ] || [ -z "$seen" ]; then
    fail "session killed" "rc $rc (want 143, killed mid-run), temporary directory seen: '$seen'"
elif [ -n "$(ls -A tmpd)" ] || ls st_kill/*.tmp >/dev/null 2>&1; then
    fail "session killed" "left behind: $(ls -A tmpd st_kill | tr '\n' ' ')"
else
    ok "a session killed by SIGTERM leaves no temporary file or directory"
fi
rm -f long_run.log

# ---- write errors are errors ------------------------------------------------
if [ -w /dev/full ]; then
    timeout 60 "$ODL" eval base.odl --data data.csv --json >/dev/full 2>err.txt; rc=$?
    one_error "eval --json > /dev/full exits 1" "standard output"
    timeout 60 "$ODL" info base.odl >/dev/full 2>err.txt; rc=$?
    one_error "info > /dev/full exits 1" "standard output"
    timeout 60 "$ODL" session --model base.odl --data data.csv --events store.log --store st >/dev/null 2>&1
    timeout 60 "$ODL" versions --store st >/dev/full 2>err.txt; rc=$?
    one_error "versions > /dev/full exits 1" "standard output"
    timeout 60 "$ODL" --help >/dev/full 2>err.txt; rc=$?
    one_error "--help > /dev/full exits 1" "standard output"
else
    echo "ok  write errors (skipped: no /dev/full)"; passed=$((passed + 1))
fi

# ---- text from files is not code or terminal control --------------------------
evil='b*/ int injected; /*.odl'
mkdir -p "$(dirname "$evil")" && cp base.odl "$evil"
run export-c "$evil" -o inj.c --name m
if [ "$rc" -eq 0 ] && ! grep -q "int injected" inj.c; then ok "export-c: the input's name cannot end the comment"
else fail "export-c injection" "rc $rc: $(grep -n injected inj.c | head -2)"; fi
if command -v cc >/dev/null 2>&1 && cc -c inj.c -o inj.o 2>/dev/null; then
    nm inj.o | grep -q injected && fail "export-c compiled" "symbol 'injected' defined" || ok "export-c output compiles without the injected symbol"
fi

if [ -x "$PY" ]; then
    # base.odl with its "arch" metadata value replaced by an ANSI escape sequence
    "$PY" - base.odl ansi.odl <<'EOF'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
out, off = bytearray(b[:16]), 16
while off < len(b):
    typ, crc, n = b[off:off + 4], b[off + 4:off + 8], struct.unpack("<Q", b[off + 8:off + 16])[0]
    pay = b[off + 16:off + 16 + n]
    if typ == b"META" and pay.startswith(b"arch\0"):
        pay = b"arch\0\x1b[31mRED\x1b]0;title\x07\0"
    hdr = typ + struct.pack("<Q", len(pay))
    out += typ + struct.pack("<I", zlib.crc32(hdr + pay) & 0xFFFFFFFF) + struct.pack("<Q", len(pay)) + pay
    out += b"\0" * (-len(pay) % 16)
    off += 16 + n + (-n % 16)
open(sys.argv[2], "wb").write(out)
EOF
    run info ansi.odl
    if [ "$rc" -eq 0 ] && ! grep -q $'\x1b' out.txt && grep -qF '\x1b[31mRED' out.txt; then
        ok "info prints META control characters escaped"
    else
        fail "info escapes" "rc $rc: $(head -c 120 out.txt | od -c | head -3 | tr '\n' ' ')"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
