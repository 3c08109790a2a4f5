#!/usr/bin/env bash
# Coverage-guided fuzzing (clang + libFuzzer, with ASan/UBSan) of every
# reader of untrusted bytes: the .odl model file, the learner-state chunks,
# the version store's medium, the IDX/CSV dataset readers, a model paired
# with data of another shape (the tool's shape and memory checks), the event
# log of 'odl session', the command line's option parsing, the ONNX
# importer, the TFLite reader/importer/writer and the fleet's head-delta
# messages (docs/architecture.md says what each target covers).
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
bash scripts/deps.sh clang libclang-rt-14-dev python3-onnx
out=build-fuzz
mkdir -p "$out"
core=$(ls src/*.c)
host="src/host/data.c src/host/shift.c src/host/posix_io.c src/host/posix_save.c"
flags="-Wno-pass-failed -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -DODL_OMP_SIMD -fopenmp-simd"
# seed corpus: real files of each kind
mkdir -p "$out/corpus_model" "$out/corpus_state" "$out/corpus_store" "$out/corpus_data" "$out/corpus_evlog" \
    "$out/corpus_cli"
# shellcheck disable=SC2086
clang -std=c11 -O1 -Iinclude -DODL_OMP_SIMD -fopenmp-simd -o "$out/make_seeds" tests/fuzz/make_seeds.c $core -lm
"$out/make_seeds" "$out"
printf '0,1.5,2\n1,0.5,-1\n2,3,4\n' >"$out/corpus_data/seed.csv"
printf 'label,a,b\n3,1,2\n' >"$out/corpus_data/header.csv"
cp examples/session/*.csv "$out/corpus_evlog/" 2>/dev/null || true
printf '# c\npredict,user,1\nlabel,orig,2,3\nright,user,4\nwrong,orig,5\nupdate\ncalibrate\nrollback,2\nrollback\nsave,m.odl\n' \
    >"$out/corpus_evlog/all.log"
printf '%s\0' --epochs 5 --lr=0.01 --shape 1x28x28 --split test --shift gain:0.8,0.1 --classes 0-7 -o x.odl \
    >"$out/corpus_cli/args"
printf '%s\0' --shift=translate:2,-1 --classes=1,3,5 --out-dir d --quiet >"$out/corpus_cli/args2"
printf '\357\273\277label,a\n1,2\n' >"$out/corpus_data/bom.csv"
gzip -c "$out/corpus_data/seed.csv" >"$out/corpus_data/seed.csv.gz"
{ cat "$out/corpus_data/seed.csv.gz"; printf 'junk'; } >"$out/corpus_data/trailing.gz"
# model + data pairs: 4 bytes choose the model (input c, h, w; width), one the
# data's kind (low bits: csv, csv.gz, idx, idx.gz) and the memory limit
mkdir -p "$out/corpus_shape"
printf '\000\000\001\007\120' >"$out/corpus_shape/csv_fits"; cat "$out/corpus_data/seed.csv" >>"$out/corpus_shape/csv_fits"
printf '\000\000\002\007\120' >"$out/corpus_shape/csv_other"; cat "$out/corpus_data/seed.csv" >>"$out/corpus_shape/csv_other"
printf '\000\000\001\007\121' >"$out/corpus_shape/csvgz"; cat "$out/corpus_data/seed.csv.gz" >>"$out/corpus_shape/csvgz"
# IDX: 2 images of 2x3 (the cut byte puts the 22-byte images file first), 2 labels
printf '\000\001\002\007\122\040\000\000\010\003\000\000\000\002\000\000\000\002\000\000\000\003\001\002\003\004\005\006\007\010\011\012\013\014\000\000\010\001\000\000\000\002\001\002' \
    >"$out/corpus_shape/idx"
# ONNX: the reader generated from onnx.proto, seeded with the small models
# of the importer's tests (accepted ones and refused ones)
mkdir -p "$out/onnx-gen" "$out/corpus_onnx"
cp /usr/include/onnx/onnx.proto "$out/onnx-gen/"
protoc-c --proto_path="$out/onnx-gen" --c_out="$out/onnx-gen" "$out/onnx-gen/onnx.proto"
/usr/bin/python3 tests/onnx_models.py "$out/corpus_onnx" >/dev/null
rm -f "$out"/corpus_onnx/*.npy
onnx_src="src/host/onnx_import.c src/host/posix_io.c src/host/posix_save.c $out/onnx-gen/onnx.pb-c.c -I$out/onnx-gen -lprotobuf-c"
# TFLite: the MLPerf Tiny fixtures, odl's own exports and malformed variants
tflite_src="src/host/tflite.c src/host/tflite_write.c $onnx_src"
mkdir -p "$out/corpus_tflite"
cp tests/data/mlperf_tiny/*.tflite "$out/corpus_tflite/"
# shellcheck disable=SC2086
clang -std=c11 -O1 -Iinclude -DODL_OMP_SIMD -fopenmp-simd -o "$out/make_tflite_seeds" tests/fuzz/make_tflite_seeds.c $core $tflite_src -lm
"$out/make_tflite_seeds" "$out/corpus_tflite"
/usr/bin/python3 tests/tflite_models.py hostile tests/data/mlperf_tiny/kws_ref_model.tflite "$out/corpus_tflite" >/dev/null
# head deltas: seed messages (good, unsigned, stale, unknown device, wrong key)
# for the target's own receiver, made by the target's code built without libFuzzer
mkdir -p "$out/corpus_delta"
# shellcheck disable=SC2086
clang -std=c11 -O1 -Iinclude -DODL_OMP_SIMD -fopenmp-simd -DODL_FUZZ_DELTA_SEEDS -o "$out/make_delta_seeds" \
    tests/fuzz/fuzz_delta.c $core -lm
"$out/make_delta_seeds" "$out/corpus_delta"
pass=0 fail=0
for t in model_file state store data shape evlog cli onnx tflite delta; do
    extra="" opts=""
    [ "$t" = data ] && extra="$host -lz"
    # the tool's data/model pairing code (tools/odl/cli.c); its error lines are not output worth keeping
    [ "$t" = shape ] && extra="$host tools/odl/cli.c -Itools/odl -lz" && opts="-close_fd_mask=2"
    [ "$t" = evlog ] && extra="tools/odl/evlog.c"
    [ "$t" = onnx ] && extra="$onnx_src"
    # the CLI's parsers print every refusal: keep stderr quiet (reports still show)
    [ "$t" = cli ] && extra="tools/odl/cli.c tools/odl/evlog.c $host -lz" opts="-close_fd_mask=2"
    [ "$t" = tflite ] && extra="$tflite_src"
    # shellcheck disable=SC2086
    clang $flags -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $core $extra -lm
    corpus="$out/corpus_${t%_file}"
    [ -d "$corpus" ] || corpus="$out/corpus_model"
    # shellcheck disable=SC2086
    if "$out/fuzz_$t" -artifact_prefix="$out/" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=1024 $opts "$corpus" \
        >"$out/fuzz_$t.log" 2>&1; then
        echo "ok  fuzz_$t: $(grep -E 'DONE' "$out/fuzz_$t.log" | tail -1 | sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+).*/\1 runs, coverage \2 edges, no failure/')"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz_$t (see $out/fuzz_$t.log; the crashing input is saved beside it)"
        tail -30 "$out/fuzz_$t.log"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
