"""Pictures of a ``spinsim train`` run: its convergence and its chains.

* :func:`training_figure`: loss, the mean energies of data and chains, the sampler's
  acceptance and the gradient norm against the training step;
* :func:`parameters_figure`: the learned symbolic parameters (contact energies in config
  units, lambda, V*, closure weights) against the step, the true values dashed where the
  data came from a known cell-sorting Hamiltonian;
* :func:`chains_grid`: the stored chains, a row per chain, a column per stored step,
  every cell coloured by the type it has in that chain (types travel with the state);
* :func:`print_report`: the end of a training on the console.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from spinsim.io.reader import Run
from spinsim.training.metrics import PAPER_TABLE1
from spinsim.training.task import TrainingTask
from spinsim.view.render import PLOT_DPI, CellPainter, cell_type_colours, snapshot_grid, thin

SIZE = (9.0, 6.0)


def training_figure(run: Run, title: str) -> "Figure":  # noqa: F821
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    obs = run.observables
    panels = [
        ("loss", [("loss", obs["loss"].value[:, 0], "loss")]),
        ("mean energy", [("data", obs["energy_data"].value.mean(1), "positives (data)"),
                         ("chains", obs["energy_chains"].value.mean(1), "chains (model)")]),
        ("acceptance", [("acceptance", obs["acceptance"].value.mean(1), "mean over chains")]),
        ("gradient norm", [("grad_norm", obs["grad_norm"].value[:, 0], "before clipping")]),
    ]  # fmt: skip
    for ax, (label, lines) in zip(axes, panels):
        for name, values, legend in lines:
            step, y = thin(obs[name if name in obs else "loss"].step, values)
            ax.plot(step, y, linewidth=0.8, label=legend)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[2:]:
        ax.set_xlabel("training step")
    fig.suptitle(title, fontsize=9)
    return fig


def parameters_figure(run: Run, title: str) -> "Figure | None":  # noqa: F821
    """None when the model has no symbolic part."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    obs = run.observables
    if "contact" not in obs:
        return None
    names = [str(n) for n in run.parameters.get("type_names", [])]
    fig = Figure(figsize=SIZE, dpi=PLOT_DPI, layout="constrained")
    ax_j, ax_other = fig.subplots(1, 2)
    contact = obs["contact"]
    T = contact.value.shape[1]
    true = run.arrays.get("true_contact")
    pairs = [(a, b) for a in range(T) for b in range(a, T) if (a, b) != (0, 0)]
    colours = colormaps["tab10"](np.arange(len(pairs)) % 10)
    for (a, b), colour in zip(pairs, colours):
        label = f"J({names[a] if a < len(names) else a}, {names[b] if b < len(names) else b})"
        step, y = thin(contact.step, contact.value[:, a, b])
        ax_j.plot(step, y, color=colour, linewidth=0.9, label=label)
        if true is not None:
            ax_j.axhline(true[a][b], color=colour, linestyle="--", linewidth=0.8)
    ax_j.set_title("contact energies (config units; dashed: true)", fontsize=8)
    ax_j.set_xlabel("training step")
    ax_j.legend(fontsize=7)
    ax_j.grid(alpha=0.3)
    true_lambda = run.arrays.get("true_lambda_area")
    for name in ("lambda_area", "w_symbolic", "w_neural"):
        if name in obs:
            step, y = thin(obs[name].step, obs[name].value[:, 0])
            line = ax_other.plot(step, y, linewidth=0.9, label=name)[0]
            if name == "lambda_area" and true_lambda is not None:
                ax_other.axhline(float(true_lambda[0]), color=line.get_color(), linestyle="--", linewidth=0.8)
    panel = "lambda and closure weights (dashed: true lambda)"
    if "target_area" in obs:  # not on this axis: V* is ~100 where lambda is ~0.1
        area = obs["target_area"].value[:, 0]
        panel += f"; V* {area[0]:.4g} -> {area[-1]:.4g}" if area[0] != area[-1] else f"; V* = {area[-1]:.4g}"
    ax_other.set_title(panel, fontsize=8)
    ax_other.set_xlabel("training step")
    ax_other.legend(fontsize=7)
    ax_other.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return fig


class TypedCellPainter:
    """Cells coloured by the types of one chain: ``painter((ids, types), scale)``."""

    def __init__(self, n_types: int) -> None:
        self.colours = cell_type_colours(n_types)

    def __call__(self, frame: tuple[np.ndarray, np.ndarray], scale: int) -> np.ndarray:
        ids, types = frame
        return CellPainter(np.asarray(types, dtype=np.int64), self.colours)(ids, scale)


def chains_grid(
    ids: np.ndarray, types: np.ndarray, steps: Sequence[int], chains: Sequence[int], n_types: int, scale: int
) -> Image.Image:
    """``ids [len(steps), len(chains), H, W]``, ``types [len(steps), len(chains), n_ids]``."""
    painter = TypedCellPainter(n_types)
    frames = np.empty(ids.shape[:2], dtype=object)
    for i in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            frames[i, j] = (ids[i, j], types[i, j])
    T = [1.0] * len(chains)
    return snapshot_grid(frames, steps, chains, T, painter, scale, shape=ids.shape[2:])


def print_report(
    summary: dict[str, np.ndarray], task: TrainingTask, name: str, start: int, end: int, n_states: int
) -> None:
    """The end of a training on the console: the loss and, for a symbolic part, what was learned
    (against the truth and with the Table 1 errors where the data's Hamiltonian is known)."""
    s = {k: float(v[0]) for k, v in summary.items()}
    print(f"train {name}: steps {start + 1}..{end} on {n_states} data states")
    print(f"  loss {s['loss_first']:.4g} -> {s['loss_final']:.4g}, acceptance {s['acceptance_final']:.3f}, "
          f"mean gradient norm {s['grad_norm_mean']:.4g}")  # fmt: skip
    learned = task.learned()
    if "contact" in learned:
        J = learned["contact"].numpy()
        truth = task.truth
        rows = []
        for a in range(J.shape[0]):
            for b in range(a, J.shape[0]):
                true = f" (true {truth['contact'][a][b]:g})" if truth is not None else ""
                rows.append(f"J({a},{b}) {J[a, b]:.3f}{true}")
        lam = float(learned["lambda_area"].reshape(-1)[0])
        true = f" (true {truth['lambda_area']:g})" if truth is not None else ""
        print("  " + ", ".join(rows) + f", lambda {lam:.3f}{true}")
    if "log10_rmse_t1" in s and not math.isnan(s["log10_rmse_t1"]):
        line = f"  Table 1: log10 RMSE at T=1 {s['log10_rmse_t1']:.2f}"
        if not math.isnan(s.get("log10_rmse_tstar", math.nan)):
            line += f", at T*={s['temperature']:.3f} {s['log10_rmse_tstar']:.2f}"
        print(line)
        scenario = scenario_of(task.truth)
        if scenario:
            paper = PAPER_TABLE1[scenario]
            print(f"  the paper's scenario {scenario}: {paper[0]:.2f} at T=1, {paper[1]:.2f} at T*")


def scenario_of(truth: dict | None) -> str | None:
    """Which of the paper's scenarios (a, b, d, f: ``conf/experiment/cell_sorting_<x>.yaml``)
    made the data, by its contact table and lambda (None: another Hamiltonian)."""
    if truth is None:
        return None
    from importlib import resources

    folder = resources.files("spinsim.conf") / "experiment"
    for scenario in PAPER_TABLE1:
        model = OmegaConf.create((folder / f"cell_sorting_{scenario}.yaml").read_text()).model
        if np.allclose(np.asarray(model.contact, dtype=float), truth["contact"]) and float(
            model.lambda_area
        ) == float(truth["lambda_area"]):
            return scenario
    return None
