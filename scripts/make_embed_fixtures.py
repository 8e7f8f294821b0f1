#!/usr/bin/python3
"""PyTorch references for `marginface embed` and the insightface converter (tests/apps).

    /usr/bin/python3 scripts/make_embed_fixtures.py fixture [--out tests/fixtures/embed]
        the committed fixture: a tiny IResNet-18 (width 0.05, D = 16) made in PyTorch and converted
        by convert_insightface.py (model.h5), synthetic images (images/, none of them a face)
        and PyTorch's embeddings of them for flip off, sum and concat (reference.h5)
    /usr/bin/python3 scripts/make_embed_fixtures.py model out.pth --backbone ir18 --width 0.25 \\
        --embedding-size 128 [--seed 1]
        a backbone with random He-scaled weights and running statistics from a few train-mode
        passes, saved as a plain state_dict (what insightface saves)
    /usr/bin/python3 scripts/make_embed_fixtures.py reference model.pth --backbone ir18 \\
        --width 0.25 --embedding-size 128 --list paths.txt [--root DIR] --flip sum --out ref.h5
        PyTorch's embeddings (/embeddings, /paths) of the images in a list (relative to --root)
    /usr/bin/python3 scripts/make_embed_fixtures.py compare-pth a.pth b.pth
        exit status 0 when both state_dicts hold the same keys, dtypes, shapes and bits

Images follow insightface: OpenCV reads BGR, converted to RGB, (x − 127.5) / 127.5; flip sum adds
the features of the image and its mirror before L2-normalising (scripts/torch_backbones.py).
Needs Debian's python3-torch, python3-h5py and python3-opencv (run with /usr/bin/python3).
"""

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_insightface  # noqa: E402
from torch_backbones import build_backbone, embed, load_faces, random_backbone  # noqa: E402

FLIPS = ("off", "sum", "concat")


def save_pth(model, path):
    torch.save(model.state_dict(), path)


def load_pth(path, backbone, width, embedding_size):
    model, size = build_backbone(backbone, width, embedding_size)
    model.load_state_dict(torch.load(path, map_location="cpu"), strict=True)
    return model.eval(), size


def synthetic_image(rng, size=112):
    """A smooth colour pattern (a few random sinusoids and blobs): PNG-compressible, not a face."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = np.zeros((size, size, 3))
    for c in range(3):
        for _ in range(3):
            fy, fx, phase = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 2 * np.pi)
            img[..., c] += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
        for _ in range(2):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
            blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r ** 2)
            img[..., c] += rng.uniform(-1.5, 1.5) * blob
    img -= img.min()
    return np.round(255 * img / img.max()).astype(np.uint8)


def write_images(folder, rng):
    """Nested folders, one greyscale .pgm, an upper-case extension and a file that is no image:
    what the folder walk of `embed` must handle. Returns the image paths relative to `folder`."""
    import cv2
    layout = ["a/pattern0.png", "a/pattern1.png", "b/c/pattern2.png", "b/pattern3.PNG",
              "c/grey.pgm"]
    for rel in layout:
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img = synthetic_image(rng)
        if rel.endswith(".pgm"):
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        # PNG by content for the upper-case name (OpenCV picks the encoder by extension).
        ok, data = cv2.imencode(".pgm" if rel.endswith(".pgm") else ".png", img)
        assert ok
        with open(path, "wb") as f:
            f.write(data.tobytes())
    with open(os.path.join(folder, "c", "notes.txt"), "w") as f:
        f.write("not an image: the folder walk of `marginface embed` skips it\n")
    return sorted(layout)


def write_reference(path, paths, embeddings, attrs):
    with h5py.File(path, "w") as f:
        f.create_dataset("paths", data=np.array(paths, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        for name, e in embeddings.items():
            f.create_dataset(name, data=e.numpy().astype(np.float32))
        for k, v in attrs.items():
            f.attrs[k] = v


def cmd_fixture(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    backbone, width, dim = "ir18", 0.05, 16  # channels 3, 6, 13, 26: odd sizes, < 300 KB
    model = random_backbone(backbone, width, dim, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "tiny_ir18.pth")
        save_pth(model, pth)
        convert_insightface.pth_to_h5(pth, os.path.join(out, "model.h5"), backbone, dim, width)
    images = os.path.join(out, "images")
    if os.path.exists(images):
        import shutil
        shutil.rmtree(images)
    rel = write_images(images, np.random.default_rng(11))
    x = load_faces([os.path.join(images, r) for r in rel], 112, 112)
    refs = {"flip_" + flip: embed(model, x, flip) for flip in FLIPS}
    # The .pgm is committed as a lossless grey.png beside the folder (tests/apps/test_embed.cpp
    # writes c/grey.pgm from it), so the repository holds no .pgm/.jpg that could pass for face data.
    import cv2
    pgm = os.path.join(images, "c", "grey.pgm")
    cv2.imwrite(os.path.join(out, "grey.png"), cv2.imread(pgm, cv2.IMREAD_UNCHANGED))
    os.remove(pgm)
    refs["norms"] = raw_norms(model, x)
    write_reference(os.path.join(out, "reference.h5"), rel, refs,
                    {"backbone": backbone, "width": width, "embedding_size": dim,
                     "torch_version": str(torch.__version__),
                     "script": "scripts/make_embed_fixtures.py"})
    total = 0
    for root, _, files in os.walk(out):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    print("wrote %s: %d images, model.h5 %d bytes, %d bytes in all"
          % (out, len(rel), os.path.getsize(os.path.join(out, "model.h5")), total))


def raw_norms(model, images):
    """||f(x)|| of each image before normalisation, unflipped (MagFace's quality; /norms)."""
    model.eval()
    with torch.no_grad():
        return model(images).norm(dim=1)


def cmd_norms(args):
    """Adds /norms to the committed reference.h5: rebuilds the fixture's model from its seed,
    checks it against the stored flip_off embeddings, and reads the images from the fixture
    folder (grey.pgm from grey.png, as the C++ test materialises it)."""
    import cv2
    out = os.path.abspath(args.out)
    model = random_backbone("ir18", 0.05, 16, seed=7)
    with h5py.File(os.path.join(out, "reference.h5"), "r") as f:
        rel = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
        stored = torch.from_numpy(f["flip_off"][()])
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for r in rel:
            if r.endswith("grey.pgm"):
                path = os.path.join(tmp, "grey.pgm")
                cv2.imwrite(path, cv2.imread(os.path.join(out, "grey.png"), cv2.IMREAD_UNCHANGED))
                files.append(path)
            else:
                files.append(os.path.join(out, "images", r))
        x = load_faces(files, 112, 112)
    assert torch.allclose(embed(model, x, "off"), stored.double() if x.dtype == torch.float64
                          else stored, atol=1e-5), "the rebuilt model is not the fixture's"
    norms = raw_norms(model, x)
    with h5py.File(os.path.join(out, "reference.h5"), "a") as f:
        if "norms" in f:
            del f["norms"]
        f.create_dataset("norms", data=norms.numpy().astype(np.float32))
    print("added /norms to %s: %s" % (os.path.join(out, "reference.h5"), norms.tolist()))


def cmd_model(args):
    model = random_backbone(args.backbone, args.width, args.embedding_size, args.seed)
    save_pth(model, args.out)
    print("wrote %s: random %s (width %g, D = %d)" % (args.out, args.backbone, args.width,
                                                       args.embedding_size))


def cmd_reference(args):
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, (h, w) = load_pth(args.pth, args.backbone, args.width, args.embedding_size)
    with open(args.list) as f:
        rel = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    files = [r if os.path.isabs(r) or not args.root else os.path.join(args.root, r) for r in rel]
    e = embed(model, load_faces(files, h, w), args.flip)
    write_reference(args.out, rel, {"embeddings": e}, {"flip": args.flip})
    print("wrote %s: %d x %d PyTorch embeddings, flip %s" % (args.out, e.shape[0], e.shape[1],
                                                             args.flip))


def cmd_compare_pth(args):
    a = torch.load(args.a, map_location="cpu")
    b = torch.load(args.b, map_location="cpu")
    problems = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            problems.append("%s only in %s" % (k, args.a if k in a else args.b))
        elif a[k].dtype != b[k].dtype or a[k].shape != b[k].shape:
            problems.append("%s: %s %s vs %s %s" % (k, a[k].dtype, tuple(a[k].shape), b[k].dtype,
                                                    tuple(b[k].shape)))
        elif not torch.equal(a[k], b[k]):
            diff = (a[k].double() - b[k].double()).abs().max().item()
            problems.append("%s: values differ (max |a - b| = %.3g)" % (k, diff))
    if problems:
        print("%d of %d tensors differ:\n  %s" % (len(problems), len(set(a) | set(b)),
                                                 "\n  ".join(problems[:20])), file=sys.stderr)
        return 1
    print("identical: %d tensors, %d values" % (len(a), sum(t.numel() for t in a.values())))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    sub = parser.add_subparsers(dest="command", required=True)
    here = os.path.dirname(os.path.abspath(__file__))
    p = sub.add_parser("fixture", help="write the committed fixture")
    p.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "embed"))

    def model_args(q):
        q.add_argument("--backbone", default="ir18")
        q.add_argument("--width", type=float, default=1.0)
        q.add_argument("--embedding-size", type=int, default=512)

    p = sub.add_parser("norms", help="add /norms (raw feature norms) to the committed fixture")
    p.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "embed"))
    p = sub.add_parser("model", help="a random backbone as a .pth state_dict")
    p.add_argument("out")
    model_args(p)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("reference", help="PyTorch embeddings of a list of images")
    p.add_argument("pth")
    model_args(p)
    p.add_argument("--list", required=True)
    p.add_argument("--root", default="")
    p.add_argument("--flip", choices=FLIPS, default="sum")
    p.add_argument("--out", required=True)
    p = sub.add_parser("compare-pth", help="are two state_dict files identical?")
    p.add_argument("a")
    p.add_argument("b")
    args = parser.parse_args()
    return {"fixture": cmd_fixture, "norms": cmd_norms, "model": cmd_model, "reference": cmd_reference,
            "compare-pth": cmd_compare_pth}[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
