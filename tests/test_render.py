"""`spinsim render`: files exist and decode, have the expected sizes and frame counts, show the
stored lattices in the right places, and bad input is one line."""

import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

import spinsim
from conftest import simulate_quiet
from spinsim.cli import main
from spinsim.commands import render
from spinsim.io.reader import load
from spinsim.view import render as draw

OBSERVABLES = ("e", "m", "abs_m", "m2", "m4")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An Ising run (12x12, T = 1.5 and 3.0, 2 replicas each, snapshots at 20, 40, 60, 80)
    and a q=4 Potts run with parallel tempering."""
    folder = tmp_path_factory.mktemp("runs")
    common = ["lattice.size=12", "batch=2", "sweeps=60", "thermalize=20", "snapshot_every=20"]
    ising = simulate_quiet(folder / "ising.h5", *common, "temperature=[1.5,3.0]").path
    potts = simulate_quiet(folder / "potts.h5", *common, "model=potts", "model.q=4",
                           "temperature=[0.7,0.9,1.2]", "exchange_every=2").path  # fmt: skip
    return {"ising": ising, "potts": potts}


def render_run(path, *overrides):
    cfg = spinsim.compose("render", [f"path={path}", *overrides])
    return render.run(cfg)


def cell(image, shape, scale, row, col):
    """The pixels of the lattice at (row, col) of a snapshot grid."""
    w, h = draw.lattice_size(shape, scale)
    x, y = draw.LABEL_WIDTH + col * (w + draw.PAD), draw.HEADER + row * (h + draw.PAD)
    return np.asarray(image.convert("RGB"))[y : y + h, x : x + w]


def test_ising_defaults(runs, capsys):
    """Defaults: the first replica of each temperature; 5 stored steps (all, as fewer than 6: the
    initial state and 4 more); auto scale 16 px per site (12 x 16 = 192 px); GIF of every snapshot
    at 10 fps."""
    result = render_run(runs["ising"])
    out = runs["ising"].parent / "ising_render"
    assert result.output == out
    expected = [out / "snapshots.png", out / "snapshots.gif",
                *(out / "observables" / f"{n}.png" for n in OBSERVABLES)]  # fmt: skip
    assert sorted(result.files) == sorted(expected)
    assert capsys.readouterr().out.split() == [str(p) for p in result.files]
    run = load(runs["ising"])
    shape, scale = (12, 12), 16

    grid = Image.open(out / "snapshots.png")
    grid.load()
    assert grid.size == draw.grid_size(shape, scale, rows=2, cols=5) == (120 + 5 * 196, 16 + 2 * 196)
    for row, replica in enumerate([0, 2]):
        for col in range(5):
            expected = draw.ISING_COLOURS[(run.snapshots.value[col, replica] + 1) // 2]
            np.testing.assert_array_equal(cell(grid, shape, scale, row, col), draw.upscale(expected, scale))
    pixels = np.asarray(grid.convert("RGB")).reshape(-1, 3)
    for colour in draw.ISING_COLOURS:  # both spin colours drawn: not blank
        assert (pixels == colour).all(1).mean() > 0.02

    gif = Image.open(out / "snapshots.gif")
    assert gif.n_frames == 5 and gif.is_animated
    assert gif.size == draw.frame_size(shape, scale, 2) == (4 + 2 * 196, 32 + 192 + 4)
    assert gif.info["duration"] == 100 and gif.info["loop"] == 0
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB")))
    w, h = draw.lattice_size(shape, scale)
    for k, frame in enumerate(frames):  # replica 2 (T = 3) in the second slot, below the captions
        x = draw.PAD + w + draw.PAD
        lattice = frame[2 * draw.HEADER : 2 * draw.HEADER + h, x : x + w]
        expected = draw.ISING_COLOURS[(run.snapshots.value[k, 2] + 1) // 2]
        np.testing.assert_array_equal(lattice, draw.upscale(expected, scale))
    assert not np.array_equal(frames[0], frames[-1])  # it moves

    for name in OBSERVABLES:
        plot = Image.open(out / "observables" / f"{name}.png")
        assert plot.size == (700, 400)
        rgb = np.asarray(plot.convert("RGB"))
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # lines, axes and labels, not blank


def test_potts_options_and_tempering(runs, tmp_path):
    """replicas, steps, fps, scale and output; Potts spins in q colours; the tempering plot."""
    out = tmp_path / "pictures"
    result = render_run(runs["potts"], "replicas=[5,0]", "steps=[40,80]", "fps=4", "scale=3", f"output={out}")
    assert result.output == out and (out / "tempering.png").is_file()
    assert Image.open(out / "tempering.png").size == (700, 400)
    run = load(runs["potts"])
    colours = draw.potts_colours(4)

    grid = Image.open(out / "snapshots.png")
    assert grid.size == draw.grid_size((12, 12), 3, rows=2, cols=2)
    for row, replica in enumerate([5, 0]):
        for col, index in enumerate([2, 4]):  # steps 40 and 80 (after the initial state, 20, 60)
            expected = draw.upscale(colours[run.snapshots.value[index, replica].astype(int)], 3)
            np.testing.assert_array_equal(cell(grid, (12, 12), 3, row, col), expected)

    gif = Image.open(out / "snapshots.gif")
    assert gif.n_frames == 2 and gif.info["duration"] == 250
    assert gif.size == draw.frame_size((12, 12), 3, 2)
    used = np.unique(np.asarray(gif.convert("RGB")).reshape(-1, 3), axis=0)
    spins = [c for c in used if (colours == c).all(1).any()]
    assert len(spins) >= 2  # several Potts colours in the first frame


def test_run_without_snapshots_plots_observables(tmp_path):
    path = simulate_quiet(tmp_path / "plain.h5", "lattice.size=8", "temperature=2.0", "sweeps=20",
                          "thermalize=5", "snapshot_every=0").path  # fmt: skip
    result = render_run(path)
    assert sorted(p.name for p in result.files) == sorted(f"{n}.png" for n in OBSERVABLES)


def error_line(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["render", *args])
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_input_is_one_line(runs, tmp_path, capsys):
    ising = str(runs["ising"])
    (tmp_path / "text.h5").write_text("not HDF5")
    h5py.File(tmp_path / "other.h5", "w").close()
    xy = tmp_path / "xy.h5"
    shutil.copy(ising, xy)
    with h5py.File(xy, "r+") as f:
        f["parameters"].attrs["model"] = "xy"
    cpm = tmp_path / "cpm.h5"  # a cellular Potts run without its table of cell types
    shutil.copy(ising, cpm)
    with h5py.File(cpm, "r+") as f:
        f["parameters"].attrs["model"] = "cpm"
    prefix = "spinsim render: error: "
    cases = [
        ((str(tmp_path / "missing.h5"),), f"path={tmp_path / 'missing.h5'}: no such file or folder"),
        ((str(tmp_path),), f"path={tmp_path}: is a folder; give a run file (.h5)"),
        ((str(tmp_path / "text.h5"),), f"path={tmp_path / 'text.h5'}: not an HDF5 file, so not a spinsim run file"),  # noqa: E501
        ((str(tmp_path / "other.h5"),), f"path={tmp_path / 'other.h5'}: not a spinsim run file (no /parameters group)"),  # noqa: E501
        ((str(xy),), f"path={xy}: drawing xy runs is not supported; supported models: ising, potts, cpm, blume_capel, neural_cpm"),  # noqa: E501
        ((str(cpm),), f"path={cpm}: a cpm run file without /parameters/cell_type; cannot colour its cells"),
        ((ising, "replicas=[0,4]"), "replicas=[0,4]: give replica indices from 0 to 3 (an index or a list)"),
        ((ising, "steps=[20,30]"), "steps=[20,30]: give steps with a stored snapshot: 0 to 80 every 20"),
        ((ising, "fps=0"), "fps=0.0: must be a number of frames per second in (0, 50]"),
        ((ising, "scale=-1"), "scale=-1: must be an integer >= 0"),
        ((ising, "colour=red"), "colour: no such key; keys here: path, replicas, steps, columns, fps, video, scale, output"),  # noqa: E501
        ((ising, "video=avi"), "video=avi: null, or one of mp4, webm"),
        ((), "path: no value given; usage: spinsim render RUN.h5 [key=value ...]"),
    ]  # fmt: skip
    for args, message in cases:
        assert error_line(capsys, *args) == prefix + message


@pytest.mark.parametrize("video", ["mp4", "webm"])
def test_a_video_has_the_gifs_frames(runs, tmp_path, video):
    """video=mp4/webm: the GIF's frames, read back by ffmpeg (imageio-ffmpeg), same count and
    size (padded to even), colours within the codec's loss."""
    import imageio_ffmpeg

    result = render_run(runs["potts"], f"video={video}", f"output={tmp_path}")
    path = tmp_path / f"snapshots.{video}"
    assert path in result.files
    gif = Image.open(tmp_path / "snapshots.gif")
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    assert len(frames) == gif.n_frames
    w, h = gif.size
    assert tuple(meta["size"]) == (w + w % 2, h + h % 2)
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB"), dtype=np.int16)
    assert np.abs(frames[-1][:h, :w].astype(np.int16) - last).mean() < 12  # lossy, but the picture


def test_positional_path_is_taken_literally(runs, tmp_path, capsys):
    """A path with spaces, a comma, brackets, a quote and ``${`` is one positional value."""
    folder = tmp_path / "my runs, [v1] it's ${x}"
    folder.mkdir()
    shutil.copy(runs["ising"], folder / "run 1.h5")
    main(["render", str(folder / "run 1.h5"), "steps=80", "replicas=1"])
    assert (folder / "run 1_render" / "snapshots.gif").is_file()
    assert Image.open(folder / "run 1_render" / "snapshots.gif").n_frames == 1


def test_help_shows_usage_and_keys(capsys):
    with pytest.raises(SystemExit) as info:
        main(["render", "--help"])
    assert info.value.code in (None, 0)
    out = capsys.readouterr().out
    assert out.startswith("Usage: spinsim render RUN.h5 [key=value ...]")
    assert "Config groups (group=option) ==\n  (none)" in out
    for key in ("path", "replicas", "steps", "columns", "fps", "scale", "output"):
        assert f"\n  {key} " in out


def test_cellular_potts_cells_by_type_with_borders(tmp_path):
    """A CPM run: every site in its cell type's colour, except the one-pixel borders drawn where
    the right or lower neighbour is another cell; the boundary lengths are plotted too."""
    path = simulate_quiet(tmp_path / "cpm.h5", "experiment=cell_sorting_gg", "lattice.size=32",
                          "model.cells=[8,8]", "batch=1", "sweeps=40", "snapshot_every=20").path  # fmt: skip
    result = render_run(path, "scale=4")
    run = load(path, snapshots=True)
    assert {f.name for f in result.files} >= {"snapshots.png", "boundary_light_dark.png", "energy.png"}
    pixels = cell(Image.open(result.output / "snapshots.png"), (32, 32), 4, 0, 1)
    ids = run.snapshots.value[1, 0]
    colours = draw.cell_type_colours(3)[run.parameters["cell_type"][ids]]
    assert len({tuple(c) for c in colours.reshape(-1, 3)}) == 3  # medium, light and dark all present
    inner = pixels[1::4, 1::4]  # a pixel inside every site block, away from its right/lower edge
    assert np.array_equal(inner, colours)
    edge = pixels[1::4, 3::4]  # each site block's right edge: a border where the id changes
    changes = np.zeros(ids.shape, dtype=bool)
    changes[:, :-1] = ids[:, :-1] != ids[:, 1:]
    assert np.array_equal(np.any(edge != colours, axis=-1), changes)
    assert changes.any() and not changes.all()
