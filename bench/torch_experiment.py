#!/usr/bin/python3
"""PyTorch reference of docs/protocol.md's standard adaptation experiments S1, S2, S3,
mirroring what `odl experiment` does (tools/odl/cmd_experiment.c, tools/odl/learn.c,
src/adapt.c, src/ewc.c, src/lwf.c, src/replay.c, src/model.c), so that both can be
compared on one machine and, with --bases-from, on the very same base weights.

Usage (Debian's interpreter, which has torch):
  /usr/bin/python3 bench/torch_experiment.py [s1|s2|s3|all] [--seeds 3]
      [--data /usr/share/datasets/fashion-mnist] [--bases-from DIR] [--odl-picks] [--json FILE] [--threads 1]

  --bases-from DIR  load odl's bases DIR/base-0-{9,7,3}-torch-s4.odl (written by
                    `odl experiment`) instead of training them in PyTorch
                    (default init, Adam 1e-3, batch 64, 3 epochs, torch.manual_seed(0)).
  --odl-picks       draw the user's examples exactly as odl does (its PCG32 re-implemented bit for bit,
                    cmd_experiment.c pick_examples): the same train-split indices per seed and S3 task.
  --json FILE       per-seed values per strategy per metric, in the layout of
                    `odl experiment --json` ({"seeds", "results": [{"scenario", "strategy", metric: [...]}]}).

Strategies (head-only on cached latents of the frozen base unless noted; Adam lr 1e-3,
batch 16, 10 epochs): naive, replay reservoir / class-balanced (200 latents; 160 in S2),
EWC with lambda in {1, 10, 100, 1000, 10000}, LwF (T=2, weight 1), full fine-tune
(S1 and S2 only, as odl). Random draws differ from odl's (except the user's examples under
--odl-picks); distributions and algorithms match.
"""
import argparse, copy, json, os, random, struct, sys, time, zlib
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EPOCHS, BATCH, LR = 10, 16, 1e-3
LWF_T, LWF_W = 2.0, 1.0
LAMBDAS = (1, 10, 100, 1000, 10000)
FISHER_N = 1000


# ---- data -------------------------------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_ref import idx  # the IDX (gzip) reader both scripts share


def load_split(d, prefix):
    x = torch.tensor(idx(f"{d}/{prefix}-images-idx3-ubyte.gz"), dtype=torch.float32) / 255
    if x.dim() == 3:
        x = x.unsqueeze(1)
    y = torch.tensor(idx(f"{d}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
    return x, y


def gain_shift(x):
    return (0.8 * x + 0.1).clamp(0.0, 1.0)


# ---- odl's RNG (src/rng.c), bit for bit -------------------------------------------------

_M64, _M32, _PCG_MULT = (1 << 64) - 1, (1 << 32) - 1, 6364136223846793005


class OdlRng:
    """odl's PCG32 (src/rng.c: odl_rng_seed, odl_rng_u32, odl_rng_below, odl_rng_shuffle_u32)
    on Python ints masked to 64/32 bits: the same (seed, stream) gives odl's very sequence."""

    def __init__(self, seed, stream):  # odl_rng_seed
        self.state, self.inc = 0, ((stream << 1) | 1) & _M64
        self.u32()
        self.state = (self.state + seed) & _M64
        self.u32()

    def u32(self):  # odl_rng_u32
        old = self.state
        self.state = (old * _PCG_MULT + self.inc) & _M64
        xs = (((old >> 18) ^ old) >> 27) & _M32
        rot = old >> 59
        return ((xs >> rot) | (xs << ((32 - rot) & 31))) & _M32

    def below(self, n):  # odl_rng_below: rejection of the biased low tail, then v % n
        if n <= 1:
            return 0
        threshold = ((1 << 32) - n) % n  # (uint32_t)(-n) % n
        while True:
            v = self.u32()
            if v >= threshold:
                return v % n

    def shuffle(self, v):  # odl_rng_shuffle_u32 on a list, in place; odl_rng_below inlined for speed
        state, inc = self.state, self.inc
        for i in range(len(v), 1, -1):
            threshold = ((1 << 32) - i) % i
            while True:
                old = state
                state = (old * _PCG_MULT + inc) & _M64
                xs = (((old >> 18) ^ old) >> 27) & _M32
                rot = old >> 59
                r = ((xs >> rot) | (xs << ((32 - rot) & 31))) & _M32
                if r >= threshold:
                    break
            j = r % i
            v[i - 1], v[j] = v[j], v[i - 1]
        self.state = state
        return v


def odl_pick_examples(y, lo, hi, per_class, seed):
    """cmd_experiment.c pick_examples exactly: odl_rng_seed(seed, 0x75736572), Fisher-Yates
    over the indices of the whole train split, then the first per_class of each class of
    [lo, hi] in that order. The indices are into the train split as loaded (file order),
    which is odl's pool in S1 (shifted copy), S2 (unshifted copy) and S3 (the split itself)."""
    order = OdlRng(seed, 0x75736572).shuffle(list(range(len(y))))
    yl = y.tolist()
    out, have = [], [0] * (hi - lo + 1)
    for k in order:
        c = yl[k]
        if lo <= c <= hi and have[c - lo] < per_class:
            have[c - lo] += 1
            out.append(k)
            if len(out) == (hi - lo + 1) * per_class:
                break  # odl scans on, but nothing more can be taken
    return torch.tensor(out, dtype=torch.int64)


def pick_examples(y, lo, hi, per_class, seed):
    """k examples per class of [lo, hi]: odl shuffles the whole split and takes the
    first k of each class in that order (cmd_experiment.c pick_examples); the order
    is kept because S3 feeds them to the replay buffer in it."""
    rng = np.random.default_rng([seed, 0x75736572])
    perm = rng.permutation(len(y))
    yl = y.numpy()[perm]
    out, have = [], {}
    for i, c in zip(perm, yl):
        if lo <= c <= hi and have.get(c, 0) < per_class:
            have[c] = have.get(c, 0) + 1
            out.append(i)
            if len(out) == (hi - lo + 1) * per_class:
                break
    return torch.tensor(np.array(out, dtype=np.int64))


# ---- model and .odl files -----------------------------------------------------------

def edge_cnn(c, h, w, n_classes):
    return nn.Sequential(
        nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * (h // 4) * (w // 4), 64), nn.ReLU(), nn.Linear(64, n_classes))


def edge_cnn_topo(n_classes):
    """odl's edge-cnn as (type, units, k, stride, pad) per layer (src/model.c odl_desc_edge_cnn)."""
    return [(2, 8, 3, 1, 1), (7, 0, 0, 0, 0), (4, 0, 2, 2, 0), (2, 16, 3, 1, 1), (7, 0, 0, 0, 0),
            (4, 0, 2, 2, 0), (9, 0, 0, 0, 0), (1, 64, 0, 0, 0), (7, 0, 0, 0, 0), (1, n_classes, 0, 0, 0)]


class OdlFormatError(Exception):
    pass


def read_odl(path, in_shape):
    """Reads an .odl file (docs/format.md, v1.x) holding an edge-cnn into a torch model.
    Checks magic, major version, every CRC, padding and tensor sizes; fails on anything else."""
    b = open(path, "rb").read()

    def fail(msg):
        raise OdlFormatError(f"{path}: {msg}")

    if len(b) < 16 or b[:8] != b"\x89ODL\r\n\x1a\n":
        fail("not an .odl file (bad magic)")
    major, minor, hcrc = struct.unpack_from("<HHI", b, 8)
    if major != 1:
        fail(f"format version {major}.{minor}, this reader knows 1.x")
    if zlib.crc32(b[:12]) != hcrc:
        fail("header CRC mismatch")
    pos, topo, tens, meta = 16, None, {}, {}
    while True:
        if pos + 16 > len(b):
            fail("truncated (no END chunk)")
        t, crc, n = struct.unpack_from("<4sIQ", b, pos)
        if pos + 16 + n > len(b):
            fail(f"truncated chunk {t!r} at offset {pos}")
        p = b[pos + 16:pos + 16 + n]
        if zlib.crc32(b[pos:pos + 4] + b[pos + 8:pos + 16] + p) != crc:
            fail(f"CRC mismatch in chunk {t!r} at offset {pos}")
        pad = b[pos + 16 + n:pos + 16 + n + (-n % 16)]
        if len(pad) != -n % 16 or any(pad):
            fail(f"bad padding after chunk {t!r} at offset {pos}")
        pos += 16 + n + (-n % 16)
        if t == b"END ":
            if n or pos != len(b):
                fail("END chunk not empty or not last")
            break
        if t == b"TOPO":
            if topo is not None:
                fail("two TOPO chunks")
            if n < 16:
                fail("TOPO too short")
            nl, ic, ih, iw = struct.unpack_from("<Iiii", p, 0)
            if not 1 <= nl <= 32 or n != 16 + 40 * nl:
                fail(f"TOPO: {nl} layers in {n} bytes")
            layers = [struct.unpack_from("<9if", p, 16 + 40 * i) for i in range(nl)]
            topo = ((ic, ih, iw), layers)
        elif t == b"TENS":
            if n < 32:
                fail("tensor header too short")
            layer, which, dtype, ndim, count = struct.unpack_from("<IIIIQ", p, 0)
            if dtype != 0 or ndim != 1:
                fail(f"layer {layer}: tensor dtype {dtype} / {ndim} dims unsupported")
            if n != 32 + 4 * count or which > 1 or (layer, which) in tens:
                fail(f"layer {layer}: bad or duplicate tensor ({count} values in {n} bytes)")
            tens[(layer, which)] = np.frombuffer(p, dtype="<f4", count=count, offset=32).copy()
        elif t == b"META":
            k, _, v = p.partition(b"\0")
            meta[k.decode()] = v.rstrip(b"\0").decode()
    if topo is None:
        fail("no TOPO chunk")
    (ic, ih, iw), layers = topo
    if (ic, ih, iw) != tuple(in_shape):
        fail(f"input {ic}x{ih}x{iw}, the data is {'x'.join(map(str, in_shape))}")
    got = [(l[0], l[2], l[3], l[5], l[7]) for l in layers]  # type, units, k_h, stride_h, pad_h
    same_wh = all(l[3] == l[4] and l[5] == l[6] and l[7] == l[8] for l in layers)
    n_classes = layers[-1][2]
    if got != edge_cnn_topo(n_classes) or not same_wh:
        fail(f"topology is not edge-cnn: {got}")
    model = edge_cnn(ic, ih, iw, n_classes)
    # odl's layouts are PyTorch's flattened row-major (docs/format.md): conv w[out][in][kh][kw],
    # dense w[out][in], flatten in NCHW order, so a view is the whole mapping.
    used = set()
    for i, mod in enumerate(model):
        for which, prm in ((0, getattr(mod, "weight", None)), (1, getattr(mod, "bias", None))):
            if prm is None:
                continue
            v = tens.get((i, which))
            if v is None or v.size != prm.numel():
                fail(f"layer {i}: {'bias' if which else 'weights'} missing or of wrong size")
            with torch.no_grad():
                prm.copy_(torch.from_numpy(v).view_as(prm))
            used.add((i, which))
    if set(tens) != used:
        fail(f"tensors for layers without parameters: {sorted(set(tens) - used)}")
    return model, meta


def train_base(x, y, n_classes, in_shape):
    """docs/protocol.md base training, as bench/torch_train_ref.py."""
    torch.manual_seed(0)
    model = edge_cnn(*in_shape, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model


@torch.no_grad()
def run_batches(f, x, bs=2000):
    return torch.cat([f(x[i:i + bs]) for i in range(0, len(x), bs)])


def latents(base, x):
    """z: the output of every layer below the head (the ReLU after dense 784->64)."""
    return run_batches(base[:-1], x)


def acc_range(pred, y, lo, hi):
    m = (y >= lo) & (y <= hi)
    return 100.0 * (pred[m] == y[m]).double().mean().item() if m.any() else float("nan")


# ---- replay buffer (src/replay.c) ----------------------------------------------------

class Replay:
    """F32 latent buffer with odl's two policies, slot for slot (src/replay.c odl_replay_add)."""

    def __init__(self, capacity, dim, n_classes, balanced, rnd):
        self.cap, self.balanced, self.rnd = capacity, balanced, rnd
        self.data = torch.zeros(capacity, dim)
        self.labels = [0] * capacity
        self.count, self.seen = 0, 0
        self.class_count = [0] * n_classes
        self.class_seen = [0] * n_classes

    def _put(self, slot, z, label):
        if slot < self.count:
            self.class_count[self.labels[slot]] -= 1
        else:
            self.count += 1
        self.data[slot] = z
        self.labels[slot] = label
        self.class_count[label] += 1

    def _nth_slot(self, cls, m, r):
        # r-th slot (in slot order) of class cls, or of any class holding exactly m items
        for i in range(self.count):
            l = self.labels[i]
            if (l == cls) if cls >= 0 else (self.class_count[l] == m):
                if r == 0:
                    return i
                r -= 1
        raise AssertionError("replay counts and labels disagree")

    def add(self, z, label):
        self.seen += 1
        self.class_seen[label] += 1
        if self.count < self.cap:
            self._put(self.count, z, label)
            return
        rnd = self.rnd
        if not self.balanced:
            j = rnd.randrange(self.seen)
            if j < self.cap:
                self._put(j, z, label)
            return
        m_max = max(self.class_count)
        m_y = self.class_count[label]
        if m_y < m_max:  # evict a uniformly chosen item of the largest classes
            r = rnd.randrange(self.class_count.count(m_max) * m_max)
            self._put(self._nth_slot(-1, m_max, r), z, label)
        elif rnd.randrange(self.class_seen[label]) < m_y:  # reservoir within its own class
            self._put(self._nth_slot(label, 0, rnd.randrange(m_y)), z, label)

    def contents(self):
        return self.data[:self.count], torch.tensor(self.labels[:self.count], dtype=torch.int64)


# ---- a strategy's session over a frozen base (tools/odl/learn.c) ----------------------

def head_fisher(W, b, z, y):
    """Diagonal empirical Fisher of a linear softmax head: mean over samples of the squared
    per-sample gradient of -log p(y|z). That gradient is (p - onehot) z^T, so its square's
    mean is exact in closed form: ((p-onehot)^2)^T (z^2) / n (src/ewc.c odl_ewc_estimate)."""
    with torch.no_grad():
        zz = z.double()
        g = torch.softmax(zz @ W.double().T + b.double(), 1)
        g[torch.arange(len(y)), y] -= 1.0
        g2 = g * g
        return (g2.T @ (zz * zz) / len(y)).float(), g2.mean(0).float()


class Session:
    def __init__(self, st, base, max_classes, old_z, old_y, seed):
        self.st, self.kind = st, st["kind"]
        self.rng = np.random.default_rng([seed, 0x5e55])
        head = base[-1]
        self.n_classes = head.out_features
        self.full = self.kind == "full"
        if self.full:
            self.model = copy.deepcopy(base)
            for prm in self.model.parameters():
                prm.requires_grad_(True)
        else:
            self.W = head.weight.detach().clone()
            self.b = head.bias.detach().clone()
        self.replay, self.ewc = None, None
        if self.kind in ("replay", "ewc"):
            # the base-training stream: the base's training set in a seeded order
            order = self.rng.permutation(len(old_y))
            if self.kind == "replay":
                self.replay = Replay(st["size"], old_z.shape[1], max_classes, st["balanced"],
                                     random.Random(int(self.rng.integers(2 ** 63))))
                ys = old_y.tolist()
                for k in order.tolist():
                    self.replay.add(old_z[k], ys[k])
            else:
                f = torch.from_numpy(order[:min(FISHER_N, len(order))])
                self.ewc = list(head_fisher(self.W, self.b, old_z[f], old_y[f]))
                self.anchor = [self.W.clone(), self.b.clone()]

    def logits(self, inp):
        if self.full:
            return run_batches(self.model, inp)
        return inp @ self.W.T + self.b

    def predict(self, inp):
        with torch.no_grad():
            return self.logits(inp).argmax(1)

    def _grow(self, n_classes):
        """odl_model_transfer_params: old rows kept, new rows N(0, 0.01^2), new biases 0.
        EWC keeps old Fisher/anchors as prefixes; new rows get Fisher 0 (learn.c ewc_rebuild)."""
        extra = n_classes - self.n_classes
        if self.full:
            old = self.model[-1]
            W, b = old.weight.detach(), old.bias.detach()
        else:
            W, b = self.W, self.b
        new_w = torch.from_numpy(self.rng.standard_normal((extra, W.shape[1])).astype(np.float32)) * 0.01
        W = torch.cat([W, new_w])
        b = torch.cat([b, torch.zeros(extra)])
        if self.full:
            lin = nn.Linear(W.shape[1], n_classes)
            with torch.no_grad():
                lin.weight.copy_(W)
                lin.bias.copy_(b)
            self.model[-1] = lin
        else:
            self.W, self.b = W, b
            if self.ewc is not None:
                self.ewc = [torch.cat([self.ewc[0], torch.zeros(extra, W.shape[1])]),
                            torch.cat([self.ewc[1], torch.zeros(extra)])]
                self.anchor = [torch.cat([self.anchor[0], W[-extra:]]), torch.cat([self.anchor[1], b[-extra:]])]
        self.n_classes = n_classes

    def learn(self, x, z, y, n_classes):
        """session_learn + learn_set: teacher logits on the new inputs (before growth), grow,
        fresh Adam, 10 epochs over new + whole replay buffer shuffled together (src/adapt.c),
        then the new samples join the buffer and the online Fisher (decay 1)."""
        inp = x if self.full else z
        n, old_classes = len(y), self.n_classes
        teacher = self.logits(inp).detach() if self.kind == "lwf" else None
        if n_classes > self.n_classes:
            self._grow(n_classes)
        if self.full:
            params = list(self.model.parameters())
            fwd = self.model
        else:
            self.W.requires_grad_(True)
            self.b.requires_grad_(True)
            params = [self.W, self.b]
            fwd = lambda v: v @ self.W.T + self.b
        opt = torch.optim.Adam(params, lr=LR)  # odl_model_reset_optimizer before every update
        all_in, all_y = inp, y
        if self.replay is not None and self.replay.count:
            rz, ry = self.replay.contents()
            all_in, all_y = torch.cat([inp, rz]), torch.cat([y, ry])
        total = len(all_y)
        lam = self.st.get("lam", 0.0)
        for _ in range(EPOCHS):
            order = torch.from_numpy(self.rng.permutation(total))
            for s in range(0, total, BATCH):
                bi = order[s:s + BATCH]
                out = fwd(all_in[bi])
                loss = F.cross_entropy(out, all_y[bi])
                if teacher is not None:
                    new = bi < n  # distillation on the new inputs only, over the old classes
                    if new.any():
                        kl = F.kl_div(F.log_softmax(out[new, :old_classes] / LWF_T, 1),
                                      F.log_softmax(teacher[bi[new], :old_classes] / LWF_T, 1),
                                      reduction="sum", log_target=True)
                        loss = loss + LWF_W * LWF_T * LWF_T * kl / len(bi)  # src/lwf.c: weight/nb per sample
                if self.ewc is not None and lam > 0:
                    pen = (self.ewc[0] * (self.W - self.anchor[0]) ** 2).sum() + \
                          (self.ewc[1] * (self.b - self.anchor[1]) ** 2).sum()
                    loss = loss + 0.5 * lam * pen
                opt.zero_grad()
                loss.backward()
                opt.step()
        if not self.full:
            self.W = self.W.detach()
            self.b = self.b.detach()
        if self.replay is not None:
            for k in range(n):
                self.replay.add(z[k], int(y[k]))
        if self.ewc is not None:
            fw, fb = head_fisher(self.W, self.b, z, y)
            self.ewc = [self.ewc[0] + fw, self.ewc[1] + fb]  # online EWC, decay 1: Fisher of every task summed
            self.anchor = [self.W.clone(), self.b.clone()]


def strategies(scenario):
    rs = 160 if scenario == 2 else 200
    out = [{"name": "naive", "kind": "naive"},
           {"name": f"replay reservoir {rs}", "kind": "replay", "size": rs, "balanced": False},
           {"name": f"replay balanced {rs}", "kind": "replay", "size": rs, "balanced": True}]
    out += [{"name": f"ewc lambda={l:g}", "kind": "ewc", "lam": float(l)} for l in LAMBDAS]
    out.append({"name": "lwf", "kind": "lwf"})
    if scenario != 3:  # odl's S3 skips full fine-tuning (head-only by the protocol)
        out.append({"name": "full fine-tune", "kind": "full"})
    return out


# ---- output -----------------------------------------------------------------------------

def ms(v):
    v = np.array(v, dtype=np.float64)
    return f"{v.mean():.1f} ± {(v.std(ddof=1) if len(v) > 1 else 0.0):.1f}"


def print_table(rows, metrics):
    print(f"  {'strategy':<24}" + "".join(f" {m:>14}" for m in metrics))
    for r in rows:
        print(f"  {r['strategy']:<24}" + "".join(f" {ms(r[m]):>14}" for m in metrics))


def print_best_ewc(rows, key):
    ew = [r for r in rows if r["strategy"].startswith("ewc")]
    best = max(ew, key=lambda r: np.mean(r[key]))
    print(f"  best ewc (by mean {key}): {best['strategy']}")


# ---- scenarios -------------------------------------------------------------------------

def one_step(ctx, name, base, base_hi, new_lo, new_hi, per_class, shift, seeds):
    xtr, ytr, xte, yte = ctx["xtr"], ctx["ytr"], ctx["xte"], ctx["yte"]
    n_classes = max(new_hi, base_hi) + 1
    old = ytr <= base_hi
    old_z, old_y = latents(base, xtr[old]), ytr[old]
    xte_u = shift(xte) if shift else xte
    zte_u = latents(base, xte_u)
    head = lambda z: base[-1](z).argmax(1)
    with torch.no_grad():
        pred = head(zte_u)
        if shift:
            zte = latents(base, xte)
            bm = {"user": acc_range(pred, yte, 0, n_classes - 1),
                  "original": acc_range(head(zte), yte, 0, n_classes - 1)}
            print(f"\n{name}: base {bm['user']:.2f} user / {bm['original']:.2f} original")
        else:
            bm = {"old": acc_range(pred, yte, 0, base_hi)}
            print(f"\n{name}: base {bm['old']:.2f} on classes 0-{base_hi}")
    ctx["base_metrics"][name] = bm
    # the user's examples depend on the seed only, as in odl (same for every strategy)
    users = []
    for seed in range(seeds):
        ix = ctx["pick"](ytr, new_lo, new_hi, per_class, seed)  # odl's pool: the train split (S1: shifted)
        x = shift(xtr[ix]) if shift else xtr[ix]
        users.append((x, latents(base, x), ytr[ix]))
    metrics = ["user", "original", "sum"] if shift else ["old", "new", "all"]
    rows = []
    for st in strategies(1 if shift else 2):
        t0 = time.time()
        r = {"scenario": name, "strategy": st["name"], **{m: [] for m in metrics}}
        for seed in range(seeds):
            x, z, y = users[seed]
            s = Session(st, base, n_classes, old_z, old_y, 1000 + seed)
            s.learn(x, z, y, n_classes)
            if shift:
                u = acc_range(s.predict(xte_u if s.full else zte_u), yte, 0, n_classes - 1)
                o = acc_range(s.predict(xte if s.full else zte), yte, 0, n_classes - 1)
                vals = [u, o, u + o]
            else:
                pred = s.predict(xte if s.full else zte_u)
                vals = [acc_range(pred, yte, 0, base_hi), acc_range(pred, yte, new_lo, new_hi),
                        acc_range(pred, yte, 0, n_classes - 1)]
            for m, v in zip(metrics, vals):
                r[m].append(round(v, 4))
        r["seconds"] = round(time.time() - t0, 3)
        rows.append(r)
        print(f"  {st['name']} ... {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    print_table(rows, metrics)
    print_best_ewc(rows, "sum" if shift else "all")
    return rows


def run_s3(ctx, base, seeds):
    name = "S3"
    xtr, ytr, xte, yte = ctx["xtr"], ctx["ytr"], ctx["xte"], ctx["yte"]
    lo, hi = (0, 4, 6, 8), (3, 5, 7, 9)
    old = ytr <= 3
    old_z, old_y = latents(base, xtr[old]), ytr[old]
    zte = latents(base, xte)
    with torch.no_grad():
        a = acc_range(base[-1](zte).argmax(1), yte, 0, 3)
    print(f"\nS3 (tasks A=0-3 base, B=4-5, C=6-7, D=8-9; 100 examples per class): base {a:.2f} on task A")
    ctx["base_metrics"][name] = {"A": a}
    tasks = {}
    for seed in range(seeds):
        for t in (1, 2, 3):
            ix = ctx["pick"](ytr, lo[t], hi[t], 100, seed * 10 + t)
            tasks[seed, t] = (xtr[ix], latents(base, xtr[ix]), ytr[ix])
    rows = []
    for st in strategies(3):
        t0 = time.time()
        r = {"scenario": name, "strategy": st["name"], "ACC": [], "BWT": [], "R": []}
        for seed in range(seeds):
            s = Session(st, base, 10, old_z, old_y, 2000 + seed)
            R = np.zeros((4, 4))
            for t in range(4):
                if t:
                    x, z, y = tasks[seed, t]
                    s.learn(x, z, y, hi[t] + 1)
                pred = s.predict(zte)
                R[t] = [acc_range(pred, yte, lo[j], hi[j]) for j in range(4)]
            r["ACC"].append(round(R[3].mean(), 4))
            r["BWT"].append(round(np.mean([R[3][j] - R[j][j] for j in range(3)]), 4))
            r["R"].append(np.round(R, 4).tolist())
        r["R_mean"] = np.round(np.tril(np.mean(r["R"], 0)), 4).tolist()
        r["seconds"] = round(time.time() - t0, 3)
        rows.append(r)
        print(f"  {st['name']} ... {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(f"  {'strategy':<24} {'ACC':>14} {'BWT':>14}   R[i][j] (rows: after task i, columns: task j)")
    for r in rows:
        Rm = r["R_mean"]
        cells = " ".join("[" + "".join(f"{Rm[i][j]:5.1f}" if j <= i else "    -" for j in range(4)) + "]"
                         for i in range(4))
        print(f"  {r['strategy']:<24} {ms(r['ACC']):>14} {ms(r['BWT']):>14}   {cells}")
    print_best_ewc(rows, "ACC")
    return rows


def main():
    ap = argparse.ArgumentParser(description="PyTorch reference of docs/protocol.md S1-S3 (as odl experiment)")
    ap.add_argument("scenario", nargs="?", default="all", choices=["s1", "s2", "s3", "all"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--bases-from", dest="bases_from", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--odl-picks", dest="odl_picks", action="store_true")
    a = ap.parse_args()
    if a.seeds < 1:
        ap.error("--seeds must be >= 1")
    torch.set_num_threads(a.threads)
    t_start = time.time()
    xtr, ytr = load_split(a.data, "train")
    xte, yte = load_split(a.data, "t10k")
    in_shape = tuple(xtr.shape[1:])
    ctx = {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte, "base_metrics": {},
           "pick": odl_pick_examples if a.odl_picks else pick_examples}
    want = ["s1", "s2", "s3"] if a.scenario == "all" else [a.scenario]
    base_hi = {"s1": 9, "s2": 7, "s3": 3}

    bases, base_info = {}, {}
    for sc in want:
        hi = base_hi[sc]
        t0 = time.time()
        if a.bases_from:
            path = os.path.join(a.bases_from, f"base-0-{hi}-torch-s4.odl")
            try:
                model, meta = read_odl(path, in_shape)
            except (OSError, OdlFormatError) as e:
                sys.exit(f"torch_experiment: {e}")
            if model[-1].out_features != hi + 1:
                sys.exit(f"torch_experiment: {path}: {model[-1].out_features} outputs, {hi + 1} expected")
            base_info[sc] = {"file": path, "meta": meta}
        else:
            m = ytr <= hi
            model = train_base(xtr[m], ytr[m], hi + 1, in_shape)
            base_info[sc] = {"trained": f"classes 0-{hi}", "seconds": round(time.time() - t0, 2)}
            print(f"base 0-{hi}: trained in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
        for p in model.parameters():
            p.requires_grad_(False)
        bases[sc] = model.eval()

    rows = []
    if "s1" in bases:
        rows += one_step(ctx, "S1 (gain drift, 10 per class)", bases["s1"], 9, 0, 9, 10, gain_shift, a.seeds)
    if "s2" in bases:
        rows += one_step(ctx, "S2 (new classes 8-9, 50 per class)", bases["s2"], 7, 8, 9, 50, None, a.seeds)
    if "s3" in bases:
        rows += run_s3(ctx, bases["s3"], a.seeds)
    dt = time.time() - t_start
    src = f"odl files from {a.bases_from}" if a.bases_from else "trained in PyTorch"
    picks = "odl's" if a.odl_picks else "numpy's"
    print(f"\ntorch_experiment {a.scenario}: {dt:.0f} s (mean ± std over {a.seeds} seeds; bases: {src}; "
          f"user examples: {picks} draws; "
          f"torch {torch.__version__}, {a.threads} thread{'s' if a.threads > 1 else ''})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seeds": a.seeds, "implementation": "pytorch", "torch": torch.__version__,
                       "user_examples": "odl" if a.odl_picks else "numpy",
                       "threads": a.threads, "seconds": round(dt, 2), "bases": base_info,
                       "base_metrics": ctx["base_metrics"], "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
