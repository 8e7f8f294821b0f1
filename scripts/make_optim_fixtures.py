#!/usr/bin/python3
"""Reference trajectories of torch.optim.SGD / AdamW for tests/optim/test_optim_torch.cpp.

Two parameter groups (weights with weight decay; a "bias" group with decay 0 and twice the
learning rate, like no_decay_bn_bias + a head multiplier), five steps with stored gradients and a
changing learning rate. Writes tests/fixtures/optim.h5. Run: /usr/bin/python3 scripts/make_optim_fixtures.py
"""
import os

import h5py
import numpy as np
import torch

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "optim.h5")
STEPS = 5
LRS = [0.1, 0.1, 0.05, 0.05, 0.01]


def run(name, make_opt, f):
    g = torch.Generator().manual_seed(7)
    w0 = torch.randn(3, 4, generator=g)
    b0 = torch.randn(5, generator=g)
    grads = [(torch.randn(3, 4, generator=g), torch.randn(5, generator=g)) for _ in range(STEPS)]
    w = torch.nn.Parameter(w0.double().clone())
    b = torch.nn.Parameter(b0.double().clone())
    opt = make_opt([{"params": [w], "weight_decay": 5e-4, "lr": 1.0},
                    {"params": [b], "weight_decay": 0.0, "lr": 2.0}])
    grp = f.create_group(name)
    grp["w_init"], grp["b_init"] = w0.numpy(), b0.numpy()
    grp["lrs"] = np.array(LRS, dtype=np.float64)
    for step, (gw, gb) in enumerate(grads):
        for pg, mult in zip(opt.param_groups, (1.0, 2.0)):
            pg["lr"] = LRS[step] * mult
        w.grad, b.grad = gw.double(), gb.double()
        opt.step()
        grp[f"gw{step}"], grp[f"gb{step}"] = gw.numpy(), gb.numpy()
        grp[f"w{step}"] = w.detach().float().numpy()
        grp[f"b{step}"] = b.detach().float().numpy()


with h5py.File(OUT, "w") as f:
    f.attrs["torch_version"] = np.string_(torch.__version__)
    run("sgd", lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9), f)
    run("sgd_nesterov", lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.9, nesterov=True), f)
    run("sgd_plain", lambda g: torch.optim.SGD(g, lr=1.0, momentum=0.0), f)
    run("adamw", lambda g: torch.optim.AdamW(g, lr=1.0, betas=(0.9, 0.999), eps=1e-8), f)
print("wrote", OUT)
