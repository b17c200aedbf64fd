"""``spinsim evaluate RUN.h5``: the Neural CPM paper's metrics (Tables 2 and 3, Figure 7) of
simulated cellular Potts runs against a training data set; ``mode=train_classifier`` trains
the Classifier Score's CNN on a data set.

``path`` is a run file or a folder (every run file under it): the simulated trajectories,
each replica one trajectory, its stored snapshots the frames (the first normally the
initial state, the last its final state). ``reference`` names the training data the same
way (one file, a folder, or a list): its runs' final states are the data set. Several runs
are evaluated together, pooled. Metrics (``metrics=null``: every one the inputs allow):

* ``p_volume`` (needs ``reference``), ``p_unfragmented``: over every ``frame_every``-th
  stored frame of every trajectory, the first included;
* ``classifier_score`` (needs ``classifier=CHECKPOINT``): over the final states;
* ``axial``: the variance fractions along the polar axis per type at every stored frame
  (Figure 7b) and, with ``reference``, the axial alignment RMSE of the final states (not
  among the defaults for runs of one cell type).

Writes into ``<run folder>/<run name>_evaluate/`` (``DIR/evaluate`` for a folder, or
``output``): ``evaluate.h5`` (groups ``summary``, ``frames``, ``variance_fractions``,
``axial``; the inputs under ``parameters``), the same tables as CSV files, and PNG plots
(``frames.png``, ``variance_fractions.png``, ``classes.png``); prints the summary. The
outputs are derived data and are replaced when evaluate runs again.

``mode=train_classifier``: ``path`` is the data set (runs of ``experiment=cellular_mnist``,
whose ``/parameters/digit_label`` label each replica's final state); trains
:class:`spinsim.analysis.classifier.DigitClassifier` on their type channels, reports its
held-out accuracy and writes the checkpoint to ``classifier`` (default
``OUT/classifier.pt``) and the loss per epoch to ``OUT/training.csv``.

The metrics and their choices are documented in ``docs/neural-cpm-data.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
from omegaconf import DictConfig, OmegaConf

from spinsim.analysis.classifier import (
    classifier_from_state,
    classifier_state,
    final_channels,
    train_classifier,
)
from spinsim.analysis.cpm_evaluation import METRICS, EvaluationOptions, Trajectories, evaluate, formatted
from spinsim.config.checks import at_least, existing_path, fraction, integer, is_number, plain, seed
from spinsim.errors import ConfigError, make_folder
from spinsim.io import checkpoint
from spinsim.io.reader import load, unreadable_reason
from spinsim.io.tables import write_csv, write_table
from spinsim.version import __version__
from spinsim.view import evaluation as view

log = logging.getLogger(__name__)


@dataclass
class EvaluateResult:
    output: Path
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    variance_fractions: dict[str, np.ndarray] = field(default_factory=dict)
    axial: dict[str, np.ndarray] = field(default_factory=dict)


def run(cfg: DictConfig) -> EvaluateResult:
    root = existing_path("path", cfg.path)
    if root.is_dir():
        out = Path(plain(cfg.output)) if cfg.output else root / "evaluate"
    else:
        out = Path(plain(cfg.output)) if cfg.output else root.parent / f"{root.stem}_evaluate"
    if plain(cfg.mode) == "train_classifier":
        return _train(cfg, root, out)
    return _evaluate(cfg, root, out)


# -- reading -------------------------------------------------------------------------------
def _read(key: str, value: Any, skip: Path | None = None) -> list[Trajectories]:
    """The cellular Potts runs that ``value`` names (a run file, a folder, or a list of them)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(key, value, "give a run file, a folder of them or a list")
    runs: list[Trajectories] = []
    for v in values:
        root = existing_path(key, v)
        if root.is_file():
            runs.append(_trajectories(key, root, strict=True))
            continue
        for path in sorted(root.rglob("*.h5")):
            if skip is not None and skip.resolve() in path.resolve().parents:
                continue
            found = _trajectories(key, path, strict=False)
            if found is not None:
                runs.append(found)
    if not runs:
        raise ConfigError(key, plain(value), "holds no cellular Potts run with stored snapshots")
    return runs


def _trajectories(key: str, path: Path, strict: bool) -> Trajectories | None:
    """One run file's states; a one-line error (``strict``) or a warning and None if it has none."""

    def refuse(reason: str) -> None:
        if strict:
            raise ConfigError(key, str(path), reason)
        log.warning("skipped %s: %s", path, reason)

    try:
        r = load(path, snapshots=True, observables=False)
    except (OSError, KeyError, ValueError) as error:
        return refuse(unreadable_reason(error))
    if "cell_type" not in r.parameters:
        return refuse(
            f"a {r.parameters.get('model', 'non-cellular Potts')} run; evaluate reads cellular Potts runs"
        )
    if r.snapshots is None or not len(r.snapshots.step):
        return refuse("the run stores no snapshots (give it snapshot_every > 0)")
    if r.snapshots.value.ndim != 4:
        return refuse("evaluate reads 2D (square lattice) runs")
    cell_type = np.asarray(r.parameters["cell_type"], dtype=np.int64)
    names = r.parameters.get("type_names")
    n_types = int(cell_type.max()) + 1
    names = (
        tuple(str(n) for n in names)
        if names is not None
        else ("medium",) + tuple(f"type{t}" for t in range(1, n_types))
    )
    labels = r.parameters.get("digit_label")
    periodic = r.parameters.get("boundary", "periodic") == "periodic"
    return Trajectories(
        path=path, steps=np.asarray(r.snapshots.step), states=np.asarray(r.snapshots.value, dtype=np.int64),
        cell_type=cell_type, type_names=names, periodic=periodic,
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
    )  # fmt: skip


# -- train_classifier -----------------------------------------------------------------------
def _train(cfg: DictConfig, root: Path, out: Path) -> EvaluateResult:
    epochs = at_least("epochs", cfg.epochs, 1)
    batch_size = at_least("batch_size", cfg.batch_size, 1)
    holdout = fraction("holdout", cfg.holdout)
    shift = at_least("shift", cfg.shift, 0)
    lr = plain(cfg.lr)
    if not is_number(lr) or lr <= 0:
        raise ConfigError("lr", lr, "must be a positive number")
    run_seed = seed(cfg.seed)
    runs = _read("path", plain(cfg.path), skip=out)
    unlabelled = [r.path for r in runs if r.labels is None]
    if unlabelled:
        raise ConfigError(
            "path", str(unlabelled[0]),
            "has no /parameters/digit_label to train on (make the data set with experiment=cellular_mnist)",
        )  # fmt: skip
    shapes = {r.shape for r in runs}
    if len(shapes) > 1:
        raise ConfigError(
            "path", plain(cfg.path), f"holds runs of lattices {sorted(shapes)}; give runs of one size"
        )
    target = Path(plain(cfg.classifier)).expanduser() if plain(cfg.classifier) else out / "classifier.pt"
    make_folder(target.parent, target)
    make_folder(out)
    x = final_channels(runs)
    labels = np.concatenate([r.labels for r in runs])
    try:
        trained = train_classifier(
            x,
            labels,
            holdout=holdout,
            epochs=epochs,
            batch_size=batch_size,
            lr=float(lr),
            seed=run_seed,
            shift=shift,
        )
    except ValueError as error:
        raise ConfigError("path", plain(cfg.path), str(error)) from None
    state = classifier_state(
        trained, type_names=list(runs[0].type_names), source=[str(r.path) for r in runs],
        label_counts=np.bincount(labels, minlength=10).tolist(),
    )  # fmt: skip
    checkpoint.save(target, epochs, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "cpu", state)
    history = out / "training.csv"
    write_csv(
        history, {"epoch": np.arange(1, epochs + 1), "loss": np.array([h["loss"] for h in trained.history])}
    )
    summary = {
        "samples": len(labels), "n_train": trained.n_train, "n_holdout": trained.n_holdout,
        "train_accuracy": trained.train_accuracy, "holdout_accuracy": trained.holdout_accuracy,
    }  # fmt: skip
    rows = [
        ("samples", str(len(labels)), f"{len(runs)} run(s), classes {_classes(labels)}"),
        ("train accuracy", f"{trained.train_accuracy:.3f}", f"{trained.n_train} samples, {epochs} epochs"),
        (
            "held-out accuracy",
            formatted(trained.holdout_accuracy),
            f"{trained.n_holdout} samples ({holdout:g})",
        ),  # fmt: skip
    ]
    view.print_summary(rows, f"digit classifier -> {target}")
    for path in (target, history):
        print(path)
    return EvaluateResult(out, [target, history], summary)


def _classes(labels: np.ndarray) -> str:
    counts = np.bincount(labels)
    return ", ".join(f"{c}: {n}" for c, n in enumerate(counts) if n)


# -- evaluate ---------------------------------------------------------------------------------
def _options(cfg: DictConfig) -> EvaluationOptions:
    tolerance = plain(cfg.volume_tolerance)
    if not is_number(tolerance) or tolerance < 0:
        raise ConfigError("volume_tolerance", tolerance, "must be a number >= 0 (a fraction of V*)")
    return EvaluationOptions(
        frame_every=at_least("frame_every", cfg.frame_every, 1), volume_tolerance=float(tolerance),
        max_fragmented=at_least("max_fragmented", cfg.max_fragmented, 0),
        dilation=integer("dilation", cfg.dilation, 0, 10), periodic_fragments=bool(cfg.periodic_fragments),
        polar_type=at_least("polar_type", cfg.polar_type, 1),
    )  # fmt: skip


def _evaluate(cfg: DictConfig, root: Path, out: Path) -> EvaluateResult:
    options = _options(cfg)
    has_reference = plain(cfg.reference) is not None
    metrics = _metrics(plain(cfg.metrics), has_reference, plain(cfg.classifier) is not None)
    runs = _read("path", plain(cfg.path), skip=out)
    reference = _read("reference", plain(cfg.reference)) if has_reference else []
    _check_reference(runs, reference)
    n_types = len(runs[0].type_names)
    if n_types == 2 and plain(cfg.metrics) is None:
        metrics = tuple(m for m in metrics if m != "axial")  # one cell type: no axis between types
    elif options.polar_type >= n_types and "axial" in metrics:
        allowed = f"a cell type of the runs: 1 to {n_types - 1} ({', '.join(runs[0].type_names[1:])})"
        raise ConfigError("polar_type", options.polar_type, allowed)
    model = _classifier(plain(cfg.classifier), runs) if "classifier_score" in metrics else None
    make_folder(out)  # before the work: an output that cannot be written fails at once

    def probabilities_of(runs: Sequence[Trajectories]) -> np.ndarray:
        return model.probabilities(final_channels(runs))

    found = evaluate(runs, reference, metrics, options, probabilities_of if model is not None else None)
    result = EvaluateResult(out, [], found.summary, found.frames, found.variance_fractions, found.axial)
    result.files = _write(out, result, cfg, runs, reference)
    title = f"{root.parent.name}/{root.name}: {found.summary['n_trajectories']} trajectories"
    if result.frames:
        result.files.append(out / "frames.png")
        view.plot_frames(result.files[-1], result.frames, "MCS", title)
    if result.variance_fractions:
        result.files.append(out / "variance_fractions.png")
        view.plot_variance_fractions(result.files[-1], result.variance_fractions, runs[0].type_names[1:],
                                     found.reference_fractions, "MCS", title)  # fmt: skip
    if found.probabilities is not None:
        result.files.append(out / "classes.png")
        view.plot_classes(result.files[-1], found.probabilities, f"{title}: classes of the final states")
    against = f" against {plain(cfg.reference)}" if reference else ""
    view.print_summary(found.rows, f"spinsim evaluate: {root}{against}")
    for path in result.files:
        print(path)
    return result


def _check_reference(runs: Sequence[Trajectories], reference: Sequence[Trajectories]) -> None:
    """The training data must share the runs' lattice and cell types."""
    shape = tuple(runs[0].states.shape[-2:])
    for ref in reference:
        if tuple(ref.states.shape[-2:]) != shape:
            raise ConfigError(
                "reference", str(ref.path),
                f"its states are {'x'.join(map(str, ref.states.shape[-2:]))}, the runs' "
                f"{'x'.join(map(str, shape))}: volumes and alignment compare only on one lattice",
            )  # fmt: skip
        if tuple(ref.type_names) != tuple(runs[0].type_names):
            raise ConfigError(
                "reference", str(ref.path),
                f"its cell types are {', '.join(ref.type_names)}, the runs' {', '.join(runs[0].type_names)}",
            )  # fmt: skip


def _metrics(value: Any, has_reference: bool, has_classifier: bool) -> tuple[str, ...]:
    """The metrics asked for (null: those the inputs allow), each with what it needs."""
    if value is None:
        chosen = [
            m
            for m in METRICS
            if (m != "p_volume" or has_reference) and (m != "classifier_score" or has_classifier)
        ]
        return tuple(chosen)
    values = value if isinstance(value, list) else [value]
    if not values or any(v not in METRICS for v in values):
        raise ConfigError("metrics", value, f"null or a list of {', '.join(METRICS)}")
    if "p_volume" in values and not has_reference:
        raise ConfigError("metrics", value, "p_volume needs reference= (the training data's run files)")
    if "classifier_score" in values and not has_classifier:
        raise ConfigError(
            "metrics", value, "classifier_score needs classifier= (a checkpoint of mode=train_classifier)"
        )
    return tuple(values)


def _classifier(value: str, runs: Sequence[Trajectories]):
    path = Path(str(value)).expanduser()
    try:
        payload = checkpoint.load(path)
        model = classifier_from_state(payload["state"])
    except ValueError as error:
        raise ConfigError("classifier", str(value), str(error)) from None
    shapes = {r.shape for r in runs}
    channels = max(len(r.type_names) for r in runs) - 1
    if shapes != {model.shape} or channels != model.channels:
        seen = ", ".join("x".join(map(str, s)) for s in sorted(shapes))
        raise ConfigError(
            "classifier", str(value),
            f"reads {model.channels} cell types on {'x'.join(map(str, model.shape))} lattices; "
            f"the runs have {channels} on {seen}",
        )  # fmt: skip
    return model


# -- writing ----------------------------------------------------------------------------------
def _write(out: Path, result: EvaluateResult, cfg: DictConfig, runs, reference) -> list[Path]:
    files = [out / "evaluate.h5"]
    summary = {k: np.array([v]) for k, v in result.summary.items()}
    tables = {"summary": summary, "frames": result.frames, "variance_fractions": result.variance_fractions,
              "axial": result.axial}  # fmt: skip
    tmp = files[0].with_name(files[0].name + ".tmp")
    with h5py.File(tmp, "w") as f:
        par = f.create_group("parameters")
        par.attrs.update({"command": "evaluate", "spinsim_version": __version__})
        par.attrs["config"] = OmegaConf.to_yaml(cfg, resolve=True)
        for name, group in (("runs", runs), ("reference", reference)):
            par.create_dataset(name, data=np.array([str(r.path) for r in group], dtype=object),
                               dtype=h5py.string_dtype())  # fmt: skip
        for name, table in tables.items():
            if table:
                write_table(f, name, table)
    tmp.replace(files[0])
    for name, table in tables.items():
        if table:
            files.append(out / f"{name}.csv")
            write_csv(files[-1], table)
    return files
