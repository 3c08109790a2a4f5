"""The fleet simulation on a Dask LocalCluster: repeatable, devices improve on
their own drift, the held-out gate refuses a poisoned aggregate, robust rules
beat plain averaging under poisoning, versions are kept."""
import json
import os
import sys
import tempfile
import unittest

from dask.distributed import Client, LocalCluster

from odl import fleet

BASE = os.environ["ODL_FLEET_BASE"]
SMALL = dict(devices=12, rounds=2, events=64, test=100, canary=0.25, heldout=600)


class Simulate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
        cls.client = Client(cls.cluster)
        cls.tmp = tempfile.mkdtemp(prefix="odl-fleet-test-")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()

    def run_fleet(self, name, **kw):
        opts = dict(SMALL)
        opts.update(kw)
        out = os.path.join(self.tmp, name)
        res = fleet.simulate(BASE, out, client=self.client, **opts)
        return res, out

    def read(self, out, f):
        with open(os.path.join(out, f)) as fh:
            return fh.read()

    def test_clean_fleet(self):
        res, out = self.run_fleet("a", seed=3)
        _, out2 = self.run_fleet("b", seed=3, per_task=1)  # other task grouping, same devices
        _, out3 = self.run_fleet("c", seed=4)
        # the same seed, the same tables, byte for byte (however devices are grouped into tasks);
        # another seed, other users
        self.assertEqual(self.read(out, "devices.csv"), self.read(out2, "devices.csv"))
        self.assertEqual(self.read(out, "rounds.csv"), self.read(out2, "rounds.csv"))
        self.assertNotEqual(self.read(out, "devices.csv"), self.read(out3, "devices.csv"))
        rows = res["devices"]
        self.assertEqual(len(rows), 24)
        r1 = [r for r in rows if r["round"] == 1]
        # the devices learn their own drift through the gates
        improved = sum(r["acc_own_after"] > r["acc_own_before"] for r in r1)
        mean_gain = sum(r["acc_own_after"] - r["acc_own_before"] for r in r1) / len(r1)
        self.assertGreaterEqual(improved, len(r1) // 2, [(r["acc_own_before"], r["acc_own_after"]) for r in r1])
        self.assertGreater(mean_gain, 0.01)
        self.assertGreater(sum(r["updates_accepted"] for r in r1), 0)
        for r in r1:  # a device sends a delta only when it kept an update
            self.assertEqual(r["sent"], int(r["updates_accepted"] > 0))
            self.assertEqual(r["bytes_up"], 2600 if r["sent"] else 0)  # 650 float32 head values
            self.assertEqual(r["bytes_down"], 2600)
        rr = res["rounds"]
        self.assertEqual(len(rr), 2)
        for f in ("report.md", "device_gain.png", "global_rounds.png", "versions/index.json"):
            self.assertTrue(os.path.getsize(os.path.join(out, f)) > 0, f)
        index = json.loads(self.read(out, "versions/index.json"))
        self.assertEqual(index[0]["status"], "published")
        self.assertEqual(len(index), 1 + len(rr))
        published = [e for e in index if e.get("file")]
        for e in published:
            self.assertTrue(os.path.isfile(os.path.join(out, "versions", e["file"])))
        # a published head is what the next round starts from and what the held-out set measured
        for r in rr:
            if r["status"] == "published to all":
                self.assertAlmostEqual(r["next_drifted"], r["cand_drifted"])
            else:
                self.assertAlmostEqual(r["next_drifted"], r["global_drifted"])

    def test_poisoned_aggregate_refused_robust_rules_win(self):
        kw = dict(seed=5, poison=0.25, poison_boost=10.0, rounds=1, canary=0.0)
        plain, _ = self.run_fleet("p-fedavg", rule="fedavg", **kw)
        med, _ = self.run_fleet("p-median", rule="median", **kw)
        trim, _ = self.run_fleet("p-trimmed", rule="trimmed", trim=0.3, **kw)
        p, m, t = plain["rounds"][0], med["rounds"][0], trim["rounds"][0]
        self.assertEqual(p["poisoned"], 3)
        # plain averaging is dragged by the boosted permuted-label deltas: the gate refuses it
        self.assertEqual(p["status"], "refused by the held-out gate", p)
        self.assertLess(p["cand_drifted"], p["global_drifted"] - 0.05, p)
        self.assertAlmostEqual(p["next_drifted"], p["global_drifted"])
        # the robust rules' candidates stay far above the poisoned average
        for r in (m, t):
            self.assertGreater(r["cand_drifted"], p["cand_drifted"] + 0.1, (r, p))
            self.assertGreater(r["cand_original"], p["cand_original"] + 0.1, (r, p))

    def test_canary_rolls_back_a_losing_head(self):
        # gate off: a poisoned average reaches the canaries, who score it on their own feedback and refuse it
        res, out = self.run_fleet("canary", seed=5, poison=0.25, rule="fedavg", rounds=1, canary=0.5, gate=0)
        r = res["rounds"][0]
        self.assertEqual(r["status"], "rolled back after the canaries", r)
        self.assertLess(r["canary_candidate"], r["canary_current"])
        self.assertAlmostEqual(r["next_drifted"], r["global_drifted"])
        index = json.loads(self.read(out, "versions/index.json"))
        self.assertEqual([e["status"] for e in index], ["published", "rolled back after the canaries"])
        self.assertNotIn("file", index[1])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
