"""The configuration of a resumed run: the stored run's own, with only its length grown.

``simulate resume=RUN.h5`` and ``train resume=RUN.h5`` continue a run in its own file;
the run keeps its configuration, so a key given on the command line that differs from
the stored run (and from the command's default) is refused in one line. ``device.*``,
``progress`` and ``output`` may be given; the length key (``sweeps``, ``steps``) may grow.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from spinsim.config.checks import plain
from spinsim.config.composition import compose
from spinsim.errors import ConfigError

FREE_KEYS = ("resume", "progress", "output", "device", "hydra")


def resumed_config(command: str, cfg: DictConfig, stored: DictConfig, path: str, length: str) -> DictConfig:
    """The stored run's config with ``length`` (never shorter), ``progress`` and ``device.*``
    from ``cfg`` where it sets them; ``ConfigError`` for any other key that ``cfg`` sets away
    from the command's default and the stored run's value."""
    defaults = compose(command, [])
    given = _flat(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    default = _flat(OmegaConf.to_container(defaults, resolve=True, enum_to_str=True))
    old = _flat(OmegaConf.to_container(stored, resolve=True, enum_to_str=True))
    allowed = (*FREE_KEYS, length)
    for key, value in given.items():
        if key.split(".")[0] in allowed:
            continue
        if value != default.get(key) and value != old.get(key):
            raise ConfigError(
                key, value,
                f"a resumed run keeps its configuration ({key}={old.get(key)} in {path}); "
                f"only {length} may grow",
            )  # fmt: skip
    n = plain(cfg[length]) if plain(cfg[length]) != default.get(length) else plain(stored[length])
    if n < plain(stored[length]):
        raise ConfigError(length, n, f"at least the run's own {plain(stored[length])} when resuming it")
    device = {k: v for k, v in given.items() if k.startswith("device.") and v != default.get(k)}
    update: dict[str, Any] = {length: n, "progress": plain(cfg.progress), "resume": None, "output": str(path)}
    merged = OmegaConf.merge(stored, update)
    for key, value in device.items():
        OmegaConf.update(merged, key, value)
    return merged


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}
