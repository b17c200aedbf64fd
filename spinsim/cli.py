"""``spinsim <command> [overrides]``: pick the command, hand the rest to Hydra.

Every command is a Hydra app over its primary config ``conf/<command>.yaml``
and a ``run(cfg)`` function in ``spinsim.commands.<command>``; adding a
command means adding both and one entry to ``COMMANDS``. A command that works
on a file or folder declares a ``positional`` config key: ``spinsim render
RUN.h5 fps=5`` is the same as ``spinsim render path=RUN.h5 fps=5``.

Bad input (an unknown option or key, a value of the wrong type, a value the
physics cannot take) is reported as one line, ``spinsim <command>: error:
<key>=<value>: <what is allowed>``, with exit status 2 and no traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Sequence

EXIT_OUTPUT = 1  # an output that cannot be written (full disk, permissions)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    examples: tuple[str, ...] = ()
    # A config key set by a leading positional argument (``metavar`` in usage lines).
    positional: str | None = None
    metavar: str = ""
    file: str = ""  # the module under spinsim.commands when not the name (import is a keyword)

    @property
    def module(self) -> str:
        return f"spinsim.commands.{self.file or self.name}"

    @property
    def usage(self) -> str:
        path = f" {self.metavar}" if self.positional else ""
        return f"spinsim {self.name}{path} [key=value ...]"


COMMANDS = {
    c.name: c
    for c in (
        Command(
            "simulate",
            "Monte Carlo of Ising, Potts and cellular Potts models, written to HDF5",
            examples=(
                "spinsim simulate model=potts model.q=3 lattice=triangular temperature=[0.5,0.63,0.8]",
                "spinsim simulate -m temperature=1.5,2.0,2.5",
                "spinsim simulate -m lattice.size=8,16,32 hydra/launcher=joblib",
                "spinsim simulate experiment=cell_sorting_gg",
            ),
        ),
        Command(
            "optimize",
            "differentiable Monte Carlo: learn couplings, search ground states",
            examples=(
                "spinsim optimize task=couplings task.target=disc",
                "spinsim optimize task=ground_state task.method=dmc model.couplings=pm",
            ),
        ),
        Command(
            "train",
            "fit a cellular Potts Hamiltonian (classic or neural) to snapshots: the Neural CPM",
            examples=(
                "spinsim train model=neural_cpm data=outputs/cell_sorting",
                "spinsim train experiment=fit_cell_sorting data=multirun/sorting_b",
            ),
            positional="data",
            metavar="RUNS",
        ),
        Command(
            "collect",
            "table, curves and Binder-crossing Tc of a sweep's runs",
            examples=("spinsim collect multirun/2026-11-25/12-00-00",),
            positional="path",
            metavar="DIR",
        ),
        Command(
            "render",
            "PNG snapshot grid, animated GIF and observable plots of a run",
            examples=(
                "spinsim render outputs/2026-11-25/12-00-00/simulate.h5",
                "spinsim render RUN.h5 replicas=[0,4] steps=[100,1000,2000] fps=5 output=figures",
            ),
            positional="path",
            metavar="RUN.h5",
        ),
        Command(
            "bench",
            "time the fast engines against their references (flips/ns, sweeps/s, MCS/s)",
            examples=("spinsim bench cases=[ising-square-2560-b1] device.threads=2",),
        ),
        Command(
            "evaluate",
            "Neural CPM metrics of simulated runs against a data set; trains the Classifier Score's CNN",
            examples=(
                "spinsim evaluate RUN.h5 reference=DATA.h5 classifier=classifier.pt",
                "spinsim evaluate DATA.h5 mode=train_classifier classifier=classifier.pt",
            ),
            positional="path",
            metavar="RUN.h5",
        ),
        Command(
            "import",
            "label images (TIFF, OME-TIFF, .npy, .npz) of segmented tissue as a cellular Potts run file",
            examples=(
                "spinsim import labels.tif types=types.csv output=tissue.h5",
                "spinsim import stack.npy size=[100,100] downsample=2",
            ),
            positional="path",
            metavar="LABELS",
            file="import_labels",
        ),
        Command(
            "export",
            "a run's snapshots as TIFF label stacks (napari, Fiji) and its observables as CSV",
            examples=("spinsim export RUN.h5", "spinsim export RUN.h5 formats=[tiff] output=for_fiji"),
            positional="path",
            metavar="RUN.h5",
        ),
    )
}


def usage() -> str:
    from spinsim.version import __version__

    width = max(len(n) for n in COMMANDS)
    lines = [
        f"spinsim {__version__}: simulate and optimise spin models on PyTorch",
        "",
        "usage: spinsim <command> [group=option ...] [key=value ...]",
        "       spinsim <command> -m key=a,b,c        (a sweep: one run per value)",
        "       spinsim <command> --help              (the command's groups and keys)",
        *(f"       {c.usage}" for c in COMMANDS.values() if c.positional),
        "",
        "commands:",
        *(f"  {c.name.ljust(width)}  {c.summary}" for c in COMMANDS.values()),
        "",
        "examples:",
        *(f"  {example}" for c in COMMANDS.values() for example in c.examples),
    ]
    return "\n".join(lines)


# Hydra's command-line flags (its argparse would print its whole usage for any other).
HYDRA_FLAGS = frozenset(
    "-m --multirun -c --cfg -p --package --resolve -i --info -r --run -cp --config-path -cn "
    "--config-name -cd --config-dir --experimental-rerun -sc --shell-completion --hydra-help "
    "--version -h --help".split()
)


def fail(prog: str, message: str, status: int = EXIT_USAGE) -> "NoReturn":  # noqa: F821
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``spinsim``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else EXIT_USAGE)
    if args[0] in ("-V", "--version"):
        from spinsim.version import __version__

        print(f"spinsim {__version__}")
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        fail("spinsim", f"command={name}: unknown command; choose one of {', '.join(COMMANDS)}")
    run_command(COMMANDS[name], rest)


def run_command(command: Command, args: list[str]) -> None:
    """Run one command as a Hydra app with ``args`` as its command line."""
    import hydra

    from spinsim.config import register
    from spinsim.errors import ConfigError, OutputError, RunAborted, describe_os_error
    from spinsim.run.parallel import SWEEP_JOBS_ENV, sweep_jobs

    register({c.name: (c.usage, c.examples) for c in COMMANDS.values()})
    prog = f"spinsim {command.name}"
    args = positional_override(command, args)
    if "--help" in args or "-h" in args:
        print_help(command, [a for a in args if not a.startswith("-")], prog)
        sys.exit(0)
    args = resumed_sweep(command, args, prog)
    unknown = [a for a in args if a.startswith("-") and a.split("=", 1)[0] not in HYDRA_FLAGS]
    if unknown:
        fail(prog, f"{unknown[0]}: unknown option; options: -m/--multirun, --cfg job|hydra|all, --info, "
                   "--help; settings are key=value")  # fmt: skip
    cli_pid = os.getpid()

    @hydra.main(version_base="1.3", config_path="pkg://spinsim.conf", config_name=command.name)
    def task(cfg) -> None:
        from omegaconf import OmegaConf

        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            fail(prog, f"{missing[0]}: no value given; usage: {command.usage}")
        added = appended_keys()
        if added:
            fail(prog, f"{added[0]}: no such key (a '+' adds a key that spinsim does not read); "
                       f"see spinsim {command.name} --help")  # fmt: skip
        # the command (and torch, numba, h5py with it) only once the config composed
        module = importlib.import_module(command.module)
        try:
            module.run(cfg)
        except ConfigError as error:
            if os.getpid() != cli_pid:
                # A job that a launcher (joblib, submitit) runs in another process: the
                # launcher hands the error back, and the launching command prints it.
                raise
            fail(prog, str(error))  # before Hydra's job runner reports it with a traceback
        except OutputError:
            raise  # one line from the command line, below (and an exit before HDF5 cleans up)
        except RunAborted as error:
            fail(prog, str(error), EXIT_OUTPUT)
        except OSError as error:  # an output folder or file that cannot be made
            if os.getpid() != cli_pid:
                raise
            fail(prog, describe_os_error(error), EXIT_OUTPUT)

    # Let Hydra's exceptions reach us, so each becomes one line and exit status 2.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # Jobs in a sweep, for the threads per job under parallel launchers (spinsim.run.parallel).
    jobs = sweep_jobs(args)
    if jobs is not None:
        os.environ[SWEEP_JOBS_ENV] = str(jobs)
    saved_argv, saved_stderr = sys.argv, sys.stderr
    sys.argv = [prog, *args]
    sys.stderr = held = HoldJobFailures(sys.stderr)
    try:
        task()
    except KeyboardInterrupt as error:
        detail = f" ({error})" if str(error) else ""
        print(f"{prog}: interrupted{detail}; data written so far is kept", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except OutputError as error:
        held.held.clear()
        if getattr(error, "abandoned", False):  # HDF5 failed mid-write: leave before it cleans up
            print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_OUTPUT)
        fail(prog, str(error), EXIT_OUTPUT)
    except OSError as error:  # Hydra cannot make the run directory, or a job's output failed
        held.held.clear()
        message = describe_config_error(error)  # Hydra's missing config options are IOErrors too
        if message is not None:
            fail(prog, message)
        fail(prog, describe_os_error(error), EXIT_OUTPUT)
    except Exception as error:
        message = describe_config_error(error) or job_error(error, prog)
        if message is None:
            raise
        held.held.clear()  # the failure is reported as our one line instead
        fail(prog, message)
    finally:
        sys.argv, sys.stderr = saved_argv, saved_stderr
        held.release()


def appended_keys() -> list[str]:
    """Keys that ``+key=value`` (or ``++``) overrides add to the composed config, other than
    Hydra's own and config groups (``+group=option``): spinsim would ignore them, so they are
    refused as a misspelt key is."""
    from importlib import resources

    from hydra.core.hydra_config import HydraConfig

    conf = resources.files("spinsim.conf")
    found = []
    for override in HydraConfig.get().overrides.task:
        if not override.startswith("+"):
            continue
        key = override.lstrip("+").split("=", 1)[0].strip()
        if key.startswith("hydra") or conf.joinpath(*key.split("/")).is_dir():
            continue
        found.append(key)
    return found


def print_help(command: Command, overrides: list[str], prog: str) -> None:
    """``spinsim <command> --help [overrides]``: the page of ``conf/hydra/help/spinsim.yaml`` (usage,
    groups, keys, the config composed with ``overrides``, examples). Printed here rather than by
    Hydra, which composes the config once more for every option of every group to list them (a
    second or more) although the page lists them its own way."""
    import string
    from importlib import resources

    from omegaconf import OmegaConf

    from spinsim.config import compose

    try:
        cfg = compose(command.name, overrides)
    except Exception as error:
        message = describe_config_error(error)
        if message is None:
            raise
        fail(prog, message)
    page = OmegaConf.load(resources.files("spinsim.conf").joinpath("hydra", "help", "spinsim.yaml"))
    node = OmegaConf.create({"hydra": {"job": {"name": command.name}, "help": page}})
    text = string.Template(node.hydra.help.template).safe_substitute(CONFIG=OmegaConf.to_yaml(cfg))
    print(text.rstrip())


class HoldJobFailures:
    """stderr that holds back Hydra's "Error executing job with overrides: ..." line
    until ``release()``: dropped when the failure becomes our one-line error, shown
    before the traceback of anything else."""

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream) -> None:
        self.stream = stream
        self.held: list[str] = []

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            self.held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> None:
        for text in self.held:
            self.stream.write(text)
        self.held.clear()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def resumed_sweep(command: Command, args: list[str], prog: str) -> list[str]:
    """``spinsim simulate resume=DIR`` on a multirun folder: the same sweep again, into DIR.

    The overrides come from DIR/multirun.yaml (Hydra's record of the sweep:
    the swept keys and the launcher); every job is given ``resume=DIR`` and
    continues its own run file, skips it if completed, or starts it if the
    sweep never got to it. Other overrides on the command line (``sweeps=``)
    apply to every job.
    """
    if command.name != "simulate" or any(a in ("-m", "--multirun") for a in args):
        return args
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    folder = Path(os.path.expanduser(given[-1].split("=", 1)[1].strip("'\"")))
    if not (folder / "multirun.yaml").is_file():
        return args
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.load(folder / "multirun.yaml").hydra.overrides
        task = [o for o in saved.task if not o.startswith("resume=")]
        hydra_overrides = [o for o in saved.hydra if not o.startswith("hydra.sweep.dir=")]
    except Exception as error:  # a multirun.yaml that is not Hydra's
        fail(prog, f"resume={folder}: cannot read its multirun.yaml ({type(error).__name__})")
    extra = [a for a in args if not a.startswith("resume=")]
    return ["-m", *task, *hydra_overrides, f"hydra.sweep.dir={quote_override(str(folder))}",
            f"resume={quote_override(str(folder))}", *extra]  # fmt: skip


def positional_override(command: Command, args: list[str]) -> list[str]:
    """``[PATH, *rest] -> [<positional>='PATH', *rest]`` for a command with a positional key.

    The first argument counts as positional when it is an existing path, or
    when it is neither an option (``-...``) nor an override (``key=value``).
    """
    if not command.positional or not args:
        return args
    first = args[0]
    if os.path.exists(first) or not (first.startswith("-") or "=" in first):
        return [f"{command.positional}={quote_override(first)}", *args[1:]]
    return args


def quote_override(value: str) -> str:
    """A string as a quoted Hydra override value: taken literally (spaces, commas,
    brackets, quotes and ``$`` included), never split into a sweep or interpolated."""
    # Hydra reads a backslash as an escape only before a quote or at the end of the string.
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    escaped = escaped.replace("'", "\\'").replace("${", "\\${")
    return f"'{escaped}'"


def describe_config_error(error: BaseException) -> str | None:
    """One line for a Hydra/OmegaConf composition error; None for anything else."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        OmegaConfBaseException,
    )

    if isinstance(error, MissingConfigException):
        missing = error.missing_cfg_file or ""
        if "/" in missing and error.options:
            group, option = missing.rsplit("/", 1)
            return f"{group}={option}: no such option; choose one of {', '.join(error.options)}"
        return _first_line(error)
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        key = cause.full_key or str(cause.key or "")
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            allowed = _keys_of(cause.object_type)
            hint = f"; keys here: {', '.join(allowed)}" if allowed else ""
            return f"{key}: no such key{hint}"
        message = _first_line(cause.msg if cause.msg else cause)
        if cause.value is not None and not message.startswith(str(key)):
            return f"{key}={cause.value}: {message}"
        return f"{key}: {message}"
    if isinstance(error, HydraException):
        return _first_line(error)
    return None


def job_error(error: BaseException, prog: str) -> str | None:
    """The one-line error of a job that a launcher ran in another process, or None.

    joblib hands back the job's ConfigError itself; submitit raises its own
    error whose text holds the job's traceback (``...ConfigError: <line>``) or,
    when the job died without a result, its stderr (``<prog>: error: <line>``).
    """
    from spinsim.errors import ConfigError

    if isinstance(error, ConfigError):
        return str(error)
    for line in reversed(str(error).splitlines()):
        for marker in ("spinsim.errors.ConfigError: ", f"{prog}: error: "):
            if line.startswith(marker):
                return line[len(marker) :]
    return None


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _keys_of(object_type: object) -> list[str]:
    if isinstance(object_type, type) and is_dataclass(object_type):
        return [f.name for f in fields(object_type)]
    return []
