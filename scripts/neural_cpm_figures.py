"""The sample strips of docs/neural-cpm-data.md: final states of a data set in one row.

    python scripts/neural_cpm_figures.py DATA.h5 OUT.png [--n 8] [--scale 2]

Reads the last snapshot of the first ``n`` replicas of a ``spinsim simulate`` run of the
cellular Potts model and draws them side by side with spinsim's cell painter (cells by
type, borders between cells), each labelled with its replica and, for Cellular MNIST data
sets, its digit label (``/parameters/digit_label``).
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

import spinsim
from spinsim.view.render import cell_painter


def strip(path: str, n: int, scale: int) -> Image.Image:
    run = spinsim.load(path)
    frames = run.snapshots.value[-1, :n]
    painter = cell_painter(run.parameters["cell_type"], len(run.parameters["type_names"]))
    labels = run.parameters.get("digit_label")
    tiles = [painter(f, scale) for f in frames]
    h, w = tiles[0].shape[:2]
    pad, text = 4, 14
    image = Image.new("RGB", (len(tiles) * (w + pad) + pad, h + 2 * pad + text), "white")
    draw = ImageDraw.Draw(image)
    for k, tile in enumerate(tiles):
        x = pad + k * (w + pad)
        image.paste(Image.fromarray(np.asarray(tile, dtype=np.uint8)), (x, pad + text))
        caption = f"replica {k}" + ("" if labels is None else f": digit {int(labels[k])}")
        draw.text((x, pad), caption, fill="black")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()
    strip(args.data, args.n, args.scale).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
