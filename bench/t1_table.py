#!/usr/bin/python3
"""Prints the T1/M1 table from the files bench/run_t1.sh leaves in WORK_DIR:
odl_*.json, torch1_*.json, torch2_*.json (one per round), callgrind.txt
(row iters instructions) and m1.txt (who peak_kB)."""
import glob, json, os, statistics, sys

ROWS = [  # key, label, callgrind row, PROTOCOL target on odl/PyTorch(1 thread)
    ("head_step_raw_b1", "1 head step, raw image, batch 1", "raw_b1", ("<=", 0.05)),
    ("head_step_raw_b16", "2 head step, raw images, batch 16", "raw_b16", ("<=", 0.20)),
    ("head_step_latent_b1", "3 head step, cached latents, batch 1", "latent_b1", ("<=", 0.01)),
    ("head_step_latent_b16", "3 head step, cached latents, batch 16", "latent_b16", ("<=", 0.03)),
    ("inference_b1", "4 inference, batch 1", "infer_b1", ("<=", 0.10)),
    ("full_step_b16", "5 full training step, batch 16", "full_b16", ("<=", 0.50)),
]


def load(work, prefix):
    out = []
    for p in sorted(glob.glob(os.path.join(work, prefix + "_*.json"))):
        with open(p) as f:
            out.append(json.load(f))
    return out


def med(runs, key):
    if not runs:
        return None
    if key == "ips":
        return statistics.median(r["base_training_images_per_second"] for r in runs)
    return statistics.median(r["median_us"][key] for r in runs)


def fmt(v, unit="us"):
    if v is None:
        return "–"
    if unit == "us":
        return f"{v:,.2f}" if v < 10 else f"{v:,.1f}"
    return f"{v:,.0f}"


def main():
    work = sys.argv[1]
    odl, t1, t2 = load(work, "odl"), load(work, "torch1"), load(work, "torch2")
    ir = {}
    cg = os.path.join(work, "callgrind.txt")
    if os.path.exists(cg):
        for line in open(cg):
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                ir[parts[0]] = int(parts[2]) / int(parts[1])
    print(f"T1, median of {len(odl)} rounds (each a median of many calls); "
          f"PyTorch {t1[0]['torch'] if t1 else '?'}; ratio = odl / PyTorch")
    print()
    print("| row | odl µs | PyTorch 1 thr µs | PyTorch 2 thr µs | ratio (1 thr) | ratio (2 thr) "
          "| target (1 thr) | met | odl instructions |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, label, cgrow, (op, tgt) in ROWS:
        o, a, b = med(odl, key), med(t1, key), med(t2, key)
        r1 = o / a if o and a else None
        r2 = o / b if o and b else None
        met = "–" if r1 is None else ("yes" if r1 <= tgt else "**no**")
        insn = f"{ir[cgrow]:,.0f}" if cgrow in ir else "–"
        print(f"| {label} | {fmt(o)} | {fmt(a)} | {fmt(b)} | {fmt(r1, 'r')} | {fmt(r2, 'r')} "
              f"| ≤ {tgt} | {met} | {insn} |".replace("| None", "| –"))
    o, a, b = med(odl, "ips"), med(t1, "ips"), med(t2, "ips")
    r1 = o / a if o and a else None
    r2 = o / b if o and b else None
    insn = f"{ir['train_b64'] / 64:,.0f} per image" if "train_b64" in ir else "–"
    met = "–" if r1 is None else ("yes" if r1 >= 2.0 else "**no**")
    print(f"| 6 base training, batch 64 (images/s) | {fmt(o, 'n')} | {fmt(a, 'n')} | {fmt(b, 'n')} "
          f"| {fmt(r1, 'r')} | {fmt(r2, 'r')} | ≥ 2 | {met} | {insn} |")
    m1 = os.path.join(work, "m1.txt")
    if os.path.exists(m1) and os.path.getsize(m1):
        rss = dict(line.split() for line in open(m1) if line.strip())
        print()
        print("M1, peak RSS of an S1 replay adaptation process (target: odl ≤ 4 MB = 4,096 kB)")
        print()
        print("| process | peak RSS kB |")
        print("|---|---|")
        for k in ("odl", "pytorch"):
            if k in rss:
                print(f"| {k} | {int(rss[k]):,} |")


def fmt_ratio(v):
    return "–" if v is None else f"{v:.3f}"


_fmt = fmt


def fmt(v, unit="us"):  # noqa: F811  (ratios get three decimals)
    return fmt_ratio(v) if unit == "r" else _fmt(v, unit)


if __name__ == "__main__":
    main()
