#!/usr/bin/python3
"""Convert insightface arcface_torch backbone weights to and from marginface checkpoints.

    /usr/bin/python3 scripts/convert_insightface.py to-h5 model.pth out.h5 --backbone ir50 \\
        [--embedding-size 512] [--width 1]
    /usr/bin/python3 scripts/convert_insightface.py to-pth ck.h5 out.pth

to-h5 reads a backbone state_dict saved by torch.save: plain, or wrapped in a dict under
'state_dict', 'state_dict_backbone', 'model' or 'backbone', with or without DataParallel's
'module.' prefixes. Every tensor is checked against a freshly built PyTorch model of the named
backbone (scripts/torch_backbones.py, the same names and shapes as insightface's iresnet) and
written as float32 under /model with the same name; num_batches_tracked counters are skipped (they
only matter for BatchNorm training with momentum=None). /meta gets format_version 1, backbone,
embedding_size, width, input_size, step 0, epoch 0, head "" and config "" (src/io/checkpoint.h).

to-pth writes the checkpoint's /model as a plain state_dict that loads with strict=True into
insightface's iresnet of that depth (num_batches_tracked = 0 added for every BatchNorm).

Needs Debian's python3-torch and python3-h5py (run with /usr/bin/python3).
"""

import argparse
import collections
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_backbones import BACKBONES, IRESNET_LAYERS, build_backbone  # noqa: E402

FORMAT_VERSION = 1
WRAPPER_KEYS = ("state_dict", "state_dict_backbone", "model", "backbone")


class ConversionError(Exception):
    pass


def is_counter(key):
    return key.endswith("num_batches_tracked")


def unwrap_state_dict(obj, source):
    """The tensor dictionary inside whatever torch.load returned."""
    for _ in range(4):
        if isinstance(obj, torch.nn.Module):
            obj = obj.state_dict()
        if not isinstance(obj, dict):
            raise ConversionError("%s: expected a state_dict (a dict of tensors), found %s"
                                  % (source, type(obj).__name__))
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return obj
        inner = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), (dict, torch.nn.Module))]
        if not inner:
            raise ConversionError(
                "%s: not a state_dict and no '%s' entry holding one (keys: %s)"
                % (source, "', '".join(WRAPPER_KEYS), ", ".join(map(str, list(obj)[:10]))))
        obj = obj[inner[0]]
    raise ConversionError("%s: state_dict nested too deeply" % source)


def strip_module_prefix(state):
    out = collections.OrderedDict()
    for k, v in state.items():
        while k.startswith("module."):
            k = k[len("module."):]
        if k in out:
            raise ConversionError(
                "tensor '%s' appears twice once 'module.' prefixes are removed" % k)
        out[k] = v
    return out


def describe_model(backbone, width, embedding_size):
    return "%s (width %g, embedding size %d)" % (backbone, width, embedding_size)


def guess_backbone(state):
    """What an IResNet-style state_dict looks like, as convert options (for error messages)."""
    blocks = {}
    for k in state:
        parts = k.split(".")
        if len(parts) > 2 and parts[0].startswith("layer") and parts[1].isdigit():
            stage = parts[0][len("layer"):]
            blocks[stage] = max(blocks.get(stage, 0), int(parts[1]) + 1)
    options = []
    layers = [blocks.get(str(i), 0) for i in range(1, 5)]
    depth = [d for d, l in IRESNET_LAYERS.items() if l == layers]
    if depth:
        se = any(".se." in k for k in state)
        options.append("--backbone %s%d" % ("ir_se" if se else "ir", depth[0]))
    if "features.weight" in state:
        options.append("--embedding-size %d" % state["features.weight"].shape[0])
    if "conv1.weight" in state and depth:
        stem = state["conv1.weight"].shape[0]
        options.append("--width 1" if stem == 64 else
                       "(a stem of %d channels: --width about %.3g)" % (stem, stem / 64.0))
    return " ".join(options)


def check_against(state, expected, what, source):
    """Raises ConversionError listing every missing, unexpected or misshapen tensor."""
    missing, unexpected, shapes = [], [], []
    for k, ref in expected.items():
        if k not in state:
            missing.append("missing %s %s" % (k, tuple(ref.shape)))
        elif tuple(state[k].shape) != tuple(ref.shape):
            shapes.append("%s has shape %s, %s expects %s"
                          % (k, tuple(state[k].shape), what, tuple(ref.shape)))
    for k in state:
        if k not in expected and not is_counter(k):
            unexpected.append("unexpected %s %s (not part of %s)"
                              % (k, tuple(state[k].shape), what))
    problems = shapes + missing + unexpected
    if problems:
        guess = guess_backbone(state)
        hint = "\n  the file looks like: %s" % guess if guess else ""
        shown = problems[:20]
        if len(problems) > 20:
            shown.append("... %d more" % (len(problems) - 20))
        raise ConversionError(
            "%s does not match %s: %d tensor(s) with another shape, %d missing, %d unexpected:"
            "\n  %s%s" % (source, what, len(shapes), len(missing), len(unexpected),
                          "\n  ".join(shown), hint))


def expected_state(backbone, width, embedding_size):
    if backbone not in BACKBONES:
        raise ConversionError("unknown backbone '%s' (known: %s)"
                              % (backbone, ", ".join(BACKBONES)))
    model, size = build_backbone(backbone, width, embedding_size)
    return model, model.state_dict(), size


def write_atomically(path, write):
    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def pth_to_h5(src, dst, backbone, embedding_size=512, width=1.0):
    """Converts an insightface state_dict file to a marginface checkpoint; returns the tensors
    written (name → float32 array)."""
    try:
        loaded = torch.load(src, map_location="cpu")
    except Exception as e:  # a truncated or foreign file
        raise ConversionError("%s: cannot load with torch.load: %s" % (src, e))
    state = strip_module_prefix(unwrap_state_dict(loaded, src))
    what = describe_model(backbone, width, embedding_size)
    _, expected, (h, w) = expected_state(backbone, width, embedding_size)
    expected = collections.OrderedDict((k, v) for k, v in expected.items() if not is_counter(k))
    check_against(state, expected, what, src)
    tensors = collections.OrderedDict()
    for k in expected:
        t = state[k].detach()
        if not t.is_floating_point():
            raise ConversionError("%s: tensor %s is %s, expected floating point"
                                  % (src, k, t.dtype))
        a = t.to(torch.float32).cpu().numpy()
        if not np.isfinite(a).all():
            raise ConversionError("%s: tensor %s holds NaN or infinite values" % (src, k))
        tensors[k] = a

    def write(f):
        g = f.create_group("model")
        for k, a in tensors.items():
            g.create_dataset(k, data=a, dtype=np.float32)
        meta = f.create_group("meta")
        meta.attrs["format_version"] = np.int64(FORMAT_VERSION)
        meta.attrs["backbone"] = backbone
        meta.attrs["embedding_size"] = np.int64(embedding_size)
        meta.attrs["width"] = np.float64(width)
        meta.attrs["input_size"] = np.array([h, w], dtype=np.int64)
        meta.attrs["step"] = np.int64(0)
        meta.attrs["epoch"] = np.int64(0)
        meta.attrs["head"] = ""
        meta.attrs["config"] = ""
        meta.attrs["source"] = os.path.basename(src)

    write_atomically(dst, write)
    skipped = sum(1 for k in state if is_counter(k))
    count = sum(a.size for a in tensors.values())
    print("wrote %s: %s, %d tensors, %s parameters and buffers%s"
          % (dst, what, len(tensors), format(count, ","),
             ", %d num_batches_tracked skipped" % skipped if skipped else ""))
    return tensors


def read_attr(meta, name, src, default=None):
    if name not in meta.attrs:
        if default is not None:
            return default
        raise ConversionError("%s: /meta has no attribute '%s'" % (src, name))
    v = meta.attrs[name]
    return v.decode("utf-8") if isinstance(v, bytes) else v


def h5_to_pth(src, dst):
    """Converts a marginface checkpoint's /model to a plain PyTorch state_dict file; returns it."""
    try:
        f = h5py.File(src, "r")
    except OSError as e:
        raise ConversionError("%s: cannot open as HDF5: %s" % (src, e))
    with f:
        if "meta" not in f or "model" not in f:
            raise ConversionError("%s: not a marginface checkpoint (needs /meta and /model)" % src)
        meta = f["meta"]
        version = int(read_attr(meta, "format_version", src, default=1))
        if version > FORMAT_VERSION:
            raise ConversionError("%s: checkpoint format %d is newer than this script reads (%d)"
                                  % (src, version, FORMAT_VERSION))
        backbone = str(read_attr(meta, "backbone", src))
        embedding_size = int(read_attr(meta, "embedding_size", src))
        width = float(read_attr(meta, "width", src, default=1.0))
        what = describe_model(backbone, width, embedding_size)
        model, expected, _ = expected_state(backbone, width, embedding_size)
        stored = {k: f["model"][k] for k in f["model"]}
        for k, d in stored.items():
            if not isinstance(d, h5py.Dataset):
                raise ConversionError("%s: /model/%s is a group, expected a tensor" % (src, k))
        check_against(stored, collections.OrderedDict(
            (k, v) for k, v in expected.items() if not is_counter(k)), what, src)
        state = collections.OrderedDict()
        for k, ref in expected.items():
            if is_counter(k) and k not in stored:
                state[k] = torch.zeros_like(ref)
            else:
                state[k] = torch.from_numpy(np.array(stored[k][()], dtype=np.float32)).to(ref.dtype)
    model.load_state_dict(state, strict=True)  # a last check that PyTorch takes it as it is
    torch.save(state, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    insightface = backbone.startswith("ir") and not backbone.startswith("ir_se") and width == 1
    note = "" if insightface else \
        " (insightface has no such network; it loads into scripts/torch_backbones.py's)"
    print("wrote %s: %s, %d tensors%s" % (dst, what, len(state), note))
    return state


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]))
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-h5", help="insightface .pth state_dict -> marginface checkpoint .h5")
    a.add_argument("pth")
    a.add_argument("out")
    a.add_argument("--backbone", required=True, help="registry name: " + ", ".join(BACKBONES))
    a.add_argument("--embedding-size", type=int, default=512)
    a.add_argument("--width", type=float, default=1.0, help="channel multiplier (insightface: 1)")
    b = sub.add_parser("to-pth", help="marginface checkpoint .h5 -> PyTorch state_dict .pth")
    b.add_argument("h5")
    b.add_argument("out")
    args = parser.parse_args()
    try:
        if args.command == "to-h5":
            if args.embedding_size < 1 or not (math.isfinite(args.width) and args.width > 0):
                raise ConversionError("--embedding-size must be >= 1 and --width > 0")
            pth_to_h5(args.pth, args.out, args.backbone, args.embedding_size, args.width)
        else:
            h5_to_pth(args.h5, args.out)
    except (ConversionError, FileNotFoundError) as e:
        print("convert_insightface %s: error: %s" % (args.command, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
