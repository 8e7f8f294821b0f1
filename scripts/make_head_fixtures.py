#!/usr/bin/python3
"""PyTorch reference fixtures for the heads in src/losses.

Writes tests/fixtures/heads.h5, read by tests/losses/test_heads_torch.cpp. Every head is written
here again, independently, from its paper and public reference code
(ronghuaiyang/arcface-pytorch and face.evoLVe for ArcFace's careful form,
arcface_torch for the straight-through gradient, Caffe/face.evoLVe for SphereFace and L-Softmax;
the authors' code of CurricularFace, MagFace, AdaFace, ElasticFace and AdaCos as cited in each
head_* function; insightface's sub-centre layout), in float64
torch with autograd doing every derivative except one: the combined margin with m1 != 1 needs
d acos(c)/dc, which autograd makes infinite at |c| = 1, so SafeAcos below uses the documented
convention -1/sqrt(clamp(1 - c^2, 1e-9, 1)).

Each case is one HDF5 group holding
  * attributes: type (the registry name), step (StepInfo::step), accuracy;
  * params: "key=value" strings passed to the registry, as a config would;
  * inputs: embeddings (N, D), labels (N), and the head's parameters and buffers under their
    state_dict names (weight (K, D), bias (K), s (1), centers (K, D));
  * outputs: loss (), logits (N, K) (triplet: scores (N, N) = -d^2 with 0 on the diagonal),
    d_embeddings, d_<parameter> for every parameter, centers_after (the center step), and for
    triplet the mined triplets (M, 3).
Inputs are float32; torch computes in float64 from those exact values; results are rounded to
float32 only when stored.

Batches: "random" (Gaussian embeddings and weights) and "edge", which holds in one batch
  * an embedding equal to its class weight's direction (cos = +1) and its opposite (cos = -1),
    built from vectors whose normalisation is exact in float32 (entries 0.5), because near
    |cos| = 1 the value sqrt(1 - c^2) turns a one-ulp float32 rounding of c (6e-8) into 3.5e-4
    and no float32 implementation could match float64 to 1e-5 there;
  * embeddings with theta + m > pi for ArcFace and the combined margins (the fallback branch);
  * an embedding of norm ~2e-3 (near zero);
  * a non-target cosine of exactly +1.
Every case asserts that its target cosines keep at least 1e-4 from the head's branch switches, so
float32 rounding cannot put the C++ code on the other branch.

The heads with running statistics also get *_sequence groups: four batches on fixed weights,
with the loss of each step and every buffer after it (<buffer>_after, one row per step).
ElasticFace's margins are drawn by a Python copy of src/tensor/rng.h (XoshiroRng), so the test
also checks that the C++ draws are the documented function of (draw_seed, step).

Run from the repository root with Debian's python (it has torch and h5py):
    /usr/bin/python3 scripts/make_head_fixtures.py [--out tests/fixtures/heads.h5]
The output is deterministic for a given torch version.
"""

import argparse
import math

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240612
GEN = torch.Generator().manual_seed(SEED)
N, D, K = 8, 8, 6
KINK_GAP = 1e-4


def randn(*shape, scale=1.0):
    return torch.randn(tuple(shape), generator=GEN, dtype=torch.float32) * scale


def random_labels(n, k):
    return torch.randint(0, k, (n,), generator=GEN, dtype=torch.int64)


# ---- batches (float32) ----

def random_batch():
    x = randn(N, D)
    w = randn(K, D, scale=0.5)
    y = random_labels(N, K)
    return x, w, y


def edge_batch():
    w = randn(K, D, scale=0.5)
    w[0] = torch.tensor([2.0, 2, 2, 2, 0, 0, 0, 0])  # normalises exactly to entries 0.5
    u = w[0] / w[0].norm()
    for j in range(1, K):  # keep the other classes far from w[0]'s direction
        w[j] -= 0.9 * torch.dot(w[j], u) * u
    x = randn(N, D)
    y = random_labels(N, K)
    x[0], y[0] = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]), 0        # cos = +1 on the target
    x[1], y[1] = torch.tensor([-1.5, -1.5, -1.5, -1.5, 0, 0, 0, 0]), 0  # cos = -1 on the target
    x[2], y[2] = -0.8 * w[1] + randn(D, scale=0.05), 1             # theta near pi
    x[3], y[3] = randn(D, scale=1e-3), 2                            # near zero
    x[4], y[4] = torch.tensor([3.0, 3, 3, 3, 0, 0, 0, 0]), 3        # non-target cos = +1
    x[5], y[5] = -w[4] + randn(D, scale=0.3), 4                     # theta ~ 150 degrees
    y[6], y[7] = 5, 2
    return x, w, y


# ---- head references (float64) ----

def cosine(x, w):
    """x^ . W^T clamped to [-1, 1], as arcface_torch and FaceX-Zoo do."""
    return F.linear(F.normalize(x, dim=1), F.normalize(w, dim=1)).clamp(-1, 1)


def onehot(y, k):
    return F.one_hot(y, k).double()


def warmup(steps, step):
    return 1.0 if steps <= 0 else min(1.0, step / steps)


def arc_phi(c, m, easy_margin):
    """ronghuaiyang/arcface-pytorch ArcMarginProduct's careful form, on a whole matrix."""
    sine = torch.sqrt(torch.clamp(1.0 - c * c, 1e-9, 1.0))
    phi = c * math.cos(m) - sine * math.sin(m)
    if easy_margin:
        return torch.where(c > 0, phi, c)
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    return torch.where(c > th, phi, c - mm)


class SafeAcos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c):
        ctx.save_for_backward(c)
        return torch.acos(c)

    @staticmethod
    def backward(ctx, g):
        (c,) = ctx.saved_tensors
        return -g / torch.sqrt(torch.clamp(1.0 - c * c, 1e-9, 1.0))


def combined_target(c, m1, m2, m3):
    if m1 == 1.0:
        return arc_phi(c, m2, False) - m3
    theta = SafeAcos.apply(c)
    main = torch.cos(m1 * theta + m2) - m3
    theta_star = (math.pi - m2) / m1
    if theta_star >= math.pi:
        return main
    m_star = math.pi - theta_star
    return torch.where(c > math.cos(theta_star), main, c - m3 - m_star * math.sin(m_star))


def sphere_psi(c, m):
    """A-Softmax psi via face.evoLVe's Chebyshev list and k = floor(m theta / pi)."""
    cheb = [lambda v: v, lambda v: 2 * v**2 - 1, lambda v: 4 * v**3 - 3 * v,
            lambda v: 8 * v**4 - 8 * v**2 + 1][m - 1]
    with torch.no_grad():
        k = torch.floor(m * torch.acos(c) / math.pi).clamp(max=m - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    return sign * cheb(c) - 2.0 * k


def sphere_lambda(p, step):
    return max(p["lambda_min"], p["base"] * (1.0 + p["gamma"] * step) ** (-p["power"]))


def ce_output(logits, y):
    return F.cross_entropy(logits, y), logits


def head_softmax(t, y, p, step):
    return ce_output(F.linear(t["embeddings"], t["weight"], t.get("bias")), y)


def head_center(t, y, p, step):
    x = t["embeddings"]
    loss, logits = ce_output(F.linear(x, t["weight"], t.get("bias")), y)
    c_y = t["centers"][y]
    return loss + p["lambda"] / (2 * x.shape[0]) * ((x - c_y) ** 2).sum(), logits


def sphere_cosines(x, w, y, p, step):
    """The cosine matrix with SphereFace's annealed target in the label column (no norms yet)."""
    cos = cosine(x, w)
    oh = onehot(y, w.shape[0])
    c = cos.gather(1, y[:, None])
    lam = sphere_lambda(p, step)
    r = warmup(p.get("margin_warmup_steps", 0), step)
    # face.evoLVe: onehot·(phi − cos)/(1 + λ) + cos
    target = c + r * (sphere_psi(c, p["m"]) - c) / (1.0 + lam)
    return oh * target + (1 - oh) * cos


def head_sphereface(t, y, p, step):
    x, w = t["embeddings"], t["weight"]
    return ce_output(x.norm(dim=1, keepdim=True) * sphere_cosines(x, w, y, p, step), y)


def head_normface(t, y, p, step):
    s = t["s"] if "s" in t else p["s"]
    return ce_output(s * cosine(t["embeddings"], t["weight"]), y)


def head_cosface(t, y, p, step):
    cos = cosine(t["embeddings"], t["weight"])
    m = p["m"] * warmup(p.get("margin_warmup_steps", 0), step)
    return ce_output(p["s"] * (cos - m * onehot(y, cos.shape[1])), y)


def head_arcface(t, y, p, step):
    cos = cosine(t["embeddings"], t["weight"])
    oh = onehot(y, cos.shape[1])
    m = p["m"] * warmup(p.get("margin_warmup_steps", 0), step)
    easy = p.get("easy_margin", False)
    if p.get("gradient", "exact") == "straight_through":
        # arcface_torch: the margin is applied under no_grad, so autograd sees s·cos.
        with torch.no_grad():
            offset = arc_phi(cos, m, easy) - cos
        return ce_output(p["s"] * (cos + oh * offset), y)
    phi = arc_phi(cos, m, easy)
    return ce_output(p["s"] * (oh * phi + (1 - oh) * cos), y)


def head_combined(t, y, p, step):
    cos = cosine(t["embeddings"], t["weight"])
    oh = onehot(y, cos.shape[1])
    r = warmup(p.get("margin_warmup_steps", 0), step)
    m1, m2, m3 = 1.0 + (p["m1"] - 1.0) * r, p["m2"] * r, p["m3"] * r
    c = cos.gather(1, y[:, None])
    target = combined_target(c, m1, m2, m3)
    return ce_output(p["s"] * (oh * target + (1 - oh) * cos), y)


def head_contrastive(t, y, p, step):
    x = t["embeddings"]
    loss, logits = ce_output(F.linear(x, t["weight"]), y)
    f = F.normalize(x, dim=1) if p.get("normalize", True) else x
    terms = []
    for i in range(f.shape[0]):
        for j in range(i + 1, f.shape[0]):
            d2 = ((f[i] - f[j]) ** 2).sum()
            if y[i] == y[j]:
                terms.append(0.5 * d2)
            else:
                d = torch.sqrt(d2)
                assert abs(d.item() - p["margin"]) > KINK_GAP, "pair at the hinge"
                terms.append(0.5 * torch.relu(p["margin"] - d) ** 2)
    return loss + p["lambda"] * torch.stack(terms).mean(), logits


def mine(d2, y, mining):
    """FaceNet mining on a float64 numpy distance matrix; returns [(a, p, n)]."""
    n_rows = len(y)
    out = []
    for a in range(n_rows):
        pos = [j for j in range(n_rows) if j != a and y[j] == y[a]]
        neg = [j for j in range(n_rows) if y[j] != y[a]]
        if not pos or not neg:
            continue
        if mining == "batch_hard":
            out.append((a, max(pos, key=lambda j: d2[a, j]), min(neg, key=lambda j: d2[a, j])))
            continue
        for q in pos:
            farther = [j for j in neg if d2[a, j] > d2[a, q]]
            n = min(farther, key=lambda j: d2[a, j]) if farther else max(neg, key=lambda j: d2[a, j])
            out.append((a, q, n))
    return out


def head_triplet(t, y, p, step):
    f = F.normalize(t["embeddings"], dim=1)
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1).detach().numpy()
    triplets = mine(d2, y.tolist(), p["mining"])
    for a, q, n in triplets:  # away from mining ties and from the hinge
        assert abs(d2[a, q] - d2[a, n] + p["alpha"]) > KINK_GAP
        others = [d2[a, j] for j in range(len(y)) if j not in (a, q, n)]
        assert all(abs(v - d2[a, n]) > KINK_GAP and abs(v - d2[a, q]) > KINK_GAP for v in others)
    terms = [torch.relu(((f[a] - f[q]) ** 2).sum() - ((f[a] - f[n]) ** 2).sum() + p["alpha"])
             for a, q, n in triplets]
    scores = -torch.tensor(d2)
    scores.fill_diagonal_(0.0)
    return torch.stack(terms).mean(), scores, triplets


# ---- the heads that came after (each from its paper and its authors' code; see src/losses) ----

def arc_careful(c, m):
    """cos(theta + m) as c cos m - sin(theta) sin m with sin(theta) = sqrt(clamp(1 - c^2, 1e-9, 1)),
    the documented convention of every ArcFace-style head here; m may be a per-row tensor."""
    sine = torch.sqrt(torch.clamp(1.0 - c * c, 1e-9, 1.0))
    return c * torch.cos(torch.as_tensor(m, dtype=c.dtype)) - sine * torch.sin(
        torch.as_tensor(m, dtype=c.dtype))


def head_lsoftmax(t, y, p, step):
    x, w = t["embeddings"], t["weight"]
    norms = x.norm(dim=1, keepdim=True) * w.norm(dim=1)[None, :]  # |x| |W_j|, unnormalised
    return ce_output(norms * sphere_cosines(x, w, y, p, step), y)


def head_curricularface(t, y, p, step):
    """HuangYG123/CurricularFace head/metrics.py CurricularFace.forward, written out of place."""
    cos = cosine(t["embeddings"], t["weight"])
    m = p["m"]
    c = cos.gather(1, y[:, None])
    phi = arc_careful(c, m)  # unguarded, decides which negatives are hard
    target = torch.where(c > math.cos(math.pi - m), phi, c - math.sin(math.pi - m) * m)
    for v in c.flatten().tolist():
        assert abs(v - math.cos(math.pi - m)) > KINK_GAP
    with torch.no_grad():
        t_new = p["ema"] * c.mean() + (1 - p["ema"]) * t["t"]
        hard = cos > phi
        gap = (cos - phi).abs()
        gap.scatter_(1, y[:, None], 1.0)
        assert (gap > KINK_GAP).all(), "a negative at the hard/easy switch"
    logits = torch.where(hard, cos * (t_new + cos), cos)
    logits = logits.scatter(1, y[:, None], target)
    loss, z = ce_output(p["s"] * logits, y)
    return loss, z, {"t": t_new.reshape(1)}


def head_magface(t, y, p, step):
    """IrvingMeng/MagFace models/magface.py MagLinear + MagLoss."""
    x, w = t["embeddings"], t["weight"]
    norm = x.norm(dim=1, keepdim=True)
    for v in norm.flatten().tolist():
        assert abs(v - p["l_a"]) > KINK_GAP and abs(v - p["u_a"]) > KINK_GAP
    a = norm.clamp(p["l_a"], p["u_a"])
    margin = (p["u_m"] - p["l_m"]) / (p["u_a"] - p["l_a"]) * (a - p["l_a"]) + p["l_m"]
    cos = cosine(x, w)
    phi = arc_careful(cos, margin)
    threshold = torch.cos(math.pi - margin)
    assert ((cos - threshold).abs() > KINK_GAP).all()
    target = torch.where(cos > threshold, phi, cos - torch.sin(math.pi - margin) * margin)
    oh = onehot(y, w.shape[0])
    loss, z = ce_output(p["s"] * (oh * target + (1 - oh) * cos), y)
    g = (1.0 / a + a / p["u_a"] ** 2).mean()
    return loss + p["lambda_g"] * g, z


def head_adaface(t, y, p, step):
    """mk-minchul/AdaFace head.py AdaFace.forward; the norm split out of the embedding as the
    authors' backbone does (output / norm, gradient through the division)."""
    eps = 1e-3
    x = t["embeddings"]
    norms = x.norm(dim=1, keepdim=True)
    xn = x / norms
    cos = F.linear(xn, F.normalize(t["weight"], dim=1)).clamp(-1 + eps, 1 - eps)
    safe = norms.clamp(0.001, 100).detach()
    with torch.no_grad():
        mean = p["ema"] * safe.mean() + (1 - p["ema"]) * t["batch_mean"]
        std = p["ema"] * safe.std() + (1 - p["ema"]) * t["batch_std"]
    z_raw = (safe - mean) / (std + eps) * p["h"]
    assert ((z_raw.abs() - 1).abs() > KINK_GAP).all(), "a norm score at the clip"
    z = z_raw.clamp(-1, 1)
    oh = onehot(y, cos.shape[1])
    theta = cos.acos()
    shifted = theta - oh * p["m"] * z
    assert (((shifted - eps).abs() > KINK_GAP) & ((shifted - math.pi + eps).abs() > KINK_GAP)).all()
    logits = shifted.clamp(eps, math.pi - eps).cos() - oh * (p["m"] + p["m"] * z)
    loss, out = ce_output(p["s"] * logits, y)
    return loss, out, {"batch_mean": mean.reshape(1), "batch_std": std.reshape(1)}


def head_subcenter_arcface(t, y, p, step):
    x, w = t["embeddings"], t["weight"]
    k = p["k"]
    sub = cosine(x, w).view(x.shape[0], -1, k)
    top2 = sub.topk(2, dim=2).values if k > 1 else None
    if top2 is not None:
        assert ((top2[:, :, 0] - top2[:, :, 1]) > KINK_GAP).all(), "sub-centres tied"
    cos = sub.max(dim=2).values
    oh = onehot(y, cos.shape[1])
    c = cos.gather(1, y[:, None])
    for v in c.flatten().tolist():
        assert abs(v - math.cos(math.pi - p["m"])) > KINK_GAP
    return ce_output(p["s"] * (oh * arc_phi(cos, p["m"], False) + (1 - oh) * cos), y)


class XoshiroRng:
    """src/tensor/rng.h written again: splitmix64 seeding, xoshiro256**, Box-Muller with a spare."""
    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & self.MASK
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
            self.s.append(z ^ (z >> 31))
        self.spare = None

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & XoshiroRng.MASK

    def next_u64(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & self.MASK, 7) * 9) & self.MASK
        t = (s[1] << 17) & self.MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * 2.0 ** -53

    def normal(self, mean, std):
        if self.spare is not None:
            v, self.spare = self.spare, None
            return mean + std * v
        u1 = self.uniform()
        while u1 <= 0.0:
            u1 = self.uniform()
        u2 = self.uniform()
        r = math.sqrt(-2.0 * math.log(u1))
        self.spare = r * math.sin(2.0 * math.pi * u2)
        return mean + std * r * math.cos(2.0 * math.pi * u2)


def elastic_draws(seed, step, n, m, sigma):
    rng = XoshiroRng((seed + 0x9E3779B97F4A7C15 * (step + 1)) & XoshiroRng.MASK)
    return [rng.normal(m, sigma) for _ in range(n)]


def head_elasticface(t, y, p, step):
    """fdbtrs/ElasticFace utils/losses.py ElasticArcFace / ElasticCosFace, with the paper's
    ElasticFace+ pairing (largest target cosine <- smallest margin)."""
    cos = cosine(t["embeddings"], t["weight"])
    c = cos.gather(1, y[:, None])
    margins = torch.tensor(elastic_draws(int(t["draw_seed"].item()), step, cos.shape[0], p["m"],
                                         p["sigma"]), dtype=torch.float64)[:, None]
    if p.get("plus", False):
        ranked = sorted(range(len(y)), key=lambda n: -c[n].item())  # distinct cosines here
        sorted_m = sorted(margins.flatten().tolist())
        paired = [0.0] * len(y)
        for r, n in enumerate(ranked):
            paired[n] = sorted_m[r]
        margins = torch.tensor(paired, dtype=torch.float64)[:, None]
    oh = onehot(y, cos.shape[1])
    if p.get("variant", "arc") == "arc":
        target = arc_careful(c, margins)  # no guard, as the authors' acos/cos
    else:
        target = c - margins
    return ce_output(p["s"] * (oh * target + (1 - oh) * cos), y)


def head_adacos(t, y, p, step):
    """Zhang et al. 2019, Algorithm 1 (the popular 4uiiurz1 implementation's order of updates)."""
    cos = cosine(t["embeddings"], t["weight"])
    oh = onehot(y, cos.shape[1])
    s = t["s"]
    if p.get("dynamic", True):
        with torch.no_grad():
            b_avg = (torch.exp(s * cos) * (1 - oh)).sum() / cos.shape[0]
            theta_med = torch.median(torch.acos(cos.gather(1, y[:, None])))
            s = torch.log(b_avg) / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
    loss, z = ce_output(s * cos, y)
    return loss, z, ({"s": s.reshape(1)} if p.get("dynamic", True) else {})


HEADS = {
    "lsoftmax": head_lsoftmax, "curricularface": head_curricularface, "magface": head_magface,
    "adaface": head_adaface, "subcenter_arcface": head_subcenter_arcface,
    "elasticface": head_elasticface, "adacos": head_adacos,
    "softmax": head_softmax, "center": head_center, "sphereface": head_sphereface,
    "normface": head_normface, "cosface": head_cosface, "am_softmax": head_cosface,
    "arcface": head_arcface, "combined": head_combined, "contrastive": head_contrastive,
}

DEFAULTS = {
    "center": {"lambda": 0.008, "alpha": 0.5},
    "sphereface": {"m": 4, "base": 1000.0, "gamma": 0.12, "power": 1.0, "lambda_min": 5.0},
    "normface": {"s": 64.0},
    "cosface": {"s": 64.0, "m": 0.35},
    "am_softmax": {"s": 64.0, "m": 0.35},
    "arcface": {"s": 64.0, "m": 0.5},
    "combined": {"s": 64.0, "m1": 1.0, "m2": 0.3, "m3": 0.2},
    "contrastive": {"lambda": 0.05, "margin": 1.0},
    "triplet": {"alpha": 0.2, "mining": "semi_hard"},
    "lsoftmax": {"m": 4, "base": 1000.0, "gamma": 0.12, "power": 1.0, "lambda_min": 5.0},
    "curricularface": {"s": 64.0, "m": 0.5, "ema": 0.01},
    "magface": {"s": 64.0, "l_a": 10.0, "u_a": 110.0, "l_m": 0.45, "u_m": 0.8, "lambda_g": 35.0},
    "adaface": {"s": 64.0, "m": 0.4, "h": 0.333, "ema": 0.01},
    "subcenter_arcface": {"s": 64.0, "m": 0.5, "k": 3},
    "elasticface": {"s": 64.0, "m": 0.5, "sigma": 0.05},
    "adacos": {},
}
BUFFERS = {"centers", "t", "batch_mean", "batch_std", "draw_seed"}


def is_buffer(kind, name):
    return name in BUFFERS or (kind == "adacos" and name == "s")


def check_branches(kind, p, c, step):
    """Keeps every target cosine 1e-4 from the branch switches of the head's margin function."""
    r = warmup(p.get("margin_warmup_steps", 0), step)
    switches = []
    if kind == "arcface":
        m = p["m"] * r
        switches = [0.0] if p.get("easy_margin", False) else [math.cos(math.pi - m)]
    elif kind == "combined":
        m1, m2 = 1.0 + (p["m1"] - 1.0) * r, p["m2"] * r
        theta_star = (math.pi - m2) / m1
        if theta_star < math.pi:
            switches = [math.cos(theta_star)]
    for v in c.tolist():
        for s in switches:
            assert abs(v - s) > KINK_GAP, (kind, v, s)


# ---- writing ----

def f32(t):
    return t.detach().to(torch.float32).numpy()


class Writer:
    def __init__(self, path):
        self.file = h5py.File(path, "w")
        # Fixed-length ASCII strings (see scripts/make_op_fixtures.py).
        self.file.attrs["torch_version"] = np.bytes_(str(torch.__version__))
        self.file.attrs["seed"] = np.int64(SEED)
        self.file.attrs["generator"] = np.bytes_("scripts/make_head_fixtures.py")

    def case(self, name, kind, batch, params=None, step=0, tensors=None):
        """One group: the head `kind` with `params` (overriding DEFAULTS) on `batch`
        (x, w, y); `tensors` adds named float32 parameters or buffers (bias, s, centers)."""
        assert name not in self.file, name
        params = params or {}
        p = dict(DEFAULTS.get(kind, {}), **params)
        x, w, y = batch
        inputs = {"embeddings": x}
        if kind != "triplet":
            inputs["weight"] = w
        inputs.update(tensors or {})
        t = {k: v.double().requires_grad_(not is_buffer(kind, k)) for k, v in inputs.items()}
        after = {}
        if kind == "triplet":
            loss, logits, triplets = head_triplet(t, y, p, step)
        else:
            result = HEADS[kind](t, y, p, step)
            loss, logits = result[0], result[1]
            after = result[2] if len(result) > 2 else {}
            cos = cosine(x.double(), w.double()).gather(1, y[:, None]).flatten()
            check_branches(kind, p, cos, step)
        loss.backward()

        g = self.file.create_group(name)
        g.attrs["type"] = np.bytes_(kind)
        g.attrs["step"] = np.int64(step)
        g.create_dataset("params", data=np.array(
            [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items()],
            dtype="S"))
        g.create_dataset("labels", data=y.numpy())
        for k, v in inputs.items():
            g.create_dataset(k, data=v.numpy())
            if t[k].requires_grad:
                g.create_dataset("d_" + k, data=f32(t[k].grad))
        g.create_dataset("loss", data=np.float32(loss.item()))
        g.create_dataset("logits", data=f32(logits))
        if kind == "triplet":
            g.create_dataset("triplets", data=np.array(triplets, dtype=np.int64))
            d2 = -logits.numpy()
            nearest = [min((j for j in range(len(y)) if j != i), key=lambda j: d2[i, j])
                       for i in range(len(y))]
            g.attrs["accuracy"] = np.float64(np.mean([y[j] == y[i] for i, j in enumerate(nearest)]))
        else:
            g.attrs["accuracy"] = np.float64((logits.argmax(1) == y).double().mean().item())
        for k, v in after.items():
            g.create_dataset(k + "_after", data=f32(v))
        if kind == "center":  # Wen et al. 2016, Algorithm 1, written as a loop over classes
            c = inputs["centers"].double().numpy().copy()
            xs = x.double().numpy()
            for j in range(c.shape[0]):
                rows = [i for i in range(len(y)) if y[i] == j]
                delta = sum((c[j] - xs[i] for i in rows), np.zeros(c.shape[1]))
                c[j] -= p["alpha"] * delta / (1 + len(rows))
            g.create_dataset("centers_after", data=c.astype(np.float32))

    def sequence(self, name, kind, batches, w, params, buffers):
        """Several steps of a head with running statistics on fixed weights: per step, the loss
        and every buffer after the step (the head's after_step), from the given initial buffers."""
        assert name not in self.file, name
        p = dict(DEFAULTS.get(kind, {}), **params)
        g = self.file.create_group(name)
        g.attrs["type"] = np.bytes_(kind)
        g.create_dataset("params", data=np.array([f"{k}={v}" for k, v in params.items()],
                                                 dtype="S"))
        g.create_dataset("weight", data=w.numpy())
        for k, v in buffers.items():
            g.create_dataset(k, data=v.numpy())
        state = {k: v.double() for k, v in buffers.items()}
        xs, ys, losses, afters = [], [], [], {k: [] for k in buffers}
        for step, (x, y) in enumerate(batches):
            t = dict(state, embeddings=x.double(), weight=w.double())
            loss, _, after = HEADS[kind](t, y, p, step)
            state.update({k: v.detach() for k, v in after.items()})
            xs.append(x.numpy())
            ys.append(y.numpy())
            losses.append(np.float32(loss.item()))
            for k in buffers:
                afters[k].append(f32(state[k]))
        g.create_dataset("embeddings", data=np.stack(xs))
        g.create_dataset("labels", data=np.stack(ys))
        g.create_dataset("loss", data=np.array(losses))
        for k, v in afters.items():
            g.create_dataset(k + "_after", data=np.stack(v))

    def close(self):
        self.file.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/heads.h5")
    out = Writer(parser.parse_args().out)
    rnd, edge = random_batch(), edge_batch()
    rnd2 = random_batch()
    bias = randn(K, scale=0.1)

    out.case("softmax_random", "softmax", rnd)
    out.case("softmax_bias_edge", "softmax", edge, {"bias": True}, tensors={"bias": bias})

    centers = randn(K, D, scale=0.5)
    out.case("center_random", "center", rnd, {"lambda": 0.1, "alpha": 0.5},
             tensors={"centers": centers})
    out.case("center_bias_edge", "center", edge, {"lambda": 0.008, "alpha": 0.9, "bias": True},
             tensors={"centers": centers, "bias": bias})

    out.case("sphereface_random_step0", "sphereface", rnd, step=0)
    out.case("sphereface_random_lambda_min", "sphereface", rnd2, step=5000)
    out.case("sphereface_edge", "sphereface", edge, step=3000)
    out.case("sphereface_m2_edge", "sphereface", edge, {"m": 2}, step=5000)
    out.case("sphereface_m3_random", "sphereface", rnd, {"m": 3, "lambda_min": 0.0}, step=10**7)
    out.case("sphereface_warmup", "sphereface", rnd2, {"margin_warmup_steps": 200}, step=50)

    out.case("normface_random", "normface", rnd, {"s": 16.0})
    out.case("normface_learn_s_edge", "normface", edge, {"learn_s": True},
             tensors={"s": torch.tensor([10.0])})

    out.case("cosface_random", "cosface", rnd, {"s": 16.0})
    out.case("cosface_edge", "cosface", edge)
    out.case("cosface_warmup", "cosface", rnd2, {"s": 30.0, "margin_warmup_steps": 1000}, step=300)
    out.case("am_softmax_random", "am_softmax", rnd2, {"s": 30.0})

    for grad in ("exact", "straight_through"):
        out.case(f"arcface_{grad}_random", "arcface", rnd, {"s": 16.0, "gradient": grad})
        out.case(f"arcface_{grad}_edge", "arcface", edge, {"gradient": grad})
        out.case(f"arcface_{grad}_easy_margin", "arcface", edge,
                 {"s": 16.0, "gradient": grad, "easy_margin": True})
    out.case("arcface_exact_warmup", "arcface", rnd2, {"s": 32.0, "margin_warmup_steps": 100},
             step=30)
    out.case("arcface_exact_m0.9", "arcface", rnd2, {"s": 16.0, "m": 0.9})

    for tag, (m1, m2, m3) in {"cm1": (1.0, 0.3, 0.2), "cm2": (0.9, 0.4, 0.15),
                              "sphere1.35": (1.35, 0.0, 0.0)}.items():
        prm = {"m1": m1, "m2": m2, "m3": m3}
        out.case(f"combined_{tag}_random", "combined", rnd, dict(prm, s=16.0))
        out.case(f"combined_{tag}_edge", "combined", edge, prm)
    out.case("combined_warmup", "combined", rnd2,
             {"s": 16.0, "m1": 1.2, "m2": 0.4, "m3": 0.1, "margin_warmup_steps": 40}, step=10)

    out.case("contrastive_random", "contrastive", rnd, {"lambda": 0.5})
    out.case("contrastive_raw_edge", "contrastive", edge,
             {"lambda": 0.05, "margin": 2.5, "normalize": False})

    trip_y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2], dtype=torch.int64)
    trip = (randn(N, D), None, trip_y)
    out.case("triplet_semi_hard", "triplet", trip, {"alpha": 0.2})
    out.case("triplet_batch_hard", "triplet", trip, {"alpha": 0.5, "mining": "batch_hard"})
    modern_cases(out, rnd, edge, rnd2)
    out.close()


def modern_cases(out, rnd, edge, rnd2):
    """The heads of "the heads people train with today" (appended, so the earlier cases keep
    their random streams)."""
    out.case("lsoftmax_random_step0", "lsoftmax", rnd, step=0)
    out.case("lsoftmax_edge", "lsoftmax", edge, step=3000)
    out.case("lsoftmax_m2_random", "lsoftmax", rnd2, {"m": 2}, step=5000)

    # t = 0: no hard negative is amplified (t + c < 1); t = 0.7: they are; the edge batch puts
    # targets past the guard.
    for tag, t0 in (("t0", 0.0), ("t0.7", 0.7)):
        out.case(f"curricularface_random_{tag}", "curricularface", rnd, {"s": 16.0},
                 tensors={"t": torch.tensor([t0])})
    out.case("curricularface_edge", "curricularface", edge, tensors={"t": torch.tensor([0.3])})
    out.case("curricularface_m0.9", "curricularface", rnd2, {"s": 16.0, "m": 0.9, "ema": 0.5},
             tensors={"t": torch.tensor([0.2])})

    # Norms inside and outside [l_a, u_a] (clamped rows get no gradient through a).
    scale = torch.tensor([0.5, 3.0, 8.0, 20.0, 45.0, 2.0, 15.0, 60.0])[:, None]
    x, w, y = rnd
    out.case("magface_norms", "magface", (x * scale, w, y), {"s": 16.0})
    x, w, y = edge
    out.case("magface_edge", "magface", (x * 12.0, w, y), {"l_a": 5.0, "u_a": 50.0})
    out.case("magface_small_range", "magface", rnd2, {"s": 32.0, "l_a": 1.0, "u_a": 5.0,
                                                        "l_m": 0.2, "u_m": 0.6, "lambda_g": 3.0})

    # Norm scores inside (-1, 1) and clipped; theta' clipped at eps (cos = +1 row, z > 0).
    out.case("adaface_random", "adaface", rnd, {"s": 16.0},
             tensors={"batch_mean": torch.tensor([20.0]), "batch_std": torch.tensor([100.0])})
    out.case("adaface_clipped", "adaface", rnd2, {"s": 16.0, "h": 1.0},
             tensors={"batch_mean": torch.tensor([2.5]), "batch_std": torch.tensor([0.4])})
    out.case("adaface_edge", "adaface", edge, {"ema": 0.5},
             tensors={"batch_mean": torch.tensor([1.2]), "batch_std": torch.tensor([0.6])})
    # ema 0 keeps the given statistics: the cos = +1 row (norm 2) gets z = 1 and theta - m < eps;
    # with a mean of 5 the cos = -1 row (norm 3) gets z = -1 and theta + m > pi - eps.
    for tag, mean in (("low", 1.0), ("high", 5.0)):
        out.case(f"adaface_theta_clip_{tag}", "adaface", edge, {"h": 1.0, "ema": 0.0},
                 tensors={"batch_mean": torch.tensor([mean]), "batch_std": torch.tensor([0.5])})

    x, w, y = rnd
    wk = randn(K * 3, D, scale=0.5)
    out.case("subcenter_arcface_random", "subcenter_arcface", (x, wk, y), {"s": 16.0})
    x, w, y = edge
    wk2 = randn(K * 2, D, scale=0.5)
    out.case("subcenter_arcface_edge_k2", "subcenter_arcface", (x, wk2, y), {"k": 2})

    seed = torch.tensor([4242.0])
    out.case("elasticface_arc_random", "elasticface", rnd, {"s": 16.0}, step=7,
             tensors={"draw_seed": seed})
    out.case("elasticface_arc_edge", "elasticface", edge, {"sigma": 0.2}, step=123,
             tensors={"draw_seed": seed})
    out.case("elasticface_cos_random", "elasticface", rnd2, {"variant": "cos", "m": 0.35},
             step=0, tensors={"draw_seed": torch.tensor([77.0])})
    out.case("elasticface_arc_plus", "elasticface", rnd, {"s": 16.0, "plus": True, "sigma": 0.1},
             step=3, tensors={"draw_seed": seed})
    out.case("elasticface_cos_plus", "elasticface", rnd2,
             {"variant": "cos", "m": 0.35, "plus": True}, step=11, tensors={"draw_seed": seed})

    s0 = torch.tensor([math.sqrt(2.0) * math.log(K - 1)])
    out.case("adacos_dynamic_random", "adacos", rnd, tensors={"s": s0})
    out.case("adacos_dynamic_edge", "adacos", edge, tensors={"s": torch.tensor([9.0])})
    out.case("adacos_fixed", "adacos", rnd2, {"dynamic": False}, tensors={"s": s0})

    # Running statistics over several steps.
    batches = [(randn(N, D, scale=3.0), random_labels(N, K)) for _ in range(4)]
    w = randn(K, D, scale=0.5)
    out.sequence("curricularface_sequence", "curricularface", batches, w, {"ema": 0.2},
                 {"t": torch.tensor([0.0])})
    out.sequence("adaface_sequence", "adaface", batches, w, {"ema": 0.3},
                 {"batch_mean": torch.tensor([20.0]), "batch_std": torch.tensor([100.0])})
    out.sequence("adacos_sequence", "adacos", batches, w, {}, {"s": s0})


if __name__ == "__main__":
    main()
