#!/usr/bin/python3
"""PyTorch reference fixtures for the backbones (tests/layers/test_backbones.cpp).

Run with Debian's interpreter (python3-torch + python3-h5py):
    /usr/bin/python3 scripts/make_backbone_fixtures.py                 # tests/fixtures/backbones.h5
    /usr/bin/python3 scripts/make_backbone_fixtures.py --fullsize /tmp/fullsize_fixtures.h5
The second writes ir18 and ir50 at full width with D = 512 (about 1.4 GB, not committed); the
C++ test reads it from the path in MF_FULLSIZE_FIXTURE and is skipped without it.

The networks (scripts/torch_backbones.py) follow the structure of insightface's arcface_torch
backbones (iresnet.py, mobilefacenet.py) and the PyTorch SphereFace-20 port, with the same module
attribute names, so their state_dict keys are the names our C++ modules use. They add what the
committed fixtures need to stay small: a channel width multiplier, a configurable input size and
depth, and an optional squeeze-excitation unit (our IR-SE layout).

Each case is a group:
    attrs        family ("iresnet" | "mobilefacenet" | "sphere"), the configuration
    state/<key>  the state_dict (num_batches_tracked left out) the C++ model loads
    input        (N, 3, H, W) images;   upstream  (N, D), the gradient of the output
    train/       output, input_grad, grad/<key> for every parameter that requires a gradient
                 (attribute exactly_zero = 1 where the gradient is 0 in exact arithmetic),
                 buffers/<key>, the running statistics after the train-mode forward
    eval/        output, input_grad, grad/<key>
    <mode>/exact the same computed in float64 (full-size fixture only)
Weights are He-scaled and BatchNorm affine parameters random, and the running statistics come from
a few train-mode passes over random images, so eval mode sees well-scaled activations.
"""

import argparse
import copy
import os
import sys

import h5py
import numpy as np
import torch

from torch_backbones import (IResNet, MobileFaceNet, SphereNet, sensible_init,
                             warm_up_running_stats)


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def float64_run(model, state, x, upstream, training):
    """The same forward and backward in float64: output, input gradient, parameter gradients."""
    m64 = copy.deepcopy(model).double()
    m64.load_state_dict({k: v.double() for k, v in state.items()}, strict=False)
    m64.train(training)
    m64.zero_grad(set_to_none=True)
    x64 = x.double().requires_grad_(True)
    out = m64(x64)
    out.backward(upstream.double())
    return out, x64.grad, {k: p.grad for k, p in m64.named_parameters() if p.requires_grad}


def exactly_zero(grads):
    """Parameters whose float64 gradient vanishes (relative to the largest one).

    In train mode a per-channel shift that reaches a train-mode BatchNorm is normalised away, so
    e.g. a block's last BatchNorm bias, whose output only feeds later BatchNorms (directly or
    through the shortcut), has a zero gradient; float32 leaves rounding noise there (~1e-6) that
    no relative tolerance can compare. These tensors are flagged for an absolute check instead."""
    scale = max(g.abs().max().item() for g in grads.values())
    return {k for k, g in grads.items() if g.abs().max().item() <= 1e-12 * scale}


def write(group, name, tensor):
    group.create_dataset(name, data=tensor.detach().cpu().numpy().astype(np.float32))


def run_case(f, name, family, model, attrs, batch, seed, exact=False):
    gen = torch.Generator().manual_seed(seed)
    sensible_init(model, gen)
    h, w = attrs["input_height"], attrs["input_width"]
    warm_up_running_stats(model, (batch, 3, h, w), gen)
    state = state_of(model)
    x = torch.rand((batch, 3, h, w), generator=gen) * 2 - 1
    dim = attrs["embedding_size"]
    upstream = torch.randn((batch, dim), generator=gen)

    g = f.create_group(name)
    g.attrs["family"] = family
    for k, v in attrs.items():
        g.attrs[k] = np.asarray(v, dtype=np.int64) if isinstance(v, (list, tuple)) else v
    st = g.create_group("state")
    for k, v in state.items():
        write(st, k, v)
    write(g, "input", x)
    write(g, "upstream", upstream)

    for mode in ("train", "eval"):
        model.load_state_dict(state, strict=False)
        model.train(mode == "train")
        model.zero_grad(set_to_none=True)
        xin = x.clone().requires_grad_(True)
        out = model(xin)
        out.backward(upstream)
        mg = g.create_group(mode)
        write(mg, "output", out)
        write(mg, "input_grad", xin.grad)
        gg = mg.create_group("grad")
        out64, dx64, grads64 = float64_run(model, state, x, upstream, mode == "train")
        zero = exactly_zero(grads64)
        for k, p in model.named_parameters():
            if p.requires_grad:
                write(gg, k, p.grad)
                if k in zero:
                    gg[k].attrs["exactly_zero"] = 1
        if exact:
            # Full size: PyTorch's float32 gradients are themselves only good to ~1e-2 here (deep
            # train-mode BatchNorm backward, PReLU inputs within rounding of 0), so the float64
            # answer is stored too and the test measures both float32 results against it.
            eg = mg.create_group("exact")
            write(eg, "output", out64)
            write(eg, "input_grad", dx64)
            for k, g64 in grads64.items():
                write(eg, "grad/" + k, g64)
        if mode == "train":
            bg = mg.create_group("buffers")
            for k, b in model.named_buffers():
                if not k.endswith("num_batches_tracked"):
                    write(bg, k, b)
    nparams = sum(p.numel() for p in model.parameters())
    print("  %-22s %-14s params %9d  |out| max %.3g" % (name, family, nparams,
                                                         out.detach().abs().max().item()))


def iresnet_case(f, name, layers, width, dim, se_reduction, size, batch, seed, exact=False):
    attrs = dict(layers=list(layers), width=float(width), embedding_size=dim, dropout=0.0,
                 se_reduction=se_reduction, input_height=size[0], input_width=size[1])
    model = IResNet(layers, width, dim, 0.0, se_reduction, size)
    run_case(f, name, "iresnet", model, attrs, batch, seed, exact)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "backbones.h5"))
    parser.add_argument("--fullsize", help="write the full-size ir18/ir50 fixture here instead")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    if args.fullsize:
        with h5py.File(args.fullsize, "w") as f:
            f.attrs["torch_version"] = str(torch.__version__)
            iresnet_case(f, "ir18", [2, 2, 2, 2], 1.0, 512, 0, (112, 112), 4, 18, exact=True)
            iresnet_case(f, "ir50", [3, 4, 14, 3], 1.0, 512, 0, (112, 112), 4, 50, exact=True)
        print("wrote", args.fullsize)
        return

    with h5py.File(args.out, "w", libver="latest") as f:
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["script"] = "scripts/make_backbone_fixtures.py"
        # Reduced IResNet: every block kind (downsample and identity), 2×2 final map.
        # Reduced networks on 24×24 (24 → 12 → 6 → 3 → 2) so the fixtures stay small; every block
        # kind appears (downsample and identity shortcuts) and the final map is 2×2, which checks
        # the flatten order.
        iresnet_case(f, "iresnet", [2, 1, 1, 1], 0.0625, 16, 0, (24, 24), 3, 1)
        iresnet_case(f, "ir_se", [1, 2, 1, 1], 0.05, 16, 4, (24, 24), 3, 2)
        mbf = dict(blocks=[1, 2, 1, 1], scale=1, width=0.125, embedding_size=16, input_size=24)
        run_case(f, "mobilefacenet", "mobilefacenet",
                 MobileFaceNet(16, mbf["blocks"], 1, 0.125, 24),
                 dict(mbf, input_height=24, input_width=24), 3, 3)
        # blocks[0] > 1 takes the Residual path for layers.1; blocks[3] = 0 an empty Residual.
        mbf_res = dict(blocks=[2, 1, 1, 0], scale=2, width=0.0625, embedding_size=8, input_size=24)
        run_case(f, "mobilefacenet_residual", "mobilefacenet",
                 MobileFaceNet(8, mbf_res["blocks"], 2, 0.0625, 24),
                 dict(mbf_res, input_height=24, input_width=24), 3, 4)
        sphere = dict(units=[1, 2, 1, 1], width=0.05, embedding_size=16)
        run_case(f, "sphere20", "sphere", SphereNet(sphere["units"], sphere["width"], 16, (24, 20)),
                 dict(sphere, input_height=24, input_width=20), 3, 5)
    print("wrote", args.out, "(%d bytes)" % os.path.getsize(args.out))


if __name__ == "__main__":
    sys.exit(main())
