#!/usr/bin/python3
"""Two SGD steps of every head on a tiny IResNet in PyTorch: tests/fixtures/train_steps.h5.

tests/train/test_train_torch.cpp runs `mf::train` (the real training loop: loader, param groups,
optimizer, schedule, the head's after_step) from the same initial weights on the same batch and
compares its logged losses with the ones recorded here. Step 1's loss checks the forward pass,
step 2's loss backward and the SGD update as well.

The network is scripts/torch_backbones.py's IResNet-18 at width 1/16 with a 16-d embedding, He
random weights (sensible_init), in train mode (BatchNorm on batch statistics). The batch is 8
synthetic 112x112 faces, 4 identities x 2, no augmentation. The heads are
scripts/make_head_fixtures.py's independent implementations. Optimisation follows the trainer:
torch.optim.SGD (lr 0.05, momentum 0.9, dampening 0), weight decay 5e-4 on every parameter with
more than one dimension and 0 on 1-D ones (BatchNorm, PReLU, biases, a learned scale), frozen
parameters (features.weight) left out; center loss moves its centers after the optimizer step
with the embeddings that step's forward saw (Wen et al. 2016, Algorithm 1).

Two steps cannot see everything of the optimizer: momentum first acts on the second update, and
at weight decay 5e-4 decay moves a step-2 loss by less than 1e-4 relative (BatchNorm and the
cosine heads make most weights scale-invariant). So one more case, softmax_decay_momentum, trains
with weight decay 0.05 and records a third step, whose loss follows the momentum update.

Everything runs in float64 from float32 initial values; the images are uint8 and become
(x - 127.5) / 127.5 on both sides. Each case asserts that its batch keeps 1e-3 from branch
switches, hinges, mining ties and arg-max ties, and that its recorded losses move by less than
1e-5 relative when the initial weights are perturbed by 1e-7 relative, about float32 rounding
(so that noise cannot carry them past the test's 1e-4).

Layout (the root is also a packed training source, so a config can train on the file itself):
  /images (8, 112, 112, 3) uint8 RGB, /labels (8) int64, /identities (4) strings
  /model/<state_dict key>            initial backbone, float32 (num_batches_tracked left out)
  /cases/<name>                      attrs: type, weight_decay; params ("key=value", as a config
                                     sets them); head/<name> the head's initial tensors
                                     (float32); loss and accuracy (float64), one per step
  root attributes: backbone, width, embedding_size, lr, momentum, seed, torch_version

Run from the repository root with Debian's python (torch + h5py):
    /usr/bin/python3 scripts/make_train_fixtures.py [--out tests/fixtures/train_steps.h5]
"""

import argparse
import copy
import math

import h5py
import numpy as np
import torch
import torch.nn.functional as F

import make_head_fixtures as heads
import torch_backbones

SEED = 20240907
IDENTITIES, PER_IDENTITY = 4, 2  # 112x112 images: 7 x 7 cells of 16 px
BACKBONE, WIDTH, EMBEDDING = "ir18", 0.0625, 16
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
GAP = 1e-3  # distance kept from hinges and mining ties, well above float32 noise
NOISE, STABLE = 1e-7, 1e-5  # relative weight perturbation (float32 rounding), loss change allowed

# Small-data settings (s 16 for the margin heads, a learned s from 4 for NormFace, α 1 for the
# triplets): one step at lr 0.05 fits 8 images almost perfectly, so these keep every step-2 loss
# above 0.05, where float32 rounding in the C++ cross-entropy stays far below 1e-4 relative.
CASES = [  # name, head type, params[, options: steps (2), weight_decay (5e-4)]
    ("softmax", "softmax", {"bias": True}),
    ("center", "center", {"lambda": 0.1, "alpha": 0.5}),
    ("sphereface", "sphereface", {"m": 4, "base": 5.0, "gamma": 0.5, "lambda_min": 1.0}),
    ("normface", "normface", {"s": 4.0, "learn_s": True}),
    ("cosface", "cosface", {"s": 16.0, "m": 0.35}),
    ("arcface_exact", "arcface", {"s": 16.0, "m": 0.5}),
    ("arcface_straight_through", "arcface", {"s": 16.0, "m": 0.5, "gradient": "straight_through"}),
    ("combined", "combined", {"s": 16.0, "m1": 0.9, "m2": 0.4, "m3": 0.15}),
    ("contrastive", "contrastive", {"lambda": 0.5, "margin": 1.0}),
    ("triplet_semi_hard", "triplet", {"alpha": 1.0, "mining": "semi_hard"}),
    ("triplet_batch_hard", "triplet", {"alpha": 1.0, "mining": "batch_hard"}),
    ("softmax_decay_momentum", "softmax", {"bias": True}, {"steps": 3, "weight_decay": 0.05}),
]


def synthetic_faces(rng):
    """uint8 (N, H, W, 3): per identity a coarse random colour field (7 x 7 cells of 16 px),
    per image that field shifted by a few pixels plus noise."""
    images, labels = [], []
    for identity in range(IDENTITIES):
        field = np.kron(rng.uniform(30, 225, size=(7, 7, 3)), np.ones((16, 16, 1)))
        for _ in range(PER_IDENTITY):
            dy, dx = rng.integers(-4, 5, size=2)
            img = np.roll(field, (dy, dx), axis=(0, 1)) + rng.normal(0, 12, size=field.shape)
            images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
            labels.append(identity)
    return np.stack(images), np.array(labels, dtype=np.int64)


def initial_head(kind, params, gen):
    """The head's tensors by state_dict name, float32."""
    if kind == "triplet":
        return {}
    bound = math.sqrt(6.0 / (EMBEDDING + IDENTITIES))  # Xavier-uniform, as the C++ heads
    t = {"weight": (torch.rand(IDENTITIES, EMBEDDING, generator=gen) * 2 - 1) * bound}
    if kind == "softmax":
        t["bias"] = (torch.rand(IDENTITIES, generator=gen) * 2 - 1) * 0.1
    if kind == "center":
        t["centers"] = torch.randn(IDENTITIES, EMBEDDING, generator=gen) * 0.5
    if kind == "normface":
        t["s"] = torch.tensor([params["s"]])
    return t


def update_centers(centers, x, y, alpha):
    """Wen et al. 2016, Algorithm 1: c_j -= alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)."""
    with torch.no_grad():
        new = centers.clone()
        for j in range(centers.shape[0]):
            rows = (y == j).nonzero().flatten()
            delta = (centers[j] - x[rows]).sum(0)
            new[j] -= alpha * delta / (1 + len(rows))
        centers.copy_(new)


def head_loss(kind, p, t, embeddings, y, step):
    """Loss and accuracy of head `kind` on the embeddings; asserts the batch keeps GAP away
    from the places where float32 rounding could pick another branch, triplet or pair."""
    t = dict(t, embeddings=embeddings)
    if kind == "triplet":
        loss, scores, triplets = heads.head_triplet(t, y, p, step)
        d2 = -scores.numpy()
        n = len(y)
        for a, q, neg in triplets:
            assert abs(d2[a, q] - d2[a, neg] + p["alpha"]) > GAP, "triplet at the hinge"
            others = [d2[a, j] for j in range(n) if j not in (a, q, neg)]
            assert all(abs(v - d2[a, neg]) > GAP and abs(v - d2[a, q]) > GAP for v in others)
        nearest = [min((j for j in range(n) if j != i), key=lambda j: d2[i, j]) for i in range(n)]
        return loss, float(np.mean([y[j] == y[i] for i, j in enumerate(nearest)]))
    loss, logits = heads.HEADS[kind](t, y, p, step)
    cos = heads.cosine(embeddings, t["weight"]).gather(1, y[:, None]).flatten().tolist()
    switches = []  # target cosines where the margin function changes branch
    if kind == "arcface":
        switches = [math.cos(math.pi - p["m"])]
    elif kind == "combined" and (math.pi - p["m2"]) / p["m1"] < math.pi:
        switches = [math.cos((math.pi - p["m2"]) / p["m1"])]
    assert all(abs(c - s) > GAP for c in cos for s in switches), "a target cosine at a switch"
    if kind == "contrastive":
        f = F.normalize(embeddings, dim=1).detach()
        d = torch.cdist(f, f)
        for i in range(len(y)):
            for j in range(i + 1, len(y)):
                if y[i] != y[j]:
                    assert abs(d[i, j].item() - p["margin"]) > GAP, "pair at the hinge"
    top2 = logits.detach().topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).min().item() > GAP, "an arg-max tie"
    return loss, (logits.argmax(1) == y).double().mean().item()


def run_case(kind, params, options, model0, head0, x, y):
    """The case's training steps; returns their losses and accuracies."""
    weight_decay = options.get("weight_decay", WEIGHT_DECAY)
    model = copy.deepcopy(model0).double().train()
    p = dict(heads.DEFAULTS.get(kind, {}), **params)
    t = {k: v.double().clone().requires_grad_(k != "centers") for k, v in head0.items()}
    trainable = [v for v in model.parameters() if v.requires_grad]
    trainable += [v for v in t.values() if v.requires_grad]
    groups = [{"params": [v for v in trainable if v.dim() > 1], "weight_decay": weight_decay},
              {"params": [v for v in trainable if v.dim() <= 1], "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM)
    losses, accuracies = [], []
    for step in range(options.get("steps", 2)):
        opt.zero_grad()
        embeddings = model(x)
        loss, accuracy = head_loss(kind, p, t, embeddings, y, step)
        loss.backward()
        opt.step()
        if kind == "center":
            update_centers(t["centers"], embeddings.detach(), y, p["alpha"])
        losses.append(loss.item())
        accuracies.append(accuracy)
    return losses, accuracies


def perturbed(model0, head0, gen):
    """Copies (float64) with every value scaled by 1 + NOISE * N(0, 1)."""
    model = copy.deepcopy(model0).double()
    head = {k: v.double().clone() for k, v in head0.items()}
    with torch.no_grad():
        for v in list(model.parameters()) + list(head.values()):
            v.mul_(1 + NOISE * torch.randn(v.shape, generator=gen, dtype=torch.float64))
    return model, head


def param_text(v):
    return str(v).lower() if isinstance(v, bool) else str(v)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/train_steps.h5")
    args = parser.parse_args()
    torch.set_num_threads(1)

    images, labels = synthetic_faces(np.random.default_rng(SEED))
    gen = torch.Generator().manual_seed(SEED)
    model, _ = torch_backbones.build_backbone(BACKBONE, WIDTH, EMBEDDING)
    torch_backbones.sensible_init(model, gen)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).double() - 127.5) / 127.5
    y = torch.from_numpy(labels)

    with h5py.File(args.out, "w") as f:
        f.attrs["generator"] = np.bytes_("scripts/make_train_fixtures.py")
        f.attrs["torch_version"] = np.bytes_(str(torch.__version__))
        f.attrs["seed"] = np.int64(SEED)
        f.attrs["backbone"] = np.bytes_(BACKBONE)
        f.attrs["width"] = np.float64(WIDTH)
        f.attrs["embedding_size"] = np.int64(EMBEDDING)
        f.attrs["lr"] = np.float64(LR)
        f.attrs["momentum"] = np.float64(MOMENTUM)
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.create_dataset("identities", data=np.array(
            ["id%d" % i for i in range(IDENTITIES)], dtype="S"))
        for name, value in model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                f.create_dataset("model/" + name, data=value.float().numpy())
        noise_gen = torch.Generator().manual_seed(SEED + 1)
        for name, kind, params, *rest in CASES:
            options = rest[0] if rest else {}
            head0 = initial_head(kind, params, gen)
            losses, accuracies = run_case(kind, params, options, model, head0, x, y)
            nearby, _ = run_case(kind, params, options, *perturbed(model, head0, noise_gen), x, y)
            change = max(abs(a - b) / abs(a) for a, b in zip(losses, nearby))
            assert change < STABLE, "%s: ill-conditioned, a loss moves by %.1e" % (name, change)
            g = f.create_group("cases/" + name)
            g.attrs["type"] = np.bytes_(kind)
            g.attrs["weight_decay"] = np.float64(options.get("weight_decay", WEIGHT_DECAY))
            g.create_dataset("params", data=np.array(
                ["%s=%s" % (k, param_text(v)) for k, v in params.items()], dtype="S"))
            for k, v in head0.items():
                g.create_dataset("head/" + k, data=v.numpy())
            g.create_dataset("loss", data=np.array(losses, dtype=np.float64))
            g.create_dataset("accuracy", data=np.array(accuracies, dtype=np.float64))
            print("%-24s loss %s   accuracy %s   (perturbed: %.1e)"
                  % (name, " ".join("%.6f" % v for v in losses),
                     " ".join("%.3f" % v for v in accuracies), change))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
