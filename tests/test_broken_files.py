"""No reader waits on a broken file: a run file cut short (1 KiB, half, 99 %), empty, with a
zero-filled tail (a copy that preallocated), not HDF5, or HDF5 of another program is answered
within seconds, by ``spinsim.load`` and by every command that reads runs, in one line with
exit status 2; ``collect`` skips it with a one-line warning and never pools it.

Before the fix a SWMR open of a cut-short file retried its reads forever, in C, where Ctrl-C
does not reach: every check here runs in a child process under a timeout, so a regression
fails instead of hanging the suite."""

import json
import shutil
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from conftest import one_line, simulate_quiet, spinsim_cli

DATA = [
    "experiment=cell_sorting_b", "lattice.size=24", "model.cells=[3,3]", "model.target_area=30",
    "model.layout_radius=5", "batch=2", "sweeps=40", "snapshot_every=20", "measure_every=10",
    "thermalize=0", "seed=1",
]  # fmt: skip

CUT = "cut short, "
DAMAGED = "damaged, HDF5 cannot read it"
BROKEN = {  # name: (the file's bytes from the whole run's, the start of the reason given)
    "kib": (lambda d: d[:1024], CUT + "1024 of the "),
    "half": (lambda d: d[: len(d) // 2], CUT),
    "p99": (lambda d: d[: len(d) * 99 // 100], CUT),
    "empty": (lambda d: b"", "an empty file (0 bytes), not a spinsim run file"),
    "zerotail": (lambda d: d[: len(d) // 2] + bytes(len(d) - len(d) // 2), DAMAGED),
    "text": (lambda d: b"sample,area\n1,30\n", "not an HDF5 file, so not a spinsim run file"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The whole run (``whole/run.h5``) and every broken variant of it (``NAME.h5``), and
    ``foreign.h5``: HDF5 that spinsim did not write."""
    root = tmp_path_factory.mktemp("broken")
    (root / "whole").mkdir()
    simulate_quiet(root / "whole" / "run.h5", *DATA)
    whole = (root / "whole" / "run.h5").read_bytes()
    for name, (cut, _) in BROKEN.items():
        (root / f"{name}.h5").write_bytes(cut(whole))
    with h5py.File(root / "foreign.h5", "w") as f:
        f["image"] = np.zeros((4, 4))
    return root


def test_load_answers_every_broken_file_within_seconds(files):
    """``load``, ``snapshot_steps`` and ``read_snapshots``: a BrokenRunFile naming the file and
    the reason, each within 3 s (a cut-short file waits 0.25 s for a copy to finish); the whole
    file still reads."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from spinsim.io import BrokenRunFile, load, read_snapshots, snapshot_steps
        out = {}
        every = ("kib", "zerotail", "foreign", "run")  # the others: load only (each cut-short
        for path in sys.argv[1:]:                       # file waits 0.25 s for a copy to finish)
            readers = (("load", load), ("steps", snapshot_steps),
                       ("snapshots", lambda p: read_snapshots(p, [0], [0])))
            if not path.endswith(tuple(f"/{name}.h5" for name in every)):
                readers = readers[:1]
            for name, read in readers:
                start = time.monotonic()
                try:
                    read(path)
                    reason = "read"
                except BrokenRunFile as error:
                    assert str(error) == f"{path}: {error.reason}"
                    reason = error.reason
                out[f"{path} {name}"] = [reason, time.monotonic() - start]
        print(json.dumps(out))
        """
    )
    names = [*BROKEN, "foreign"]
    paths = [str(files / f"{n}.h5") for n in names] + [str(files / "whole" / "run.h5")]
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    expected = {n: BROKEN[n][1] for n in BROKEN} | {
        "foreign": "not a spinsim run file (no /parameters group)"
    }
    for name, start in expected.items():
        for how in ("load", "steps", "snapshots") if name in ("kib", "zerotail", "foreign") else ("load",):
            reason, seconds = found[f"{files / name}.h5 {how}"]
            assert reason.startswith(start), (name, how, reason)
            assert seconds < 3, (name, how, seconds)
    for how in ("load", "steps", "snapshots"):
        assert found[f"{files / 'whole' / 'run.h5'} {how}"][0] == "read"


@pytest.mark.parametrize("name", ["half", "zerotail", "foreign"])
def test_every_command_answers_a_broken_file_in_one_line(files, tmp_path, name):
    """train data=, evaluate (the run and reference=), render and simulate's
    model.layout_data=: one line naming the key, the file and the reason, exit status 2."""
    broken = str(files / f"{name}.h5")
    whole = str(files / "whole" / "run.h5")
    reason = {"foreign": "not a spinsim run file", "half": CUT, "zerotail": DAMAGED}[name]
    cases = [
        (["train", f"data={broken}", "steps=1"], "train", "data"),
        (["evaluate", broken], "evaluate", "path"),
        (["evaluate", whole, f"reference={broken}"], "evaluate", "reference"),
        (["render", broken], "render", "path"),
    ]
    for args, command, key in cases:
        start = time.monotonic()
        out = spinsim_cli(*args, f"hydra.run.dir={tmp_path / command}", cwd=tmp_path, timeout=60)
        seconds = time.monotonic() - start
        line = one_line(out, 2)
        assert line.startswith(f"spinsim {command}: error: {key}={broken}: {reason}"), line
        assert seconds < 30, (args, seconds)


def test_collect_skips_a_broken_copy_and_never_pools_it(files, tmp_path):
    """A folder holding a run and its cut-short copy: the copy skipped in one warning line,
    the table holds the whole run's rows once; the cut-short file alone: one line, exit 2."""
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copy(files / "whole" / "run.h5", folder / "run.h5")
    shutil.copy(files / "half.h5", folder / "copy.h5")
    out = spinsim_cli("collect", str(folder), f"hydra.run.dir={tmp_path / 'h'}", cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    warned = [line for line in (out.stdout + out.stderr).splitlines() if "skipped" in line]
    assert len(warned) == 1 and f"skipped {folder / 'copy.h5'}: {CUT}" in warned[0], warned
    assert "1 runs collected" in out.stdout or "1 run collected" in out.stdout, out.stdout[-2000:]
    alone = spinsim_cli("collect", str(files / "half.h5"), f"hydra.run.dir={tmp_path / 'h2'}", cwd=tmp_path,
                        timeout=60)  # fmt: skip
    line = one_line(alone, 2)
    assert line.startswith(f"spinsim collect: error: path={files / 'half.h5'}: {CUT}"), line
