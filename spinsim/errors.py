"""Errors that the command line reports as one line and exit status 2."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value spinsim cannot run with.

    ``str(error)`` is one line naming the key, the value and what is allowed,
    e.g. ``temperature=-1.0: must be a positive number or a list of them``.
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}={format_value(value)}: {allowed}")

    def __reduce__(self):
        # picklable, so a job in another process (joblib, submitit) can hand it back
        return (type(self), (self.key, self.value, self.allowed))


def format_value(value: Any) -> str:
    """Render a config value the way a user would type it as an override."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return repr(value)
