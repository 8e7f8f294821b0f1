#!/usr/bin/python3
"""PyTorch reference fixtures for Partial FC (src/losses/partial_fc.h).

Partial FC (An et al., ICCVW 2021, Sec. 3) computes a head's loss over a subset of the classes:
the batch's positive classes plus sampled negatives, with only those rows of the class-weight
matrix. Given the same class subset, the loss and gradients must equal the head's formula applied
to W[subset] with each label replaced by its position in the subset. This script computes exactly
that in float64 torch, with the head formulas of scripts/make_head_fixtures.py (written there
independently of the C++ code), and stores the subset so the C++ test uses the same classes.

Writes tests/fixtures/partial_fc.h5: one group per case with
  * attributes: type, step; params ("key=value");
  * embeddings (N, D), labels (N, global class indices), weight (K·G, D) the full matrix,
    classes (K') the subset (ascending);
  * loss, d_embeddings, d_weight_rows (K'·G, D): the gradient of the subset's rows.

    /usr/bin/python3 scripts/make_partial_fc_fixtures.py [--out tests/fixtures/partial_fc.h5]
"""

import argparse
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_head_fixtures as heads  # noqa: E402  (the independent head formulas)

N, D, K = 8, 8, 40
RATE = 0.3  # K' = ceil(0.3 * 40) = 12 classes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/partial_fc.h5")
    out_path = parser.parse_args().out
    gen = torch.Generator().manual_seed(20261202)
    rng = np.random.RandomState(20261202)
    cases = [("softmax", {}, 1), ("normface", {"s": 16.0}, 1), ("cosface", {"s": 16.0}, 1),
             ("arcface", {"s": 16.0}, 1), ("sphereface", {}, 1),
             ("combined", {"s": 16.0, "m1": 1.0, "m2": 0.3, "m3": 0.2}, 1),
             ("subcenter_arcface", {"s": 16.0, "k": 3}, 3)]
    with h5py.File(out_path, "w") as f:
        f.attrs["generator"] = np.bytes_("scripts/make_partial_fc_fixtures.py")
        for kind, params, groups in cases:
            p = dict(heads.DEFAULTS.get(kind, {}), **params)
            x = torch.randn(N, D, generator=gen, dtype=torch.float32)
            w = torch.randn(K * groups, D, generator=gen, dtype=torch.float32)
            y = torch.from_numpy(rng.choice(K, size=N, replace=True).astype(np.int64))
            positives = sorted(set(y.tolist()))
            others = [c for c in range(K) if c not in positives]
            want = max(len(positives), int(np.ceil(RATE * K)))
            negatives = rng.choice(others, size=want - len(positives), replace=False).tolist()
            classes = np.array(sorted(positives + negatives), dtype=np.int64)
            rows = np.array([c * groups + g for c in classes for g in range(groups)])
            local = torch.tensor([int(np.searchsorted(classes, v)) for v in y.tolist()])
            t = {"embeddings": x.double().requires_grad_(True),
                 "weight": w[torch.from_numpy(rows)].double().requires_grad_(True)}
            step = 100
            result = heads.HEADS[kind](t, local, p, step)
            loss = result[0]
            loss.backward()
            g = f.create_group(kind)
            g.attrs["type"] = np.bytes_(kind)
            g.attrs["step"] = np.int64(step)
            g.create_dataset("params", data=np.array(
                [f"{k}={v}" for k, v in params.items()], dtype="S"))
            g.create_dataset("embeddings", data=x.numpy())
            g.create_dataset("labels", data=y.numpy())
            g.create_dataset("weight", data=w.numpy())
            g.create_dataset("classes", data=classes)
            g.create_dataset("loss", data=np.float32(loss.item()))
            g.create_dataset("d_embeddings", data=t["embeddings"].grad.float().numpy())
            g.create_dataset("d_weight_rows", data=t["weight"].grad.float().numpy())
            print(f"{kind}: {len(classes)} of {K} classes, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
