#!/usr/bin/env python3
"""check_baseline.py BASELINE MEASURED [--tolerance 0.10]: every value of
BASELINE ("name value" lines, # comments) must be in MEASURED and at most
(1 + tolerance) times the baseline. Prints a table; exit 1 on any excess or
missing value. Values that shrink pass (record them with run.sh --record)."""
import sys


def read(path):
    out = {}
    for line in open(path):
        line = line.split("#", 1)[0].split()
        if len(line) == 2:
            out[line[0]] = int(line[1])
    return out


def main():
    args = sys.argv[1:]
    tol = 0.10
    if "--tolerance" in args:
        i = args.index("--tolerance")
        tol = float(args[i + 1])
        del args[i:i + 2]
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
    print("%s      cost within %.0f%% of %s" % ("ok" if not bad else "not ok", 100 * tol, args[0]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
