"""``spinsim import LABELS``: segmented images made outside spinsim as a cellular Potts run file.

Reads a label stack (:func:`spinsim.io.labels.read_labels`: TIFF / OME-TIFF, ``.npy``,
``.npz``, the Neural CPM authors' id-and-type layout too), its cell types (``types=``: a CSV
of ``id,type`` rows, a type image, or none: one type, ``cell``, for every cell), prepares the
states (:func:`spinsim.analysis.labels.prepare_labels`: ids 1..n per frame with 0 the medium,
``downsample``, ``size``) and writes one run file: every kept frame is a replica of one
snapshot (step 0), with its own id -> type table (``/parameters/cell_type [frames, n_ids]``).
``spinsim train data=`` and ``spinsim evaluate reference=`` read it like a simulate run's
final states. Prints what it found; bad input is one line and exit status 2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from spinsim.analysis.labels import PreparedLabels, prepare_labels
from spinsim.config import build
from spinsim.config.checks import at_least, existing_path, plain, translate
from spinsim.errors import ConfigError
from spinsim.io.labels import read_labels, read_type_table
from spinsim.io.layout import Layout
from spinsim.run.files import create_run_file, standard_parameters
from spinsim.view.evaluation import print_summary

log = logging.getLogger(__name__)

BOUNDARIES = ("periodic", "open")


@dataclass
class ImportResult:
    path: Path
    prepared: PreparedLabels


def run(cfg: DictConfig) -> ImportResult:
    source = existing_path("path", cfg.path)
    if source.is_dir():
        raise ConfigError("path", str(source), "give a label image file, not a folder")
    with translate("path", str(source)):
        ids, types = read_labels(source)
    types = _types(plain(cfg.types), types)
    names = plain(cfg.type_names)
    if names is not None and (
        not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names)
    ):
        raise ConfigError("type_names", names, "a list of names, the medium's first, then one per type")
    size = plain(cfg.size)
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) and n >= 2 for n in size)
    ):
        raise ConfigError("size", size, "null, or [H, W] with H, W >= 2")
    k = at_least("downsample", cfg.downsample, 1)
    boundary = plain(cfg.boundary)
    if boundary not in BOUNDARIES:
        raise ConfigError("boundary", boundary, f"one of {', '.join(BOUNDARIES)}")
    max_cells = plain(cfg.max_cells)
    if max_cells is not None:
        max_cells = at_least("max_cells", max_cells, 1)
    output = plain(cfg.output) or str(source.parent / (source.name.split(".")[0] + ".h5"))
    path = build.output_path(output)
    try:
        prepared = prepare_labels(ids, types, names, size, k, max_cells)
    except ValueError as error:
        key = _key_of(str(error))
        raise ConfigError(key, plain(cfg[key]), str(error)) from None
    write_run_file(path, cfg, source, prepared, boundary)
    print_summary(report_rows(prepared, k, size), f"spinsim import: {source} -> {path}")
    print(path)
    return ImportResult(path, prepared)


def report_rows(prepared: PreparedLabels, k: int, size) -> list[tuple[str, str, str]]:
    """The import's findings as the summary table's rows (name, value, what it counts)."""
    r = prepared.report
    fitted = f"downsampled by {k}" if k > 1 else "as read" if size is None else "cropped or padded"
    return [
        ("frames", str(r["frames"]), f"{r['frames_read']} read, {r['empty_frames']} empty ones dropped"),
        ("lattice", str(r["shape"]), fitted),
        ("cells per frame", f"{r['cells_min']}..{r['cells_max']}", "ids 1..n in each frame"),
        *((f"cells of type {n}", str(r[f"cells_{n}"]), "over all frames") for n in prepared.type_names[1:]),
        ("cell volume", f"{r['volume_mean']:.1f}", f"sites; {r['volume_min']}..{r['volume_max']}"),
        ("cells on the border", str(r["cells_on_border"]), "touch the image's edge"),
        ("fragmented cells", str(r["fragmented_cells"]), "in more than one piece (8-neighbours)"),
    ]


def _types(value, type_image: np.ndarray | None):
    """The cell types ``types=`` names (a CSV table or a type image), else the input's own."""
    if value is None:
        return type_image
    path = existing_path("types", value)
    with translate("types", str(value)):
        if path.suffix.lower() == ".csv":
            return read_type_table(path)
        image, _ = read_labels(path)
        return image


def _key_of(message: str) -> str:
    for key, words in (("types", ("type table", "type image")), ("max_cells", ("max_cells",)),
                       ("type_names", ("type_names",)), ("downsample", ("block",)),
                       ("size", ("size",))):  # fmt: skip
        if any(w in message for w in words):
            return key
    return "path"


def write_run_file(
    path: Path, cfg: DictConfig, source: Path, prepared: PreparedLabels, boundary: str
) -> None:
    """One snapshot (step 0) of every frame as a replica, with its id -> type table."""
    frames, H, W = prepared.ids.shape
    parameters = {
        **standard_parameters(cfg, seed=0, device="cpu", threads=1),
        "model": "cpm", "lattice": "square", "boundary": boundary,
        "lattice_shape": np.array([H, W], dtype=np.int64), "source": str(source.resolve()),
        "steps": 0, "step_unit": "images", "measure_every": 0, "snapshot_every": 1,
    }  # fmt: skip
    arrays = {
        "cell_type": prepared.cell_type,
        "type_names": np.array(prepared.type_names, dtype=object),
        "source_frame": prepared.frames.astype(np.int64),
    }
    layout = Layout(observables={}, frames={"snapshots": ((frames, H, W), np.int32)})
    file = create_run_file(path, "import", cfg, parameters=parameters, temperature=[float("nan")] * frames,
                           layout=layout, arrays=arrays)  # fmt: skip
    try:
        file.commit(0, None, (np.array([0], dtype=np.int64), {"snapshots": prepared.ids[None]}), None)
    except BaseException:
        file.close("failed")
        raise
    file.close("completed")
