#!/usr/bin/python3
"""examples/personalise.py — examples/personalise.c from Python.

    /usr/bin/python3 examples/personalise.py BASE.odl [FASHION_MNIST_DIR] [SEED]

Personalise a head from 50 of a user's examples (sensor drifted:
gain:0.5,0.25), with automatic rollback when 50 mislabelled ones would make it
worse. It makes the same library calls as personalise.c with the same seed,
so it prints the same decisions and accuracies. Exits non-zero if the good
update is not accepted or the bad one not rolled back.
Works with or without NumPy."""
import os
import sys
import tempfile

import odl

DATA = "/usr/share/datasets/fashion-mnist"
SHIFT = "gain:0.5,0.25"  # the user's drifted sensor


def accuracy(learner, x, y):
    classes, _, _ = learner.predict(x)
    return sum(int(c == t) for c, t in zip(classes, y)) / len(y)


def main(argv):
    if len(argv) < 2:
        print("usage: personalise.py BASE.odl [FASHION_MNIST_DIR] [SEED]", file=sys.stderr)
        return 2
    data = argv[2] if len(argv) > 2 else DATA
    seed = int(argv[3]) if len(argv) > 3 else 0

    base = odl.load(argv[1])
    old = odl.load_data(data, split="train", limit=2000)          # what the device ships with
    test = odl.load_data(data, split="test")
    user_x = odl.shift(test.x, SHIFT, test.shape)                 # the drifted sensor
    user_y = test.y

    learner = odl.Learner(base, seed=seed)
    learner.seed(old.x, old.y)
    print("base: %d classes; learner: %d bytes; %d old samples seeded; user data: test split through %s"
          % (base.n_classes, learner.bytes, len(old), SHIFT))
    ev_x, ev_y = user_x[5000:7000], user_y[5000:7000]           # never labelled
    print("accuracy on 2000 drifted samples before: %.3f" % accuracy(learner, ev_x, ev_y))

    fails = 0
    # the user labels 50 drifted samples correctly
    fb = learner.feedback(user_x[100:150], user_y[100:150])
    print("feedback: %d of %d collected" % (sum(f.accepted for f in fb), len(fb)))
    upd = learner.update()
    print("update 1:", upd.decision)
    if upd.accepted:
        print("ok: good update accepted")
    else:
        print("FAIL: the good update was not accepted")
        fails += 1
    acc1 = accuracy(learner, ev_x, ev_y)
    print("accuracy on 2000 drifted samples after: %.3f" % acc1)

    # 50 wrong labels (off by one), each sent twice
    head_before = learner.current_model().logits(ev_x[:20])
    for i in range(200, 250):
        wrong = (int(user_y[i]) + 1) % base.n_classes
        for _ in range(2):
            learner.feedback(user_x[i], wrong)
    upd = learner.update()
    st = learner.status()
    print("update 2:", upd.decision)
    print("rejected:", {k: v for k, v in st.rejected.items() if v})
    head_after = learner.current_model().logits(ev_x[:20])
    same = list(map(list, head_before)) == list(map(list, head_after))
    if upd.rolled_back and same:
        print("ok: mislabelled update rolled back, head bit-identical")
    else:
        print("FAIL: the mislabelled update was %s (head %s)"
              % ("rolled back" if upd.rolled_back else "accepted", "unchanged" if same else "changed"))
        fails += 1
    acc2 = accuracy(learner, ev_x, ev_y)
    print("accuracy on 2000 drifted samples now: %.3f" % acc2)
    if acc2 != acc1:
        print("FAIL: accuracy changed after the rollback")
        fails += 1
    print("status: version %d; %d predictions, %d feedback (%d accepted); updates %d: %d accepted, %d rolled back"
          % (st.version, st.predictions, st.feedback, st.accepted_examples, st.updates, st.updates_accepted,
             st.updates_rolled_back))

    # the personalised model, saved and read back; then back to the base
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "personal.odl")
        learner.save(path)
        saved = odl.load(path)
        classes, _ = saved.classify(ev_x)
        acc_saved = sum(int(c == t) for c, t in zip(classes, ev_y)) / len(ev_y)
    print("saved to personal.odl and loaded again: accuracy %.3f" % acc_saved)
    if abs(acc_saved - acc2) > 1e-9:
        print("FAIL: the saved model predicts differently")
        fails += 1
    version = learner.rollback(1)
    print("rollback 1: version %d is current; accuracy %.3f" % (version, accuracy(learner, ev_x, ev_y)))
    print("personalise.py: %s" % ("FAILED" if fails else "ok"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
