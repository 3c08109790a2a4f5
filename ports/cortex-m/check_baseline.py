#!/usr/bin/env python3
"""check_baseline.py BASELINE MEASURED [--tolerance 0.10]: every value of
BASELINE ("name value" lines, # comments) must be in MEASURED and at most
(1 + tolerance) times the baseline, and every value of MEASURED must be in
BASELINE (a new cost, say a new strategy's insn_update_<name>, is checked
from the run that records it on). Prints a table; exit 1 on any excess,
missing or unrecorded value. Values that shrink pass (record them with
run.sh --record)."""
import sys


def read(path):
    out = {}
    for n, line in enumerate(open(path), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            sys.exit("%s:%d: expected 'name value', got %r" % (path, n, line.strip()))
        try:
            out[fields[0]] = int(fields[1])
        except ValueError:
            sys.exit("%s:%d: %r is not an integer" % (path, n, fields[1]))
    return out


def main():
    args = sys.argv[1:]
    tol = 0.10
    if "--tolerance" in args:
        i = args.index("--tolerance")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    base, meas = read(args[0]), read(args[1])
    bad = 0
    for k, b in base.items():
        m = meas.get(k)
        if m is None:
            print("  %-28s %12d  %12s  MISSING" % (k, b, "-"))
            bad += 1
            continue
        grow = (m - b) / b if b else (0.0 if m == 0 else float("inf"))
        verdict = "ok" if m <= b * (1 + tol) else "OVER +%.0f%%" % (100 * tol)
        bad += verdict != "ok"
        print("  %-28s %12d  %12d  %+6.1f%%  %s" % (k, b, m, 100 * grow, verdict))
    for k, m in meas.items():
        if k not in base:
            print("  %-28s %12s  %12d  NOT IN THE BASELINE (record it: run.sh --record)" % (k, "-", m))
            bad += 1
    print("%s      cost within %.0f%% of %s" % ("ok" if not bad else "not ok", 100 * tol, args[0]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
