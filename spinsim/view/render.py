"""Pictures of runs: lattice snapshots as images, grids and GIF frames; observable plots.

A *painter* turns one stored lattice (``[*shape]`` integers, as in
``/snapshots/value``) into RGB pixels, ``scale`` pixels per site. Each model
family names its painter (:mod:`spinsim.config.families`): Ising spins in two
colours (:func:`ising_painter`: s = -1 dark, s = +1 light), Potts spins in q
colours (:func:`potts_painter`: matplotlib's ``tab10`` for q <= 10, else evenly
spaced on ``turbo``), cellular Potts cells coloured by type with their
borders drawn (:func:`cell_painter`).

Lattices are drawn as their arrays: row i, column j is site (i, j); the
triangular (sheared) and honeycomb (brick wall) lattices therefore appear as
their square storage arrays. A chain is drawn as a band a few sites tall, a
cubic lattice by its middle slice along the first axis.

Image sizes are exact, so they can be checked (``grid_size``, ``frame_size``):

* grid: ``LABEL_WIDTH + cols (w + PAD)`` by ``HEADER + rows (h + PAD)`` pixels,
  one row per replica, one column per snapshot step;
* GIF frame: ``PAD + n (w + PAD)`` by ``2 HEADER + h + PAD``, the replicas side by side;

where ``w x h`` is one lattice at ``scale`` pixels per site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spinsim.io.reader import Series

PAD = 4  # pixels between lattices
HEADER = 16  # pixels of a text line above the lattices
LABEL_WIDTH = 120  # pixels of the replica labels left of a grid
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
ISING_COLOURS = np.array([[35, 45, 90], [245, 238, 215]], dtype=np.uint8)  # s = -1, s = +1
MAX_POINTS = 2000  # observable plots show block means beyond this many points per line


@dataclass
class SpinPainter:
    """Spin value ``values[k]`` is drawn in ``colours[k]``."""

    values: np.ndarray
    colours: np.ndarray  # [n, 3] uint8

    def __call__(self, frame: np.ndarray, scale: int) -> np.ndarray:
        """``[*shape]`` lattice -> ``[h * scale, w * scale, 3]`` uint8 RGB."""
        plane = as_plane(frame)
        index = np.searchsorted(self.values, plane).clip(0, len(self.values) - 1)
        return upscale(self.colours[index], scale)


def potts_colours(q: int) -> np.ndarray:
    from matplotlib import colormaps

    if q <= 10:
        rgb = colormaps["tab10"](np.arange(q))[:, :3]
    else:
        rgb = colormaps["turbo"](np.linspace(0.05, 0.95, q))[:, :3]
    return (rgb * 255).round().astype(np.uint8)


MEDIUM_COLOUR = (250, 250, 250)


def border_colours(rgb: np.ndarray) -> np.ndarray:
    """A cell border on a site of colour ``rgb [n, 3]``: darker on light cells, lighter on dark ones."""
    rgb = rgb.astype(np.float64)
    light = (rgb @ np.array([0.299, 0.587, 0.114])) > 110
    out = np.where(light[:, None], rgb * 0.45, rgb + (255 - rgb) * 0.55)
    return out.round().astype(np.uint8)


@dataclass
class CellPainter:
    """Cellular Potts lattices: each site in the colour of its cell's type
    (``cell_type[id]``; :func:`cell_type_colours`), and a
    one-pixel border (:func:`border_colours`) wherever a site's right or lower neighbour holds another id."""

    cell_type: np.ndarray  # [n_ids] type of every cell id, id 0 the medium
    colours: np.ndarray  # [n_types, 3] uint8

    def __call__(self, frame: np.ndarray, scale: int) -> np.ndarray:
        ids = upscale(as_plane(frame)[..., None], scale)[..., 0]
        types = self.cell_type[np.clip(ids, 0, len(self.cell_type) - 1)]
        rgb = self.colours[types]
        border = np.zeros(ids.shape, dtype=bool)
        border[:, :-1] |= ids[:, :-1] != ids[:, 1:]
        border[:-1, :] |= ids[:-1, :] != ids[1:, :]
        rgb[border] = border_colours(rgb[border])
        return rgb


# The first two cell types light and dark (Graner-Glazier's "light" and "dark" cells), then tab10.
FIRST_CELL_COLOURS = [(240, 200, 90), (45, 70, 140)]


def cell_type_colours(n_types: int) -> np.ndarray:
    """``[n_types, 3]``: the medium near white, cell types light amber, dark blue, then ``tab10``."""
    more = [tuple(c) for c in potts_colours(10)[[2, 3, 4, 5, 6, 8, 9]]] if n_types > 3 else []
    colours = [MEDIUM_COLOUR, *FIRST_CELL_COLOURS, *more]
    if n_types > len(colours):  # many types: evenly spaced on turbo
        colours = [MEDIUM_COLOUR, *map(tuple, potts_colours(n_types - 1))]
    return np.array(colours[:n_types], dtype=np.uint8)


def cell_painter(cell_type: np.ndarray, n_types: int | None = None) -> CellPainter:
    """Cells coloured by type: ``cell_type [n_ids]`` (id 0 the medium), ``n_types`` types."""
    cell_type = np.asarray(cell_type, dtype=np.int64)
    return CellPainter(cell_type, cell_type_colours(n_types or int(cell_type.max()) + 1))


def ising_painter() -> SpinPainter:
    return SpinPainter(np.array([-1, 1]), ISING_COLOURS)


def potts_painter(q: int) -> SpinPainter:
    return SpinPainter(np.arange(q), potts_colours(q))


def as_plane(frame: np.ndarray) -> np.ndarray:
    """A lattice as a 2D array: 2D as is, 3D its middle slice along axis 0,
    1D a band ``max(1, L // 16)`` rows tall."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3:
        return frame[frame.shape[0] // 2]
    if frame.ndim == 1:
        return np.broadcast_to(frame, (max(1, frame.shape[0] // 16), frame.shape[0]))
    raise ValueError(f"cannot draw a {frame.ndim}D lattice")


def upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def auto_scale(shape: Sequence[int], target: int = 256) -> int:
    """Pixels per site so that a lattice is about ``target`` pixels across (1 to 16)."""
    h, w = as_plane(np.zeros(shape, dtype=np.int8)).shape
    return int(np.clip(target // max(h, w), 1, 16))


def lattice_size(shape: Sequence[int], scale: int) -> tuple[int, int]:
    """(width, height) in pixels of one lattice drawn at ``scale``."""
    h, w = as_plane(np.zeros(shape, dtype=np.int8)).shape
    return w * scale, h * scale


def grid_size(shape: Sequence[int], scale: int, rows: int, cols: int) -> tuple[int, int]:
    w, h = lattice_size(shape, scale)
    return LABEL_WIDTH + cols * (w + PAD), HEADER + rows * (h + PAD)


def frame_size(shape: Sequence[int], scale: int, n: int) -> tuple[int, int]:
    w, h = lattice_size(shape, scale)
    return PAD + n * (w + PAD), 2 * HEADER + h + PAD


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def snapshot_grid(
    snapshots: np.ndarray,
    steps: Sequence[int],
    replicas: Sequence[int],
    temperatures: Sequence[float],
    painter: SpinPainter | CellPainter,
    scale: int,
    shape: Sequence[int] | None = None,
) -> Image.Image:
    """``snapshots [len(steps), len(replicas), *shape]`` as one image: a row per
    replica (labelled with its index and temperature), a column per step. ``shape``:
    the lattice's, when the snapshots are objects a painter understands (an array of
    ``(ids, types)`` pairs)."""
    shape = tuple(snapshots.shape[2:]) if shape is None else tuple(shape)
    w, h = lattice_size(shape, scale)
    image = Image.new("RGB", grid_size(shape, scale, len(replicas), len(steps)), BACKGROUND)
    draw, font = ImageDraw.Draw(image), _font()
    for c, step in enumerate(steps):
        draw.text((LABEL_WIDTH + c * (w + PAD), 2), f"step {step}", fill=INK, font=font)
    for r, (replica, T) in enumerate(zip(replicas, temperatures)):
        y = HEADER + r * (h + PAD)
        draw.text((4, y + h // 2 - 12), f"replica {replica}", fill=INK, font=font)
        if np.isfinite(T):  # an imported run's frames have no temperature
            draw.text((4, y + h // 2 + 1), f"T = {T:.6g}", fill=INK, font=font)
        for c in range(len(steps)):
            image.paste(Image.fromarray(painter(snapshots[c, r], scale)), (LABEL_WIDTH + c * (w + PAD), y))
    return image


def animation_frames(
    snapshots: np.ndarray,
    steps: Sequence[int],
    replicas: Sequence[int],
    temperatures: Sequence[float],
    painter: SpinPainter | CellPainter,
    scale: int,
) -> list[Image.Image]:
    """One frame per step: the replicas side by side under the step and their temperatures.

    Frames use one fixed palette (the painter's colours plus greys for text),
    so colours do not flicker between frames.
    """
    shape = snapshots.shape[2:]
    w, h = lattice_size(shape, scale)
    size = frame_size(shape, scale, len(replicas))
    font = _font()
    palette = _palette_image(painter.colours)
    frames = []
    for k, step in enumerate(steps):
        image = Image.new("RGB", size, BACKGROUND)
        draw = ImageDraw.Draw(image)
        draw.text((PAD, 2), f"step {step}", fill=INK, font=font)
        for r, (replica, T) in enumerate(zip(replicas, temperatures)):
            x = PAD + r * (w + PAD)
            label = f"#{replica} T={T:.4g}" if np.isfinite(T) else f"#{replica}"
            draw.text((x, HEADER + 2), label, fill=INK, font=font)
            image.paste(Image.fromarray(painter(snapshots[k, r], scale)), (x, 2 * HEADER))
        frames.append(image.quantize(palette=palette, dither=Image.Dither.NONE))
    return frames


def _palette_image(colours: np.ndarray) -> Image.Image:
    greys = np.repeat(np.linspace(0, 255, 32).round().astype(np.uint8)[:, None], 3, axis=1)
    entries = np.concatenate([colours.astype(np.uint8), greys])[:256]
    flat = entries.reshape(-1).tolist()
    flat += flat[-3:] * (256 - len(entries))  # pad with the last colour
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat)
    return palette


def save_gif(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """Animated GIF looping forever; GIF delays are whole centiseconds, so
    ``1 / fps`` is rounded to 10 ms (at least 20 ms, as browsers play faster ones slowly)."""
    delay_ms = max(20, 10 * round(100.0 / fps))
    frames[0].save(
        path, save_all=True, append_images=list(frames[1:]), duration=delay_ms, loop=0, optimize=False
    )


VIDEO_CODECS = {"mp4": "libx264", "webm": "libvpx-vp9"}


def save_video(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """An MP4 (H.264) or WebM (VP9) of the frames, by ffmpeg from the ``imageio-ffmpeg`` wheel
    (``pip install imageio-ffmpeg``; ImportError otherwise). Frames are padded with the
    background to even sizes (H.264's 4:2:0 needs them); the palette frames become RGB."""
    import imageio_ffmpeg

    codec = VIDEO_CODECS[path.suffix.lstrip(".")]
    w, h = frames[0].size
    size = (w + w % 2, h + h % 2)
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec=codec, pix_fmt_out="yuv420p", macro_block_size=1,
        output_params=["-loglevel", "error"],
    )  # fmt: skip
    writer.send(None)
    try:
        for frame in frames:
            canvas = Image.new("RGB", size, BACKGROUND)
            canvas.paste(frame.convert("RGB"), (0, 0))
            writer.send(np.ascontiguousarray(np.asarray(canvas)))
    finally:
        writer.close()


# -- observables ---------------------------------------------------------------
LABELS = {
    "e": "energy per spin e",
    "m": "magnetisation m",
    "abs_m": "|m|",
    "m2": "m²",
    "m4": "m⁴",
}
PLOT_SIZE = (7.0, 4.0)  # inches at PLOT_DPI: 700 x 400 pixels
PLOT_DPI = 100


def thin(step: np.ndarray, value: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Block means so that at most ``max_points`` remain (all points when fewer)."""
    n = len(step)
    if n <= max_points:
        return step, value
    b = math.ceil(n / max_points)
    m = n // b * b
    return step[:m].reshape(-1, b).mean(1), value[:m].reshape(-1, b, *value.shape[1:]).mean(1)


def plot_observable(
    name: str,
    series: Series,
    temperature: np.ndarray,
    batch: int,
    replicas: Sequence[int] | None,
    thermalize: int,
    title: str,
    step_unit: str = "sweeps",
) -> "Figure":  # noqa: F821
    """One observable against the run's step (``step_unit``: sweeps, MCS, steps).

    A per-replica observable (one column per replica) shows the selected
    replicas, or (``replicas=None``) the mean over the replicas of each
    temperature; any other (e.g. ``[n, 1]``: a loss, a gradient norm, a batch
    mean) shows its columns as they are.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    ax = fig.subplots()
    step, value = thin(series.step, series.value)
    value = value.reshape(len(step), -1)
    per_replica = value.shape[1] == len(temperature) and len(temperature) > 0
    if not per_replica:
        lines = [
            (value[:, c], name if value.shape[1] == 1 else f"{name}[{c}]") for c in range(value.shape[1])
        ]
    elif replicas is None:
        n_T = value.shape[1] // batch
        lines = [(value[:, t * batch:(t + 1) * batch].mean(1), f"T = {temperature[t * batch]:.4g}")
                 for t in range(n_T)]  # fmt: skip
        if batch > 1:
            title += f" (mean of {batch} replicas per temperature)"
    else:
        lines = [(value[:, r], f"#{r}, T = {temperature[r]:.4g}") for r in replicas]
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(lines)))
    for (y, label), colour in zip(lines, colours):
        ax.plot(step, y, linewidth=0.8, color=colour, label=label, marker="." if len(step) < 50 else None)
    if thermalize:
        ax.axvline(thermalize, color="grey", linestyle=":", linewidth=1, label="end of thermalization")
    ax.set_xlabel(f"step ({step_unit})")
    ax.set_ylabel(LABELS.get(name, name))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, math.ceil(len(lines) / 8)))
    return fig


def plot_exchange_rates(rates: Mapping[str, np.ndarray], title: str) -> "Figure":  # noqa: F821
    """Parallel tempering: acceptance rate per neighbouring temperature pair."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    ax = fig.subplots()
    lo, hi = rates["temperature_low"], rates["temperature_high"]
    ax.plot(0.5 * (lo + hi), rates["rate"], marker="o")
    ax.set_xlabel("T (pair midpoint)")
    ax.set_ylabel("exchange acceptance rate")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return fig
