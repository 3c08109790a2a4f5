"""A fleet of devices learning their users, their heads aggregated over rounds.

Two halves (docs/fleet.md):

- Aggregation rules over head deltas (a device's head minus the global head,
  each a list of float32 arrays as odl.Model.get_weights returns them):
  fedavg (weighted by example counts), median (coordinate-wise), trimmed
  (coordinate-wise trimmed mean) and clip (each delta's L2 norm clipped, then
  fedavg). Plain NumPy, no odl calls: a server or a Flower strategy can use them.
- A simulation on Dask (`python3 -m odl.fleet simulate`, or `odl fleet
  simulate`): N devices, each with its own user (a drift drawn from a seeded
  distribution, a class mix, an event stream with mislabelled examples, or a
  poisoner permuting its labels), each running the real C learner through the
  binding. Rounds: devices start from the global head, learn through the
  gates, send their delta; the server aggregates, evaluates the candidate on a
  held-out set (the fleet-wide gate), keeps versions, and rolls it out to a
  canary share first (A/B on the canaries' own feedback), promoting it only
  when it wins. Results: devices.csv, rounds.csv, report.md with plots.
- A real round's server step (`odl fleet aggregate`): the deltas `odl fleet
  collect` wrote, checked again against the global model, aggregated by the
  same rules, gated by the same held-out rule (heldout_gate), published as
  a new version only when it does not regress.
"""
import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

RULES = ("fedavg", "median", "trimmed", "clip", "none")


# ---- aggregation --------------------------------------------------------------------

def _check_deltas(deltas, what):
    if not deltas:
        raise ValueError("%s: no deltas to aggregate" % what)
    shapes = [tuple(np.shape(a)) for a in deltas[0]]
    for k, d in enumerate(deltas):
        got = [tuple(np.shape(a)) for a in d]
        if got != shapes:
            raise ValueError("%s: delta %d has arrays of shapes %s; delta 0 has %s" % (what, k, got, shapes))
    return shapes


def _flat(deltas):
    """(n_devices, n_values) float64 matrix of the deltas, and their shapes."""
    shapes = _check_deltas(deltas, "aggregate")
    m = np.stack([np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in d]) for d in deltas])
    if not np.all(np.isfinite(m)):
        bad = sorted(set(np.nonzero(~np.isfinite(m))[0].tolist()))
        raise ValueError("aggregate: deltas %s hold non-finite values" % bad[:10])
    return m, shapes


def _unflat(v, shapes):
    out, at = [], 0
    for s in shapes:
        n = int(np.prod(s)) if s else 1
        out.append(v[at:at + n].reshape(s).astype(np.float32))
        at += n
    return out


def delta_norm(delta):
    """The L2 norm of a delta over all its arrays."""
    return float(math.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in delta)))


def clip_norm(delta, max_norm):
    """delta scaled down so its L2 norm is at most max_norm (unchanged when it is already)."""
    if not max_norm > 0:
        raise ValueError("clip_norm: max_norm %r is not > 0" % (max_norm,))
    n = delta_norm(delta)
    s = 1.0 if n <= max_norm else max_norm / n
    return [(np.asarray(a, dtype=np.float64) * s).astype(np.float32) for a in delta]


def fedavg(deltas, weights):
    """Federated averaging: sum_i w_i d_i / sum_i w_i (weights: examples each device learned from)."""
    m, shapes = _flat(deltas)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != m.shape[0]:
        raise ValueError("fedavg: %d weights for %d deltas" % (w.size, m.shape[0]))
    if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError("fedavg: weights must be finite, >= 0 and not all 0 (got %s)" % w.tolist()[:10])
    return _unflat((w[:, None] * m).sum(0) / w.sum(), shapes)


def median(deltas):
    """Coordinate-wise median (the mean of the two middle values for an even count)."""
    m, shapes = _flat(deltas)
    return _unflat(np.median(m, axis=0), shapes)


def trimmed_mean(deltas, trim=0.1):
    """Coordinate-wise trimmed mean: in each coordinate the k = floor(trim·n)
    largest and k smallest values are dropped, the rest averaged."""
    if not 0 <= trim < 0.5:
        raise ValueError("trimmed_mean: trim %r is outside [0, 0.5)" % (trim,))
    m, shapes = _flat(deltas)
    n = m.shape[0]
    k = int(math.floor(trim * n))
    s = np.sort(m, axis=0)
    return _unflat(s[k:n - k].mean(0), shapes)


def aggregate(rule, deltas, weights=None, trim=0.1, clip=1.0):
    """One of RULES over the deltas. "clip": each delta clipped to norm `clip`,
    then fedavg. weights default to 1 each. "none" returns a zero delta."""
    if weights is None:
        weights = [1.0] * len(deltas)
    if rule == "fedavg":
        return fedavg(deltas, weights)
    if rule == "median":
        return median(deltas)
    if rule == "trimmed":
        return trimmed_mean(deltas, trim)
    if rule == "clip":
        return fedavg([clip_norm(d, clip) for d in deltas], weights)
    if rule == "none":
        _check_deltas(deltas, "aggregate")
        return [np.zeros(np.shape(a), dtype=np.float32) for a in deltas[0]]
    raise ValueError("aggregate: rule %r is not one of %s" % (rule, ", ".join(RULES)))


def add(head, delta, scale=1.0):
    """head + scale·delta, array by array (float32)."""
    if len(head) != len(delta):
        raise ValueError("add: head has %d arrays, delta %d" % (len(head), len(delta)))
    out = []
    for k, (h, d) in enumerate(zip(head, delta)):
        if np.shape(h) != np.shape(d):
            raise ValueError("add: array %d: head %s, delta %s" % (k, np.shape(h), np.shape(d)))
        out.append((np.asarray(h, dtype=np.float32) + np.float32(scale) * np.asarray(d, dtype=np.float32))
                   .astype(np.float32))
    return out


def sub(a, b):
    """a - b, array by array (float32): a device's delta is sub(device_head, global_head)."""
    return add(a, b, -1.0)


# ---- the simulated population ---------------------------------------------------------------

N_CLASSES = 10
SHAPE = (1, 28, 28)
# Fashion-MNIST split into disjoint pools: devices' events, the learners' seed
# (the old data a device ships with), devices' own test samples, the server's held-out set.
TRAIN_LIMIT = 30000
SEED_N = 200
TEST_DEVICE_POOL = 5000  # test[0:5000] for devices, test[5000:] for the server
ORIG_EVAL_N = 200        # the same original (undrifted) test samples for every device


def _rng(*key):
    """A generator keyed by integers (seed, device, round, purpose): the same key, the same draws."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def draw_user(seed, device, cfg):
    """A device's user, from the seed and the device number only (so a
    population is the same whatever the rounds, the rule or the cluster)."""
    r = _rng(seed, device, 0xD5)
    kind = ("gain", "translate", "both")[int(r.integers(0, 3))]
    a = float(np.round(r.uniform(cfg["gain_lo"], cfg["gain_hi"]), 3))
    b = float(np.round(r.uniform(0.0, cfg["offset_hi"]), 3))
    m = int(cfg["max_shift"])
    dx, dy = int(r.integers(-m, m + 1)), int(r.integers(-m, m + 1))
    shifts = []
    if kind in ("gain", "both"):
        shifts.append("gain:%g,%g" % (a, b))
    if kind in ("translate", "both"):
        shifts.append("translate:%d,%d" % (dx, dy))
    mix = r.dirichlet([cfg["mix_alpha"]] * N_CLASSES)
    mislabel = float(np.round(r.uniform(0.0, 2.0 * cfg["mislabel"]), 3))
    return {"device": device, "drift": ";".join(shifts), "mix": mix, "mislabel": mislabel}


def poisoners(seed, n_devices, share):
    """The devices that poison their labels: round(share·N) of them, drawn from the seed."""
    k = int(round(share * n_devices))
    return set(_rng(seed, 0x9015).permutation(n_devices)[:k].tolist())


_CACHE = {}


def _data(path):
    """Fashion-MNIST pools, loaded once per worker process."""
    key = ("data", path)
    if key not in _CACHE:
        import odl
        tr = odl.load_data(path, "train", limit=TRAIN_LIMIT)
        te = odl.load_data(path, "test")
        tx, ty = np.asarray(tr.x, np.float32), np.asarray(tr.y, np.int32)
        vx, vy = np.asarray(te.x, np.float32), np.asarray(te.y, np.int32)
        ev = slice(0, TRAIN_LIMIT - SEED_N)
        d = {"seed_x": tx[TRAIN_LIMIT - SEED_N:], "seed_y": ty[TRAIN_LIMIT - SEED_N:],
             "ev_x": tx[ev], "ev_y": ty[ev], "te_x": vx[:TEST_DEVICE_POOL], "te_y": vy[:TEST_DEVICE_POOL],
             "srv_x": vx[TEST_DEVICE_POOL:], "srv_y": vy[TEST_DEVICE_POOL:]}
        d["ev_by"] = [np.nonzero(d["ev_y"] == c)[0] for c in range(N_CLASSES)]
        d["te_by"] = [np.nonzero(d["te_y"] == c)[0] for c in range(N_CLASSES)]
        _CACHE[key] = d
    return _CACHE[key]


def _model(base_bytes):
    """The base model, loaded once per worker process from its bytes (a worker
    on another machine needs no shared file system for it)."""
    import odl
    key = ("model", hashlib.sha256(base_bytes).hexdigest())
    if key not in _CACHE:
        fd, p = tempfile.mkstemp(suffix=".odl", prefix="odl-fleet-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base_bytes)
            _CACHE[key] = odl.load(p)
        finally:
            os.unlink(p)
    return _CACHE[key]


def apply_drift(x, spec):
    import odl
    for s in [s for s in spec.split(";") if s]:
        x = odl.shift(x, s, SHAPE)
    return np.asarray(x, np.float32)


def _draw(r, by_class, mix, n):
    cls = r.choice(N_CLASSES, size=n, p=mix)
    return np.array([by_class[c][int(r.integers(0, len(by_class[c])))] for c in cls], dtype=np.int64)


def _accuracy(model, x, y):
    return float(model.accuracy(x, y)) if len(y) else float("nan")


def _user_events(d, user, cfg, rnd, purpose, n, poisoned):
    """n labelled events of a user: drifted samples of its class mix, a share
    mislabelled (a random other class), all permuted when the device poisons."""
    r = _rng(cfg["seed"], user["device"], rnd, purpose)
    idx = _draw(r, d["ev_by"], user["mix"], n)
    x = apply_drift(d["ev_x"][idx], user["drift"])
    y = d["ev_y"][idx].copy()
    wrong = r.random(n) < user["mislabel"]
    y[wrong] = (y[wrong] + r.integers(1, N_CLASSES, size=int(wrong.sum()))) % N_CLASSES
    if poisoned:
        y = (y + 1) % N_CLASSES  # a label permutation: every class taught as the next
    return x, y.astype(np.int32)


def run_device(user, global_head, base_bytes, cfg, rnd, poisoned):
    """One device for one round: starts from the global head, takes its
    user's events as feedback, updates through the learner's gates (rolled
    back when they refuse), and returns its row and its head delta."""
    import odl
    d = _data(cfg["data"])
    model = _model(base_bytes)
    model.set_weights(global_head)
    t0 = time.perf_counter()
    r = _rng(cfg["seed"], user["device"], 0x7E57)
    ti = _draw(r, d["te_by"], user["mix"], cfg["test"])
    own_x, own_y = apply_drift(d["te_x"][ti], user["drift"]), d["te_y"][ti]
    orig_x, orig_y = d["te_x"][:ORIG_EVAL_N], d["te_y"][:ORIG_EVAL_N]
    before_own, before_orig = _accuracy(model, own_x, own_y), _accuracy(model, orig_x, orig_y)
    opts = dict(cfg["learner"])
    if poisoned:  # a compromised device: its own gates off
        opts.update(new_target=0, max_old_drop=1, require_avg_not_worse=0, confident=1, outlier_k=0,
                    max_class_share=1)
    lseed = int(_rng(cfg["seed"], user["device"], rnd, 0x5EED).integers(0, 2 ** 63))
    L = odl.Learner(model, seed=lseed, **opts)
    try:
        L.seed(d["seed_x"], d["seed_y"])
        x, y = _user_events(d, user, cfg, rnd, 0xE7, cfg["events"], poisoned)
        chunk = int(opts.get("max_collected", 64))
        for i in range(0, len(y), chunk):  # the learner collects up to max_collected, then updates
            L.feedback(x[i:i + chunk], y[i:i + chunk])
            L.update()
        st = L.status()
        cm = L.current_model()
        head = L.get_weights()
    finally:
        L.close()
    after_own, after_orig = _accuracy(cm, own_x, own_y), _accuracy(cm, orig_x, orig_y)
    cm.close()
    delta = sub(head, global_head)
    if poisoned and cfg["poison_boost"] != 1:
        delta = [a * np.float32(cfg["poison_boost"]) for a in delta]
    sent = st.updates_accepted - st.rollbacks > 0 or poisoned
    head_bytes = sum(int(np.size(a)) * 4 for a in global_head)
    row = {"round": rnd, "device": user["device"], "drift": user["drift"], "poisoned": int(poisoned),
           "mislabel": user["mislabel"], "top_class": int(np.argmax(user["mix"])),
           "top_share": round(float(np.max(user["mix"])), 3),
           "feedback": st.feedback, "accepted_examples": st.accepted_examples,
           "rejected": sum(st.rejected.values()), "updates": st.updates, "updates_accepted": st.updates_accepted,
           "updates_rolled_back": st.updates_rolled_back,
           "acc_own_before": before_own, "acc_own_after": after_own,
           "acc_orig_before": before_orig, "acc_orig_after": after_orig,
           "delta_norm": delta_norm(delta), "sent": int(sent),
           "bytes_down": head_bytes, "bytes_up": head_bytes if sent else 0,
           "seconds": time.perf_counter() - t0}
    weight = st.accepted_examples if sent else 0
    if poisoned:
        weight = max(weight, cfg["events"])  # a poisoner claims it learned from every event
    return row, (delta if sent else None), weight


def run_devices(users, global_head, base_bytes, cfg, rnd, poison):
    """A Dask task: several devices in a row (the per-task cost amortised)."""
    return [run_device(u, global_head, base_bytes, cfg, rnd, u["device"] in poison) for u in users]


def canary_ab(users, candidate, current, base_bytes, cfg, rnd, poison):
    """A Dask task: each canary scores the candidate and the current head on
    its own fresh feedback (events it labels after the candidate arrived)."""
    d = _data(cfg["data"])
    model = _model(base_bytes)
    out = []
    for u in users:
        x, y = _user_events(d, u, cfg, rnd, 0xCA, cfg["canary_events"], u["device"] in poison)
        model.set_weights(candidate)
        c = int(round(_accuracy(model, x, y) * len(y)))
        model.set_weights(current)
        g = int(round(_accuracy(model, x, y) * len(y)))
        out.append((u["device"], c, g, len(y)))
    return out


# ---- the server ---------------------------------------------------------------------------

def _write_atomic(path, data):
    """PATH.tmp, fsync, rename; never through a symlink or over a non-regular file."""
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        raise OSError("%s: not a regular file; refusing to write over it" % path)
    tmp = path + ".tmp"
    if os.path.islink(tmp):
        raise OSError("%s: a symlink; refusing to write through it" % tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class VersionStore:
    """Published global heads: DIR/vNNNN.odl (the full model) and DIR/index.json
    (every candidate, published or not, with its gate and canary figures),
    each written atomically."""

    def __init__(self, directory, resume=False, digests=False):
        """resume: go on from DIR/index.json when it exists (a server's store
        across rounds; the simulation starts a new one). digests: each
        published entry also gets its file's SHA-256 (what a device checks)."""
        self.dir = directory
        self.digests = digests
        os.makedirs(directory, exist_ok=True)
        self.index = []
        ip = os.path.join(directory, "index.json")
        if resume and os.path.exists(ip):
            with open(ip) as f:
                self.index = json.load(f)
            if not isinstance(self.index, list):
                raise ValueError("%s: not a version index (a JSON list)" % ip)

    def latest(self):
        """The last published entry, or None."""
        pub = [e for e in self.index if isinstance(e, dict) and e.get("file")]
        return pub[-1] if pub else None

    def record(self, entry, model=None):
        """Appends entry to index.json; with a model (an odl.Model, or the path
        of a model file to copy), first saves it as the next vNNNN.odl."""
        if model is not None:
            v = 1 + sum(1 for e in self.index if e.get("file"))
            entry["file"] = "v%04d.odl" % v
            path = os.path.join(self.dir, entry["file"])
            if os.path.lexists(path):
                raise OSError("%s exists but index.json does not list it; refusing to overwrite a version" % path)
            if isinstance(model, (str, os.PathLike)):  # a model file, kept byte for byte
                with open(model, "rb") as f:
                    _write_atomic(path, f.read())
            else:
                model.save(path)
            if self.digests:
                entry["sha256"] = _sha256_file(path)
        self.index.append(entry)
        _write_atomic(os.path.join(self.dir, "index.json"), json.dumps(self.index, indent=1) + "\n")


class Server:
    """The held-out set (original and drifted test data of users drawn apart
    from the devices') and the fleet-wide evaluation gate."""

    def __init__(self, cfg, base):
        d = _data(cfg["data"])
        n = cfg["heldout"]
        r = _rng(cfg["seed"], 0x5E7)
        self.orig_x, self.orig_y = d["srv_x"][:n], d["srv_y"][:n]
        xs, ys = [], []
        per = 20
        for k in range(max(1, n // per)):  # users of the same distribution, not in the fleet
            u = draw_user(cfg["seed"] ^ 0x5E7, 10 ** 6 + k, cfg)
            idx = r.integers(0, len(d["srv_y"]), size=per)
            xs.append(apply_drift(d["srv_x"][idx], u["drift"]))
            ys.append(d["srv_y"][idx])
        self.drift_x, self.drift_y = np.concatenate(xs), np.concatenate(ys)
        self.model = base
        self.max_orig_drop = cfg["gate_max_orig_drop"]

    def evaluate(self, head):
        self.model.set_weights(head)
        return {"drifted": _accuracy(self.model, self.drift_x, self.drift_y),
                "original": _accuracy(self.model, self.orig_x, self.orig_y)}

    def gate(self, cand, cur):
        return heldout_gate(cand, cur, self.max_orig_drop)


def heldout_gate(cand, cur, max_orig_drop=0.02):
    """The fleet-wide evaluation gate (the simulation's and `odl fleet
    aggregate`'s): publish only when the candidate does not regress: the mean
    of drifted and original accuracy not below the current head's, and
    original accuracy not down by more than max_orig_drop. Without an
    "original" figure: drifted accuracy not below the current head's.
    Returns (ok, why)."""
    if cand.get("original") is None or cur.get("original") is None:
        if cand["drifted"] < cur["drifted"]:
            return False, "held-out accuracy fell %.3f -> %.3f" % (cur["drifted"], cand["drifted"])
        return True, "held-out accuracy %.3f -> %.3f" % (cur["drifted"], cand["drifted"])
    avg_c = (cand["drifted"] + cand["original"]) / 2
    avg_g = (cur["drifted"] + cur["original"]) / 2
    if cand["original"] < cur["original"] - max_orig_drop:
        return False, "original accuracy fell %.3f -> %.3f" % (cur["original"], cand["original"])
    if avg_c < avg_g:
        return False, "held-out average fell %.3f -> %.3f" % (avg_g, avg_c)
    return True, "held-out average %.3f -> %.3f" % (avg_g, avg_c)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _client(cfg):
    from dask.distributed import Client, LocalCluster
    if cfg.get("scheduler"):
        return Client(cfg["scheduler"]), None
    cluster = LocalCluster(n_workers=cfg["workers"], threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def _chunks(seq, k):
    return [seq[i:i + k] for i in range(0, len(seq), k)]


DEFAULTS = {
    "devices": 20, "rounds": 2, "seed": 0, "rule": "fedavg", "trim": 0.1, "clip": 1.0, "poison": 0.0,
    "poison_boost": 10.0, "mislabel": 0.05, "events": 64, "test": 100, "canary": 0.1, "canary_events": 32,
    "canary_margin": 0.0, "heldout": 1000, "gate_max_orig_drop": 0.02, "gate": 1, "gain_lo": 0.5,
    "gain_hi": 1.0, "offset_hi": 0.3, "max_shift": 2, "mix_alpha": 1.0, "workers": 2, "scheduler": None,
    "per_task": 0, "strategy": "replay", "max_collected": 32, "boundary": None,
    "data": "/usr/share/datasets/fashion-mnist",
}


def learner_options(cfg):
    o = {"strategy": cfg["strategy"], "max_collected": cfg["max_collected"], "drift": 0}
    if cfg.get("boundary") is not None:
        o["boundary"] = cfg["boundary"]
    return o


def simulate(base, out=None, client=None, **kw):
    """Runs the fleet. base: the .odl base model; out: a directory for
    devices.csv, rounds.csv, report.md, plots and versions/ (None: nothing
    written). Options: DEFAULTS. Returns {"devices": rows, "rounds": rows,
    "seconds": device-phase seconds per round}."""
    import odl
    cfg = dict(DEFAULTS)
    unknown = set(kw) - set(cfg)
    if unknown:
        raise ValueError("simulate: unknown options %s (known: %s)" % (sorted(unknown), ", ".join(sorted(cfg))))
    cfg.update(kw)
    if cfg["rule"] not in RULES:
        raise ValueError("simulate: rule %r is not one of %s" % (cfg["rule"], ", ".join(RULES)))
    if not 0 <= cfg["poison"] <= 1 or not 0 <= cfg["canary"] <= 1:
        raise ValueError("simulate: poison and canary are shares in 0..1")
    if cfg["devices"] < 1 or cfg["rounds"] < 1:
        raise ValueError("simulate: devices and rounds must be >= 1")
    cfg["learner"] = learner_options(cfg)
    global_model = odl.load(base)
    b = cfg["boundary"] if cfg["boundary"] is not None else "head"
    global_model.freeze(b)
    # the head a learner trains: layers from its boundary on (checked against the learner's own view)
    head = global_model.get_weights()
    probe = odl.Learner(global_model, **cfg["learner"])
    if [np.shape(a) for a in probe.get_weights()] != [np.shape(a) for a in head]:
        raise ValueError("simulate: the learner's head and the model's frozen head differ; give --boundary")
    probe.close()
    with tempfile.TemporaryDirectory(prefix="odl-fleet-") as tmp:  # the base as workers load it: head trainable
        global_model.save(os.path.join(tmp, "base.odl"))
        with open(os.path.join(tmp, "base.odl"), "rb") as f:
            base_bytes = f.read()
    users = [draw_user(cfg["seed"], i, cfg) for i in range(cfg["devices"])]
    poison = poisoners(cfg["seed"], cfg["devices"], cfg["poison"])
    server = Server(cfg, global_model)
    store = VersionStore(os.path.join(out, "versions")) if out else None
    base_acc = server.evaluate(head)
    if store:
        store.record({"round": 0, "status": "published", "heldout": base_acc, "note": "the base"}, global_model)

    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _client(cfg)
    dev_rows, round_rows, seconds = [], [], []
    try:
        nw = max(1, len(client.scheduler_info()["workers"]))
        per = cfg["per_task"] or max(1, int(math.ceil(len(users) / (nw * 8))))
        bb = client.scatter(base_bytes, broadcast=True)
        for rnd in range(1, cfg["rounds"] + 1):
            t0 = time.perf_counter()
            futs = [client.submit(run_devices, ch, head, bb, cfg, rnd, poison, pure=False)
                    for ch in _chunks(users, per)]
            results = [r for f in futs for r in f.result()]
            seconds.append(time.perf_counter() - t0)
            results.sort(key=lambda t: t[0]["device"])
            rows = [t[0] for t in results]
            dev_rows.extend(rows)
            sent = [(t[1], t[2]) for t in results if t[1] is not None]
            cur = server.evaluate(head)
            rr = {"round": rnd, "rule": cfg["rule"], "devices": len(rows), "sent": len(sent),
                  "poisoned": sum(r["poisoned"] for r in rows), "global_drifted": cur["drifted"],
                  "global_original": cur["original"], "base_drifted": base_acc["drifted"],
                  "base_original": base_acc["original"],
                  "devices_improved": float(np.mean([r["acc_own_after"] > r["acc_own_before"] for r in rows])),
                  "mean_own_before": float(np.mean([r["acc_own_before"] for r in rows])),
                  "mean_own_after": float(np.mean([r["acc_own_after"] for r in rows])),
                  "device_seconds": seconds[-1], "devices_per_s": len(rows) / max(seconds[-1], 1e-9),
                  "bytes_up": sum(r["bytes_up"] for r in rows), "bytes_down": sum(r["bytes_down"] for r in rows)}
            if cfg["rule"] == "none" or not sent:
                rr.update(cand_drifted=cur["drifted"], cand_original=cur["original"], gate="-", canary="-",
                          status="kept (%s)" % ("no aggregation" if sent else "no deltas"))
            else:
                agg = aggregate(cfg["rule"], [s[0] for s in sent], [s[1] for s in sent], cfg["trim"], cfg["clip"])
                cand_head = add(head, agg)
                cand = server.evaluate(cand_head)
                ok, why = server.gate(cand, cur)
                if not cfg["gate"]:
                    ok, why = True, "gate off (" + why + ")"
                rr.update(cand_drifted=cand["drifted"], cand_original=cand["original"], gate=why)
                status, canary = "refused by the held-out gate", "-"
                if ok:
                    r = _rng(cfg["seed"], rnd, 0xCA)
                    k = max(1, int(round(cfg["canary"] * len(users)))) if cfg["canary"] > 0 else 0
                    if k:
                        can = [users[i] for i in sorted(r.permutation(len(users))[:k].tolist())]
                        cf = [client.submit(canary_ab, ch, cand_head, head, bb, cfg, rnd, poison, pure=False)
                              for ch in _chunks(can, per)]
                        ab = [t for f in cf for t in f.result()]
                        c_ok, g_ok, n = (sum(t[1] for t in ab), sum(t[2] for t in ab), sum(t[3] for t in ab))
                        wins = c_ok >= g_ok + cfg["canary_margin"] * n
                        canary = "%d canaries: candidate %d/%d vs current %d/%d" % (len(ab), c_ok, n, g_ok, n)
                        rr.update(canary_candidate=c_ok / n, canary_current=g_ok / n)
                    else:
                        wins, canary = True, "no canary stage"
                    status = "published to all" if wins else "rolled back after the canaries"
                    if wins:
                        head = cand_head
                rr.update(canary=canary, status=status)
                if store:
                    if status == "published to all":
                        server.model.set_weights(head)
                    store.record({"round": rnd, "rule": cfg["rule"], "status": status, "gate": why,
                                  "canary": canary, "heldout": cand, "current": cur},
                                 server.model if status == "published to all" else None)
            after = server.evaluate(head)
            rr.update(next_drifted=after["drifted"], next_original=after["original"])
            round_rows.append(rr)
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    res = {"devices": dev_rows, "rounds": round_rows, "seconds": seconds, "config": cfg, "base": base_acc}
    if out:
        write_outputs(res, out)
    return res


# ---- outputs ---------------------------------------------------------------------------------

DEVICE_COLUMNS = ["round", "device", "drift", "poisoned", "mislabel", "top_class", "top_share", "feedback",
                  "accepted_examples", "rejected", "updates", "updates_accepted", "updates_rolled_back",
                  "acc_own_before", "acc_own_after", "acc_orig_before", "acc_orig_after", "delta_norm", "sent",
                  "bytes_down", "bytes_up"]
ROUND_COLUMNS = ["round", "rule", "devices", "sent", "poisoned", "base_drifted", "base_original",
                 "global_drifted", "global_original", "cand_drifted", "cand_original", "gate", "canary", "status",
                 "next_drifted", "next_original", "devices_improved", "mean_own_before", "mean_own_after",
                 "bytes_up", "bytes_down"]


def _fmt(v):
    if isinstance(v, float):
        return "%.6f" % v
    return str(v)


def table_csv(rows, columns):
    """rows as CSV text (floats to 6 decimals; timings left out, so a seed gives the same bytes)."""
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c, "")) for c in columns])
    return s.getvalue()


def write_outputs(res, out):
    os.makedirs(out, exist_ok=True)
    _write_atomic(os.path.join(out, "devices.csv"), table_csv(res["devices"], DEVICE_COLUMNS))
    _write_atomic(os.path.join(out, "rounds.csv"), table_csv(res["rounds"], ROUND_COLUMNS))
    plots = _plots(res, out)
    _write_atomic(os.path.join(out, "report.md"), report_md(res, plots))


def _plots(res, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = res["devices"]
    last = max(r["round"] for r in rows)
    first = [r for r in rows if r["round"] == 1]
    files = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    d_own = [r["acc_own_after"] - r["acc_own_before"] for r in first]
    d_orig = [r["acc_orig_after"] - r["acc_orig_before"] for r in first]
    ax[0].hist(d_own, bins=30, color="#3a7")
    ax[0].set_title("round 1: own drifted accuracy, after - before")
    ax[1].hist(d_orig, bins=30, color="#37a")
    ax[1].set_title("round 1: original accuracy, after - before")
    for a in ax:
        a.axvline(0, color="k", lw=0.8)
        a.set_ylabel("devices")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    _write_atomic(os.path.join(out, "device_gain.png"), buf.getvalue())
    files.append("device_gain.png")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    lr = [r for r in rows if r["round"] == last]
    ax.scatter([r["acc_own_before"] for r in lr], [r["acc_own_after"] for r in lr], s=6,
               c=["#c33" if r["poisoned"] else "#37a" for r in lr])
    ax.plot([0, 1], [0, 1], "k", lw=0.8)
    ax.set_xlabel("before (global head)")
    ax.set_ylabel("after (device's head)")
    ax.set_title("round %d: each device's own drifted accuracy" % last)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    _write_atomic(os.path.join(out, "device_scatter.png"), buf.getvalue())
    files.append("device_scatter.png")
    rr = res["rounds"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    xs = [0] + [r["round"] for r in rr]
    ax.plot(xs, [res["base"]["drifted"]] + [r["next_drifted"] for r in rr], "o-", label="global, drifted")
    ax.plot(xs, [res["base"]["original"]] + [r["next_original"] for r in rr], "o-", label="global, original")
    ax.axhline(res["base"]["drifted"], color="gray", ls="--", lw=0.8, label="no aggregation, drifted")
    ax.set_xlabel("round")
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    _write_atomic(os.path.join(out, "global_rounds.png"), buf.getvalue())
    files.append("global_rounds.png")
    return files


def report_md(res, plots):
    cfg, rr, rows = res["config"], res["rounds"], res["devices"]
    L = ["# Fleet simulation", "",
         "%d devices, %d rounds, rule %s, seed %d, %.0f%% poisoning, %d events per device, strategy %s."
         % (cfg["devices"], cfg["rounds"], cfg["rule"], cfg["seed"], 100 * cfg["poison"], cfg["events"],
            cfg["strategy"]), "",
         "Base head on the held-out set: drifted %.3f, original %.3f." % (res["base"]["drifted"],
                                                                           res["base"]["original"]), "",
         "| round | devices improved | own acc before -> after | candidate drifted / original | status | "
         "published drifted / original |", "|---|---|---|---|---|---|"]
    for r in rr:
        L.append("| %d | %.1f%% | %.3f -> %.3f | %.3f / %.3f | %s | %.3f / %.3f |" % (
            r["round"], 100 * r["devices_improved"], r["mean_own_before"], r["mean_own_after"], r["cand_drifted"],
            r["cand_original"], r["status"], r["next_drifted"], r["next_original"]))
    acc = sum(r["updates_accepted"] for r in rows)
    rb = sum(r["updates_rolled_back"] for r in rows)
    L += ["", "Device updates: %d accepted, %d rolled back; %d bytes up, %d down in all." % (
        acc, rb, sum(r["bytes_up"] for r in rows), sum(r["bytes_down"] for r in rows)), ""]
    L += ["![%s](%s)" % (p, p) for p in plots]
    L += ["", "Per device: devices.csv; per round: rounds.csv; published heads: versions/index.json.", ""]
    return "\n".join(L)


# ---- a real round: the server's aggregation over collected deltas ----------------------------

# Why `odl fleet aggregate` set a delta file aside (the collector's reasons where they apply).
AGG_REFUSALS = ("malformed", "unsigned", "wrong_base", "out_of_shape", "stale_round", "future_round",
                "duplicate_device")


def model_identity(model, unfreeze=0):
    """(identity, boundary): the SHA-256 identity a delta against `model` must
    carry (64 hex digits) and the first node of its head for `unfreeze` (as
    `odl fleet collect --unfreeze K` and `odl adapt --unfreeze K` choose it)."""
    import ctypes
    import odl
    from ._lib import lib as _c
    hexid = ctypes.create_string_buffer(65)
    boundary = ctypes.c_int32(0)
    err = ctypes.create_string_buffer(512)
    s = _c.odl_capi_model_delta_id(model._h, int(unfreeze), hexid, ctypes.byref(boundary), err, len(err))
    if s != 0:
        raise odl.OdlError(s, err.value.decode(errors="replace"))
    return hexid.value.decode(), int(boundary.value)


def _head_tensors(model, boundary):
    """The head's tensors of model: [(index into get_weights(False), layer, which, count)] for layers >= boundary."""
    return [(k, layer, which, count) for k, (layer, which, count) in enumerate(model._param_list(False))
            if layer >= boundary]


def read_deltas(directory, model, unfreeze=0, round_=None):
    """Reads every DIR/*.delta (odl.read_delta: framing, CRCs, layout,
    finite values) and checks each against `model` again: its identity (a
    delta made against another global model is wrong_base), its head's
    first node and tensor table (out_of_shape), a signature present
    (unsigned), the round when round_ is given (stale_round/future_round)
    and one delta per device (duplicate_device: the later file, in name
    order, is set aside). Returns (accepted, refused, notes): accepted is a
    list of (meta, arrays) sorted by device, refused a count per reason
    (AGG_REFUSALS), notes one line per refused file."""
    import glob as _glob
    import odl
    ident, boundary = model_identity(model, unfreeze)
    head = _head_tensors(model, boundary)
    want = [(layer, "bias" if which else "weights", count) for _, layer, which, count in head]
    refused = {r: 0 for r in AGG_REFUSALS}
    notes, seen, accepted = [], {}, []
    if not os.path.isdir(directory):
        raise ValueError("--deltas %s is not a directory" % directory)
    for path in sorted(_glob.glob(os.path.join(directory, "*.delta"))):
        name = os.path.basename(path)
        why = None
        if os.path.islink(path) or not os.path.isfile(path):
            why, note = "malformed", "not a regular file"
        else:
            try:
                meta, arrays = odl.read_delta(path)
            except odl.OdlError as e:
                why, note = "malformed", str(e)
        if why is None:
            got = [(t["node"], t["which"], t["count"]) for t in meta["tensors"]]
            dev = meta["device"]
            if not meta["signed"]:
                why, note = "unsigned", "device %d: no signature" % dev
            elif meta["base_id"] != ident:
                why, note = "wrong_base", "device %d: made against model %s..., not this global model %s..." % (
                    dev, meta["base_id"][:12], ident[:12])
            elif meta["boundary"] != boundary or got != want:
                why, note = "out_of_shape", "device %d: head from node %d with %d tensors; this head is from node " \
                    "%d with %d tensors" % (dev, meta["boundary"], len(got), boundary, len(want))
            elif round_ is not None and meta["round"] != round_:
                why = "stale_round" if meta["round"] < round_ else "future_round"
                note = "device %d: round %d, not %d" % (dev, meta["round"], round_)
            elif dev in seen:
                why, note = "duplicate_device", "device %d: already read from %s" % (dev, seen[dev])
        if why is not None:
            refused[why] += 1
            notes.append("%s: %s (%s)" % (name, why, note))
            continue
        seen[dev] = name
        accepted.append((meta, [np.asarray(a, dtype=np.float32) for a in arrays]))
    accepted.sort(key=lambda t: t[0]["device"])
    return accepted, refused, notes


def device_exact(old, new):
    """new, nudged so that a device holding `old` gets it bit for bit from
    the signed global delta (`odl fleet fetch-global` adds new - old, both
    rounded to float32, to old). Without that, a device's copy of the global
    model could differ in the last bit, and so in identity, and every delta
    it sends next round would be refused as made against another model.
    Usually nothing moves; a value that does not settle in a few steps keeps
    its old value (a difference of 0 is always exact)."""
    old = np.asarray(old, np.float32)
    new = np.asarray(new, np.float32).copy()
    for _ in range(8):
        back = (old + (new - old)).astype(np.float32)
        if np.array_equal(back, new):
            return new
        new = back
    bad = (old + (new - old)).astype(np.float32) != new
    new[bad] = old[bad]
    return new


def _eval_sets(path, shift=None, limit=0):
    """(x, y) from DATA as odl.load_data reads it (an IDX directory: its test
    split), through a chain of shift specs ("gain:0.6,0.2;translate:1,0")."""
    import odl
    d = odl.load_data(path, "test" if os.path.isdir(path) else None, limit=int(limit))
    x = np.asarray(d.x, np.float32)
    if shift:
        for sp in [t for t in shift.split(";") if t]:
            x = np.asarray(odl.shift(x, sp, d.shape), np.float32)
    return x, np.asarray(d.y, np.int32)


def aggregate_round(deltas, global_path, out, rule, heldout, heldout_shift=None, original=None, limit=0,
                    versions=None, trim=0.1, clip=1.0, unfreeze=0, round_=None, max_examples=None,
                    max_orig_drop=0.02, min_deltas=1, force=False):
    """One server round over deltas that `odl fleet collect` wrote: read and
    check them (read_deltas), aggregate with the simulation's rules
    (aggregate), add the result to the global model's head, evaluate the
    candidate against the global model on the held-out data (heldout_gate),
    and write OUT (and a new version in `versions`) only when it does not
    regress. Returns the summary dict (what `odl fleet aggregate` prints)."""
    import odl
    if rule not in RULES or rule == "none":
        raise ValueError("rule %r is not one of fedavg, median, trimmed, clip" % (rule,))
    g = odl.load(global_path)
    ident, boundary = model_identity(g, unfreeze)
    accepted, refused, notes = read_deltas(deltas, g, unfreeze, round_)
    weights = {}
    for meta, _ in accepted:
        w = int(meta["examples"])
        weights[meta["device"]] = min(w, int(max_examples)) if max_examples else w
    summary = {"global": global_path, "base_id": ident, "head_from_node": boundary, "rule": rule,
               "round": round_, "files": len(accepted) + sum(refused.values()), "used": len(accepted),
               "devices": [m["device"] for m, _ in accepted], "weights": weights, "refused": refused,
               "refused_total": sum(refused.values()), "refused_files": notes}
    if rule == "trimmed":
        summary["trim"] = trim
    if rule == "clip":
        summary["clip"] = clip
    sets = {"drifted": _eval_sets(heldout, heldout_shift, limit)}
    if original:
        sets["original"] = _eval_sets(original, None, limit)
    summary["heldout"] = {k: len(v[1]) for k, v in sets.items()}
    before = {k: _accuracy(g, x, y) for k, (x, y) in sets.items()}
    summary["before"] = before
    store = VersionStore(versions, resume=True, digests=True) if versions else None
    if len(accepted) < max(1, int(min_deltas)):
        summary.update(after=None, gate="%d usable deltas, fewer than %d" % (len(accepted), max(1, min_deltas)),
                       status="refused", out=None, version=None)
        return summary
    agg = aggregate(rule, [a for _, a in accepted], [weights[m["device"]] for m, _ in accepted], trim, clip)
    summary["delta_norm"] = delta_norm(agg)
    full = g.get_weights(trainable_only=False)
    head = _head_tensors(g, boundary)
    old_head = [np.asarray(full[k], np.float32).reshape(-1) for k, _, _, _ in head]
    new_head = [device_exact(h, n) for h, n in zip(old_head, add(old_head, agg))]
    for (k, _, _, _), v in zip(head, new_head):
        full[k] = v.reshape(np.shape(full[k]))
    cand = odl.load(global_path)
    cand.set_weights(full, trainable_only=False)
    after = {k: _accuracy(cand, x, y) for k, (x, y) in sets.items()}
    ok, why = heldout_gate(after, before, max_orig_drop)
    if force and not ok:
        ok, why = True, "forced (" + why + ")"
    summary.update(after=after, gate=why, status="published" if ok else "refused", out=None, version=None)
    if store is not None:
        if store.latest() is None:  # the store's first entry: the global model the fleet started from
            store.record({"status": "published", "note": "the global model deltas were first made against",
                          "base_id": ident, "heldout": before}, global_path)
        elif store.latest().get("sha256") != _sha256_file(global_path):
            summary["note"] = "GLOBAL is not the store's latest version (%s)" % store.latest()["file"]
    if ok:
        cand.save(out)
        summary["out"] = out
        summary["new_base_id"] = model_identity(cand, unfreeze)[0]
    if store is not None:
        entry = {"round": round_, "rule": rule, "status": summary["status"], "gate": why, "base_id": ident,
                 "devices": summary["devices"], "weights": {str(k): v for k, v in weights.items()},
                 "refused": refused, "heldout": after, "current": before,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if ok:
            entry["new_base_id"] = summary["new_base_id"]
        store.record(entry, cand if ok else None)
        summary["version"] = os.path.join(versions, entry["file"]) if ok else None
    g.close()
    cand.close()
    return summary


def aggregate_main(a):
    """`odl fleet aggregate`: exit 0 published, 3 refused (the gate, or too
    few usable deltas), 1 an error."""
    import odl
    try:
        for opt, path in (("--global", a.glob), ("--heldout", a.heldout), ("--original", a.original)):
            if path and not os.path.exists(path):
                raise ValueError("%s %s does not exist" % (opt, path))
        outs = [os.path.abspath(a.out)]
        if os.path.abspath(a.glob) in outs:
            raise ValueError("-o %s is the global model itself; write the new one elsewhere" % a.out)
        res = aggregate_round(a.deltas, a.glob, a.out, a.rule, a.heldout, a.heldout_shift, a.original, a.limit,
                              a.versions, a.trim, a.clip, a.unfreeze, a.round, a.max_examples, a.max_orig_drop,
                              a.min_deltas, a.force)
    except (ValueError, OSError, odl.OdlError) as e:
        print("odl: fleet aggregate: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(res, sort_keys=False))
    return 0 if res["status"] == "published" else 3


def ensure_base(path, data, tool=None):
    """A cached base: trains edge-cnn with `odl train` (1 epoch, 12,000
    samples, seed 0) when PATH does not exist yet."""
    if os.path.isfile(path):
        return path
    import subprocess
    import odl
    tool = tool or odl.find_tool()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    subprocess.run([tool, "train", "--data", data, "--arch", "edge-cnn", "--epochs", "1", "--limit", "12000",
                    "--seed", "0", "--quiet", "-o", path], check=True)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="odl fleet", description="A fleet of simulated devices on Dask, and the "
                                                              "server's aggregation of collected deltas.")
    sub_ = p.add_subparsers(dest="cmd")
    s = sub_.add_parser("simulate", help="run N simulated devices over rounds of federated aggregation")
    s.add_argument("--base", required=True, help="the base .odl (trained with odl train when missing)")
    s.add_argument("--data", default=DEFAULTS["data"], help="Fashion-MNIST (IDX directory) on every worker")
    s.add_argument("-o", "--out", required=True, help="directory for devices.csv, rounds.csv, report.md")
    s.add_argument("--scheduler", help="a Dask scheduler address (default: a LocalCluster)")
    s.add_argument("--workers", type=int, default=DEFAULTS["workers"], help="LocalCluster worker processes")
    s.add_argument("--devices", type=int, default=DEFAULTS["devices"])
    s.add_argument("--rounds", type=int, default=DEFAULTS["rounds"])
    s.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    s.add_argument("--rule", choices=RULES, default=DEFAULTS["rule"])
    s.add_argument("--trim", type=float, default=DEFAULTS["trim"], help="trimmed mean: share cut at each end")
    s.add_argument("--clip", type=float, default=DEFAULTS["clip"], help="clip: the largest delta norm")
    s.add_argument("--poison", type=float, default=DEFAULTS["poison"], help="share of devices permuting labels")
    s.add_argument("--poison-boost", type=float, default=DEFAULTS["poison_boost"])
    s.add_argument("--mislabel", type=float, default=DEFAULTS["mislabel"], help="mean share of wrong labels")
    s.add_argument("--events", type=int, default=DEFAULTS["events"], help="labelled events per device per round")
    s.add_argument("--test", type=int, default=DEFAULTS["test"], help="own drifted test samples per device")
    s.add_argument("--canary", type=float, default=DEFAULTS["canary"], help="canary share of devices (0 = none)")
    s.add_argument("--canary-events", type=int, default=DEFAULTS["canary_events"])
    s.add_argument("--no-gate", action="store_true", help="publish every aggregate (for comparisons)")
    s.add_argument("--strategy", default=DEFAULTS["strategy"])
    s.add_argument("--max-collected", type=int, default=DEFAULTS["max_collected"])
    s.add_argument("--boundary", type=int, default=None, help="the head's first layer (default: the learner's)")
    s.add_argument("--per-task", type=int, default=0, help="devices per Dask task (default: about 8 tasks a worker)")
    g = sub_.add_parser("aggregate", help="a server round: aggregate collected deltas, gate, publish",
                        description="Aggregates the head deltas `odl fleet collect` wrote, applies the result "
                                    "to GLOBAL's head, and writes NEW.odl (and a new version) only when it does "
                                    "not regress on the held-out data. Prints a JSON summary; exit 0 published, "
                                    "3 refused, 1 an error.")
    g.add_argument("--deltas", required=True, help="the directory of DEVICE.delta files (odl fleet collect --out)")
    g.add_argument("--global", dest="glob", required=True, help="the global model the deltas were made against")
    g.add_argument("--rule", choices=[r for r in RULES if r != "none"], default="median")
    g.add_argument("--trim", type=float, default=DEFAULTS["trim"], help="trimmed: share cut at each end")
    g.add_argument("--clip", type=float, default=DEFAULTS["clip"], help="clip: the largest delta norm")
    g.add_argument("--heldout", required=True, help="held-out data of the users' conditions (IDX directory: its "
                                                    "test split; IDX or CSV file)")
    g.add_argument("--heldout-shift", help="shift specs applied to --heldout, e.g. 'gain:0.6,0.2;translate:1,0'")
    g.add_argument("--original", help="held-out data of the original distribution: the gate then also limits "
                                      "its drop (--max-orig-drop) and compares the mean of the two")
    g.add_argument("--limit", type=int, default=0, help="at most this many samples of each held-out set")
    g.add_argument("--max-orig-drop", type=float, default=DEFAULTS["gate_max_orig_drop"])
    g.add_argument("--versions", help="the version store: vNNNN.odl and index.json (created, then kept)")
    g.add_argument("--round", type=int, help="refuse deltas of any other round")
    g.add_argument("--unfreeze", type=int, default=0, help="the head, as for odl fleet collect (default 0)")
    g.add_argument("--max-examples", type=int, help="cap each device's weight (its claimed examples)")
    g.add_argument("--min-deltas", type=int, default=1, help="refuse the round with fewer usable deltas")
    g.add_argument("--force", action="store_true", help="publish even when the gate refuses")
    g.add_argument("-o", "--out", required=True, help="NEW.odl, written only when published")
    a = p.parse_args(argv)
    if a.cmd == "aggregate":
        return aggregate_main(a)
    if a.cmd != "simulate":
        p.print_help()
        return 2
    ensure_base(a.base, a.data)
    t = time.perf_counter()
    res = simulate(a.base, a.out, devices=a.devices, rounds=a.rounds, seed=a.seed, rule=a.rule, trim=a.trim,
                   clip=a.clip, poison=a.poison, poison_boost=a.poison_boost, mislabel=a.mislabel,
                   events=a.events, test=a.test, canary=a.canary, canary_events=a.canary_events,
                   gate=0 if a.no_gate else 1, strategy=a.strategy, max_collected=a.max_collected,
                   boundary=a.boundary, workers=a.workers, scheduler=a.scheduler, per_task=a.per_task, data=a.data)
    for r in res["rounds"]:
        print("round %d: %d devices (%.1f%% improved on their own drift), %d deltas, candidate drifted %.3f "
              "original %.3f: %s; global now drifted %.3f original %.3f; %.1f devices/s" % (
                  r["round"], r["devices"], 100 * r["devices_improved"], r["sent"], r["cand_drifted"],
                  r["cand_original"], r["status"], r["next_drifted"], r["next_original"], r["devices_per_s"]))
    print("wrote %s/devices.csv, rounds.csv, report.md (%.1f s)" % (a.out, time.perf_counter() - t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
