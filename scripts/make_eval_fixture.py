#!/usr/bin/python3
"""Reference values for the verification protocol, from an independent numpy implementation.

Writes tests/fixtures/eval.h5, read by tests/eval/test_verification_fixture.cpp. The protocol is
insightface's 10-fold one (recognition/arcface_torch/eval/verification.py) with the exact
threshold rule of src/eval/verification.h instead of insightface's grid:
  * "same" when the cosine similarity is strictly greater than the threshold;
  * candidates: midpoints between consecutive distinct sorted training scores, plus min - 1 and
    max + 1; the first (smallest) candidate of maximal training accuracy wins;
  * accuracy mean and population std (np.std) over the folds.
This script evaluates every candidate by brute force (a candidates x pairs matrix) where the C++
code sweeps sorted scores once; the AUC is the Mann-Whitney statistic counted over all
same x different pairs (ties count one half) where the C++ code integrates the ROC with the
trapezoid rule; the EER is found by bisection of FRR(x) - x, and TAR at a FAR as the highest TAR
of the ROC polyline at that FAR evaluated over all its vertices and segments at once, where the
C++ code walks the polyline's segments in order.

Cases (one HDF5 group each):
  continuous      6000 pairs as in LFW View 2: 10 folds of 300 same then 300 different pairs,
                  float32-rounded cosines (few ties)
  tied            the same pairs with scores rounded to 0.01 (heavy ties everywhere)
  unbalanced      2345 pairs, about 30 % same, scores rounded to 0.001, folds 0-9 drawn at
                  random (not in blocks), so that EER and TAR fall between ROC vertices
  single_fold     1000 pairs, 500 same then 500 different, no folds: cross-validated over 10
                  consecutive slices of 100 (LFW View 1 pairsDevTest without a threshold list)
  threshold_pairs the single_fold pairs, threshold chosen on a separate 2200-pair list
                  (train_scores, train_labels; as pairsDevTrain)
Each group holds scores (float64), labels (int64, 1 same), folds (int64, absent for the single-
fold cases), thresholds and fold_accuracies (float64), and attributes accuracy_mean,
accuracy_std, auc, eer, tar_at_far_0.001, tar_at_far_0.01, plus for information
insightface_grid_accuracy_mean (insightface's own threshold grid on d = 2 - 2 cos).

Run from the repository root with Debian's python (it has numpy and h5py):
    /usr/bin/python3 scripts/make_eval_fixture.py [--out tests/fixtures/eval.h5]
The output is deterministic.
"""

import argparse
import os

import h5py
import numpy as np

SEED = 20240612
FARS = (1e-3, 1e-2)


def synthetic_scores(rng, n_same, n_diff):
    """Cosine similarities roughly like a weak face model's: overlapping, clipped to [-1, 1]."""
    same = np.clip(rng.normal(0.42, 0.17, n_same), -1, 1)
    diff = np.clip(rng.normal(0.06, 0.12, n_diff), -1, 1)
    return same.astype(np.float32).astype(np.float64), diff.astype(np.float32).astype(np.float64)


def lfw_like(rng, folds=10, per_fold=300):
    scores, labels, fold_ids = [], [], []
    for f in range(folds):
        s, d = synthetic_scores(rng, per_fold, per_fold)
        scores += [s, d]
        labels += [np.ones(per_fold, np.int64), np.zeros(per_fold, np.int64)]
        fold_ids.append(np.full(2 * per_fold, f, np.int64))
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(fold_ids)


def best_threshold(scores, same):
    u = np.unique(scores)  # sorted, distinct
    mids = (u[:-1] + u[1:]) / 2
    mids = np.where((mids > u[:-1]) & (mids < u[1:]), mids, u[:-1])  # neighbouring doubles
    candidates = np.concatenate([[u[0] - 1], mids, [u[-1] + 1]])
    correct = ((scores[None, :] > candidates[:, None]) == (same[None, :] == 1)).sum(axis=1)
    best = int(np.argmax(correct))  # the first maximum: the smallest threshold
    return candidates[best]


def accuracy(scores, same, threshold):
    return float(np.mean((scores > threshold) == (same == 1)))


def cross_validate(scores, same, folds):
    thresholds, accuracies = [], []
    for f in range(int(folds.max()) + 1):
        test = folds == f
        t = best_threshold(scores[~test], same[~test])
        thresholds.append(t)
        accuracies.append(accuracy(scores[test], same[test], t))
    return np.array(thresholds), np.array(accuracies)


def auc_mann_whitney(scores, same):
    pos, neg = scores[same == 1], scores[same == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def roc_points(scores, same):
    """The ROC polyline: (0, 0), then one point per distinct score, highest first, with the
    counts of pairs at or above it; from (0, 0) to (1, 1). Without ties it is a staircase."""
    pos, neg = np.sort(scores[same == 1]), np.sort(scores[same == 0])
    cuts = np.unique(scores)[::-1]
    tar = (pos.size - np.searchsorted(pos, cuts, side="left")) / pos.size
    far = (neg.size - np.searchsorted(neg, cuts, side="left")) / neg.size
    return np.concatenate([[0.0], far]), np.concatenate([[0.0], tar])


def tar_on_roc(x, far, tar):
    """The highest TAR of the polyline at FAR x: the largest of the vertices at or left of x and
    of the segments crossing x evaluated there (the top of a vertical step at exactly x)."""
    best = tar[far <= x].max()
    x0, x1, y0, y1 = far[:-1], far[1:], tar[:-1], tar[1:]
    crossing = (x0 < x) & (x < x1)
    if crossing.any():
        t = (x - x0[crossing]) / (x1[crossing] - x0[crossing])
        best = max(best, (y0[crossing] + t * (y1[crossing] - y0[crossing])).max())
    return float(best)


def eer_bisection(far, tar):
    # FRR(x) - x = 1 - TAR(x) - x falls from 1 to -1; bisect to the last representable double.
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if 1 - tar_on_roc(mid, far, tar) - mid > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def insightface_grid_accuracy(scores, same, folds):
    """insightface's own rule, for information: d = 2 - 2 cos, thresholds np.arange(0, 4, 0.01),
    "same" when d < threshold, first argmax."""
    dist = 2 - 2 * scores
    grid = np.arange(0, 4, 0.01)
    accs = []
    for f in range(int(folds.max()) + 1):
        test = folds == f
        train_acc = [np.mean((dist[~test] < t) == (same[~test] == 1)) for t in grid]
        t = grid[int(np.argmax(train_acc))]
        accs.append(np.mean((dist[test] < t) == (same[test] == 1)))
    return float(np.mean(accs))


def write_case(out, name, scores, same, folds, thresholds, accuracies, grid_folds, extra=None):
    g = out.create_group(name)
    g["scores"] = scores
    g["labels"] = same
    if folds is not None:
        g["folds"] = folds
    g["thresholds"] = thresholds
    g["fold_accuracies"] = accuracies
    for key, value in (extra or {}).items():
        g[key] = value
    far, tar = roc_points(scores, same)
    g.attrs["accuracy_mean"] = float(np.mean(accuracies))
    g.attrs["accuracy_std"] = float(np.std(accuracies))
    g.attrs["auc"] = auc_mann_whitney(scores, same)
    g.attrs["eer"] = eer_bisection(far, tar)
    for target in FARS:
        g.attrs["tar_at_far_%g" % target] = tar_on_roc(target, far, tar)
    g.attrs["insightface_grid_accuracy_mean"] = insightface_grid_accuracy(scores, same, grid_folds)
    print("%-16s pairs %5d  accuracy %.6f +- %.6f  auc %.6f  eer %.6f  tar@1e-3 %.4f  tar@1e-2 %.4f"
          "  (insightface grid: %.6f)" % (
              name, scores.size, g.attrs["accuracy_mean"], g.attrs["accuracy_std"],
              g.attrs["auc"], g.attrs["eer"], g.attrs["tar_at_far_0.001"],
              g.attrs["tar_at_far_0.01"], g.attrs["insightface_grid_accuracy_mean"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("tests", "fixtures", "eval.h5"))
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)

    scores, same, folds = lfw_like(rng)
    tied = np.round(scores, 2)

    s, d = synthetic_scores(rng, 500, 500)
    single = np.concatenate([s, d])
    single_same = np.concatenate([np.ones(500, np.int64), np.zeros(500, np.int64)])
    slices = np.zeros(single.size, np.int64)
    for f, block in enumerate(np.array_split(np.arange(single.size), 10)):
        slices[block] = f
    s, d = synthetic_scores(rng, 1100, 1100)
    train = np.concatenate([s, d])
    train_same = np.concatenate([np.ones(1100, np.int64), np.zeros(1100, np.int64)])

    # Unbalanced, with scores on a 0.001 grid (some ties) and folds drawn at random rather than
    # in blocks: EER and TAR fall between ROC vertices here.
    n = 2345
    unbalanced_same = (rng.random(n) < 0.3).astype(np.int64)
    unbalanced = np.where(unbalanced_same == 1, rng.normal(0.42, 0.17, n),
                          rng.normal(0.06, 0.12, n))
    unbalanced = np.round(np.clip(unbalanced, -1, 1), 3)
    unbalanced_folds = rng.integers(0, 10, n).astype(np.int64)

    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as out:
        out.attrs["seed"] = SEED
        out.attrs["numpy_version"] = np.__version__
        for name, sc in (("continuous", scores), ("tied", tied)):
            thresholds, accuracies = cross_validate(sc, same, folds)
            write_case(out, name, sc, same, folds, thresholds, accuracies, folds)
        thresholds, accuracies = cross_validate(unbalanced, unbalanced_same, unbalanced_folds)
        write_case(out, "unbalanced", unbalanced, unbalanced_same, unbalanced_folds, thresholds,
                   accuracies, unbalanced_folds)
        thresholds, accuracies = cross_validate(single, single_same, slices)
        write_case(out, "single_fold", single, single_same, None, thresholds, accuracies, slices)
        t = best_threshold(train, train_same)
        write_case(out, "threshold_pairs", single, single_same, None, np.array([t]),
                   np.array([accuracy(single, single_same, t)]), slices,
                   {"train_scores": train, "train_labels": train_same})
    os.replace(tmp, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
