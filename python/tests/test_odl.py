#!/usr/bin/python3
"""Tests of the odl Python package (python/odl) over libodl_py.so.

    ODL_LIBRARY=build PYTHONPATH=python ODL_TEST_MODEL=base.odl /usr/bin/python3 python/tests/test_odl.py

ODL_TEST_MODEL: a 10-class Fashion-MNIST model (odl train --epochs 1 --limit
12000); without it the tests that need one train it with the odl tool (found
as odl.find_tool() does) into a temporary directory. ODL_TEST_DATA: the
Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist).
ODL_TEST_INSTALLED=1 tests the installed package (from sys.path) instead of
python/odl. ODL_TEST_EXPERIMENT=1 also runs `odl experiment s1` through run_experiment
(about a minute). ODL_NO_NUMPY=1 runs everything on plain lists.
Prints "N passed, N failed" last; exits 1 on any failure."""
import math
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("ODL_TEST_INSTALLED"):
    sys.path.insert(0, os.path.join(HERE, ".."))  # the source tree's package, not an installed one

import odl  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None
NP = odl.HAVE_NUMPY
DATA = os.environ.get("ODL_TEST_DATA", "/usr/share/datasets/fashion-mnist")
TMP = tempfile.mkdtemp(prefix="odl-pytest-")
_model_path = None


def model_path():
    global _model_path
    if _model_path is None:
        _model_path = os.environ.get("ODL_TEST_MODEL")
        if not _model_path:
            _model_path = os.path.join(TMP, "base.odl")
            subprocess.run([odl.find_tool(), "train", "--data", DATA, "--epochs", "1", "--limit", "12000",
                            "--seed", "0", "--quiet", "-o", _model_path], check=True, stdout=subprocess.DEVNULL)
    return _model_path


def tolist(a):
    return a.tolist() if hasattr(a, "tolist") else list(a)


def raises(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


_data = {}


def data(split, limit=0, shift=None, classes=None):
    key = (split, limit, shift, classes)
    if key not in _data:
        _data[key] = odl.load_data(DATA, split=split, limit=limit, shift=shift, classes=classes)
    return _data[key]


# ---- tests -------------------------------------------------------------------------

def test_version_and_library():
    assert odl.__version__ == odl.version()
    assert odl.__version__.count(".") == 2
    assert os.path.basename(odl.library_path).startswith("libodl_py.so")
    assert len(odl.REASONS) == 8 and odl.REASONS[0] == "none" and "outlier" in odl.REASONS
    assert odl.HAVE_NUMPY == (np is not None and not os.environ.get("ODL_NO_NUMPY"))


def test_load_errors():
    e = raises(odl.OdlError, odl.load, os.path.join(TMP, "missing.odl"))
    assert e.status < 0 and "missing.odl" in str(e), str(e)
    bad = os.path.join(TMP, "bad.odl")
    with open(bad, "wb") as f:
        f.write(b"not a model file at all, not at all")
    e = raises(odl.OdlError, odl.load, bad)
    assert "bad.odl" in str(e), str(e)


def test_model_predict():
    m = odl.load(model_path())
    assert m.input_shape == (1, 28, 28) and m.n_classes == 10 and m.input_size == 784
    info = m.info()
    assert info["n_classes"] == 10 and info["layers"][-1]["type"] == "dense" and info["params"] > 0
    d = data("test", 300)
    assert len(d) == 300 and d.shape == (1, 28, 28) and d.n_classes == 10
    cls, conf = m.classify(d.x)
    assert len(cls) == 300 and len(conf) == 300
    assert all(0 <= c < 10 for c in tolist(cls)) and all(0.0 < p <= 1.0 for p in tolist(conf))
    acc = sum(int(a == b) for a, b in zip(tolist(cls), tolist(d.y))) / 300
    assert acc > 0.6, acc
    assert abs(m.accuracy(d.x, d.y) - acc) < 1e-12
    lg = m.logits(d.x[:5])
    rows = [tolist(r) for r in lg]
    assert len(rows) == 5 and all(len(r) == 10 for r in rows)
    assert [r.index(max(r)) for r in rows] == tolist(cls)[:5]
    # a plain list gives the same answer; one flat sample works; a bad size is refused
    flat = [float(v) for v in (d.x[0].reshape(-1).tolist() if NP else d.x[0])]
    c1, p1 = m.classify(flat)
    assert tolist(c1) == tolist(cls)[:1] and abs(tolist(p1)[0] - tolist(conf)[0]) < 1e-6
    raises(ValueError, m.classify, flat[:100])
    if NP:
        assert isinstance(cls, np.ndarray) and cls.dtype == np.int32 and conf.dtype == np.float32
        c64, _ = m.classify(d.x.astype(np.float64).reshape(300, 784))
        assert (c64 == cls).all()
    else:
        assert isinstance(cls, list)


def test_model_save_roundtrip():
    m = odl.load(model_path())
    p = os.path.join(TMP, "copy.odl")
    m.save(p)
    m2 = odl.load(p)
    d = data("test", 50)
    assert [tolist(r) for r in m.logits(d.x)] == [tolist(r) for r in m2.logits(d.x)]
    e = raises(odl.OdlError, m.save, os.path.join(TMP, "no", "such", "dir", "x.odl"))
    assert e.status < 0


def test_learner_options_and_gate():
    m = odl.load(model_path())
    e = raises(odl.OdlError, odl.Learner, m, bogus=3)
    assert "bogus" in str(e) and e.status == -1
    e = raises(odl.OdlError, odl.Learner, m, lr="fast")
    assert "lr" in str(e)
    L = odl.Learner(m, seed=1, max_collected=32, drift=False)
    assert L.bytes > 0
    old = data("train", 500)
    L.seed(old.x, old.y)
    d = data("test", 20)
    x0 = d.x[0]
    nan = [float("nan")] * 784
    f = L.feedback(nan, 3)
    assert not f.accepted and f.reason == "non-finite input" and f.status == odl.EVENT_REJECTED
    f = L.feedback(x0, 12)
    assert not f.accepted and f.reason == "label out of range"
    f = L.feedback(x0, int(tolist(d.y)[0]))
    assert f.accepted and f.reason == "none"
    fs = L.feedback(d.x[1:4], d.y[1:4])
    assert isinstance(fs, list) and len(fs) == 3
    raises(ValueError, L.feedback, d.x[1:4], [1, 2])
    marks = L.mark(d.x[4:6], [True, False])
    assert len(marks) == 2
    st = L.status()
    assert st.rejected["non-finite input"] == 1 and st.rejected["label out of range"] == 1, st
    assert st.feedback >= 5 and st.marks_right == 1 and st.marks_wrong == 1, st
    assert st.active_classes == 10 and st.bytes == L.bytes
    e = raises(odl.OdlError, L.rollback, 1)  # nothing accepted yet: said plainly
    assert e.status < 0 and "no update has been accepted yet" in str(e), str(e)


def test_hostile_shapes_and_sizes():
    """Data of another shape than the model's input, non-finite seed data and
    capacities that overflow: clear errors, never a misaligned run."""
    m = odl.load(model_path())
    L = odl.Learner(m, seed=1, drift=False)
    d = data("test", 40)
    x = d.x if NP else [list(v) for v in d.x]
    # 784 samples of 28x27 hold 784 * 756 values: a multiple of 784, refused anyway
    if NP:
        odd = np.zeros((784, 28, 27), dtype=np.float32)
    else:
        odd = [[0.0] * 756 for _ in range(784)]
    for fn in (m.predict, L.predict):
        e = raises(ValueError, fn, odd)
        assert "28x27" in str(e) or "756" in str(e), e
        assert "1x28x28" in str(e), e
    e = raises(ValueError, L.seed, odd, [0] * 784)
    assert "1x28x28" in str(e), e
    # a sample of the right size is still taken in any layout
    p = m.predict(x[:2])  # n x n_classes
    assert len(p) == 2 and len(p[0]) == m.n_classes, (len(p), len(p[0]))
    # NaN / Inf in the seed data: refused, and the learner still learns afterwards
    bad = [[0.25] * 784 for _ in range(3)]
    bad[1][5] = float("nan")
    e = raises(odl.OdlError, L.seed, bad, [0, 1, 2])
    assert "NaN" in str(e) and "finite" in str(e), e
    bad[1][5] = float("inf")
    e = raises(odl.OdlError, L.seed, bad, [0, 1, 2])
    assert "infinite" in str(e), e
    old = data("train", 300)
    L.seed(old.x, old.y)
    f = L.feedback(d.x[0], int(tolist(d.y)[0]))
    assert f.reason != "outlier", f
    # capacities whose sum overflows an int32_t
    e = raises(odl.OdlError, odl.Learner, m, max_collected=2 ** 31 - 1)
    assert "at most" in str(e) or "memory" in str(e), e


def test_learner_personalise_flow():
    """The personalise example's flow: accepted, then rolled back bit-identically,
    the saved model equal to the learner's, rollback to the base."""
    m = odl.load(model_path())
    old = data("train", 2000)
    test = data("test", 3000)
    user = odl.shift(test.x, "gain:0.5,0.25", test.shape)
    L = odl.Learner(m, seed=0)
    L.seed(old.x, old.y)
    ev_x, ev_y = user[2000:3000], tolist(test.y)[2000:3000]

    def acc():
        c, _, _ = L.predict(ev_x)
        return sum(int(a == b) for a, b in zip(tolist(c), ev_y)) / len(ev_y)

    a0 = acc()
    st = L.status()  # no decision yet: nothing measured, no figure
    assert (st.last_old_n, st.last_new_n, st.last_user_n) == (0, 0, 0), st
    assert st.last_old_after is None and st.last_new_after is None and st.last_user_after is None, st
    fb = L.feedback(user[100:150], test.y[100:150])
    assert sum(f.accepted for f in fb) >= 40
    u = L.update()
    assert u.accepted and not u.rolled_back and u.version == 1 and "accepted" in u.decision, u.decision
    a1 = acc()
    assert a1 > a0 + 0.05, (a0, a1)
    st = u.status  # the guard set and the held-out examples measured; no earlier user update yet
    assert st.last_old_n == 100 and st.last_new_n > 0 and st.last_user_n == 0, st
    assert st.last_user_before is None and st.last_user_after is None and 0 <= st.last_new_after <= 1, st
    assert "earlier user" not in u.decision and "-1" not in u.decision, u.decision
    before = [tolist(r) for r in L.current_model().logits(ev_x[:10])]
    ys = tolist(test.y)
    for i in range(200, 250):
        for _ in range(2):
            L.feedback(user[i], (ys[i] + 1) % 10)
    u = L.update()
    assert u.rolled_back and u.version == 1 and "rolled back" in u.decision, u.decision
    assert u.status.last_user_n > 0 and u.status.last_user_after is not None and "earlier user" in u.decision, u
    assert [tolist(r) for r in L.current_model().logits(ev_x[:10])] == before
    assert acc() == a1
    st = L.status()
    assert st.updates == 2 and st.updates_accepted == 1 and st.updates_rolled_back == 1
    assert st.rejected["outlier"] > 0
    p = os.path.join(TMP, "personal.odl")
    L.save(p)
    saved = odl.load(p)
    assert [tolist(r) for r in saved.logits(ev_x[:10])] == before
    assert L.rollback(1) == 0 and L.status().rollbacks == 1
    assert acc() == a0


def test_learner_deterministic_and_keeps_model():
    old = data("train", 300)
    d = data("test", 40)

    def run():
        m = odl.load(model_path())
        L = odl.Learner(m, seed=7, drift=False)
        m.close()  # the learner holds its own reference
        del m
        L.seed(old.x, old.y)
        L.feedback(d.x[:40], d.y[:40])
        u = L.update()
        c, p, _ = L.predict(d.x)
        return u.decision, tolist(c), tolist(p)

    assert run() == run()


def test_learner_new_class():
    """max_classes beyond the model's: a label of a new class activates its row."""
    m = odl.load(model_path())
    L = odl.Learner(m, max_classes=12, seed=0, drift=False)
    L.seed(data("train", 300).x, data("train", 300).y)
    assert L.status().active_classes == 10
    d = data("test", 5)
    f = L.feedback(d.x[0], 11)
    assert f.accepted, f
    assert L.status().active_classes == 12


def test_learner_strategy():
    """strategy= selects the learner's strategy by name; shadow= holds updates as candidates."""
    m = odl.load(model_path())
    e = raises(odl.OdlError, odl.Learner, m, strategy="sgd")
    assert "ewc-online" in str(e)
    old = data("train", 300)
    for name in ("ewc", "ncm", "slda"):
        L = odl.Learner(m, strategy=name, seed=0, drift=False)
        L.seed(old.x, old.y)
        st = L.status()
        assert st.strategy == name and st.bytes == L.bytes and st.shadow_active == 0, st
    assert odl.Learner(m, shadow=5).status().shadow_promoted == 0


def test_learner_labels_not_wrapped():
    """A label that does not fit int32 (or is not whole) is an error, never
    wrapped: 2**32 + 1 must not become class 1."""
    m = odl.load(model_path())
    L = odl.Learner(m, seed=0, drift=False)
    d = data("test", 2)
    for bad in (2 ** 32 + 1, -(2 ** 31) - 1, 1.5):
        e = raises(ValueError, L.feedback, d.x[0], bad)
        assert "outside" in str(e) or "whole" in str(e), e
    e = raises(ValueError, L.seed, d.x[:2], [1, 2 ** 32 + 1])
    assert "outside" in str(e), e
    if NP:
        e = raises(ValueError, L.seed, d.x[:2], np.array([1, 2 ** 32 + 1], dtype=np.int64))
        assert "outside" in str(e), e
        e = raises(ValueError, L.seed, d.x[:2], np.array([1.0, 2.5]))
        assert "whole" in str(e), e
    assert L.status().feedback == 0
    e = raises(ValueError, L.rollback, 2 ** 32 + 1)  # not 1 step
    assert "outside" in str(e), e
    e = raises(ValueError, odl.Learner, m, max_classes=2 ** 32 + 12)
    assert "outside" in str(e), e


def test_learner_drift_event():
    m = odl.load(model_path())
    L = odl.Learner(m, seed=0, drift_ref_n=200)
    t = data("test", 1200)
    x = t.x[:400]
    shifted = odl.shift(t.x[400:1200], "gain:0.5,0.25", t.shape)
    _, _, drift1 = L.predict(x)
    assert not any(tolist(drift1))
    _, _, drift2 = L.predict(shifted)
    hits = [i for i, v in enumerate(tolist(drift2)) if v]
    assert hits and hits[0] < 200, hits[:3]
    assert L.status().drift_events >= 1
    p = L.predict_one(t.x[0])
    assert isinstance(p, odl.Prediction) and 0 <= p.cls < 10


def test_drift_detectors():
    import random
    rnd = random.Random(1)
    vals = [0.5 + 0.1 * rnd.gauss(0, 1) for _ in range(3000)] + [0.4 + 0.1 * rnd.gauss(0, 1) for _ in range(2000)]
    for det in (odl.ZScore(), odl.PageHinkley(), odl.Adwin(), odl.ConfidenceEWMA()):
        hits = tolist(det.update_many(vals))
        assert hits and hits[0] >= 3000 and hits[0] < 3400, (det, hits[:3])
        assert det.t == 5000 and det.alarms == len(hits)
        st = det.state()
        assert st["kind"] == det.kind and st["t"] == 5000
    z = odl.ZScore(ref_n=100, z=3.5, min_run=3)
    assert z.state()["cfg"]["ref_n"] == 100
    assert [z.update(v) for v in vals[:100]] == [False] * 100
    assert z.update(float("nan")) is False and z.t == 100  # ignored
    z.reset()
    assert z.t == 100
    e = raises(odl.OdlError, odl.ZScore, z_var=0)
    assert "z_var" in str(e)
    e = raises(odl.OdlError, odl.ZScore, speed=1)
    assert "speed" in str(e)
    e = raises(odl.OdlError, odl.Detector, "cusum")
    assert "cusum" in str(e)
    ph = odl.PageHinkley(lambda_=10, delta=0.1, warmup=50)
    assert ph.state()["cfg"]["lambda"] == 10
    a = odl.Adwin(delta=0.01, clock=8)
    a.update_many(vals[:500])
    assert a.state()["width"] > 0


def test_sample_stats():
    m, s = odl.sample_stats([1.0, 2.0, 3.0, 4.0])
    assert abs(m - 2.5) < 1e-6 and abs(s - math.sqrt(1.25)) < 1e-6
    means, stds = odl.sample_stats([1, 2, 3, 4, 5, 5, 5, 5], size=4)
    assert [round(v, 5) for v in tolist(means)] == [2.5, 5.0] and abs(tolist(stds)[1]) < 1e-7
    raises(odl.OdlError, odl.sample_stats, [float("inf"), 1.0])
    raises(odl.OdlError, odl.sample_stats, [])


def test_keras_style_fit_evaluate_predict():
    """Model.edge_cnn/mlp, fit (history, callbacks, validation), evaluate,
    predict (probabilities), freeze (trainable parameters), summary, save/load."""
    d, t = data("train", 2000), data("test", 300)
    m = odl.Model.mlp(hidden=(32,), classes=10, seed=1)
    assert m.trainable_params == m.params > 0 and len(repr(m).splitlines()) == 1
    before = m.evaluate(t.x, t.y)
    seen = []

    class CB:
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, logs["val_accuracy"]))
    h = m.fit(d.x, d.y, epochs=2, batch_size=32, validation_data=(t.x, t.y), callbacks=[CB(), lambda e, l: None])
    assert h.epoch == [0, 1] and len(h.history["loss"]) == 2 and len(seen) == 2, h.history
    assert h.history["loss"][1] < h.history["loss"][0], h.history
    after = m.evaluate(t.x, t.y)
    assert after["accuracy"] > before["accuracy"] + 0.2 and after["loss"] < before["loss"], (before, after)
    assert abs(after["accuracy"] - h.history["val_accuracy"][-1]) < 1e-9
    p = m.predict(t.x[:20])
    rows = [tolist(r) for r in p]
    assert len(rows) == 20 and all(abs(sum(r) - 1) < 1e-4 for r in rows)
    cls, _ = m.classify(t.x[:20])
    assert [r.index(max(r)) for r in rows] == tolist(cls)
    total = m.params
    m.freeze("head")
    assert m.trainable_params == 32 * 10 + 10 and m.params == total, m.trainable_params
    w_before = tolist(m.logits(t.x[:1])[0])
    m.fit(d.x[:200], d.y[:200], epochs=1)
    assert tolist(m.logits(t.x[:1])[0]) != w_before  # the head learned
    text = m.summary(budget=256 * 1024, print_fn=None)
    assert "trainable: 330" in text and "memory plan, train" in text and "budget 262144" in text, text
    assert m.plan(1, train=True)["total"] > m.plan(1)["total"] > 0
    path = os.path.join(TMP, "keras.odl")
    m.save(path)
    m2 = odl.load(path)
    assert abs(m2.evaluate(t.x, t.y)["accuracy"] - m.evaluate(t.x, t.y)["accuracy"]) < 1e-12
    e = odl.Model.edge_cnn(classes=4)
    assert e.n_classes == 4 and e.freeze("head").trainable_params == 64 * 4 + 4
    raises(ValueError, odl.Model.mlp, hidden=())
    raises(odl.OdlError, m.freeze, 99)


def test_plan_agrees_with_odl_info():
    """m.plan(1) is odl info's inference plan (batch 1); m.info() says its batch (64)."""
    m = odl.load(model_path())
    out = subprocess.run([odl.find_tool(), "info", model_path(), "--json"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    import json
    plans = {p["name"]: p for p in json.loads(out)["plans"]}
    assert "batch 1" in plans["inference"]["description"]
    assert m.plan(1)["total"] == plans["inference"]["bytes"]["total"], (m.plan(1), plans["inference"])
    assert m.info()["inference_plan"]["max_batch"] == 64
    assert m.plan(64)["total"] == m.info()["inference_plan"]["total"]
    assert "memory plan, infer, batch 1: %d bytes" % plans["inference"]["bytes"]["total"] in m.summary(print_fn=None)
    # the budget line counts the on-device learner as odl info --budget does (frozen weights in flash)
    out = subprocess.run([odl.find_tool(), "info", model_path(), "--budget", "256K", "--json"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    device = json.loads(out)["learner"]["device_total"]
    assert "the on-device learner (replay, frozen weights in flash, as odl info --budget) needs %d:" % device in \
        m.summary(budget=256 * 1024, print_fn=None)


def test_uint8_refused_or_scaled():
    """uint8 images are never taken as 0..255 silently: refused, or scale=1/255."""
    if not NP:
        return
    m = odl.load(model_path())
    t = data("test", 200)
    u8 = np.round(t.x * 255).astype(np.uint8)
    for fn in (m.predict, m.classify, m.logits):
        e = raises(ValueError, fn, u8)
        assert "scale=1/255" in str(e), str(e)
    raises(ValueError, m.evaluate, u8, t.y)
    raises(ValueError, m.fit, u8, t.y)
    a = m.evaluate(u8, t.y, scale=1 / 255)["accuracy"]
    assert abs(a - m.evaluate(t.x, t.y)["accuracy"]) < 0.02, a


def test_adapt_strategies():
    """odl.adapt: the defaults, naive, replay from the original data; returns a Model."""
    base = odl.load(model_path())
    t = data("test", 400)
    shifted = odl.shift(t.x, "gain:0.8,0.1", (1, 28, 28)) if NP else None
    if not NP:
        return
    user_x, user_y = shifted[:100], t.y[:100]
    ev_x, ev_y = shifted[100:], t.y[100:]
    a = odl.adapt(base, user_x, user_y, strategy="naive", epochs=5)
    assert isinstance(a, odl.Model) and a.adapt_report["strategy"] == "naive" and a.adapt_report["examples"] == 100
    r = odl.adapt(base, user_x, user_y, strategy="replay", replay_from=DATA, epochs=5, replay_size=400)
    assert r.adapt_report["strategy"].startswith("replay") and r.adapt_report["planned_bytes"] > 0
    assert r.evaluate(ev_x, ev_y)["accuracy"] >= base.evaluate(ev_x, ev_y)["accuracy"] - 0.02
    raises(ValueError, odl.adapt, base, user_x, user_y, strategy="nope")


def test_docs_python_md_example_runs():
    """docs/python.md's Keras-style example runs as written."""
    doc = os.path.join(HERE, "..", "..", "docs", "python.md")
    if not NP or not os.path.exists(doc):
        return
    text = open(doc).read()
    sec = text.split("## Keras-style training", 1)[1]
    block = sec.split("```python\n", 1)[1].split("```", 1)[0]
    cwd = os.getcwd()
    os.chdir(TMP)
    try:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            env = {}
            exec(compile(block, doc, "exec"), env)
    finally:
        os.chdir(cwd)
    assert env["m"].trainable_params == 650 and os.path.exists(os.path.join(TMP, "head.odl"))


def test_data_and_shift():
    d = data("test", 100, classes="8,9")
    assert len(d) == 100 and set(tolist(d.y)) <= {8, 9}
    e = raises(odl.OdlError, odl.load_data, os.path.join(TMP, "nothing"))
    assert "nothing" in str(e)
    raises(odl.OdlError, odl.load_data, DATA, split="validation")
    x = [[0.0, 0.5, 1.0, 0.2]]
    y = odl.shift(x, "gain:0.8,0.1", (1, 2, 2))
    flat = tolist(y[0]) if not NP else y.reshape(-1).tolist()
    assert [round(v, 5) for v in flat] == [0.1, 0.5, 0.9, 0.26], flat
    assert tolist(x[0]) == [0.0, 0.5, 1.0, 0.2]  # input untouched
    raises(odl.OdlError, odl.shift, x, "blur:3", (1, 2, 2))
    # CSV through the library's reader
    csv = os.path.join(TMP, "points.csv")
    with open(csv, "w") as f:
        f.write("label,a,b\n0,0.1,0.2\n1,0.9,0.8\n1,0.7,0.9\n")
    c = odl.load_data(csv)
    assert len(c) == 3 and c.shape == (1, 1, 2) and tolist(c.y) == [0, 1, 1] and c.n_classes == 2


EXP_JSON = """{"seeds": 2, "results": [
  {"scenario": "S1 (gain drift, 10 per class)", "strategy": "naive", "trainable_params": 1290, "planned_bytes": 20000,
   "planned": {"params": 5200, "grads": 5200}, "note": "x",
   "user": [0.80, 0.82], "original": [0.70, 0.72], "sum": [1.50, 1.54]},
  {"scenario": "S3", "strategy": "replay", "trainable_params": 1290, "planned_bytes": 30000,
   "ACC": [0.6, 0.7], "BWT": [-0.1, -0.2], "R_mean": [[0.9, 0], [0.8, 0.85]]}
]}"""


def test_experiment_json():
    r = odl.read_experiment(EXP_JSON)
    assert r.seeds == 2 and len(r) == 2
    s1 = r.find("s1", "naive")
    assert s1.metrics["user"] == [0.80, 0.82] and abs(s1.mean("user") - 0.81) < 1e-12
    assert set(s1.metrics) == {"user", "original", "sum"} and s1.planned == {"params": 5200, "grads": 5200}
    assert s1.extra == {"note": "x"}
    assert abs(s1.std("sum") - math.sqrt(0.0008)) < 1e-12
    s3 = r.scenario("S3")[0]
    assert s3.R_mean == [[0.9, 0], [0.8, 0.85]] and set(s3.metrics) == {"ACC", "BWT"}
    t = r.table()
    assert t[0]["user_mean"] == s1.mean("user") and "ACC_std" in t[1]
    p = os.path.join(TMP, "r.json")
    with open(p, "w") as f:
        f.write(EXP_JSON)
    assert odl.read_experiment(p).rows == r.rows
    with open(p) as f:
        assert odl.read_experiment(f).rows == r.rows
    raises(ValueError, odl.read_experiment, {"nope": 1})
    raises(KeyError, r.find, "S2", "naive")
    assert "naive" in str(r)


def test_run_experiment():
    tool = odl.find_tool()
    assert os.access(tool, os.X_OK)
    if os.environ.get("ODL_TEST_EXPERIMENT", "0") in ("", "0"):
        e = raises(RuntimeError, odl.run_experiment, "s9", seeds=1, work=TMP)
        assert "s9" in str(e) or "exit" in str(e)
        return
    r = odl.run_experiment("s1", seeds=1, only="naive", work=os.path.join(TMP, "work"), data=DATA)
    row = r.find("S1", "naive")
    assert row.scenario.startswith("S1") and row.scenario_id == "S1"
    assert r.seeds == 1 and len(row.metrics["user"]) == 1 and 30 < row.mean("user") <= 100  # percent
    assert row.trainable_params > 0 and row.planned_bytes > 0
    assert set(row.metrics) == {"user", "original", "sum"}, row.metrics
    assert r.find("s1", "nai") is row and "strategies there are" in str(raises(KeyError, r.find, "S1", "zz"))


# ---- import_model / export_tflite (ONNX from PyTorch at test time) ---------------

_torch = []


def torch_or_skip(test):
    """torch, or None after printing why `test` is skipped."""
    if not _torch:
        try:
            import warnings
            warnings.filterwarnings("ignore")  # torch.onnx.export's tracer warnings
            import torch
            _torch.append(torch)
        except ImportError as e:
            _torch.append(None)
            _torch.append(str(e))
    if _torch[0] is None:
        print("skip  %s: torch is missing (%s)" % (test, _torch[1]))
    return _torch[0]


def torch_nets(torch):
    """A plain CNN and a residual one (the skip connection is an ONNX Add of two
    computed tensors), with non-trivial batch-norm statistics."""
    nn = torch.nn
    torch.manual_seed(0)

    def bn(c):
        b = nn.BatchNorm2d(c)
        b.running_mean.uniform_(-0.5, 0.5)
        b.running_var.uniform_(0.5, 2.0)
        b.weight.data.uniform_(0.5, 1.5)
        b.bias.data.uniform_(-0.5, 0.5)
        return b

    plain = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), bn(6), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(6 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 5)).eval()

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), bn(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(x + self.body(x))
            return self.fc(x.mean((2, 3)))

    return plain, Residual().eval()


def onnx_file(torch, net, shape, name, dynamic_hw=False):
    path = os.path.join(TMP, name)
    axes = {0: "batch"}
    if dynamic_hw:
        axes.update({2: "H", 3: "W"})
    torch.onnx.export(net, torch.zeros((1,) + shape), path, opset_version=13, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": axes})
    return path


def close_to(got, want, rel):
    """max |got - want| <= rel * max |want| (want: a torch tensor; got: odl's logits)."""
    import torch
    g = torch.tensor(tolist(got), dtype=torch.float64).reshape(want.shape)
    w = want.to(torch.float64)
    err, scale = float((g - w).abs().max()), float(w.abs().max())
    assert err <= rel * scale, "max difference %g, largest magnitude %g (allowed %g)" % (err, scale, rel * scale)
    return err / scale


def odl_input(t):
    """A torch batch as odl takes it: NumPy float32 (N, C, H, W), or nested lists."""
    return t.numpy() if NP else t.tolist()


def leftover_import_dirs():
    return sorted(d for d in os.listdir(tempfile.gettempdir()) if d.startswith(("odl-import-", "odl-export-")))


def test_import_onnx_matches_pytorch():
    """odl.import_model of a PyTorch CNN and a residual graph (an Add of two
    computed tensors) gives PyTorch's logits on random inputs."""
    torch = torch_or_skip("test_import_onnx_matches_pytorch")
    if torch is None:
        return
    plain, residual = torch_nets(torch)
    before = leftover_import_dirs()
    for net, shape, name in ((plain, (1, 12, 12), "plain.onnx"), (residual, (3, 10, 10), "residual.onnx")):
        path = onnx_file(torch, net, shape, name)
        m = odl.import_model(path)
        assert isinstance(m, odl.Model) and m.input_shape == shape and m.n_classes == net(
            torch.zeros((1,) + shape)).shape[1], (m.input_shape, m.n_classes)
        assert m.imported_from == path and m.source is None and "head from tensor" in m.import_log
        assert name in repr(m)
        x = torch.randn((13,) + shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = net(x)
        close_to(m.logits(odl_input(x)), want, 1e-4)
        types = [layer["type"] for layer in m.info()["layers"]]
        if net is residual:
            assert "add" in types, types
            # head auto: only the final dense layer trains
            assert m.trainable_params == 8 * 4 + 4, m.trainable_params
        else:
            assert "add" not in types and m.trainable_params == 16 * 5 + 5, (types, m.trainable_params)
    assert leftover_import_dirs() == before, "import_model left files behind"


def test_import_onnx_options():
    """out= keeps the .odl file; --head by tensor name; a dynamic H x W needs input_shape."""
    torch = torch_or_skip("test_import_onnx_options")
    if torch is None:
        return
    plain, residual = torch_nets(torch)
    path = onnx_file(torch, residual, (3, 10, 10), "residual_opt.onnx")
    out = os.path.join(TMP, "residual_opt.odl")
    m = odl.import_model(path, out=out)
    assert os.path.isfile(out) and m.source == out
    again = odl.load(out)
    x = odl_input(torch.rand(4, 3, 10, 10))
    assert tolist(again.logits(x)) == tolist(m.logits(x))
    # every parameter trains when the head starts at the input
    full = odl.import_model(path, head="x")
    assert full.trainable_params == full.params > m.trainable_params
    e = raises(ValueError, odl.import_model, path, head="no_such_tensor")
    assert isinstance(e, odl.OdlError) and "no_such_tensor" in str(e) and "cut points" in str(e), str(e)
    raises(ValueError, odl.import_model, path, head="")
    # dynamic height and width: refused without input_shape, any size with it
    dyn = onnx_file(torch, residual, (3, 10, 10), "residual_dyn.onnx", dynamic_hw=True)
    e = raises(odl.ImportRefused, odl.import_model, dyn)
    assert "--input-shape" in str(e) and e.exit_code in (1, 2), str(e)
    for shape in ((3, 7, 9), "3x7x9"):
        d = odl.import_model(dyn, input_shape=shape)
        assert d.input_shape == (3, 7, 9)
        xt = torch.randn(5, 3, 7, 9)
        with torch.no_grad():
            close_to(d.logits(odl_input(xt)), residual(xt), 1e-4)
    for bad in ((3, 7), (3, 0, 9), "3x7", "axbxc", 5, (3, 7.5, 9)):
        e = raises(ValueError, odl.import_model, dyn, input_shape=bad)
        assert "input_shape" in str(e), str(e)


def test_import_refusals():
    """A broken, truncated or missing file raises with the tool's message."""
    bad = os.path.join(TMP, "broken.onnx")
    with open(bad, "wb") as f:
        f.write(b"this is not a model at all, just some bytes")
    e = raises(ValueError, odl.import_model, bad)
    assert isinstance(e, RuntimeError) and isinstance(e, odl.OdlError)
    assert "broken.onnx" in str(e) and "neither an ONNX model" in str(e), str(e)
    e = raises(FileNotFoundError, odl.import_model, os.path.join(TMP, "missing.onnx"))
    assert "missing.onnx" in str(e)
    torch = torch_or_skip("test_import_refusals (truncated ONNX)")
    if torch is None:
        return
    plain, _ = torch_nets(torch)
    whole = open(onnx_file(torch, plain, (1, 12, 12), "whole.onnx"), "rb").read()
    cut = os.path.join(TMP, "truncated.onnx")
    with open(cut, "wb") as f:
        f.write(whole[:len(whole) // 2])
    before = leftover_import_dirs()
    e = raises(odl.ImportRefused, odl.import_model, cut)
    assert "truncated.onnx" in str(e) and e.exit_code == 1, str(e)
    assert leftover_import_dirs() == before


def test_export_tflite_roundtrip():
    """Model.export_tflite writes a .tflite that import_model reads back to the
    same logits, for a model as imported and after fit (saved first)."""
    torch = torch_or_skip("test_export_tflite_roundtrip")
    if torch is None:
        return
    plain, residual = torch_nets(torch)
    x = torch.rand(9, 3, 10, 10, generator=torch.Generator().manual_seed(2))
    m = odl.import_model(onnx_file(torch, residual, (3, 10, 10), "residual_tfl.onnx"))
    for step in ("imported", "trained"):
        if step == "trained":
            y = [i % m.n_classes for i in range(9)]
            m.fit(odl_input(x), y, epochs=3, batch_size=3, lr=1e-2)
            assert m.modified
        out = os.path.join(TMP, "%s.tflite" % step)
        m.export_tflite(out)
        with open(out, "rb") as f:
            assert f.read(8)[4:8] == b"TFL3"
        back = odl.import_model(out)
        assert back.input_shape == m.input_shape and back.n_classes == m.n_classes
        want = torch.tensor(tolist(m.logits(odl_input(x))))
        close_to(back.logits(odl_input(x)), want, 1e-5)
    with torch.no_grad():
        before = residual(x)
    err = float((torch.tensor(tolist(m.logits(odl_input(x)))) - before).abs().max())
    assert err > 1e-3, "fit did not change the logits (%g), so the trained export tested nothing" % err
    e = raises(odl.OdlError, m.export_tflite, os.path.join(TMP, "no_such_dir", "m.tflite"))
    assert "no_such_dir" in str(e), str(e)


def test_docs_your_own_model_example_runs():
    """docs/python.md's "Your own model" example runs as written and does what it says."""
    doc = os.path.join(HERE, "..", "..", "docs", "python.md")
    if not NP or not os.path.exists(doc):
        return
    torch = torch_or_skip("test_docs_your_own_model_example_runs")
    if torch is None:
        return
    block = open(doc).read().split("## Your own model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    cwd = os.getcwd()
    os.chdir(TMP)
    try:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            env = {}
            exec(compile(block, doc, "exec"), env)
    finally:
        os.chdir(cwd)
    m, x = env["m"], env["x"]
    assert m.trainable_params == 8 * 28 * 28 * 10 + 10 and os.path.exists(os.path.join(TMP, "net.tflite"))
    back = odl.import_model(os.path.join(TMP, "net.tflite"))
    close_to(back.logits(x), torch.tensor(m.logits(x)), 1e-5)


def main():
    tests = [(k, v) for k, v in sorted(globals().items(), key=lambda kv: kv[1].__code__.co_firstlineno
                                       if callable(kv[1]) and hasattr(kv[1], "__code__") else 0)
             if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    passed = failed = 0
    print("odl %s, %s, numpy %s" % (odl.__version__, odl.library_path, "yes" if NP else "no"))
    for name, fn in tests:
        if only and not any(o in name for o in only):
            continue
        try:
            fn()
        except Exception:
            failed += 1
            print("FAIL  %s" % name)
            traceback.print_exc()
        else:
            passed += 1
            print("ok    %s" % name)
    shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
