"""The aggregation rules of odl.fleet against hand computations."""
import unittest

import numpy as np

from odl import fleet


def d(*vals):
    """A delta of two arrays: a 2x2 'weights' and a 2-value 'bias'."""
    v = np.array(vals, dtype=np.float32)
    return [v[:4].reshape(2, 2), v[4:6]]


def flat(delta):
    return np.concatenate([np.asarray(a).reshape(-1) for a in delta]).tolist()


class Rules(unittest.TestCase):
    def test_fedavg_weighted_by_examples(self):
        a, b = d(1, 2, 3, 4, 5, 6), d(3, 0, 0, 0, 1, -2)
        # (1*a + 3*b) / 4
        got = flat(fleet.fedavg([a, b], [1, 3]))
        self.assertEqual(got, [2.5, 0.5, 0.75, 1.0, 2.0, 0.0])
        self.assertEqual(fleet.fedavg([a, b], [1, 3])[0].shape, (2, 2))

    def test_median_odd_and_even(self):
        ds = [d(1, 5, 0, 0, 0, 0), d(2, -1, 0, 0, 0, 0), d(9, 3, 0, 0, 0, 0)]
        self.assertEqual(flat(fleet.median(ds))[:2], [2.0, 3.0])
        ds.append(d(4, 4, 0, 0, 0, 0))  # even: the mean of the middle two
        self.assertEqual(flat(fleet.median(ds))[:2], [3.0, 3.5])

    def test_trimmed_mean(self):
        # 5 deltas, trim 0.2: one value cut at each end of each coordinate
        vals = [10, -7, 1, 2, 3]
        ds = [d(v, -v, 0, 0, 0, 0) for v in vals]
        got = flat(fleet.trimmed_mean(ds, 0.2))
        self.assertAlmostEqual(got[0], (1 + 2 + 3) / 3, places=6)
        self.assertAlmostEqual(got[1], -(1 + 2 + 3) / 3, places=6)
        # trim 0 is the plain mean
        self.assertAlmostEqual(flat(fleet.trimmed_mean(ds, 0.0))[0], sum(vals) / 5, places=6)

    def test_clip_norm(self):
        x = d(3, 0, 0, 4, 0, 0)  # norm 5
        self.assertEqual(flat(fleet.clip_norm(x, 10)), flat(x))  # under the limit: unchanged
        np.testing.assert_allclose(flat(fleet.clip_norm(x, 1)), [0.6, 0, 0, 0.8, 0, 0], rtol=1e-6)
        # the small delta is kept as it is, the large one clipped to norm 1, then the mean
        got = fleet.aggregate("clip", [x, d(0, 0, 0, 0, 0, 0.5)], [1, 1], clip=1.0)
        np.testing.assert_allclose(flat(got), [0.3, 0, 0, 0.4, 0, 0.25], rtol=1e-6)

    def test_poisoning_median_and_trimmed_resist_fedavg_does_not(self):
        rng = np.random.default_rng(0)
        honest = [d(*(1.0 + 0.1 * rng.standard_normal(6))) for _ in range(17)]
        evil = [d(*([-1000.0] * 6)) for _ in range(3)]  # 3 of 20 send huge deltas
        ds, w = honest + evil, [1] * 20
        for rule in ("median", "trimmed"):
            got = np.array(flat(fleet.aggregate(rule, ds, w, trim=0.2)))
            self.assertTrue(np.all(np.abs(got - 1.0) < 0.2), (rule, got))
        got = np.array(flat(fleet.aggregate("fedavg", ds, w)))
        self.assertTrue(np.all(got < -100), got)  # pulled to -149
        got = np.array(flat(fleet.aggregate("clip", ds, w, clip=3.0)))
        self.assertTrue(np.all(np.abs(got) < 1.0), got)  # bounded by the clip: 3 x 3/20 per coordinate at most

    def test_refusals(self):
        with self.assertRaisesRegex(ValueError, "shapes"):
            fleet.median([d(1, 2, 3, 4, 5, 6), [np.zeros(4, np.float32), np.zeros(2, np.float32)]])
        with self.assertRaisesRegex(ValueError, "non-finite"):
            fleet.fedavg([d(1, 2, 3, 4, 5, float("nan"))], [1])
        with self.assertRaisesRegex(ValueError, "weights"):
            fleet.fedavg([d(1, 2, 3, 4, 5, 6)], [0])
        with self.assertRaisesRegex(ValueError, "2 weights for 1"):
            fleet.fedavg([d(1, 2, 3, 4, 5, 6)], [1, 1])
        with self.assertRaisesRegex(ValueError, "no deltas"):
            fleet.median([])
        with self.assertRaisesRegex(ValueError, "trim"):
            fleet.trimmed_mean([d(1, 2, 3, 4, 5, 6)], 0.5)
        with self.assertRaisesRegex(ValueError, "rule"):
            fleet.aggregate("mean", [d(1, 2, 3, 4, 5, 6)])

    def test_add_sub(self):
        h, x = d(1, 2, 3, 4, 5, 6), d(1, 1, 1, 1, 1, 1)
        self.assertEqual(flat(fleet.sub(fleet.add(h, x), h)), flat(x))


if __name__ == "__main__":
    unittest.main()
