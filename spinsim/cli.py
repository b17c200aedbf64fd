"""``spinsim <command> [overrides]``: pick the command, hand the rest to Hydra.

Every command is a Hydra app over its primary config ``conf/<command>.yaml``
and a ``run(cfg)`` function in ``spinsim.commands.<command>``; adding a
command means adding both and one line to ``COMMANDS``.

Bad input (an unknown option or key, a value of the wrong type, a value the
physics cannot take) is reported as one line, ``spinsim <command>: error:
<key>=<value>: <what is allowed>``, with exit status 2 and no traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, fields, is_dataclass
from typing import Sequence

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    name: str
    summary: str

    @property
    def module(self) -> str:
        return f"spinsim.commands.{self.name}"


COMMANDS = {
    c.name: c
    for c in (
        Command("simulate", "Monte Carlo simulation of Ising and Potts models, written to HDF5"),
        Command("optimize", "differentiable Monte Carlo: learn couplings, search ground states"),
    )
}


def usage() -> str:
    from spinsim import __version__

    width = max(len(n) for n in COMMANDS)
    lines = [
        f"spinsim {__version__}: simulate and optimise spin models on PyTorch",
        "",
        "usage: spinsim <command> [group=option ...] [key=value ...]",
        "       spinsim <command> -m key=a,b,c        (a sweep: one run per value)",
        "       spinsim <command> --help              (the command's groups and keys)",
        "",
        "commands:",
        *(f"  {c.name.ljust(width)}  {c.summary}" for c in COMMANDS.values()),
        "",
        "examples:",
        "  spinsim simulate model=ising device=cpu",
        "  spinsim simulate model=potts model.q=3 lattice=triangular temperature=[0.5,0.63,0.8]",
        "  spinsim simulate -m temperature=1.5,2.0,2.5",
        "  spinsim optimize task=couplings task.target=disc",
        "  spinsim optimize task=ground_state task.method=dmc model.couplings=pm",
    ]
    return "\n".join(lines)


def fail(prog: str, message: str) -> "NoReturn":  # noqa: F821
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``spinsim``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else EXIT_USAGE)
    if args[0] in ("-V", "--version"):
        from spinsim import __version__

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
    from spinsim.errors import ConfigError

    register()
    module = importlib.import_module(command.module)
    prog = f"spinsim {command.name}"

    @hydra.main(version_base="1.3", config_path="pkg://spinsim.conf", config_name=command.name)
    def task(cfg) -> None:
        try:
            module.run(cfg)
        except ConfigError as error:  # before Hydra's job runner reports it with a traceback
            fail(prog, str(error))

    # Let Hydra's exceptions reach us, so each becomes one line and exit status 2.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    saved_argv = sys.argv
    sys.argv = [prog, *args]
    try:
        task()
    except KeyboardInterrupt as error:
        detail = f" ({error})" if str(error) else ""
        print(f"{prog}: interrupted{detail}; data written so far is kept", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        message = describe_config_error(error)
        if message is None:
            raise
        fail(prog, message)
    finally:
        sys.argv = saved_argv


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


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _keys_of(object_type: object) -> list[str]:
    if isinstance(object_type, type) and is_dataclass(object_type):
        return [f.name for f in fields(object_type)]
    return []
