#!/usr/bin/env bash
# Reports (docs/reports.md): `odl report` renders tests/data/report_fixture.json
# (a trimmed real `odl experiment --json` run); headless Chromium opens the
# page, which must have every chart, each with content, no script and no
# console error; a PNG screenshot is saved. `odl info --report` and
# `odl train --report` are checked the same way; malformed JSON must fail
# with a message that says where.
# Usage: bash tests/report_test.sh ODL [SCREENSHOT.png]
#   (regenerate the README's picture: bash tests/report_test.sh build/odl docs/report.png)
set -u
odl=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
fixture=$src/tests/data/report_fixture.json
pass=0 fail=0
ok() { echo "ok  $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
png=${2:-$tmp/report.png}
case "$png" in /*) ;; *) png=$PWD/$png ;; esac

# Debian's chromium (and a font for it), installed when missing
if ! command -v chromium >/dev/null 2>&1; then
    bash "$src/scripts/deps.sh" chromium fonts-dejavu-core >/dev/null 2>&1 || true
fi
if ! command -v chromium >/dev/null 2>&1; then bad "chromium is not installed and could not be"; finish; fi

chrome() { # chrome OUT_STDOUT OUT_STDERR ARGS... : one headless run, its own profile, no network services
    local out=$1 err=$2
    shift 2
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
        --hide-scrollbars --enable-logging=stderr --v=0 --user-data-dir="$(mktemp -d -p "$tmp")" "$@" >"$out" 2>"$err"
}

# every chart of a page: an <svg class="chart"> with text and marks; the count
# in the rendered DOM equals the footer's data-charts and the expected number
check_page() { # check_page NAME HTML EXPECTED_CHARTS [KIND=COUNT ...]
    local name=$1 html=$2 want=$3
    shift 3
    grep -qi '<script' "$html" && bad "$name: has a script" || ok "$name: no script"
    # nothing fetched: no src/href attributes, url() only to ids inside the page
    if grep -Eqi '(src|href) *=|@import|url\( *[^#]' "$html"; then bad "$name: refers to something outside the page"; else ok "$name: self-contained"; fi
    chrome "$tmp/dom.html" "$tmp/dom.err" --dump-dom "file://$html"
    local rc=$?
    [ $rc -eq 0 ] && [ -s "$tmp/dom.html" ] && ok "$name: chromium rendered it" || { bad "$name: chromium failed ($rc)"; tail -5 "$tmp/dom.err"; return; }
    if grep -Ei 'CONSOLE|Uncaught|SyntaxError|Failed to load resource|net::ERR' "$tmp/dom.err" >/dev/null; then
        bad "$name: console errors"; grep -Ei 'CONSOLE|Uncaught|SyntaxError|Failed to load|net::ERR' "$tmp/dom.err" | head -5
    else ok "$name: no console errors"; fi
    local n footer
    n=$(grep -o '<svg class="chart"' "$tmp/dom.html" | wc -l)
    footer=$(sed -nE 's/.*<footer data-charts="([0-9]+)".*/\1/p' "$tmp/dom.html" | head -1)
    [ "$n" -eq "$want" ] && [ "${footer:-x}" = "$want" ] && ok "$name: $n charts rendered (footer says $footer)" ||
        bad "$name: $n charts rendered, footer says '${footer:-none}', expected $want"
    local empty
    empty=$(tr '\n' ' ' <"$tmp/dom.html" | sed 's/<svg class="chart"/\n&/g' | grep '^<svg class="chart"' |
        sed 's#</svg>.*##' | awk '!(/<text/ && (/<\/title><\/rect>/ || /<path d="M[^"]*L/ || /<circle/)) {n++} END {print n+0}')
    [ "$empty" -eq 0 ] && ok "$name: every chart has marks and text" || bad "$name: $empty charts without content"
    for kv in "$@"; do
        local kind=${kv%=*} count=${kv#*=} got
        got=$(grep -o "<svg class=\"chart\" data-kind=\"$kind\"" "$tmp/dom.html" | wc -l)
        [ "$got" -eq "$count" ] && ok "$name: $count $kind" || bad "$name: $got $kind charts, expected $count"
    done
}

# ---- odl report on the fixture --------------------------------------------------------
out=$(cd "$src" && "$odl" report tests/data/report_fixture.json -o "$tmp/report.html" 2>&1)
[ $? -eq 0 ] && [ -s "$tmp/report.html" ] && ok "odl report: $out" || { bad "odl report: $out"; finish; }
# what the fixture holds: 2 one-step scenarios, S3 rows with R_mean, loss curves
n_s3=$(grep -o '"R_mean"' "$fixture" | wc -l)
n_sc=$(grep -oE '"scenario": "[^"]*"' "$fixture" | sort -u | wc -l)
n_loss=$(grep -c '"loss_curves"' "$fixture")
# one accuracy chart per scenario, a heatmap and a forgetting curve per S3 row,
# two memory charts per scenario (totals against the budget, what they are
# made of), one loss chart
want=$((n_sc + 2 * n_s3 + 2 * n_sc + n_loss))
check_page "experiment report" "$tmp/report.html" "$want" heatmap="$n_s3" lines=$((n_s3 + n_loss)) \
    stacked-bars="$n_sc" bars=$((2 * n_sc))
grep -q 'weights (params)' "$tmp/dom.html" && grep -q 'optimizer state' "$tmp/dom.html" &&
    ok "memory charts are broken down per kind" || bad "memory charts lack the per-kind legend"
grep -q 'ACC: mean accuracy after the last task' "$tmp/dom.html" && ok "S3 summary bars" || bad "S3 summary bars"
grep -q 'Strategy names: naive' "$tmp/report.html" && grep -q '+adR = a residual adapter' "$tmp/report.html" &&
    ok "a legend explains the strategy labels" || bad "no legend for the strategy labels"
[ "$(grep -c '<line class="ref"[^>]*><title>256 KB budget' "$tmp/report.html")" -eq "$n_sc" ] &&
    ok "every memory chart shows the 256 KB budget line" || bad "memory charts without the budget line"
# small strategies readable: the totals on a log axis give the smallest bar a
# fifth of the largest's length at least (on a linear axis the fixture's
# smallest is a tenth of its largest: 16 KiB of 161 KiB), each total labelled; the
# composition chart fills every row and labels each part of 10% or more
mem=$(python3 - "$tmp/report.html" "$n_sc" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
svgs = re.findall(r'<svg class="chart".*?</svg>', html, re.S)
tot = [s for s in svgs if 'against a 256 KB device' in s[:600]]
comp = [s for s in svgs if "memory is made of" in s[:600]]
problems = []
for s in tot:
    if "(log scale)" not in s:
        problems.append("totals not on a log axis")
    w = [float(m) for m in re.findall(r'<rect x="[0-9.]+" y="[0-9.]+" width="([0-9.]+)" height="[0-9.]+" fill="#0072B2"', s)]
    labels = re.findall(r'fill="#333">([0-9.]+ (?:B|KiB|MiB))</text>', s)
    if not w or min(w) < 0.2 * max(w) or len(labels) != len(w):
        problems.append("totals: bar widths %s, %d labels" % ([round(x) for x in w], len(labels)))
for s in comp:
    rows = {}
    for x, y, wd, title in re.findall(r'<rect x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="15\.0" fill="[^"]+" '
                                      r'stroke="#fff" stroke-width="0.5"><title>([^<]*)</title>', s):
        share = float(re.search(r'\(([0-9.]+)%\)', title).group(1))
        rows.setdefault(y, []).append((float(x), float(wd), share))
    labelled = re.findall(r'text-anchor="middle" style="fill:#[0-9a-f]+">[0-9.]+ (?:B|KiB|MiB)</text>', s)
    spans = [sum(p[1] for p in r) for r in rows.values()]
    big = sum(1 for r in rows.values() for p in r if p[2] >= 10)
    if not rows or max(spans) - min(spans) > 2 or len(labelled) < big:
        problems.append("composition: row spans %s, %d labels for %d parts of 10%% or more" % (
            [round(x) for x in spans], len(labelled), big))
if len(tot) != int(sys.argv[2]) or len(comp) != int(sys.argv[2]):
    problems.append("%d totals and %d composition charts for %s scenarios" % (len(tot), len(comp), sys.argv[2]))
print("; ".join(problems) if problems else "ok %d totals charts, %d composition charts" % (len(tot), len(comp)))
PY
)
case "$mem" in "ok "*) ok "memory charts readable: $mem" ;; *) bad "memory charts: $mem" ;; esac
if grep -q '"scenarios"' "$fixture"; then
    grep -q '<title>base user ' "$tmp/report.html" && ok "S1 chart shows the base as a reference line" ||
        bad "S1 chart without the base's reference line"
fi

# the screenshot
chrome "$tmp/shot.out" "$tmp/shot.err" --window-size=1280,2400 --screenshot="$png" "file://$tmp/report.html"
size=$(stat -c %s "$png" 2>/dev/null || echo 0)
if [ "$size" -gt 0 ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; then
    [ "$size" -lt 512000 ] && ok "screenshot $png ($size bytes)" || bad "screenshot $png is $size bytes (over 500 KB)"
else
    bad "no screenshot"; tail -3 "$tmp/shot.err"
fi

# ---- odl train --report and odl info --report ------------------------------------------
cd "$tmp"
awk 'BEGIN { srand(7); print "label,a,b,c,d"; for (i = 0; i < 300; i++) { y = i % 3;
     printf "%d,%.3f,%.3f,%.3f,%.3f\n", y, y + rand(), rand() - y, rand(), y * rand() } }' >pts.csv
if "$odl" train --data pts.csv --arch mlp:8 --epochs 6 --batch 16 --quiet -o m.odl --report train.html >/dev/null 2>train.err; then
    ok "odl train --report"
    check_page "train report" "$tmp/train.html" 1 lines=1
else
    bad "odl train --report: $(cat train.err)"
fi
if "$odl" info m.odl --report info.html >/dev/null 2>info.err; then
    ok "odl info --report"
    check_page "info report" "$tmp/info.html" 1 stacked-bars=1
    grep -q 'training every layer' "$tmp/dom.html" && ok "info report names its plans" || bad "info report plan names"
else
    bad "odl info --report: $(cat info.err)"
fi

# ---- bad input: clear errors, exit 1 (bad files) or 2 (bad command lines) ---------------------
expect() { # expect NAME STATUS NEEDLE FILE_CONTENT
    printf '%s' "$4" >bad.json
    local o s
    o=$("$odl" report bad.json -o bad.html 2>&1)
    s=$?
    if [ $s -eq "$2" ] && echo "$o" | grep -qF -- "$3"; then ok "$1: $o"; else bad "$1 (status $s): $o"; fi
}
expect "truncated" 1 "bad.json:2:" '{"seeds": 1, "results": [
  {"scenario": "S1", "strategy": "naive", "planned_bytes": 1, "user": [1.0'
expect "trailing comma" 1 "bad.json:1:" '{"seeds": 1, "results": [],}'
expect "nan" 1 "non-finite" '{"seeds": 1, "results": [{"scenario": "S1", "strategy": "n", "planned_bytes": 1, "user": [nan]}]}'
expect "not an object" 1 "top level is an array" '[1, 2]'
expect "no results" 1 "no \"results\"" '{"seeds": 1}'
expect "empty results" 1 "nothing to report" '{"seeds": 1, "results": []}'
expect "missing strategy" 1 "results[0].strategy: missing" '{"results": [{"scenario": "S1", "planned_bytes": 1}]}'
expect "metric not numbers" 1 "results[0].user: element 1 is a string" '{"results": [{"scenario": "S1", "strategy": "n", "planned_bytes": 1, "user": [1, "x"]}]}'
expect "R_mean not square" 1 "square matrix" '{"results": [{"scenario": "S3", "strategy": "n", "planned_bytes": 1, "R_mean": [[1, 2], [3]]}]}'
expect "duplicate key" 1 "duplicate key" '{"results": [], "results": []}'
expect "bad escape" 1 "unknown escape" '{"results": [{"scenario": "S\q"}]}'
expect "garbage after" 1 "after the JSON value" '{"results": []} x'
o=$("$odl" report 2>&1); s=$?
[ $s -eq 2 ] && echo "$o" | grep -q "required" && ok "no arguments: $o" || bad "no arguments (status $s): $o"
o=$("$odl" report nope.json -o x.html 2>&1); s=$?
[ $s -eq 1 ] && echo "$o" | grep -q "nope.json" && ok "missing file: $o" || bad "missing file (status $s): $o"
o=$("$odl" report "$fixture" -o no_such_dir/x.html 2>&1); s=$?
[ $s -eq 1 ] && echo "$o" | grep -q "no_such_dir/x.html" && ok "unwritable output: $o" || bad "unwritable output (status $s): $o"
finish
