"""Value checks of config keys: each returns the plain value or raises the one-line
:class:`spinsim.errors.ConfigError` naming the key, the value and what is allowed.

:func:`translate` turns a ``ValueError``/``TypeError`` of the physics code into
that error for the key whose value caused it.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from spinsim.errors import ConfigError

MAX_INT = 2**63 - 1  # integers are stored as int64 (steps, seeds)
MAX_STEPS = 2**62  # steps of one run (sweep counters and step datasets are int64)


def plain(value: Any) -> Any:
    """Config value as plain Python (lists, numbers, strings; enums by name)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    if isinstance(value, Enum):
        return value.name
    return value


@contextmanager
def translate(key: str, value: Any) -> Iterator[None]:
    """Inside: a ``ValueError`` or ``TypeError`` becomes ``ConfigError(key, value, message)``."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        named = f"{plain(value)}: "
        if message.startswith(named) and len(message) > len(named):  # the value is named once
            message = message[len(named) :]
        raise ConfigError(key, plain(value), message) from None


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def integer(key: str, value: Any, minimum: int, maximum: int = MAX_INT) -> int:
    """An integer key in ``[minimum, maximum]`` (at most 2^63 - 1: steps and seeds are int64)."""
    value = plain(value)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and minimum <= value <= maximum:
        return value
    if maximum == MAX_INT and not (whole and value > maximum):
        raise ConfigError(key, value, f"must be an integer >= {minimum}")
    top = "2^63 - 1" if maximum == MAX_INT else str(maximum)
    raise ConfigError(key, value, f"must be an integer from {minimum} to {top}")


def at_least(key: str, value: Any, minimum: int) -> int:
    """An integer run key that must be >= minimum (and fit in 64 bits)."""
    return integer(key, value, minimum)


def seed(value: Any, key: str = "seed") -> int:
    """A seed: an integer from 0 to 2^63 - 1."""
    return integer(key, value, 0, MAX_INT)


def positive(key: str, value: Any) -> float:
    """A real run key that must be > 0 and finite."""
    value = plain(value)
    if not is_number(value) or value <= 0:
        raise ConfigError(key, value, "must be a positive number")
    return float(value)


def fraction(key: str, value: Any, upper_open: bool = True) -> float:
    """A number in ``[0, 1)`` (or ``[0, 1]``)."""
    value = plain(value)
    ok = is_number(value) and 0 <= value and (value < 1 if upper_open else value <= 1)
    if not ok:
        raise ConfigError(key, value, f"must be a number in [0, 1{')' if upper_open else ']'}")
    return float(value)


def temperatures(value: Any) -> list[float]:
    """``temperature``: a positive number or a non-empty list of them."""
    value = plain(value)
    values = value if isinstance(value, list) else [value]
    allowed = "must be a positive number or a non-empty list of positive numbers"
    if not values:
        raise ConfigError("temperature", value, allowed)
    for v in values:
        if not is_number(v) or v <= 0:
            raise ConfigError("temperature", value, allowed)
    return [float(v) for v in values]


def exchange_every(value: Any, temps: list[float]) -> int:
    """``exchange_every`` (parallel tempering): 0 (off), or sweeps between exchanges
    when there are at least two temperatures."""
    every = at_least("exchange_every", value, 0)
    if every and len(temps) < 2:
        raise ConfigError(
            "exchange_every", every,
            "parallel tempering needs at least two temperatures (give temperature a list) or 0 (off)",
        )  # fmt: skip
    return every


def existing_path(key: str, value: Any) -> Path:
    """A file or folder that must exist (``path`` of ``collect`` and ``render``)."""
    value = plain(value)
    if value is None or str(value) == "":
        raise ConfigError(key, "", "give a path, e.g. spinsim <command> PATH")
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        raise ConfigError(key, str(value), "no such file or folder")
    return path


def per_cell_type(key: str, value: Any, names: list[str], check: str = "any") -> list[float]:
    """A number (every cell type) or one number per cell type; ``check``: any, positive, non-negative."""
    value = plain(value)
    values = value if isinstance(value, list) else [value] * len(names)
    allowed = {"any": "a number", "positive": "a positive number", "non-negative": "a number >= 0"}[check]
    message = f"{allowed}, or a list of {len(names)} (one per cell type: {', '.join(names)})"
    if len(values) != len(names) or not all(is_number(v) for v in values):
        raise ConfigError(key, value, message)
    if (check == "positive" and min(values) <= 0) or (check == "non-negative" and min(values) < 0):
        raise ConfigError(key, value, message)
    return [float(v) for v in values]


def contact_table(key: str, value: Any, names: list[str]) -> list[list[float]]:
    """A symmetric T x T table of numbers over the types (medium first)."""
    table = plain(value)
    T = len(names)
    shape = f"a {T}x{T} table of numbers, one row and one column per type ({', '.join(names)})"
    if not isinstance(table, list) or len(table) != T:
        raise ConfigError(key, table, shape)
    for row in table:
        if not isinstance(row, list) or len(row) != T or not all(is_number(v) for v in row):
            raise ConfigError(key, table, shape)
    for i in range(T):
        for j in range(i + 1, T):
            if table[i][j] != table[j][i]:
                raise ConfigError(
                    key, table,
                    f"must be symmetric, but J({names[i]}, {names[j]}) = {table[i][j]:g} and "
                    f"J({names[j]}, {names[i]}) = {table[j][i]:g}",
                )  # fmt: skip
    return [[float(v) for v in row] for row in table]


def array_file(key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A float array of ``shape`` from a file: .npy, .npz (its single array), or text (.txt, .csv, .dat)."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(key, str(value), "no such file (give an .npy, .npz, .txt or .csv array file)")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if len(archive.files) != 1:
                    raise ValueError(f"it holds {len(archive.files)} arrays, not one")
                array = archive[archive.files[0]]
        else:
            array = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        array = np.asarray(array, dtype=np.float64)
    except Exception as error:  # numpy's messages for corrupt or non-numeric files vary
        reason = str(error).replace("\n", " ")
        raise ConfigError(key, str(value), f"cannot read an array from it ({reason})") from None
    if tuple(array.shape) != tuple(shape):
        raise ConfigError(
            key, str(value), f"holds an array of shape {list(array.shape)}; the lattice is {list(shape)}"
        )
    if not np.isfinite(array).all():
        raise ConfigError(key, str(value), "holds values that are not finite")
    return array
