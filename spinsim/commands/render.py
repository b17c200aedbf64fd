"""``spinsim render RUN.h5``: pictures of a run.

Writes into ``<run folder>/<run name>_render/`` (or ``output``):

* ``snapshots.png``: a grid of stored lattices, a row per replica, a column per step;
* ``snapshots.gif``: the run as an animation, the replicas side by side, one frame per snapshot;
* ``observables/<name>.png``: every recorded observable against MC step;
* ``tempering.png``: exchange acceptance per temperature pair (parallel tempering runs).

How lattices are coloured depends on the run's model (:mod:`spinsim.view.render`).
Works on a run that is still going (as of its last flush). The outputs are
derived data and are replaced when render runs again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from spinsim.config import build
from spinsim.config.families import FAMILIES
from spinsim.errors import ConfigError, make_folder
from spinsim.io.reader import Run, read_snapshots, snapshot_steps
from spinsim.view import render

log = logging.getLogger(__name__)

MAX_DEFAULT_ROWS = 8  # replicas drawn by default: the first of each temperature, at most this many


@dataclass
class RenderResult:
    output: Path
    files: list[Path] = field(default_factory=list)


def run(cfg: DictConfig) -> RenderResult:
    r = build.run_file("path", cfg.path)
    model = r.parameters.get("model")
    if model not in FAMILIES:
        raise ConfigError(
            "path", str(cfg.path), f"drawing {model} runs is not supported; supported models: "
            + ", ".join(FAMILIES),
        )  # fmt: skip
    if r.parameters.get("command") == "train":
        return render_train(r, cfg)
    replicas = choose_replicas(cfg.replicas, r)
    fps = build.plain(cfg.fps)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 50:
        raise ConfigError("fps", fps, "must be a number of frames per second in (0, 50]")
    scale = build.at_least("scale", cfg.scale, 0)
    columns = build.at_least("columns", cfg.columns, 1)
    video = _video(build.plain(cfg.get("video")))
    out = Path(build.plain(cfg.output)) if cfg.output else r.path.parent / f"{r.path.stem}_render"

    stored = snapshot_steps(r.path)
    grid_index, gif_index = choose_steps(cfg.steps, stored, columns, r)
    if not len(stored) and not r.observables:
        raise ConfigError("path", str(cfg.path), "the run holds no snapshots and no observables yet")
    make_folder(out)
    result = RenderResult(out)
    T = r.temperature[replicas]

    if len(stored):
        try:
            painter = FAMILIES[model].painter(r)
        except KeyError as missing:
            raise ConfigError(
                "path",
                str(cfg.path),
                f"a {model} run file without /parameters/{missing.args[0]}; cannot colour its cells",
            ) from None
        shape = tuple(int(s) for s in r.parameters["lattice_shape"])
        scale = scale or render.auto_scale(shape)
        wanted = sorted(set(grid_index) | set(gif_index))
        frames = dict(zip(wanted, read_snapshots(r.path, wanted, replicas)))
        table = np.asarray(r.parameters.get("cell_type", ()))
        if table.ndim == 2:  # one id -> type table per replica (spinsim import): see the cpm painter
            offset = (np.asarray(replicas) * table.shape[1]).reshape(-1, *[1] * (len(shape)))
            frames = {i: v.astype(np.int64) + offset for i, v in frames.items()}
        grid = render.snapshot_grid(
            np.stack([frames[i] for i in grid_index]), stored[grid_index], replicas, T, painter, scale
        )
        result.files.append(_save_png(grid, out / "snapshots.png"))
        animation = render.animation_frames(
            np.stack([frames[i] for i in gif_index]), stored[gif_index], replicas, T, painter, scale
        )
        path = out / "snapshots.gif"
        render.save_gif(animation, path, fps)
        result.files.append(path)
        if video:
            path = out / f"snapshots.{video}"
            render.save_video(animation, path, fps)
            result.files.append(path)
    else:
        log.info("%s stores no snapshots (snapshot_every=0): no lattice pictures", r.path)

    chosen = None if cfg.replicas is None else replicas
    batch = int(r.parameters.get("batch", 1))
    thermalize = int(r.parameters.get("thermalize", 0))
    for name, series in r.observables.items():
        title = f"{name}: {r.path}"
        unit = r.parameters.get("step_unit", "sweeps")
        fig = render.plot_observable(name, series, r.temperature, batch, chosen, thermalize, title, unit)
        result.files.append(_save_figure(fig, out / "observables" / f"{name}.png"))
    if r.tempering is not None:
        fig = render.plot_exchange_rates(r.tempering, f"parallel tempering: {r.path}")
        result.files.append(_save_figure(fig, out / "tempering.png"))

    for path in result.files:
        print(path)
    return result


def choose_replicas(value: Any, r: Run) -> list[int]:
    """``replicas``: null (the first replica of each temperature, at most 8), an index or a list."""
    n = len(r.temperature)
    value = build.plain(value)
    if value is None:
        batch = int(r.parameters.get("batch", 1))
        firsts = list(range(0, n, batch))
        if len(firsts) > MAX_DEFAULT_ROWS:
            picks = np.linspace(0, len(firsts) - 1, MAX_DEFAULT_ROWS).round().astype(int)
            firsts = [firsts[i] for i in picks]
        return firsts
    values = value if isinstance(value, list) else [value]
    ok = values and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n for v in values)
    if not ok:
        raise ConfigError("replicas", value, f"give replica indices from 0 to {n - 1} (an index or a list)")
    return list(values)


def choose_steps(value: Any, stored: np.ndarray, columns: int, r: Run) -> tuple[list[int], list[int]]:
    """Positions in ``/snapshots/step`` for the grid and for the GIF.

    ``steps`` null: ``columns`` evenly spaced snapshots (the last included) for
    the grid, every snapshot for the GIF; otherwise the given steps for both.
    """
    value = build.plain(value)
    n = len(stored)
    if value is None:
        grid = np.unique(np.linspace(0, n - 1, min(columns, n)).round().astype(int)).tolist() if n else []
        return grid, list(range(n))
    values = value if isinstance(value, list) else [value]
    position = {int(s): i for i, s in enumerate(stored)}
    valid = all(isinstance(v, int) and not isinstance(v, bool) and v in position for v in values)
    if not values or not valid:
        if n == 0:
            allowed = "the run stores no snapshots (it ran with snapshot_every=0)"
        else:
            every = r.parameters.get("snapshot_every", "?")
            allowed = f"give steps with a stored snapshot: {stored[0]} to {stored[-1]} every {every}"
        raise ConfigError("steps", value, allowed)
    index = [position[v] for v in values]
    return index, index


def _save_png(image, path: Path) -> Path:
    image.save(path, format="PNG", optimize=False)
    return path


def _save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=render.PLOT_DPI)
    return path


def render_train(r: Run, cfg: DictConfig) -> RenderResult:
    """A ``spinsim train`` run: ``training.png`` (loss, energies, acceptance, gradient norm),
    ``parameters.png`` (the learned symbolic parameters against the truth, when there are
    any) and ``chains.png`` (the stored chains, each coloured by its own cell types)."""
    from spinsim.view import training

    if not r.observables or not len(r.observables["loss"].step):
        raise ConfigError("path", str(cfg.path), "the training holds no steps yet")
    out = Path(build.plain(cfg.output)) if cfg.output else r.path.parent / f"{r.path.stem}_render"
    make_folder(out)
    result = RenderResult(out)
    title = f"{r.parameters.get('hamiltonian', '')}: {r.path}"
    result.files.append(_save_figure(training.training_figure(r, title), out / "training.png"))
    fig = training.parameters_figure(r, title)
    if fig is not None:
        result.files.append(_save_figure(fig, out / "parameters.png"))
    if "chains" in r.frames and len(r.frames["chains"].step):
        steps = r.frames["chains"].step
        n = len(steps)
        columns = build.at_least("columns", cfg.columns, 1)
        index = np.unique(np.linspace(0, n - 1, min(columns, n)).round().astype(int))
        batch = r.frames["chains"].value.shape[1]
        chains = choose_replicas(cfg.replicas, r) if cfg.replicas is not None else list(range(min(batch, 4)))
        ids = r.frames["chains"].value[index][:, chains]
        types = r.frames["chain_types"].value[index][:, chains]
        shape = ids.shape[2:]
        scale = build.at_least("scale", cfg.scale, 0) or render.auto_scale(shape, 160)
        n_types = len(r.parameters.get("type_names", [])) or int(types.max()) + 1
        grid = training.chains_grid(ids, types, steps[index], chains, n_types, scale)
        result.files.append(_save_png(grid, out / "chains.png"))
    for path in result.files:
        print(path)
    return result


def _video(value):
    """``video=``: None, or a container whose encoder ffmpeg (the imageio-ffmpeg wheel) has."""
    if value is None:
        return None
    if value not in render.VIDEO_CODECS:
        raise ConfigError("video", value, f"null, or one of {', '.join(render.VIDEO_CODECS)}")
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ConfigError("video", value, "needs the encoder: pip install imageio-ffmpeg") from None
    return value
