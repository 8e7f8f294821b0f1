#!/usr/bin/python3
"""PyTorch reference fixtures for every differentiable op in src/autograd/ops.h.

Writes tests/fixtures/ops.h5, read by tests/autograd/test_ops_torch.cpp. Each case is one HDF5
group (for example /conv2d_stride2_pad1) holding
  * the inputs as float32 datasets (x, w, b, gamma, beta, running_mean, ...), class labels as int64
    and the dropout keep-mask as uint8,
  * the upstream gradient dy (random, the output's shape; shape () for scalar outputs),
  * the output y and the gradient of every differentiable input (dx, dw, db, dgamma, ...),
  * for batch norm the updated running statistics running_mean_after / running_var_after,
and carries the op's options (stride, pad, groups, momentum, eps, ...) as group attributes. The
root carries torch_version and seed.

Inputs are drawn in float32 from a fixed seed; torch then computes in float64 from those exact
float32 values, and outputs and gradients are rounded to float32 only when stored, so the reference
is as exact as float32 storage allows. Inputs keep away from kinks (ReLU/PReLU/clamp boundaries,
max-pool ties, acos near ±1, sqrt near 0) except in the *_at_* cases, which pin PyTorch's
convention exactly at a kink.

Run from the repository root with Debian's python (it has torch and h5py):
    /usr/bin/python3 scripts/make_op_fixtures.py [--out tests/fixtures/ops.h5]
The output is deterministic for a given torch version; regenerate it only when adding cases.
"""

import argparse
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611
GEN = torch.Generator().manual_seed(SEED)

# The usual feature-map shape: small and odd so that no size coincides with another.
N, C, H, W = 3, 5, 7, 6


# ---- float32 input generators ----

def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(tuple(shape), generator=GEN, dtype=torch.float32) * scale + shift


def uniform(shape, lo, hi):
    return torch.rand(tuple(shape), generator=GEN, dtype=torch.float32) * (hi - lo) + lo


def away_from(shape, lo, hi, points, margin):
    """Uniform in [lo, hi] but at least `margin` from every kink in `points`."""
    x = uniform(shape, lo, hi)
    while True:
        bad = torch.zeros(x.shape, dtype=torch.bool)
        for p in points:
            bad |= (x - p).abs() < margin
        if not bad.any():
            return x
        x[bad] = uniform((int(bad.sum()),), lo, hi)


def distinct(shape, lo=-2.0, hi=2.0):
    """Pairwise distinct values (no max-pool ties), shuffled."""
    n = int(np.prod(shape))
    perm = torch.randperm(n, generator=GEN).to(torch.float32)
    return (lo + (hi - lo) * perm / n).reshape(shape)


def labels_for(n, k):
    return torch.randint(0, k, (n,), generator=GEN, dtype=torch.int64)


# ---- writing ----

def f32(t):
    return t.detach().to(torch.float32).numpy()


class Writer:
    def __init__(self, path):
        self.file = h5py.File(path, "w")
        # Fixed-length ASCII strings: h5py's default (variable-length UTF-8) does not convert to
        # the C string type mf::h5::File::read_attr_string reads variable-length strings as.
        self.file.attrs["torch_version"] = np.bytes_(str(torch.__version__))
        self.file.attrs["seed"] = np.int64(SEED)
        self.file.attrs["generator"] = np.bytes_("scripts/make_op_fixtures.py")
        self.names = []

    def case(self, name, inputs, fn, grad=None, data=None, attrs=None, state=None):
        """One group: `inputs` (name → float32 tensor) are passed to `fn` in float64 as keyword
        arguments, with requires_grad for the names in `grad` (default: all of them). `data` holds
        non-float arguments (labels) passed as they are; `state` holds float32 tensors fn updates
        in place (running statistics), stored before and after as <name> / <name>_after."""
        assert name not in self.names, name
        self.names.append(name)
        grad = list(inputs) if grad is None else grad
        data = data or {}
        state = state or {}
        group = self.file.create_group(name)
        args = {}
        for key, value in inputs.items():
            assert value.dtype == torch.float32, key
            group.create_dataset(key, data=value.numpy())
            args[key] = value.double().requires_grad_(key in grad)
        for key, value in data.items():
            group.create_dataset(key, data=value.numpy())
            args[key] = value
        for key, value in state.items():
            group.create_dataset(key, data=value.numpy())
            args[key] = value.double()
        y = fn(**args)
        dy = randn(*y.shape)
        y.backward(dy.double())
        group.create_dataset("y", data=f32(y))
        group.create_dataset("dy", data=dy.numpy())
        for key in grad:
            assert args[key].grad is not None, (name, key)
            group.create_dataset("d" + key, data=f32(args[key].grad))
        for key in state:
            group.create_dataset(key + "_after", data=f32(args[key]))
        for key, value in (attrs or {}).items():
            if isinstance(value, (list, tuple)):
                group.attrs[key] = np.asarray(value, dtype=np.int64)
            elif isinstance(value, (bool, int)):
                group.attrs[key] = np.int64(value)
            else:
                group.attrs[key] = np.float64(value)
        return group

    def close(self):
        self.file.close()


# ---- cases ----

def conv_cases(out):
    def conv(stride, pad, groups):
        def fn(x, w, b=None):
            return F.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
        return fn

    def case(name, x, w, b, stride, pad, groups):
        inputs = {"x": x, "w": w}
        if b is not None:
            inputs["b"] = b
        out.case(name, inputs, conv(stride, pad, groups),
                 attrs={"stride": stride, "pad": pad, "groups": groups, "bias": b is not None})

    case("conv2d_stride2_pad1", randn(N, C, H, W), randn(4, C, 3, 3, scale=0.3), randn(4), 2, 1, 1)
    # Three groups of two input and three output channels each: the grouped GEMM path.
    case("conv2d_groups3", randn(2, 6, H, W), randn(9, 2, 3, 3, scale=0.3), randn(9), 1, 1, 3)
    # One input and one output channel per group: the direct-loop depthwise path.
    case("conv2d_depthwise", randn(N, C, H, W), randn(C, 1, 3, 3, scale=0.3), randn(C), 1, 1, C)
    case("conv2d_depthwise_stride2_nobias", randn(2, C, H, W), randn(C, 1, 3, 3, scale=0.3), None,
         2, 1, C)
    # 1×1, stride 1, no padding: x is used directly as the GEMM operand.
    case("conv2d_pointwise", randn(N, C, H, W), randn(4, C, 1, 1, scale=0.3), randn(4), 1, 0, 1)
    # A non-square 3×2 kernel without bias or padding.
    case("conv2d_rect_nobias", randn(2, 3, H, W), randn(4, 3, 3, 2, scale=0.3), None, 1, 0, 1)


def product_cases(out):
    out.case("linear_bias", {"x": randn(N, 7), "w": randn(C, 7, scale=0.4), "b": randn(C)},
             lambda x, w, b: F.linear(x, w, b), attrs={"bias": True})
    out.case("linear_nobias", {"x": randn(N, 7), "w": randn(C, 7, scale=0.4)},
             lambda x, w: F.linear(x, w), attrs={"bias": False})
    m, k, n = 5, 7, 3
    for ta in (False, True):
        for tb in (False, True):
            a = randn(k, m) if ta else randn(m, k)
            b = randn(n, k) if tb else randn(k, n)

            def fn(a, b, ta=ta, tb=tb):
                return (a.t() if ta else a) @ (b.t() if tb else b)
            name = "matmul_" + ("t" if ta else "n") + ("t" if tb else "n")
            out.case(name, {"a": a, "b": b}, fn, attrs={"trans_a": ta, "trans_b": tb})


def norm_cases(out):
    def bn(training, momentum, eps):
        def fn(x, running_mean, running_var, gamma=None, beta=None):
            return F.batch_norm(x, running_mean, running_var, gamma, beta, training=training,
                                momentum=momentum, eps=eps)
        return fn

    def stats(c):
        return {"running_mean": randn(c, scale=0.1),
                "running_var": uniform((c,), 0.5, 1.5)}

    def case(name, x, training, momentum, eps, grad=None, affine=True):
        c = x.shape[1]
        inputs = {"x": x}
        if affine:
            inputs.update({"gamma": uniform((c,), 0.5, 1.5), "beta": randn(c)})
        out.case(name, inputs, bn(training, momentum, eps), grad=grad, state=stats(c),
                 attrs={"training": training, "momentum": momentum, "eps": eps,
                        "affine": affine})

    case("batch_norm2d_train", randn(N, C, H, W, scale=1.5, shift=0.7), True, 0.1, 1e-5)
    case("batch_norm2d_eval", randn(N, C, H, W, scale=1.5, shift=0.7), False, 0.1, 1e-5)
    case("batch_norm1d_train", randn(7, C, scale=2.0, shift=-0.4), True, 0.3, 1e-3)
    # gamma requires no gradient (a frozen scale): only dx and dbeta exist.
    case("batch_norm2d_frozen_scale", randn(N, C, H, W, scale=0.8, shift=-1.1), True, 0.1, 1e-5,
         grad=["x", "beta"])
    # No gamma and no beta: scale 1, shift 0.
    case("batch_norm2d_no_affine", randn(N, C, H, W, scale=1.2, shift=0.3), True, 0.1, 1e-5,
         affine=False)

    out.case("prelu", {"x": away_from((N, C, H, W), -2, 2, [0], 0.05),
                       "alpha": uniform((C,), 0.05, 0.4)},
             lambda x, alpha: F.prelu(x, alpha))
    out.case("prelu_2d", {"x": away_from((7, C), -2, 2, [0], 0.05),
                          "alpha": uniform((C,), 0.05, 0.4)},
             lambda x, alpha: F.prelu(x, alpha))

    # Row 2 has norm 1e-14·√9 < eps: the clamped branch, whose gradient dy/eps is ~1e12 (the
    # test compares that row on its own scale). Row 4 has a large norm.
    x = randn(5, 9)
    x[2] = 1e-14
    x[4] *= 40
    out.case("l2_normalize", {"x": x}, lambda x: F.normalize(x, p=2.0, dim=1, eps=1e-12),
             attrs={"eps": 1e-12, "tiny_row": 2})


def pointwise_cases(out):
    # Elementwise ops need no spatial structure: a smaller map keeps the file small.
    n, c, h, w = 2, 5, 3, 7
    shape = (n, c, h, w)

    def add(a, b):
        return a + b

    def sub(a, b):
        return a - b

    def mul(a, b):
        return a * b

    out.case("relu", {"x": away_from(shape, -2, 2, [0], 0.05)}, lambda x: F.relu(x))
    # Exact zeros: PyTorch's ReLU passes no gradient at 0.
    x = away_from(shape, -2, 2, [0], 0.05)
    x.view(-1)[::7] = 0.0
    out.case("relu_at_zero", {"x": x}, lambda x: F.relu(x))
    out.case("sigmoid", {"x": uniform(shape, -4, 4)}, lambda x: torch.sigmoid(x))

    out.case("add_same", {"a": randn(*shape), "b": randn(*shape)}, add)
    out.case("add_bcast_c", {"a": randn(*shape), "b": randn(1, c, 1, 1)}, add)
    # The smaller operand first: add swaps the operands internally.
    out.case("add_bcast_swap", {"a": randn(1, c, 1, w), "b": randn(*shape)}, add)
    out.case("sub_same", {"a": randn(*shape), "b": randn(*shape)}, sub)
    out.case("sub_bcast", {"a": randn(*shape), "b": randn(1, c, 1, w)}, sub)
    out.case("mul_same", {"a": randn(*shape), "b": randn(*shape)}, mul)
    # Squeeze-excitation: per-image, per-channel gates.
    out.case("mul_bcast_nc", {"a": randn(*shape), "b": uniform((n, c, 1, 1), 0, 1)}, mul)
    out.case("mul_bcast_swap", {"a": uniform((n, c, 1, 1), 0, 1), "b": randn(*shape)}, mul)
    out.case("mul_bcast_scalar", {"a": randn(7, c), "b": randn(1, 1)}, mul)

    alpha, beta = -1.7, 0.3
    out.case("affine", {"x": randn(*shape)}, lambda x: alpha * x + beta,
             attrs={"alpha": alpha, "beta": beta})
    lo, hi = -0.5, 0.75  # exact in float32
    out.case("clamp", {"x": away_from(shape, -1.5, 1.5, [lo, hi], 0.05)},
             lambda x: torch.clamp(x, lo, hi), attrs={"lo": lo, "hi": hi})
    # Values exactly on the bounds: PyTorch passes the gradient there (lo <= x <= hi).
    x = away_from(shape, -1.5, 1.5, [lo, hi], 0.05)
    x.view(-1)[::5] = lo
    x.view(-1)[2::9] = hi
    out.case("clamp_at_bounds", {"x": x}, lambda x: torch.clamp(x, lo, hi),
             attrs={"lo": lo, "hi": hi})
    out.case("cos", {"x": uniform(shape, -3, 3)}, lambda x: torch.cos(x))
    out.case("acos", {"x": uniform(shape, -0.95, 0.95)}, lambda x: torch.acos(x))
    out.case("sqrt", {"x": uniform(shape, 0.1, 4)}, lambda x: torch.sqrt(x))


def pool_and_shape_cases(out):
    shape = (N, C, H, W)
    out.case("global_avg_pool", {"x": randn(*shape)}, lambda x: F.adaptive_avg_pool2d(x, 1))
    for kernel, stride, pad in ((3, 2, 1), (2, 2, 0)):
        out.case(f"max_pool2d_k{kernel}_s{stride}_p{pad}", {"x": distinct(shape)},
                 lambda x, k=kernel, s=stride, p=pad: F.max_pool2d(x, k, s, p),
                 attrs={"kernel": kernel, "stride": stride, "pad": pad})
    # Ties inside windows (values from a set of five): the first maximum wins the gradient.
    x = torch.randint(0, 5, shape, generator=GEN).to(torch.float32) * 0.5
    out.case("max_pool2d_ties", {"x": x}, lambda x: F.max_pool2d(x, 3, 2, 1),
             attrs={"kernel": 3, "stride": 2, "pad": 1})

    # torch draws the mask; the C++ test replays it through the dropout kernels.
    p = 0.3
    x = away_from(shape, -2, 2, [0], 0.05)
    group = out.case("dropout", {"x": x}, lambda x: F.dropout(x, p, training=True),
                     attrs={"p": p, "training": True})
    group.create_dataset("mask", data=(group["y"][()] != 0).astype(np.uint8))
    out.case("dropout_eval", {"x": randn(*shape)}, lambda x: F.dropout(x, p, training=False),
             attrs={"p": p, "training": False})

    out.case("reshape", {"x": randn(*shape)}, lambda x: x.reshape(N * C, H * W),
             attrs={"shape": [N * C, H * W]})
    out.case("flatten", {"x": randn(*shape)}, lambda x: torch.flatten(x, 1))


def row_cases(out):
    n, k = 5, 11
    out.case("log_softmax", {"x": randn(n, k, scale=2.0)}, lambda x: F.log_softmax(x, dim=1))
    labels = labels_for(n, k)
    out.case("cross_entropy", {"logits": randn(n, k, scale=2.0)},
             lambda logits, labels: F.cross_entropy(logits, labels, reduction="mean"),
             data={"labels": labels})
    out.case("sum", {"x": randn(N, C, H, W)}, lambda x: x.sum())
    out.case("mean", {"x": randn(N, C, H, W)}, lambda x: x.mean())
    labels = labels_for(n, k)
    out.case("gather_target", {"z": randn(n, k)},
             lambda z, labels: z.gather(1, labels[:, None]).squeeze(1), data={"labels": labels})
    labels = labels_for(n, k)
    out.case("replace_target", {"z": randn(n, k), "t": randn(n)},
             lambda z, t, labels: z.scatter(1, labels[:, None], t[:, None]),
             data={"labels": labels})


def head_op_cases(out):
    """Ops the newer heads added (appended last, so earlier cases keep their random streams)."""
    shape = (N, C, H, W)
    x = away_from(shape, -3, 3, [0], 0.3)  # both signs, away from the pole
    out.case("reciprocal", {"x": x}, lambda x: 1.0 / x)
    # Sub-center pooling: (n, k*g) -> (n, k), the max of each group of g consecutive columns.
    n, k, g = 5, 4, 3
    out.case("group_max", {"x": distinct((n, k * g))},
             lambda x: x.view(n, k, g).max(dim=2).values, attrs={"groups": g})


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "ops.h5"))
    args = parser.parse_args()

    torch.manual_seed(SEED)  # dropout draws from the global generator
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    out = Writer(tmp)
    for make in (conv_cases, product_cases, norm_cases, pointwise_cases, pool_and_shape_cases,
                 row_cases, head_op_cases):
        make(out)
    count = len(out.names)
    out.close()
    os.replace(tmp, args.out)
    size = os.path.getsize(args.out)
    print(f"{args.out}: {count} cases, {size} bytes, torch {torch.__version__}")


if __name__ == "__main__":
    main()
