#!/usr/bin/env bash
# tests/cli_test.sh — end-to-end checks of the odl command-line tool.
#
#   bash tests/cli_test.sh PATH/TO/odl
#
# Each check prints "ok  NAME" or "FAIL NAME: WHY"; the last line is
# "N passed, N failed" and the exit status is non-zero if anything failed.
# Errors must be exactly one line on stderr starting with "odl: " (so a
# sanitizer report or a stray debug print fails the check too).
# Datasets are generated here; Fashion-MNIST is used when installed.
set -u

if [ $# -lt 1 ]; then
    echo "usage: bash tests/cli_test.sh PATH/TO/odl" >&2
    exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)  # the source tree (examples/)
ODL=$1
case $ODL in /*) ;; *) ODL=$PWD/$ODL ;; esac
if [ ! -x "$ODL" ]; then
    echo "cli_test.sh: '$ODL' is not an executable" >&2
    exit 2
fi
FASHION=${ODL_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odl_cli_test.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 2

passed=0
failed=0
ok() { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# run ARGS...: runs odl; sets rc, leaves stdout in out.txt and stderr in err.txt.
TIMEOUT=
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 300"
run() {
    $TIMEOUT "$ODL" "$@" >out.txt 2>err.txt
    rc=$?
}

# why_not_one_error [NEEDLE...]: empty if the last run failed cleanly with one
# "odl: " line on stderr that contains every NEEDLE; else the reason.
why_not_one_error() {
    if [ "$rc" -eq 0 ]; then echo "exit status 0"; return; fi
    if [ "$rc" -ge 124 ]; then echo "exit status $rc (crash or timeout): $(head -c 300 err.txt)"; return; fi
    local n
    n=$(wc -l <err.txt)
    if [ "$n" -ne 1 ]; then echo "$n lines on stderr: $(head -c 300 err.txt | tr '\n' '|')"; return; fi
    local line
    line=$(cat err.txt)
    case $line in
    "odl: "*) ;;
    *) echo "stderr does not start with 'odl: ': $line"; return ;;
    esac
    local needle
    for needle in "$@"; do
        case $line in
        *"$needle"*) ;;
        *) echo "'$line' does not mention '$needle'"; return ;;
        esac
    done
}

# expect_error NAME [--needle TEXT]... -- ARGS...
expect_error() {
    local name=$1
    shift
    local needles=()
    while [ "$1" = "--needle" ]; do
        needles+=("$2")
        shift 2
    done
    [ "$1" = "--" ] && shift
    run "$@"
    local why
    why=$(why_not_one_error ${needles[@]+"${needles[@]}"})
    if [ -z "$why" ]; then ok "$name"; else fail "$name" "$why"; fi
}

# expect_ok NAME ARGS...: exit 0, nothing alarming on stderr.
expect_ok() {
    local name=$1
    shift
    run "$@"
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit status $rc: $(head -c 300 err.txt | tr '\n' '|')"
        return 1
    fi
    if grep -q -e "odl: " -e "ERROR: AddressSanitizer" -e "runtime error:" err.txt; then
        fail "$name" "exit 0 but stderr says: $(head -c 300 err.txt | tr '\n' '|')"
        return 1
    fi
    ok "$name"
}

# at_least NAME VALUE MIN: VALUE (a number) >= MIN
at_least() {
    if [ -z "$2" ]; then
        fail "$1" "no number found in: $(head -c 200 out.txt | tr '\n' '|')"
    elif awk -v a="$2" -v b="$3" 'BEGIN { exit !(a + 0 >= b + 0) }'; then
        ok "$1"
    else
        fail "$1" "$2 < $3"
    fi
}

accuracy_of_output() { sed -n 's/^accuracy \([0-9.]*\)% .*/\1/p' out.txt | head -n 1; }

valid_json() { # NAME: stdout of the last run is one valid JSON document
    if [ ! -x "$PY" ]; then
        echo "ok  $1 (skipped: no $PY)"
        passed=$((passed + 1))
    elif "$PY" -m json.tool <out.txt >/dev/null 2>json_err.txt; then
        ok "$1"
    else
        fail "$1" "invalid JSON ($(head -c 200 json_err.txt)): $(head -c 200 out.txt)"
    fi
}

json_int() { # KEY: the integer value of "KEY": N in out.txt (first one)
    grep -o "\"$1\": [0-9][0-9]*" out.txt | head -n 1 | sed 's/.*: //'
}

# ---- data ----------------------------------------------------------------
# Three 2-D Gaussian blobs (sd 0.6) around (0,0), (4,0), (2,4), a header line.
blobs() { # N SEED
    awk -v n="$1" -v seed="$2" 'BEGIN {
        srand(seed); print "label,x,y"
        cx[0] = 0; cy[0] = 0; cx[1] = 4; cy[1] = 0; cx[2] = 2; cy[2] = 4
        for (i = 0; i < n; i++) {
            c = i % 3; r = sqrt(-2 * log(1 - rand())); a = 6.283185307 * rand()
            printf "%d,%.4f,%.4f\n", c, cx[c] + 0.6 * r * cos(a), cy[c] + 0.6 * r * sin(a)
        }
    }'
}
blobs 300 1 >train.csv
blobs 150 2 >test.csv
# 8x8 "images", 2 classes: bright left half or bright right half; no header.
awk 'BEGIN {
    srand(3)
    for (i = 0; i < 200; i++) {
        c = i % 2; printf "%d", c
        for (j = 0; j < 64; j++) {
            v = rand() * 0.3
            if ((c == 0 && j % 8 < 4) || (c == 1 && j % 8 >= 4)) v += 1
            printf ",%.3f", v
        }
        printf "\n"
    }
}' >img.csv

# ---- help ----------------------------------------------------------------
run --help
if [ "$rc" -eq 0 ] && grep -q "usage:" out.txt && grep -q "train" out.txt && grep -q "eval" out.txt &&
    grep -q "info" out.txt && [ ! -s err.txt ]; then
    ok "help"
else
    fail "help" "exit $rc, stdout: $(head -c 200 out.txt | tr '\n' '|')"
fi
for cmd in train eval info; do
    run "$cmd" --help
    if [ "$rc" -eq 0 ] && grep -q "usage: odl $cmd" out.txt && grep -q "default" out.txt && [ ! -s err.txt ]; then
        ok "$cmd --help"
    else
        fail "$cmd --help" "exit $rc, stdout: $(head -c 200 out.txt | tr '\n' '|')"
    fi
done
run --version
if [ "$rc" -eq 0 ] && grep -q "file format 1\." out.txt; then ok "version"; else fail "version" "exit $rc: $(cat out.txt)"; fi

# ---- usage errors ----------------------------------------------------------
expect_error "unknown command" --needle "frobnicate" -- frobnicate
expect_error "train: unknown option" --needle "--bogus" -- train --bogus --data train.csv -o x.odl
expect_error "eval: unknown option" --needle "--epochs" -- eval m.odl --data test.csv --epochs 3
expect_error "info: unknown option" --needle "--bogus" -- info m.odl --bogus
expect_error "train: missing -o" --needle "required" -- train --data train.csv
expect_error "train: missing --data" --needle "required" -- train -o x.odl
expect_error "eval: missing --data" --needle "required" -- eval m.odl
expect_error "info: missing model" --needle "required" -- info
expect_error "option without value" --needle "--epochs" -- train --data train.csv -o x.odl --epochs
expect_error "--epochs abc" --needle "abc" -- train --data train.csv -o x.odl --epochs abc
expect_error "--epochs 0" --needle "--epochs" -- train --data train.csv -o x.odl --epochs 0
expect_error "--epochs 5x" --needle "5x" -- train --data train.csv -o x.odl --epochs 5x
expect_error "--batch -1" --needle "--batch" -- train --data train.csv -o x.odl --batch -1
expect_error "--lr nan" --needle "--lr" -- train --data train.csv -o x.odl --lr nan
expect_error "--split bogus" --needle "bogus" -- train --data train.csv -o x.odl --split bogus
expect_error "--optim bogus" --needle "bogus" -- train --data train.csv -o x.odl --optim bogus
expect_error "--classes 3-1" --needle "--classes" -- train --data train.csv -o x.odl --classes 3-1
expect_error "--classes abc" --needle "--classes" -- train --data train.csv -o x.odl --classes abc
expect_error "--arch resnet" --needle "resnet" -- train --data train.csv -o x.odl --arch resnet --quiet
expect_error "--arch mlp:0" --needle "mlp:0" -- train --data train.csv -o x.odl --arch mlp:0 --quiet
expect_error "--arch mlp:4," --needle "--arch" -- train --data train.csv -o x.odl --arch mlp:4,x --quiet
expect_error "--shape 1x8" --needle "--shape" -- train --data img.csv -o x.odl --shape 1x8 --quiet
expect_error "--shape not matching the data" -- train --data img.csv -o x.odl --shape 1x8x9 --quiet
expect_error "one class only" --needle "class" -- train --data train.csv -o x.odl --arch mlp:4 --classes 0 --quiet
if [ -e x.odl ] || ls x.odl*.tmp >/dev/null 2>&1; then fail "no output after errors" "x.odl or a x.odl*.tmp exists"; else ok "no output after errors"; fi

# ---- MLP on CSV --------------------------------------------------------------
if expect_ok "train mlp on csv" train --data train.csv --arch mlp:16 --epochs 20 --batch 16 -o m.odl; then
    if [ -s m.odl ] && ! ls m.odl*.tmp >/dev/null 2>&1 && grep -q "saved" out.txt; then ok "model saved"; else fail "model saved" "m.odl missing or a m.odl*.tmp left"; fi
fi
expect_ok "eval mlp" eval m.odl --data test.csv && at_least "eval mlp accuracy >= 90%" "$(accuracy_of_output)" 90
if grep -q "confusion matrix" out.txt; then ok "eval shows confusion matrix"; else fail "eval shows confusion matrix" "$(head -c 200 out.txt)"; fi
expect_ok "eval --json" eval m.odl --data test.csv --json && valid_json "eval --json is JSON"
if [ "$(json_int samples)" = "150" ]; then ok "eval --json sample count"; else fail "eval --json sample count" "$(head -c 200 out.txt)"; fi
expect_ok "info" info m.odl
if grep -q "3 classes" out.txt && grep -q "parameters:" out.txt && grep -q "memory plan" out.txt && grep -q "mlp:16" out.txt; then
    ok "info shows classes, parameters, plan, arch"
else
    fail "info shows classes, parameters, plan, arch" "$(head -c 300 out.txt | tr '\n' '|')"
fi
expect_ok "info --json" info m.odl --json && valid_json "info --json is JSON"
if [ "$(json_int classes)" = "3" ] && [ "$(json_int params)" = "99" ]; then
    ok "info --json classes and params"
else
    fail "info --json classes and params" "$(head -c 300 out.txt)"
fi
# the same seed gives the same file, byte for byte
expect_ok "train again, same seed" train --data train.csv --arch mlp:16 --epochs 20 --batch 16 --quiet -o m2.odl
if cmp -s <(head -c 400 m.odl) <(head -c 400 m2.odl); then ok "same seed, same weights"; else fail "same seed, same weights" "files differ in the first 400 bytes"; fi
# the thread count only places the batch's shards: the weights do not change
expect_ok "train, 1 thread" train --data train.csv --arch mlp:16 --epochs 20 --batch 16 --threads 1 --quiet -o t1.odl
expect_ok "train, 3 threads" train --data train.csv --arch mlp:16 --epochs 20 --batch 16 --threads 3 --quiet -o t3.odl
if cmp -s <(head -c 400 t1.odl) <(head -c 400 t3.odl); then ok "1 and 3 threads, same weights"; else fail "1 and 3 threads, same weights" "files differ in the first 400 bytes"; fi
expect_error "--shards 0" --needle "--shards" -- train --data train.csv -o x.odl --shards 0 --quiet
expect_error "eval: data with another sample size" --needle "64" -- eval m.odl --data img.csv
expect_error "eval: two models" --needle "extra" -- eval m.odl m2.odl --data test.csv

# ---- CSV with --shape: a CNN on 8x8 inputs -------------------------------------
expect_ok "train edge-cnn with --shape 1x8x8" train --data img.csv --shape 1x8x8 --arch edge-cnn --epochs 3 --batch 16 --quiet -o cnn.odl
expect_ok "eval edge-cnn (shape from the model)" eval cnn.odl --data img.csv && at_least "edge-cnn accuracy >= 90%" "$(accuracy_of_output)" 90
expect_ok "eval edge-cnn with --shape" eval cnn.odl --data img.csv --shape 1x8x8
expect_ok "info edge-cnn --json" info cnn.odl --json && valid_json "info edge-cnn --json is JSON"

# ---- class subset on Fashion-MNIST -----------------------------------------------
if [ -f "$FASHION/train-images-idx3-ubyte.gz" ] || [ -f "$FASHION/train-images-idx3-ubyte" ]; then
    expect_ok "fashion: train classes 0-3" train --data "$FASHION" --classes 0-3 --limit 2000 --epochs 1 --quiet -o sub.odl
    run info sub.odl --json
    if [ "$rc" -eq 0 ] && [ "$(json_int classes)" = "4" ]; then ok "fashion: info shows 4 classes"; else fail "fashion: info shows 4 classes" "exit $rc: $(head -c 200 out.txt)"; fi
    expect_ok "fashion: eval classes 0-3" eval sub.odl --data "$FASHION" --classes 0-3 --limit 1000 &&
        at_least "fashion: accuracy > 50%" "$(accuracy_of_output)" 50.01
    expect_error "fashion: eval without --classes" --needle "classes" -- eval sub.odl --data "$FASHION" --limit 1000
    # gradient-free heads: streaming LDA written as the model's last dense layer, its
    # statistics carried in the file so a later adapt needs no original data
    expect_ok "adapt: slda adds classes 4,5" adapt sub.odl --data "$FASHION" --classes 4,5 --limit 60 --new-classes \
        --strategy slda --replay-from "$FASHION" -o slda.odl
    expect_ok "adapt: slda goes on from its statistics" adapt slda.odl --data "$FASHION" --classes 6 --limit 30 \
        --new-classes --strategy slda --quiet -o slda2.odl
    run eval slda2.odl --data "$FASHION" --classes 0-6 --limit 2000
    acc=$(sed -nE 's/^accuracy ([0-9.]+)%.*/\1/p' out.txt)
    if [ "$rc" -eq 0 ] && [ -n "$acc" ] && awk -v a="$acc" 'BEGIN{exit !(a > 50)}'; then
        ok "adapt: slda model evaluates ($acc% on 7 classes)"
    else
        fail "adapt: slda model evaluates" "exit $rc, accuracy '$acc'"
    fi
    expect_error "adapt: ewc needs original data" --needle "replay-from" -- adapt sub.odl --data "$FASHION" --classes 0-3 \
        --limit 20 --strategy ewc -o e.odl
    # augmentation: two new classes from 10 examples each against a replay of 200; the
    # moved copies must lift the new classes well above what the 20 images alone reach
    for a in 0 4; do
        expect_ok "augment: adapt with --augment $a" adapt sub.odl --data "$FASHION" --classes 4,5 --limit 20 \
            --new-classes --replay-from "$FASHION" --replay-size 200 --replay-balanced --augment "$a" --quiet \
            -o "aug$a.odl"
        run eval "aug$a.odl" --data "$FASHION" --classes 4,5 --limit 2000
        eval "aug_$a=\$(accuracy_of_output)"
    done
    if awk -v a="$aug_4" -v b="$aug_0" 'BEGIN { exit !(a + 0 >= b + 10) }'; then
        ok "augment: new classes $aug_4% with 4 moved copies vs $aug_0% without"
    else
        fail "augment lifts the new classes by 10 points" "$aug_4% vs $aug_0%"
    fi
    expect_error "adapt: --augment with ncm" --needle "ncm" -- adapt sub.odl --data "$FASHION" --limit 20 \
        --augment 2 --strategy ncm --replay-from "$FASHION" -o x.odl
    # sensor matching: 100 labelled images from a drifted sensor (x' = 0.8x + 0.1). A base
    # with PyTorch's init loses accuracy to this drift; matching the 400 kept originals to
    # the user's sensor must win back more of it than replay alone, and a later adapt goes
    # on from the kept samples without the original data
    expect_ok "sensor matching: a base" train --data "$FASHION" --epochs 1 --init torch --quiet -o drift-base.odl
    for variant in plain match; do
        extra=()
        [ "$variant" = match ] && extra=(--match 400)
        expect_ok "sensor matching: adapt ($variant)" adapt drift-base.odl --data "$FASHION" --limit 100 \
            --shift gain:0.8,0.1 --replay-from "$FASHION" --replay-size 400 --replay-balanced --replay-int8 \
            ${extra[@]+"${extra[@]}"} --quiet -o "drift-$variant.odl"
        run eval "drift-$variant.odl" --data "$FASHION" --shift gain:0.8,0.1 --limit 5000
        eval "acc_$variant=\$(accuracy_of_output)"
    done
    if awk -v a="$acc_match" -v b="$acc_plain" 'BEGIN { exit !(a + 0 >= b + 0.5) }'; then
        ok "sensor matching: drifted accuracy $acc_match% vs $acc_plain% without"
    else
        fail "sensor matching beats replay alone by 0.5 points" "$acc_match% vs $acc_plain%"
    fi
    run info drift-match.odl
    if [ "$rc" -eq 0 ] && grep -q "sensor-matching samples (400 INT8 slots of 784 values" out.txt &&
        grep -q "replay buffer (400 INT8 slots of 64 values" out.txt; then
        ok "info: the learner state a file carries"
    else
        fail "info: the learner state a file carries" "exit $rc: $(grep -i state out.txt | head -c 300)"
    fi
    run adapt drift-match.odl --data "$FASHION" --limit 50 --shift gain:0.8,0.1 -o drift-match2.odl
    if [ "$rc" -eq 0 ] && grep -q "sensor-matching samples" err.txt && grep -q "intensity curve fitted on" err.txt; then
        ok "sensor matching: a later adapt goes on from the kept samples"
    else
        fail "sensor matching: a later adapt goes on from the kept samples" "exit $rc: $(head -c 300 err.txt)"
    fi
    # a sensor that moved 2 pixels right and 1 up: the move is found from the class means
    run adapt drift-base.odl --data "$FASHION" --limit 100 --shift translate:2,-1 --replay-from "$FASHION" \
        --replay-size 100 --replay-balanced --match 200 -o drift-moved.odl
    if [ "$rc" -eq 0 ] && grep -q "image moved by (2, -1)" err.txt; then
        ok "sensor matching: the camera's move found"
    else
        fail "sensor matching: the camera's move found" "exit $rc: $(grep -i matching err.txt | head -c 300)"
    fi
    expect_error "adapt: --match needs original samples" --needle "replay-from" -- adapt drift-base.odl \
        --data "$FASHION" --limit 20 --match 10 -o x.odl
    expect_error "adapt: --match with slda" --needle "slda" -- adapt drift-base.odl --data "$FASHION" --limit 20 \
        --match 10 --strategy slda --replay-from "$FASHION" -o x.odl
else
    echo "ok  fashion: skipped ($FASHION not installed)"
    passed=$((passed + 1))
fi

# ---- experiment options (refused before any data is read)
expect_error "experiment: bad --shift" --needle "shift" -- experiment s1 --shift tilt:3
expect_error "experiment: bad --per-class" --needle "--per-class" -- experiment s1 --per-class 0
expect_error "experiment: bad --test-half" --needle "--test-half" -- experiment s2 --test-half middle

# ---- damaged model files -------------------------------------------------------
head -c 100 m.odl >trunc.odl
expect_error "info: truncated model" --needle "trunc.odl" --needle "truncated" -- info trunc.odl
expect_error "eval: truncated model" --needle "trunc.odl" --needle "truncated" -- eval trunc.odl --data test.csv
cp m.odl flip.odl
byte=$(od -An -tu1 -j 300 -N1 m.odl | tr -d ' \n')
printf '%b' "\\0$(printf '%03o' $((byte ^ 255)))" | dd of=flip.odl bs=1 seek=300 conv=notrunc status=none
if cmp -s m.odl flip.odl; then fail "flip a byte" "flip.odl equals m.odl"; else ok "flip a byte"; fi
expect_error "info: flipped byte" --needle "flip.odl" --needle "CRC" -- info flip.odl
expect_error "eval: flipped byte" --needle "flip.odl" --needle "CRC" -- eval flip.odl --data test.csv
cp m.odl tail.odl
printf 'x' >>tail.odl
expect_error "info: bytes after END" --needle "tail.odl" --needle "garbage" -- info tail.odl
: >empty.odl
expect_error "info: empty file" --needle "empty.odl" -- info empty.odl
expect_error "info: not a model" --needle "test.csv" --needle "magic" -- info test.csv
expect_error "info: a directory" --needle "$WORK" -- info "$WORK"

# ---- paths that do not exist -------------------------------------------------------
expect_error "train: no such data" --needle "nope.csv" -- train --data nope.csv -o x.odl
expect_error "eval: no such data" --needle "no_such_dir" -- eval m.odl --data no_such_dir/
expect_error "eval: no such model" --needle "nope.odl" -- eval nope.odl --data test.csv
expect_error "info: no such model" --needle "nope.odl" -- info nope.odl
expect_error "train: output directory missing" --needle "no_such_dir" -- train --data train.csv --arch mlp:4 --epochs 1 --quiet -o no_such_dir/x.odl

# ---- the learner's memory budget (odl info --budget) ---------------------------------
expect_error "info: budget too small" --needle "over the" -- info m.odl --budget 1K
run info m.odl --budget 10M
if [ "$rc" -eq 0 ] && grep -q "fits the" out.txt; then ok "info: budget fits"; else fail "info: budget fits" "exit $rc: $(tail -3 out.txt)"; fi
run info m.odl --budget 10M --json
if [ "$rc" -eq 0 ] && grep -q '"fits": true' out.txt; then ok "info: budget json"; else fail "info: budget json" "exit $rc"; fi
expect_error "info: bad budget" --needle "--budget" -- info m.odl --budget lots

# The first hour: the README's CSV example as written (examples/points.csv ships with the repo)
if "$ODL" train --data "$REPO/examples/points.csv" --arch mlp:32,16 --epochs 30 -o pts.odl --quiet >out.txt 2>&1 &&
    "$ODL" eval pts.odl --data "$REPO/examples/points.csv" >out.txt 2>&1 && grep -qE "^accuracy (8|9)[0-9]" out.txt; then
    ok "README CSV example trains (accuracy >= 80%)"
else fail "README CSV example" "$(head -c 300 out.txt)"; fi
if [ -d "$FASHION" ]; then
    # adapt with its defaults: naive, with a note, when the model carries nothing to replay
    "$ODL" train --data "$FASHION" --limit 2000 --epochs 1 --quiet -o ad-base.odl >/dev/null 2>&1
    if "$ODL" adapt ad-base.odl --data "$FASHION" --limit 50 -o ad.odl >out.txt 2>err.txt && grep -q "naive" out.txt &&
        grep -q "note: .*no replay buffer" err.txt; then ok "adapt: defaults work (naive with a note)"
    else fail "adapt: defaults" "$(cat out.txt err.txt | head -c 300)"; fi
    if "$ODL" adapt ad-base.odl --data "$FASHION" --limit 50 --shape 1x28x28 --json --quiet -o ad2.odl >out.txt 2>&1 &&
        grep -q '"strategy": "naive"' out.txt && grep -q '"planned_bytes": [1-9]' out.txt; then ok "adapt: --shape and --json"
    else fail "adapt: --shape/--json" "$(head -c 300 out.txt)"; fi
fi

# CSV: a header's "label" column is the label wherever it stands; --label-col NAME|N for others
printf 'a,b,label\n0.1,0.2,1\n0.3,0.1,0\n0.9,0.8,2\n0.2,0.1,1\n' > hdr.csv
printf '0.1,5,1\n0.3,6,0\n0.5,7,1\n' > nohdr.csv
printf 'a,target,b\n0.1,1,0.2\n0.3,0,0.1\n' > named.csv
if "$ODL" train --data hdr.csv --arch mlp:4 --quiet -o hdr.odl >/dev/null 2>&1 && "$ODL" info hdr.odl >out.txt 2>&1 &&
    grep -q "input 1x1x2, 3 classes" out.txt; then ok "csv: header 'label' column last is the label"
else fail "csv: header label column" "$(head -c 300 out.txt)"; fi
if "$ODL" train --data nohdr.csv --label-col 3 --arch mlp:4 --quiet -o nh.odl >/dev/null 2>&1 && "$ODL" info nh.odl >out.txt 2>&1 &&
    grep -q "input 1x1x2, 2 classes" out.txt; then ok "csv: --label-col 3"
else fail "csv: --label-col 3" "$(head -c 300 out.txt)"; fi
if "$ODL" train --data named.csv --label-col target --arch mlp:4 --quiet -o nm.odl >/dev/null 2>&1 && "$ODL" info nm.odl >out.txt 2>&1 &&
    grep -q "input 1x1x2, 2 classes" out.txt; then ok "csv: --label-col NAME"
else fail "csv: --label-col NAME" "$(head -c 300 out.txt)"; fi
expect_error "csv: --label-col names no column" --needle "no column named 'zz'" -- train --data hdr.csv --label-col zz --arch mlp:4 -o x.odl
expect_error "csv: --label-col NAME without a header" --needle "no header line" -- train --data nohdr.csv --label-col lab --arch mlp:4 -o x.odl
expect_error "csv: --label-col past the last column" --needle "no label column 7" -- train --data nohdr.csv --label-col 7 --arch mlp:4 -o x.odl
# --json on train and quantize; quantize explains the file size
if "$ODL" train --data "$REPO/examples/points.csv" --arch mlp:8 --json --quiet -o pj.odl >out.txt 2>&1 &&
    grep -q '"arch": "mlp:8"' out.txt && grep -q '"final_loss": ' out.txt; then ok "train --json"
else fail "train --json" "$(head -c 300 out.txt)"; fi
if [ -d "$FASHION" ]; then
    if "$ODL" quantize ad-base.odl --calib "$FASHION" --calib-samples 200 -o q8.odl >out.txt 2>&1 &&
        grep -q "larger, because it keeps the FP32 prefix" out.txt && grep -q "pays off on the device" out.txt; then
        ok "quantize says why the INT8 file is larger and where INT8 pays off"
    else fail "quantize size note" "$(head -c 400 out.txt)"; fi
    if "$ODL" quantize ad-base.odl --calib "$FASHION" --calib-samples 200 -o q8j.odl --eval "$FASHION" --limit 300 --json >out.txt 2>&1 &&
        grep -q '"int8_param_bytes": [1-9]' out.txt && grep -q '"accuracy_int8": ' out.txt; then ok "quantize --json"
    else fail "quantize --json" "$(head -c 300 out.txt)"; fi
fi

# Docs stand on their own: no reference to files outside the repository or to "the issue".
# In a git checkout only the project's files are read, tracked or new (a venv made in the tree, as the
# README's pip line does, holds other people's text).
pat="PROTOCOL\.md|\.\./shared|/work/shared|the issue"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    refs=$(cd "$REPO" && git ls-files -z -co --exclude-standard -- '*.md' '*.c' '*.h' '*.py' '*.sh' '*.txt' '*.ipynb' |
        grep -zv -e '/site-packages/' -e '/dist-packages/' |
        xargs -0 grep -nE "$pat" -- 2>/dev/null | grep -v "^tests/cli_test.sh:" || true)
else
    refs=$(grep -rnE "$pat" "$REPO" --include='*.md' --include='*.c' --include='*.h' --include='*.py' --include='*.sh' \
        --include='*.txt' --include='*.ipynb' --exclude-dir='build*' --exclude-dir=.git --exclude-dir='*venv*' \
        | grep -v "tests/cli_test.sh" || true)
fi
if [ -z "$refs" ]; then ok "docs: no references outside the repository"; else fail "docs: outside references" "$refs"; fi

# The first hour's scripts: apt waits for a held lock; demo.sh says what it does and what to try next
grep -q "DPkg::Lock::Timeout=" "$REPO/scripts/deps.sh" && ok "deps.sh waits for a held dpkg lock" || fail "deps.sh" "no DPkg::Lock::Timeout"
grep -q "^step " "$REPO/scripts/demo.sh" && grep -q "what to try next" "$REPO/scripts/demo.sh" &&
    ok "demo.sh names its steps and ends with what to try next" || fail "demo.sh" "no steps or next steps"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
