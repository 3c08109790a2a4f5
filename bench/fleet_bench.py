"""The fleet figures (docs/fleet.md, docs/results.md): 1,000 simulated devices
on a Dask LocalCluster, each with its own drift, class mix and mislabelled
share, running the C learner through the Python binding.

  1. clean fleet, federated averaging, R rounds: the share of devices whose own
     accuracy improved, the global head on drifted / original held-out data per
     round against no aggregation (the base head);
  2. the same with 10% of devices poisoning (labels permuted, their gates off,
     deltas boosted x10): fedavg, median, trimmed mean, norm clipping;
  3. throughput of one round (devices/s) with 1 and 2 Dask workers.

Usage (ODL_LIBRARY / PYTHONPATH pointing at a build and python/ when odl is
not installed):
  /usr/bin/python3 bench/fleet_bench.py --out /tmp/odl-fleet-bench [--devices 1000] [--rounds 3]
Writes OUT/summary.json and OUT/summary.md, and each run's devices.csv,
rounds.csv and report.md under OUT/<run>/.
"""
import argparse
import json
import os
import sys
import time

from dask.distributed import Client, LocalCluster

from odl import fleet


def cluster(workers):
    c = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=40)
    return c, Client(c)


def summarise(name, res):
    rr = res["rounds"]
    r1 = [r for r in res["devices"] if r["round"] == 1]
    return {
        "run": name, "rule": res["config"]["rule"], "poison": res["config"]["poison"],
        "devices": res["config"]["devices"],
        "base": res["base"],
        "improved_r1": sum(r["acc_own_after"] > r["acc_own_before"] for r in r1) / len(r1),
        "worse_r1": sum(r["acc_own_after"] < r["acc_own_before"] for r in r1) / len(r1),
        "own_before_r1": sum(r["acc_own_before"] for r in r1) / len(r1),
        "own_after_r1": sum(r["acc_own_after"] for r in r1) / len(r1),
        "orig_before_r1": sum(r["acc_orig_before"] for r in r1) / len(r1),
        "orig_after_r1": sum(r["acc_orig_after"] for r in r1) / len(r1),
        "rolled_back": sum(r["updates_rolled_back"] for r in res["devices"]),
        "accepted": sum(r["updates_accepted"] for r in res["devices"]),
        "rounds": [{k: r.get(k) for k in ("round", "cand_drifted", "cand_original", "status", "next_drifted",
                                          "next_original", "devices_improved", "sent", "bytes_up", "bytes_down",
                                          "devices_per_s", "canary")} for r in rr],
        "seconds": res["seconds"],
    }


def md(summary, cmd):
    L = ["Command: `%s`" % cmd, ""]
    clean = [s for s in summary["runs"] if s["poison"] == 0][0]
    b = clean["base"]
    L += ["Round 1, %d devices, each from the base head: %.1f%% improved their own drifted accuracy, %.1f%% got "
          "worse (mean %.3f -> %.3f); original data %.3f -> %.3f. Updates: %d accepted, %d rolled back by the "
          "device gates (all rounds)." % (
              clean["devices"], 100 * clean["improved_r1"], 100 * clean["worse_r1"], clean["own_before_r1"],
              clean["own_after_r1"], clean["orig_before_r1"], clean["orig_after_r1"], clean["accepted"],
              clean["rolled_back"]), ""]
    L += ["Global head on the held-out set (drifted / original), after each round; no aggregation keeps the base "
          "head: %.3f / %.3f." % (b["drifted"], b["original"]), ""]
    L += ["| run | " + " | ".join("round %d" % r["round"] for r in clean["rounds"]) + " |",
          "|---|" + "---|" * len(clean["rounds"])]
    L.append("| no aggregation | " + " | ".join("%.3f / %.3f" % (b["drifted"], b["original"])
                                               for _ in clean["rounds"]) + " |")
    for s in summary["runs"]:
        cells = []
        for r in s["rounds"]:
            st = {"published to all": "", "refused by the held-out gate": " (refused: candidate %.3f / %.3f)"
                  % (r["cand_drifted"], r["cand_original"]),
                  "rolled back after the canaries": " (canaries rolled back)"}.get(r["status"], " (%s)" % r["status"])
            cells.append("%.3f / %.3f%s" % (r["next_drifted"], r["next_original"], st))
        L.append("| %s, %d%% poisoning | %s |" % (s["rule"], round(100 * s["poison"]), " | ".join(cells)))
    L += ["", "Bytes per device per round: %d down (the global head), %d up (its delta, when it kept an update)."
          % (clean["rounds"][0]["bytes_down"] // clean["devices"], clean["rounds"][0]["bytes_down"]
             // clean["devices"]), ""]
    L += ["| Dask workers | devices/s (one round of %d devices) |" % summary["throughput"][0]["devices"], "|---|---|"]
    for t in summary["throughput"]:
        L.append("| %d | %.1f |" % (t["workers"], t["devices_per_s"]))
    return "\n".join(L) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/odl-fleet-bench")
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=fleet.DEFAULTS["data"])
    p.add_argument("--rules", default="fedavg,median,trimmed,clip")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = fleet.ensure_base(os.path.join(a.out, "base.odl"), a.data)
    common = dict(devices=a.devices, rounds=a.rounds, seed=a.seed, data=a.data)
    summary = {"runs": [], "throughput": []}
    cl, client = cluster(2)
    try:
        runs = [("clean-fedavg", dict(rule="fedavg"))]
        runs += [("poison-" + r, dict(rule=r, poison=0.1)) for r in a.rules.split(",")]
        for name, kw in runs:
            t = time.perf_counter()
            res = fleet.simulate(base, os.path.join(a.out, name), client=client, **common, **kw)
            s = summarise(name, res)
            summary["runs"].append(s)
            print("%s: %.0f s; " % (name, time.perf_counter() - t) + "; ".join(
                "r%d %.3f/%.3f %s" % (r["round"], r["next_drifted"], r["next_original"], r["status"])
                for r in s["rounds"]), flush=True)
    finally:
        client.close()
        cl.close()
    for workers in (1, 2):
        cl, client = cluster(workers)
        try:
            client.submit(sum, [1], pure=False).result()
            # a warm-up round loads the data into every worker; the second round is timed
            res = fleet.simulate(base, None, client=client, devices=a.devices, rounds=2, seed=a.seed, data=a.data,
                                 rule="fedavg", canary=0)
            summary["throughput"].append({"workers": workers, "devices": a.devices,
                                          "devices_per_s": a.devices / res["seconds"][1],
                                          "round_seconds": res["seconds"]})
            print("throughput, %d workers: %.1f devices/s (rounds %s s)" % (
                workers, a.devices / res["seconds"][1], ["%.1f" % s for s in res["seconds"]]), flush=True)
        finally:
            client.close()
            cl.close()
    cmd = "/usr/bin/python3 bench/fleet_bench.py --out %s --devices %d --rounds %d --seed %d" % (
        a.out, a.devices, a.rounds, a.seed)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    text = md(summary, cmd)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
