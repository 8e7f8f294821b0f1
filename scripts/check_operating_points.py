#!/usr/bin/python3
"""Independent NumPy check of the operating points `marginface eval` reports.

For each FAR (0.01, 0.001, 0.0001) eval reports the threshold that accepts at most
floor(FAR * negatives) different-identity pairs ("same" iff cosine > threshold), the TAR there and
the false accepts. This script recomputes them from embeddings written by `marginface embed` and
the LFW pairs file, with NumPy only (no code shared with the C++), and compares.

    /usr/bin/python3 scripts/check_operating_points.py --pairs pairs.txt --write-list images.txt
    build/bin/marginface embed --checkpoint CK --images images.txt --root ROOT --out emb.h5
    build/bin/marginface eval --checkpoint CK --lfw pairs.txt --root ROOT --json eval.json
    /usr/bin/python3 scripts/check_operating_points.py --pairs pairs.txt --embeddings emb.h5 \\
        --eval eval.json

Exit status 0 when every threshold agrees to 1e-5 and every count exactly.

With --calibration other.json instead of --eval (thresholds chosen on other pairs, e.g. LFW View 1
pairsDevTrain), it prints the FAR and TAR each threshold really gives on these pairs: how well an
operating point carries over to pairs it was not chosen on.
"""

import argparse
import json
import math
import sys

import h5py
import numpy as np


def read_lfw_pairs(path):
    """LFW View 2 pairs.txt: a 'folds n' header, then 'name a b' (same) or 'n1 a n2 b' lines."""
    with open(path) as f:
        lines = [line.split() for line in f if line.strip()]
    pairs = []
    for fields in lines[1:]:
        if len(fields) == 3:
            name, a, b = fields
            pairs.append((f"{name}/{name}_{int(a):04d}.jpg", f"{name}/{name}_{int(b):04d}.jpg", 1))
        elif len(fields) == 4:
            n1, a, n2, b = fields
            pairs.append((f"{n1}/{n1}_{int(a):04d}.jpg", f"{n2}/{n2}_{int(b):04d}.jpg", 0))
        else:
            raise SystemExit(f"{path}: unexpected line {' '.join(fields)}")
    return pairs


def operating_point(scores, same, far):
    impostors = np.sort(scores[~same])[::-1]
    k = min(int(math.floor(far * len(impostors) + 1e-9)), len(impostors) - 1)
    threshold = impostors[k]
    return {"threshold": float(threshold),
            "tar": float(np.mean(scores[same] > threshold)),
            "false_accepts": int(np.sum(scores[~same] > threshold)),
            "reachable": len(impostors) >= math.ceil(1.0 / far - 1e-9)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--write-list", help="write the pairs' images, one per line, and stop")
    parser.add_argument("--embeddings")
    parser.add_argument("--eval")
    parser.add_argument("--calibration", help="eval JSON of other pairs: apply its thresholds here")
    args = parser.parse_args()
    pairs = read_lfw_pairs(args.pairs)
    if args.write_list:
        images = sorted({p for a, b, _ in pairs for p in (a, b)})
        with open(args.write_list, "w") as f:
            f.write("\n".join(images) + "\n")
        print(f"wrote {args.write_list}: {len(images)} images of {len(pairs)} pairs")
        return 0
    with h5py.File(args.embeddings, "r") as f:
        rows = f["embeddings"][()].astype(np.float64)
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
    index = {p: i for i, p in enumerate(paths)}
    a = rows[[index[p[0]] for p in pairs]]
    b = rows[[index[p[1]] for p in pairs]]
    scores = np.sum(a * b, axis=1)  # rows are L2-normalised
    same = np.array([p[2] == 1 for p in pairs])
    if args.calibration:
        with open(args.calibration) as f:
            chosen = json.load(f)["operating_points"]
        negatives, positives = int(np.sum(~same)), int(np.sum(same))
        for key, point in chosen.items():
            t = point["threshold"]
            false_accepts = int(np.sum(scores[~same] > t))
            print(f"FAR {key}: threshold {t:.4f} (from {args.calibration}) gives FAR "
                  f"{false_accepts / negatives:.4f} ({false_accepts}/{negatives}) and TAR "
                  f"{np.sum(scores[same] > t) / positives:.4f} on {args.pairs}")
        return 0
    with open(args.eval) as f:
        reported = json.load(f)["operating_points"]
    ok = True
    for key, ours in reported.items():
        ref = operating_point(scores, same, float(key))
        agree = (abs(ref["threshold"] - ours["threshold"]) <= 1e-5 and
                 ref["false_accepts"] == ours["false_accepts"] and
                 abs(ref["tar"] - ours["tar"]) <= 1e-12 and ref["reachable"] == ours["reachable"])
        ok = ok and agree
        print(f"FAR {key}: NumPy threshold {ref['threshold']:.6f} TAR {ref['tar']:.4f} "
              f"false accepts {ref['false_accepts']} reachable {ref['reachable']}; eval "
              f"{ours['threshold']:.6f} {ours['tar']:.4f} {ours['false_accepts']} "
              f"{ours['reachable']}: {'agree' if agree else 'DIFFER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
