"""Model.get_weights / set_weights and a learner started from a given head."""
import os
import sys
import unittest

import numpy as np

import odl

BASE = os.environ["ODL_FLEET_BASE"]
DATA = "/usr/share/datasets/fashion-mnist"


class Weights(unittest.TestCase):
    def setUp(self):
        self.m = odl.load(BASE)
        self.te = odl.load_data(DATA, "test", limit=300)

    def test_all_and_head(self):
        all_w = self.m.get_weights(trainable_only=False)
        # edge-cnn: conv 8x1x3x3, conv 16x8x3x3, dense 64x784, dense 10x64 (+ biases)
        self.assertEqual([a.shape for a in all_w], [(8, 9), (8,), (16, 72), (16,), (64, 784), (64,), (10, 64),
                                                    (10,)])
        self.assertEqual(sum(a.size for a in all_w), self.m.params)
        self.m.freeze("head")
        head = self.m.get_weights()
        self.assertEqual([a.shape for a in head], [(10, 64), (10,)])
        self.assertTrue(all(a.dtype == np.float32 for a in head))
        np.testing.assert_array_equal(head[0], all_w[6])

    def test_set_changes_predictions_and_round_trips(self):
        self.m.freeze("head")
        head = self.m.get_weights()
        x = self.te.x
        logits = self.m.logits(x)
        # a bias added to class 3 moves exactly that logit
        b = [head[0], head[1] + np.eye(10, dtype=np.float32)[3] * 2.5]
        self.m.set_weights(b)
        got = self.m.logits(x)
        np.testing.assert_allclose(got[:, 3], logits[:, 3] + 2.5, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got[:, :3], logits[:, :3])
        self.m.set_weights(head)
        np.testing.assert_array_equal(self.m.logits(x), logits)
        # a zero head: every logit 0
        self.m.set_weights([np.zeros_like(a) for a in head])
        self.assertEqual(float(np.abs(self.m.logits(x)).max()), 0.0)

    def test_refusals_change_nothing(self):
        self.m.freeze("head")
        head = self.m.get_weights()
        with self.assertRaisesRegex(ValueError, "1 arrays given.*2 arrays"):
            self.m.set_weights(head[:1])
        with self.assertRaisesRegex(ValueError, "array 1 .*has 9 values.*needs 10"):
            self.m.set_weights([head[0] + 1, head[1][:9]])
        bad = head[1].copy()
        bad[4] = np.inf
        with self.assertRaisesRegex(ValueError, "non-finite"):
            self.m.set_weights([head[0] + 1, bad])
        for a, b in zip(self.m.get_weights(), head):
            np.testing.assert_array_equal(a, b)  # the first array was not written either

    def test_c_api_checks(self):
        from odl._lib import lib
        import ctypes
        err = ctypes.create_string_buffer(256)
        buf = (ctypes.c_float * 10)()
        self.assertLess(lib.odl_capi_model_get_param(self.m._h, 9, 1, buf, 9, err, 256), 0)
        self.assertIn(b"holds 10 values, not 9", err.value)
        self.assertLess(lib.odl_capi_model_get_param(self.m._h, 1, 0, buf, 10, err, 256), 0)
        self.assertIn(b"has no float weights", err.value)
        self.assertLess(lib.odl_capi_model_set_param(self.m._h, 99, 0, buf, 10, err, 256), 0)
        self.assertIn(b"outside the model", err.value)
        self.assertLess(lib.odl_capi_model_set_param(self.m._h, 9, 2, buf, 10, err, 256), 0)
        buf[3] = float("nan")
        self.assertLess(lib.odl_capi_model_set_param(self.m._h, 9, 1, buf, 10, err, 256), 0)
        self.assertIn(b"not finite", err.value)

    def test_learner_starts_from_given_head(self):
        self.m.freeze("head")
        head = self.m.get_weights()
        L = odl.Learner(self.m, seed=0)
        np.testing.assert_array_equal(L.get_weights()[0], head[0])
        L.close()
        other = [a * 0.5 for a in head]
        self.m.set_weights(other)
        L = odl.Learner(self.m, seed=0)
        got = L.get_weights()
        np.testing.assert_array_equal(got[0], other[0])
        np.testing.assert_array_equal(got[1], other[1])
        # and it learns from there: an accepted update moves its head, the model's stays
        tr = odl.load_data(DATA, "train", limit=400)
        L.seed(tr.x[:200], tr.y[:200])
        L.feedback(tr.x[200:264], tr.y[200:264])
        u = L.update()
        if u.accepted:
            self.assertGreater(float(np.abs(L.get_weights()[0] - other[0]).max()), 0)
        np.testing.assert_array_equal(self.m.get_weights()[0], other[0])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=1)
