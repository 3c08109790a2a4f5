#!/usr/bin/env python3
"""Writes the README's session scenario (events.csv) from the Fashion-MNIST
test labels: a good update, a mislabelled update, a save and a rollback.
Usage: python3 examples/session/make_events.py > examples/session/events.csv"""
import gzip, sys

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
labels = gzip.open(path).read()[8:]
# The drift (gain:0.7,0.2: 30% less contrast, a lifted black level) costs the
# README's base 17 points of accuracy, so 48 labels have something to repair;
# a milder gain:0.8,0.1 costs 3 points, below what 12 held-out examples resolve.
out = ["# odl session scenario: the user's sensor drifts (run with --shift gain:0.7,0.2)",
       "# 1. the app predicts 600 samples as the sensor was, then the drifted ones:",
       "#    the drift monitors must fire soon after prediction 600"]
out += [f"predict,orig,{i}" for i in range(1000, 1600)]
out += [f"predict,user,{i}" for i in range(2000, 2300)]
out.append("# 2. the user labels 48 drifted samples correctly; an update learns them")
out += [f"label,user,{i},{labels[i]}" for i in range(100, 148)]
out.append("update")
out.append("save,session-v2.odl")
out.append("# 3. someone labels 48 samples wrongly (every label off by one); labels that")
out.append("#    contradict a confident prediction are held, so they are sent twice")
for i in range(200, 248):
    wrong = (labels[i] + 1) % 10
    out += [f"label,user,{i},{wrong}", f"label,user,{i},{wrong}"]
out.append("update")
out.append("# 4. a flood: the same sample five times")
out += ["label,user,300,%d" % labels[300]] * 5
out.append("# 5. back to the base's head")
out.append("rollback,1")
out.append("save,session-v1.odl")
print("\n".join(out))
