#!/usr/bin/python3
"""Draws the target logit against theta for several heads: the ArcFace paper's target-logit
figure (Deng et al. 2019, Fig. 4(b)).

Input: a CSV whose first column is theta_deg and whose other columns are one head each, with the
label in the header (as printed by build/bin/target_logits, which evaluates the C++ heads' own
margin functions). Output: a PNG.

    build/bin/target_logits > /tmp/target_logits.csv
    /usr/bin/python3 scripts/plot_target_logits.py /tmp/target_logits.csv docs/target_logits.png
"""

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)


def read_curves(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    if not header or header[0] != "theta_deg":
        raise SystemExit(f"{path}: the first column must be theta_deg, got {header[:1]}")
    theta = [float(r[0]) for r in body]
    curves = {name: [float(r[i]) for r in body] for i, name in enumerate(header) if i > 0}
    return theta, curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", help="theta_deg, head1, head2, ...")
    parser.add_argument("png", help="output image")
    parser.add_argument("--title", default="Target logit against the angle to the class weight")
    args = parser.parse_args()

    theta, curves = read_curves(args.csv)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for name, values in curves.items():
        ax.plot(theta, values, label=name, linewidth=1.6)
    ax.set_xlim(0, 180)
    ax.set_xticks(range(0, 181, 20))
    ax.set_xlabel("angle θ between the feature and its class weight (degrees)")
    ax.set_ylabel("target logit (before the scale s)")
    ax.set_title(args.title)
    ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
    ax.grid(True, color="0.92")
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png} ({len(curves)} curves, {len(theta)} angles)")


if __name__ == "__main__":
    main()
