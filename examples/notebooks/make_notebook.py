#!/usr/bin/python3
"""Writes on_device_learning.ipynb from the cells below (the notebook is kept
in git; edit here and re-run: /usr/bin/python3 make_notebook.py)."""
import json
import os

cells = []


def md(text):
    cells.append({"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")})


def code(text):
    cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                  "source": text.strip("\n")})


md("""
# On-device learning with odl

A lab in one notebook, on odl's C core through its Python API: a pre-trained
base, a frozen base with a trained head, catastrophic forgetting and what
fixes it (replay, EWC, streaming LDA), personalisation from 10 examples per
class, versions with an automatic rollback, drift detection, and the memory
plan against a 256 KB device, and a network from PyTorch imported and
given new classes. Every number and plot comes from a real run
here; every cell checks what it shows. Small subsets and one epoch keep the
whole notebook under a few minutes on 2 cores.

Set-up: `python3 -m pip install ./python` (or `cmake --install`) so that
`import odl` works; Fashion-MNIST at `/usr/share/datasets/fashion-mnist`;
PyTorch for section 8 (Debian: `python3-torch`).
""")
code("""
import os, time, json, subprocess, tempfile
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
%matplotlib inline
import odl

DATA = os.environ.get("ODL_DATA", "/usr/share/datasets/fashion-mnist")
WORK = tempfile.mkdtemp(prefix="odl-notebook-")
FIGURES = os.environ.get("ODL_FIGURES")  # set to save the figures as PNG files
T0 = time.time()
CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
print("odl", odl.__version__, "from", odl.library_path, "; tool", odl.find_tool())
""")
md("## 1. A pre-trained base: edge-cnn on Fashion-MNIST")
code("""
train = odl.load_data(DATA, split="train", limit=12000)
test = odl.load_data(DATA, split="test", limit=2000)
print(len(train), "training and", len(test), "test images of shape", train.shape)

base = odl.Model.edge_cnn(input_shape=train.shape, classes=10, seed=0)
print(base)
hist = base.fit(train.x, train.y, epochs=1, batch_size=32, validation_data=(test.x, test.y), verbose=1)
base_acc = base.evaluate(test.x, test.y)["accuracy"]
base.save(os.path.join(WORK, "base.odl"))
assert base_acc > 0.70, base_acc
""")
md("""
## 2. Freeze the base, train a head

`freeze("head")` leaves only the last dense layer trainable: the
convolutional features stay as they are (on a device they stay in flash).
""")
code("""
before = base.trainable_params
base.freeze("head")
after = base.trainable_params
print("trainable parameters: %d before, %d after freezing (of %d)" % (before, after, base.params))
base.summary(batch_size=1)
feat_before = base.logits(test.x[:50])
h = base.fit(train.x[:4000], train.y[:4000], epochs=1, batch_size=32, validation_data=(test.x, test.y))
head_acc = base.evaluate(test.x, test.y)["accuracy"]
print("head trained: test accuracy %.3f (base %.3f)" % (head_acc, base_acc))

fig, ax = plt.subplots(figsize=(5, 2.5))
ax.bar(["before freeze", "after freeze"], [before, after], color=["#888", "#2a7"])
ax.set_yscale("log"); ax.set_ylabel("trainable parameters")
for i, v in enumerate([before, after]):
    ax.text(i, v, str(v), ha="center", va="bottom")
plt.show()
assert after == 64 * 10 + 10 and after < before / 50
assert head_acc > base_acc - 0.05, (head_acc, base_acc)
""")
md("""
## 3. Catastrophic forgetting, and what fixes it

The task sequence of `odl experiment s3` (docs/protocol.md): Fashion-MNIST's
classes arrive in four tasks; after each one the model is tested on every
task seen so far. Row *i* of the accuracy matrix is the model after task *i*;
what falls along a column is forgetting. Naive fine-tuning forgets; replay
keeps a small buffer of old latents; EWC penalises moving weights the old
tasks need; streaming LDA learns class statistics instead of weights.
""")
code("""
res = odl.run_experiment("s3", seeds=1, data=DATA, work=os.path.join(WORK, "exp"),
                         only=["naive", "replay", "ewc", "slda"])
def row(prefix):
    return next(r for r in res.scenario("S3") if r.strategy.startswith(prefix))
chosen = [row("naive"), row("replay"), row("ewc"), row("slda")]
mats = [np.array([[np.nan if v is None else v for v in r] for r in c.R_mean], dtype=float) for c in chosen]
for R in mats:  # tasks not yet seen: blank, not 0
    R[np.triu_indices(R.shape[0], 1)] = np.nan

fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
fig.subplots_adjust(wspace=0.35)
for ax, c, R in zip(axes, chosen, mats):
    im = ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
    ax.set_title("%s\\nACC %.1f  BWT %.1f" % (c.strategy, c.mean("ACC"), c.mean("BWT")), fontsize=9)
    ax.set_xlabel("tested on task"); ax.set_ylabel("after task")
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            if not np.isnan(R[i, j]):
                ax.text(j, i, "%.0f" % R[i, j], ha="center", va="center", color="w" if R[i, j] < 60 else "k", fontsize=8)
fig.colorbar(im, ax=axes, shrink=0.8, label="accuracy %")
if FIGURES:
    fig.savefig(os.path.join(FIGURES, "notebook-forgetting.png"), dpi=90, bbox_inches="tight")
plt.show()

fig, ax = plt.subplots(figsize=(6, 3.2))
for c, R in zip(chosen, mats):
    ax.plot(range(1, R.shape[0] + 1), R[:, 0], marker="o", label=c.strategy)
ax.set_xlabel("after task"); ax.set_ylabel("accuracy on task 1 (%)"); ax.set_ylim(0, 100)
ax.set_title("forgetting curves: the first task"); ax.legend(fontsize=8)
plt.show()

old = {c.strategy: R[-1, 0] for c, R in zip(chosen, mats)}
print("task-1 accuracy after the last task:", {k: round(v, 1) for k, v in old.items()})
naive, replay, ewc, slda = (R[-1, 0] for R in mats)
assert replay > naive + 5, (replay, naive)   # replay remembers
assert slda > naive + 5, (slda, naive)       # so do class statistics
assert mats[0][0, 0] - naive > 30            # naive forgets most of task 1
""")
md("""
## 4. Personalisation: 10 examples per class

A user's sensor reads darker and noisier (`gain:0.8,0.1`). The user labels
10 images per class; `odl.adapt` trains the head on them, alone (naive) or
with replay of the original data. We test on other images through the same
sensor (the user's accuracy) and on clean images (the original task).
""")
code("""
user = odl.load_data(DATA, split="test", shift="gain:0.8,0.1")
idx = np.concatenate([np.where(user.y[:5000] == k)[0][:10] for k in range(10)])
ux, uy = user.x[idx], user.y[idx]
ev_x, ev_y = user.x[5000:7000], user.y[5000:7000]
clean_x, clean_y = test.x, test.y
base = odl.load(os.path.join(WORK, "base.odl")).freeze("head")
models = {"base": base,
          "naive": odl.adapt(base, ux, uy, strategy="naive", epochs=10),
          "replay": odl.adapt(base, ux, uy, strategy="replay", replay_from=DATA, replay_size=400,
                              replay_balanced=True, epochs=10)}
user_acc = {k: m.evaluate(ev_x, ev_y)["accuracy"] for k, m in models.items()}
orig_acc = {k: m.evaluate(clean_x, clean_y)["accuracy"] for k, m in models.items()}
for k in models:
    print("%-7s user %.3f  original %.3f" % (k, user_acc[k], orig_acc[k]))

fig, ax = plt.subplots(figsize=(6, 3))
xs = np.arange(3)
ax.bar(xs - 0.2, [user_acc[k] for k in models], 0.4, label="user (drifted sensor)")
ax.bar(xs + 0.2, [orig_acc[k] for k in models], 0.4, label="original (clean)")
ax.set_xticks(xs); ax.set_xticklabels(list(models)); ax.set_ylim(0, 1); ax.legend(fontsize=8)
ax.set_title("100 labelled examples (10 per class)")
plt.show()
assert user_acc["replay"] > user_acc["base"], user_acc
assert len(idx) == 100 and all((uy == k).sum() == 10 for k in range(10))
""")
md("""
## 5. Versions and an automatic rollback

The learner façade gates every update: it keeps a held-out part of what the
user labelled and a guard set of the original data, and rolls an update back
when it makes either worse. A good update is accepted (version 2); then 50
images are labelled wrongly on purpose: the data gate refuses many, and the
update learned from the rest is rolled back, the head bit for bit as before.
""")
code("""
old = odl.load_data(DATA, split="train", limit=2000)
L = odl.Learner(os.path.join(WORK, "base.odl"), seed=0)
L.seed(old.x, old.y)
try:
    L.rollback(1)
except odl.OdlError as e:
    print("rollback before any update:", e)
ux2, uy2 = user.x, user.y
acc = lambda: float(np.mean(L.predict(ev_x)[0] == ev_y))
hist = [("v1 base", acc())]
L.feedback(ux2[100:150], uy2[100:150])
good = L.update()
hist.append(("good update v%d" % good.version, acc()))
print("good update:", good.decision)
logits_before = L.current_model().logits(ev_x[:50])
for i in range(200, 250):
    for _ in range(2):
        L.feedback(ux2[i], (int(uy2[i]) + 1) % 10)
bad = L.update()
hist.append(("mislabelled: rolled back" if bad.rolled_back else "mislabelled: accepted", acc()))
print("mislabelled update:", bad.decision)
print("refused by the data gate:", {k: v for k, v in L.status().rejected.items() if v})
same = np.array_equal(logits_before, L.current_model().logits(ev_x[:50]))

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([h[0] for h in hist], [h[1] for h in hist], marker="o")
ax.set_ylabel("accuracy on the user's images"); ax.set_title("versions: %s" % L)
plt.xticks(fontsize=8); plt.show()
assert good.accepted and bad.rolled_back and same
assert hist[2][1] == hist[1][1]
""")
md("""
## 6. Drift detection

A stream of clean images, then the drifted sensor from sample 600 on. A
z-score detector watches each image's standard deviation (no labels needed).
""")
code("""
stream = np.concatenate([test.x[:600], odl.shift(test.x[600:1000], "gain:0.8,0.1", test.shape)])
_, std = odl.sample_stats(stream, size=784)
z = odl.ZScore(ref_n=500)
alarms = z.update_many(std)
first = int(alarms[0]) if len(alarms) else None
print("first alarm at sample", first, "(drift starts at 600)")

fig, ax = plt.subplots(figsize=(7, 2.8))
ax.plot(std, lw=0.6, label="per-image std")
ax.axvline(600, color="k", ls="--", label="drift starts")
if first is not None:
    ax.axvline(first, color="r", label="detected")
ax.set_xlabel("sample"); ax.legend(fontsize=8)
plt.show()
assert first is not None and 600 <= first < 700, first
""")
md("""
## 7. The memory plan against a 256 KB device

`odl info --budget 256K` plans the on-device learner: the frozen base runs
from flash (its inference scratch in RAM), the head trains with Adam, the
replay buffer holds INT8 latents. Each kind of memory is exact, not estimated.
""")
code("""
p = subprocess.run([odl.find_tool(), "info", os.path.join(WORK, "base.odl"), "--budget", "256K", "--json"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
info = json.loads(p.stdout)
ln = info["learner"]
kinds = {k: v for k, v in ln["bytes"].items() if k != "total" and v}
kinds = {"base inference (scratch)": ln["base_inference_in_place"], **kinds}
budget = ln["budget"]
fig, ax = plt.subplots(figsize=(7, 2.6))
left = 0
for k, v in kinds.items():
    ax.barh([0], [v / 1024], left=left / 1024, label="%s %.1f KB" % (k, v / 1024))
    left += v
ax.axvline(budget / 1024, color="r", ls="--", label="budget 256 KB")
ax.set_yticks([]); ax.set_xlabel("KB of RAM")
ax.set_title("device total %.1f KB: %s" % (ln["device_total"] / 1024, "fits" if ln["fits"] else "over budget"))
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
plt.show()
print(p.stderr.strip())
print("learner %d B + frozen base's RAM %d B = %d B: %s the %d-byte budget by %d B" % (
    ln["bytes"]["total"], ln["base_inference_in_place"], ln["device_total"],
    "fits" if ln["fits"] else "over", budget, abs(budget - ln["device_total"])))
assert left == ln["device_total"] and ln["fits"] == (ln["device_total"] <= budget)
assert ln["fits"], "the default learner no longer fits 256 KB: odl info --budget 256K says what to change"
""")
md("""
## 8. Bring your own model: a network from PyTorch

odl adapts models trained elsewhere. Here PyTorch trains a small network
with batch norm and a residual addition on classes 0-7 (a few seconds, one
thread), exports it to ONNX, and `odl.import_model` reads it: batch norms
are folded, the graph keeps its residual addition, and everything below the
last dense layer is frozen. Its outputs match PyTorch's. Then the user shows
it 100 images of the two classes it has never seen (8 = bag, 9 = ankle
boot); `odl.adapt` grows the head to 10 classes and trains it with replay.
""")
code("""
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
torch.set_num_threads(1)  # a small network: one thread is the fastest on a shared machine

class SmallNet(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.features = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 32), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.block(x))  # the residual addition
        return self.head(self.features(x))

t = time.time()
old_cls = train.y < 8
xo, yo = torch.tensor(train.x[old_cls][:6000]), torch.tensor(train.y[old_cls][:6000]).long()
net = SmallNet(8)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
net.train()
perm = torch.randperm(len(xo))
for i in range(0, len(xo), 64):
    b = perm[i:i + 64]
    opt.zero_grad()
    F.cross_entropy(net(xo[b]), yo[b]).backward()
    opt.step()
net.eval()
onnx_path = os.path.join(WORK, "smallnet8.onnx")
torch.onnx.export(net, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=13,
                  input_names=["image"], output_names=["logits"])
print("PyTorch: trained on %d images of classes 0-7 and exported in %.1f s" % (len(xo), time.time() - t))

imported = odl.import_model(onnx_path)
print(imported.import_log.strip())
print(imported)
t8 = test.y < 8
with torch.no_grad():
    ref = net(torch.tensor(test.x[t8])).numpy()
got = imported.logits(test.x[t8])
rel_err = float(np.abs(got - ref).max() / np.abs(ref).max())
torch_acc = float((ref.argmax(1) == test.y[t8]).mean())
odl_acc = imported.evaluate(test.x[t8], test.y[t8])["accuracy"]
torch_params = sum(p.numel() for p in net.parameters())
print("classes 0-7: PyTorch %.3f, odl %.3f; largest logit difference %.1e of the largest logit" % (
    torch_acc, odl_acc, rel_err))
print("trainable parameters: %d in PyTorch, %d after import (the frozen base keeps %d)" % (
    torch_params, imported.trainable_params, imported.params - imported.trainable_params))

# the user's 100 images of classes 8 and 9; replay keeps classes 0-7
new_idx = np.where(train.y >= 8)[0][:100]
adapted = odl.adapt(imported, train.x[new_idx], train.y[new_idx], strategy="replay", replay_from=DATA,
                    replay_balanced=True, new_classes=True, epochs=10)
pred = adapted.classify(test.x)[0]
acc_on = lambda mask: float((pred[mask] == test.y[mask]).mean())
after = {"old (0-7)": acc_on(t8), "new (8-9)": acc_on(test.y >= 8), "all 10": acc_on(test.y >= 0)}
print("after adapting on 100 images of classes 8-9:", {k: round(v, 3) for k, v in after.items()},
      "; trainable parameters now %d" % adapted.trainable_params)

fig, ax = plt.subplots(figsize=(7, 3))
names = ["PyTorch\\n0-7", "odl import\\n0-7", "adapted\\nold 0-7", "adapted\\nnew 8-9", "adapted\\nall 10"]
vals = [torch_acc, odl_acc] + list(after.values())
ax.bar(names, vals, color=["#888", "#0072B2", "#0072B2", "#D55E00", "#009E73"])
for i, v in enumerate(vals):
    ax.text(i, v + 0.01, "%.3f" % v, ha="center", fontsize=8)
ax.set_ylim(0, 1); ax.set_ylabel("test accuracy")
ax.set_title("a PyTorch network imported, frozen, and given two new classes")
plt.show()
assert rel_err < 1e-4, rel_err                                   # the same function as in PyTorch
assert abs(odl_acc - torch_acc) <= 1.0 / t8.sum(), (odl_acc, torch_acc)
assert imported.trainable_params == 32 * 8 + 8 < torch_params     # only the head trains
assert adapted.n_classes == 10 and after["new (8-9)"] > 0.5, after  # the new classes are learned
assert after["old (0-7)"] > torch_acc - 0.1, (after, torch_acc)   # the old ones are kept
print("notebook ran in %.0f s" % (time.time() - T0))
""")

nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                                   "language_info": {"name": "python"}},
      "nbformat": 4, "nbformat_minor": 5}
for i, c in enumerate(nb["cells"]):
    c["id"] = "cell-%02d" % i
    c["source"] = [l + "\n" for l in c["source"].split("\n")]
    c["source"][-1] = c["source"][-1].rstrip("\n")
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "on_device_learning.ipynb")
with open(out, "w") as f:
    json.dump(nb, f, indent=1)
    f.write("\n")
print("wrote", out)
