#!/usr/bin/python3
"""Stands in for odl in compare_selftest.sh, to check that compare.py catches every kind of
mismatch: `import` copies the file; `predict` writes PyTorch's reference outputs changed as
FAKE_ODL says: noise:R (uniform relative noise R of the largest output), shape (one column
short), nan (one value not finite), float64 (right values, wrong dtype), import-fails."""
import os, shutil, sys

import numpy as np

mode = os.environ.get("FAKE_ODL", "noise:0")
a = sys.argv
if a[1] == "import":
    if mode == "import-fails":
        sys.exit("odl: import: node 'Conv_0' (Conv): stand-in failure")
    shutil.copy(a[2], a[a.index("-o") + 1])
    sys.exit(0)
if a[1] != "predict":
    sys.exit(2)
ref = np.load(a[2][:-len(".odl")] + ".torch.npy").astype(np.float64)
if mode.startswith("noise:"):
    out = ref + float(mode[6:]) * np.abs(ref).max() * np.random.default_rng(0).uniform(-1, 1, ref.shape)
elif mode == "shape":
    out = ref[:, :-1]
elif mode == "nan":
    out = ref.copy()
    out[3, 1] = np.nan
elif mode == "float64":
    np.save(a[a.index("-o") + 1], ref)
    sys.exit(0)
else:
    sys.exit(f"fake_odl: unknown FAKE_ODL={mode}")
np.save(a[a.index("-o") + 1], out.astype(np.float32))
