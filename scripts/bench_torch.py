#!/usr/bin/python3
"""PyTorch side of `marginface bench`: the same training or inference step on random data.

Runs the insightface-layout IResNet/MobileFaceNet from scripts/torch_backbones.py with an ArcFace
(default) or softmax head, SGD momentum 0.9, on `--threads` threads (OMP_NUM_THREADS and
torch.set_num_threads — Debian's torch starts with 1), and prints one JSON line with the median
images/s over --iters iterations after --warmup, like `marginface bench --json`.

  /usr/bin/python3 scripts/bench_torch.py --backbone ir18 --width 0.25 --batch 64 --classes 377
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--backbone", default="ir50")
parser.add_argument("--width", type=float, default=1.0)
parser.add_argument("--embedding-size", type=int, default=512)
parser.add_argument("--classes", type=int, default=1000)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--mode", choices=["train", "infer"], default="train")
parser.add_argument("--iters", type=int, default=5)
parser.add_argument("--warmup", type=int, default=1)
parser.add_argument("--head", choices=["arcface", "softmax"], default="arcface")
parser.add_argument("--channels-last", action="store_true")
parser.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16) around forward and loss")
parser.add_argument("--layers", action="store_true",
                    help="inference: also time every Conv2d, BatchNorm, PReLU and Linear module of one more "
                         "forward pass (forward hooks) and add per-layer rows to the JSON, keyed as "
                         "`marginface bench` keys its layers")
args = parser.parse_args()

os.environ["OMP_NUM_THREADS"] = str(args.threads)
import torch  # noqa: E402  (after OMP_NUM_THREADS)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_backbones import build_backbone  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
model, (height, width) = build_backbone(args.backbone, args.width, args.embedding_size)


class ArcFace(torch.nn.Module):
    """s·cos(θ_y + m) on the target, s·cos θ elsewhere (insightface's formula, s 64, m 0.5)."""

    def __init__(self, d, k, s=64.0, m=0.5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(k, d))
        torch.nn.init.xavier_uniform_(self.weight)
        self.s, self.m = s, m

    def forward(self, x, y):
        cos = torch.nn.functional.linear(torch.nn.functional.normalize(x), torch.nn.functional.normalize(self.weight))
        cos = cos.float().clamp(-1, 1)
        target = cos.gather(1, y[:, None])
        margin = torch.cos(torch.acos(target) + self.m)
        return self.s * cos.scatter(1, y[:, None], margin)


class Softmax(torch.nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.fc = torch.nn.Linear(d, k, bias=False)

    def forward(self, x, y):
        return self.fc(x)


head = (ArcFace if args.head == "arcface" else Softmax)(args.embedding_size, args.classes)
params = list(model.parameters()) + list(head.parameters())
opt = torch.optim.SGD([p for p in params if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=5e-4)
images = torch.rand(args.batch, 3, height, width) * 2 - 1
labels = torch.randint(0, args.classes, (args.batch,))
if args.channels_last:
    model = model.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)


def step():
    if args.mode == "train":
        model.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = head(model(images), labels)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
    else:
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            model(images)


for _ in range(args.warmup):
    step()
rates = []
for _ in range(args.iters):
    t0 = time.perf_counter()
    step()
    rates.append(args.batch / (time.perf_counter() - t0))


def layer_profile():
    """One inference pass with a wall clock around each leaf module: rows keyed by module kind and
    per-sample shapes ("conv2d 3x3 64x112x112 -> 64x56x56", "conv2d 3x3 groups=128 …"), summed
    over calls.
    FLOPs are counted for convolutions and linear layers only, as ours are."""
    rows, handles, started = {}, [], {}
    kinds = {torch.nn.Conv2d: "conv2d", torch.nn.BatchNorm2d: "batch_norm", torch.nn.BatchNorm1d: "batch_norm",
             torch.nn.PReLU: "prelu", torch.nn.Linear: "linear"}

    def dims(t):
        return "x".join(str(d) for d in t.shape[1:])

    for module in model.modules():
        kind = kinds.get(type(module))
        if kind is None:
            continue

        def pre(m, inputs):
            started[m] = time.perf_counter()

        def post(m, inputs, output, kind=kind):
            ms = (time.perf_counter() - started[m]) * 1e3
            name = kind
            flop = 0.0
            if kind == "conv2d":
                name += f" {m.kernel_size[0]}x{m.kernel_size[1]}"
                if m.groups > 1:
                    name += f" groups={m.groups}"
                flop = 2.0 * output.numel() * (m.weight.numel() // m.weight.shape[0])
            elif kind == "linear":
                flop = 2.0 * output.numel() * m.weight.shape[1]
            key = f"{name} {dims(inputs[0])} -> {dims(output)}"
            row = rows.setdefault(key, {"layer": key, "calls": 0, "forward_ms": 0.0, "backward_ms": 0.0,
                                        "forward_gflop": 0.0})
            row["calls"] += 1
            row["forward_ms"] += ms
            row["forward_gflop"] += flop * 1e-9

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        model(images)
    for h in handles:
        h.remove()
    return sorted(rows.values(), key=lambda r: -r["forward_ms"])


layers = layer_profile() if args.layers and args.mode == "infer" else None
print(json.dumps({"framework": "pytorch " + torch.__version__, "backbone": args.backbone, "width": args.width,
                  "head": args.head, "channels_last": args.channels_last, "bf16": args.bf16,
                  "mode": args.mode, "batch": args.batch, "threads": args.threads,
                  "images_per_s": statistics.median(rates), "images_per_s_all": rates,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  **({"layers": layers} if layers is not None else {})}))
