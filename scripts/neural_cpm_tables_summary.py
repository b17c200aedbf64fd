"""Tables 2 and 3 of the Neural CPM paper from the outputs of scripts/neural_cpm_tables.sh.

    python scripts/neural_cpm_tables_summary.py DIR [--figures FOLDER] [--n 6] [--scale 3]

Reads ``DIR/{mnist,bipolar}/MODEL/evaluate/summary.csv`` and prints the two tables as
Markdown, each number beside the paper's. With ``--figures`` it also draws, per data set,
the final states of the first ``n`` trajectories of every model (``<data>_states.png``, one
row per model) and, for the bipolar data, the variance fraction along the polar axis
against MCS of every model (``bipolar_fractions.png``, Figure 7(b) of the paper with all
models in one plot).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import spinsim
from spinsim.view.render import cell_painter

MODELS = ("generator", "cellsort", "cellsort_potential", "cnn", "nh1_cnn", "neural", "closure")
NAMES = {
    "generator": "data generator (truth)",
    "cellsort": "Cellsort",
    "cellsort_potential": "Cellsort + potential",
    "cnn": "CNN",
    "nh1_cnn": "1 NH layer + CNN",
    "neural": "NH",
    "closure": "NH + closure",
}
# The paper's Table 2 (p_volume, p_unfragmented, Classifier Score) and Table 3 (axial RMSE, px^2)
PAPER_MNIST = {
    "cellsort": (1.00, 1.00, 2.47),
    "cellsort_potential": (1.00, 1.00, 3.11),
    "cnn": (0.00, 0.05, 3.70),
    "nh1_cnn": (0.06, 0.87, 3.53),
    "neural": (0.11, 0.99, 4.91),
    "closure": (1.00, 1.00, 4.35),
}
PAPER_BIPOLAR = {
    "cellsort": 147.2,
    "cellsort_potential": 154.4,
    "cnn": 153.5,
    "nh1_cnn": 329.1,
    "neural": 254.2,
    "closure": 37.3,
}


def summary(folder: Path) -> dict[str, float] | None:
    path = folder / "evaluate" / "summary.csv"
    if not path.exists():
        return None
    with open(path) as f:
        row = next(csv.DictReader(f))
    return {k: float(v) for k, v in row.items() if v != ""}


def fmt(value: float | None, digits: int) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table(root: Path, data: str, header: list[str], cells) -> str:
    """A Markdown table with one row per model that has a summary under ``root/data``;
    ``cells(model, summary)`` gives the row's cells after the model's name."""
    lines = ["| " + " | ".join(["model", *header]) + " |", "|" + "---|" * (1 + len(header))]
    for model in MODELS:
        s = summary(root / data / model)
        if s is not None:
            lines.append("| " + " | ".join([NAMES[model], *cells(model, s)]) + " |")
    return "\n".join(lines)


def mnist_table(root: Path) -> str:
    def cells(model: str, s: dict[str, float]) -> list[str]:
        paper = PAPER_MNIST.get(model, (None, None, None))
        return [
            fmt(s.get("p_volume"), 3), fmt(paper[0], 2), fmt(s.get("p_unfragmented"), 3), fmt(paper[1], 2),
            fmt(s.get("classifier_score"), 2), fmt(paper[2], 2), fmt(s.get("label_accuracy"), 2),
        ]  # fmt: skip

    header = ["p_volume", "paper", "p_unfragmented", "paper", "Classifier Score", "paper", "label accuracy"]
    return table(root, "mnist", header, cells)


def lattice_side(root: Path, data: str) -> int | None:
    """The side of the lattice the models of ``data`` were simulated on (from the first run found)."""
    for model in MODELS:
        path = root / data / model / "sim" / "sim.h5"
        if path.exists():
            return int(spinsim.load(path, snapshots=False).parameters["lattice_shape"][0])
    return None


def bipolar_table(root: Path) -> str:
    side = lattice_side(root, "bipolar") or 36

    def cells(model: str, s: dict[str, float]) -> list[str]:
        rmse = s.get("axial_rmse")
        scaled = None if rmse is None else rmse * (149 / side) ** 2
        return [
            fmt(s.get("p_volume"), 3), fmt(s.get("p_unfragmented"), 3), fmt(rmse, 1), fmt(scaled, 0),
            fmt(PAPER_BIPOLAR.get(model), 1),
            f"{fmt(s.get('type1_fraction'), 3)} / {fmt(s.get('type2_fraction'), 3)}",
        ]  # fmt: skip

    header = ["p_volume", "p_unfragmented", "axial RMSE (px²)", f"× (149/{side})²", "paper",
              "type 1 / type 2 variance fraction"]  # fmt: skip
    return table(root, "bipolar", header, cells)


def states_figure(root: Path, data: str, n: int, scale: int) -> Image.Image | None:
    """One row per model: the final states of its first n trajectories, labelled."""
    rows = []
    for model in MODELS:
        path = root / data / model / "sim" / "sim.h5"
        if path.exists():
            run = spinsim.load(path)
            painter = cell_painter(run.parameters["cell_type"], len(run.parameters["type_names"]))
            rows.append((NAMES[model], [painter(f, scale) for f in run.snapshots.value[-1, :n]]))
    if not rows:
        return None
    h, w = rows[0][1][0].shape[:2]
    pad, label = 4, 150
    image = Image.new("RGB", (label + n * (w + pad) + pad, len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(image)
    for r, (name, tiles) in enumerate(rows):
        y = pad + r * (h + pad)
        draw.text((pad, y + h // 2 - 6), name, fill="black")
        for k, tile in enumerate(tiles):
            image.paste(Image.fromarray(np.asarray(tile, dtype=np.uint8)), (label + k * (w + pad), y))
    return image


def fractions_figure(root: Path, out: Path) -> None:
    """Figure 7(b) for every bipolar model: mean variance fraction along the polar axis
    against MCS, one panel per type; the training data's final states dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for model in MODELS:
        path = root / "bipolar" / model / "evaluate" / "variance_fractions.csv"
        if not path.exists():
            continue
        with open(path) as f:
            rows = list(csv.DictReader(f))
        steps = np.array([float(r["step"]) for r in rows])
        for ax, t in zip(axes, (1, 2)):
            mean = np.array([float(r[f"type{t}_mean"]) for r in rows])
            style = dict(color="black", linewidth=2.5) if model == "generator" else {}
            ax.plot(steps, mean, label=NAMES[model], **style)
    for ax, t in zip(axes, (1, 2)):
        ax.set_title(f"type {t}")
        ax.set_xlabel("MCS")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        data = _data_fraction(root, t)
        if math.isfinite(data):
            ax.axhline(data, color="grey", linestyle="--", label="training data (final states)")
    axes[0].set_ylabel("variance fraction along the polar axis")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Bipolar (reduced scale): variance fractions over 12 trajectories per model")
    fig.savefig(out)


def _data_fraction(root: Path, t: int) -> float:
    """The training data's final-state variance fraction of type t: the reference row of any
    bipolar model's axial table."""
    for model in MODELS:
        path = root / "bipolar" / model / "evaluate" / "axial.csv"
        if path.exists():
            with open(path) as f:
                for row in csv.DictReader(f):
                    if row["source"] == "reference":
                        return float(row[f"type{t}_fraction"])
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--figures", type=Path)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--scale", type=int, default=3)
    args = parser.parse_args()
    print("Table 2 (Cellular MNIST)\n")
    print(mnist_table(args.root))
    print("\nTable 3 (bipolar)\n")
    print(bipolar_table(args.root))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for data in ("mnist", "bipolar"):
            image = states_figure(args.root, data, args.n, args.scale)
            if image is not None:
                image.save(args.figures / f"neural_cpm_{data}_states.png")
        fractions_figure(args.root, args.figures / "neural_cpm_bipolar_fractions.png")


if __name__ == "__main__":
    main()
