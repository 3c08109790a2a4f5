#!/usr/bin/python3
"""Transfer learning on an imported model, odl side, and the comparison table for
docs/results.md. Run bench/torch_transfer.py OUT_DIR first (it trains and exports the base and
runs the same protocol in PyTorch), then:

  /usr/bin/python3 bench/transfer_odl.py ODL_BINARY OUT_DIR [--seeds 3] [--data D]

which runs, with D the Fashion-MNIST directory:
  odl import OUT_DIR/base8.onnx -o OUT_DIR/base8.odl --head auto
  odl eval OUT_DIR/base8.odl --data D --classes 0-7 --json          (the import, checked on data)
  for S in seeds:
    odl adapt OUT_DIR/base8.odl --data D --classes 8,9 --limit 100 --new-classes --strategy replay \\
        --replay-balanced --replay-from D --seed S -o OUT_DIR/base10-sS.odl --quiet
    odl eval OUT_DIR/base10-sS.odl --data D --json                   (test split, all 10 classes)
prints the markdown table (mean ± std over seeds of all-10, old 0-7 and new 8-9 accuracy, for
odl and PyTorch), writes it to OUT_DIR/transfer.md with OUT_DIR/transfer.json, and exits 1 if
odl's all-10 accuracy is more than 2 points from PyTorch's, or if the imported base's accuracy on
classes 0-7 differs from PyTorch's by more than 0.2 points (same model, same images).
"""
import argparse, json, os, subprocess, sys

import numpy as np


def run(cmd):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"transfer_odl: {cmd[1]} failed (exit {p.returncode}):\n{p.stderr.strip()}")
    return p.stdout


def accuracies(eval_json):
    """all / old (0-7) / new (8-9) test accuracy in percent from `odl eval --json`'s confusion."""
    cm = np.array(json.loads(eval_json)["confusion"], dtype=np.int64)
    def acc(lo, hi):
        rows = cm[lo:hi + 1]
        return 100.0 * sum(rows[i, lo + i] for i in range(len(rows))) / rows.sum()
    return {"all": acc(0, cm.shape[0] - 1), "old": acc(0, 7), "new": acc(8, 9) if cm.shape[0] > 9 else float("nan")}


def ms(v):
    v = np.asarray(v, dtype=np.float64)
    return f"{v.mean():.2f} ± {(v.std(ddof=1) if len(v) > 1 else 0.0):.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("odl")
    ap.add_argument("out_dir")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    d, o = a.data, a.out_dir
    tj = os.path.join(o, "torch_transfer.json")
    try:
        with open(tj) as f:
            ref = json.load(f)
    except OSError as e:
        sys.exit(f"transfer_odl: {tj}: {e.strerror} (run bench/torch_transfer.py {o} first)")
    base = os.path.join(o, "base8.odl")
    run([a.odl, "import", os.path.join(o, "base8.onnx"), "-o", base, "--head", "auto"])
    base_old = accuracies(run([a.odl, "eval", base, "--data", d, "--classes", "0-7", "--json"]))["old"]
    runs = []
    for s in range(a.seeds):
        out = os.path.join(o, f"base10-s{s}.odl")
        run([a.odl, "adapt", base, "--data", d, "--classes", "8,9", "--limit", "100", "--new-classes", "--strategy",
             "replay", "--replay-balanced", "--replay-from", d, "--seed", str(s), "-o", out, "--quiet"])
        r = accuracies(run([a.odl, "eval", out, "--data", d, "--json"]))
        r["seed"] = s
        runs.append(r)
        print(f"odl seed {s}: all-10 {r['all']:.2f}  old 0-7 {r['old']:.2f}  new 8-9 {r['new']:.2f}", flush=True)
    tr = ref["runs"]
    lines = ["| implementation | base, classes 0-7 | all 10 | old 0-7 | new 8-9 |",
             "|---|---|---|---|---|",
             f"| PyTorch {ref['torch']} | {ref['base']['test_acc_old']:.2f} | {ms([r['all'] for r in tr])} | "
             f"{ms([r['old'] for r in tr])} | {ms([r['new'] for r in tr])} |",
             f"| odl (imported ONNX) | {base_old:.2f} | {ms([r['all'] for r in runs])} | "
             f"{ms([r['old'] for r in runs])} | {ms([r['new'] for r in runs])} |"]
    delta = np.mean([r["all"] for r in runs]) - np.mean([r["all"] for r in tr])
    table = "\n".join(lines)
    note = (f"\nTest-split accuracy (%), mean ± std over {a.seeds} seeds (odl `--seed`; PyTorch's own draws), "
            f"after adding classes 8 and 9 from the first 100 training examples labelled 8 or 9 "
            f"(replay, class-balanced, 200 slots, head only, 10 epochs). all-10 difference odl - PyTorch: "
            f"{delta:+.2f} points.\n")
    print(table + note)
    with open(os.path.join(o, "transfer.md"), "w") as f:
        f.write(table + "\n" + note)
    with open(os.path.join(o, "transfer.json"), "w") as f:
        json.dump({"odl": {"base_old": base_old, "runs": runs}, "pytorch": ref, "all10_delta": delta}, f, indent=1)
    status = 0
    # the same frozen model on the same test images: only float rounding may flip a prediction
    if abs(base_old - ref["base"]["test_acc_old"]) > 0.2:
        print(f"FAIL: the imported base scores {base_old:.2f} on classes 0-7, PyTorch's {ref['base']['test_acc_old']:.2f}"
              " (the import changed the model)")
        status = 1
    if abs(delta) > 2.0:
        print(f"FAIL: odl's all-10 accuracy is {delta:+.2f} points from PyTorch's (at most 2 allowed)")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
