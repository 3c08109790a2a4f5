#!/usr/bin/env python3
"""Markdown tables (mean ± std over seeds) from `odl experiment --json FILE`.
Usage: python3 bench/results_md.py results.json > tables.md"""
import json, statistics, sys

def ms(v):
    v = [x for x in v if x is not None]
    if not v:
        return "–"
    m = statistics.mean(v)
    s = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"

data = json.load(open(sys.argv[1]))
rows = data["results"]
print(f"seeds: {data['seeds']}\n")
for sc in dict.fromkeys(r["scenario"] for r in rows):
    rs = [r for r in rows if r["scenario"] == sc]
    print(f"### {sc}\n")
    if sc == "S3":
        print("| strategy | ACC | BWT | trainable | bytes |\n|---|---|---|---|---|")
        for r in rs:
            print(f"| {r['strategy']} | {ms(r['ACC'])} | {ms(r['BWT'])} | {r['trainable_params']:,} | {r['planned_bytes']:,} |")
    else:
        keys = [k for k in rs[0] if isinstance(rs[0][k], list)]
        print("| strategy | " + " | ".join(keys) + " | trainable | bytes |")
        print("|---" * (len(keys) + 3) + "|")
        for r in rs:
            print(f"| {r['strategy']} | " + " | ".join(ms(r[k]) for k in keys) +
                  f" | {r['trainable_params']:,} | {r['planned_bytes']:,} |")
    print()
