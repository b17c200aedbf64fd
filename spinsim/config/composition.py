"""Hydra registration and composition: the schemas, the ``--help`` resolvers, ``compose``.

:func:`register` stores every schema of :mod:`spinsim.config.schema` in Hydra's
ConfigStore (``<command>_schema`` and ``schema/<group>/<option>``), so that the
YAML options in ``spinsim/conf/`` extend them. :func:`compose` composes a
command's config with overrides as the command line does, for tests, notebooks
and code that builds runs.
"""

from __future__ import annotations

from dataclasses import fields
from importlib import resources
from typing import Mapping, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from spinsim.config.model_schemas import MODEL_SCHEMAS
from spinsim.config.schema import GROUP_SCHEMAS, SCHEMAS

_registered = False
# (usage line, examples) per command, for the --help page; given by the command line.
_usage: dict[str, tuple[str, Sequence[str]]] = {}


def register(usage: Mapping[str, tuple[str, Sequence[str]]] | None = None) -> None:
    """Register the schemas and the help resolvers with Hydra (idempotent).

    ``usage``: per command its usage line and examples, shown by ``--help``
    (the command line passes them; a notebook's ``compose`` needs none).
    """
    global _registered
    if usage:
        _usage.update(usage)
    if _registered:
        return
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    groups = {**GROUP_SCHEMAS, "model": MODEL_SCHEMAS}
    for group, options in groups.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema)
    OmegaConf.register_new_resolver("spinsim_groups", _help_groups, replace=True)
    OmegaConf.register_new_resolver("spinsim_keys", _help_keys, replace=True)
    OmegaConf.register_new_resolver("spinsim_usage", _help_usage, replace=True)
    OmegaConf.register_new_resolver("spinsim_examples", _help_examples, replace=True)
    _registered = True


def compose(command: str = "simulate", overrides: Sequence[str] | None = None) -> DictConfig:
    """Compose ``conf/<command>.yaml`` with Hydra overrides, as the command line does, for
    notebooks, tests and code that builds runs (also from inside a running spinsim command,
    whose Hydra already searches ``conf/``)::

        cfg = spinsim.compose("simulate", ["model=potts", "temperature=0.9"])
    """
    overrides = list(overrides or [])
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=command, overrides=list(overrides))
    with initialize_config_module(config_module="spinsim.conf", version_base="1.3"):
        return hydra_compose(config_name=command, overrides=list(overrides))


def command_groups(command: str) -> set[str]:
    """The config groups in the defaults list of ``conf/<command>.yaml`` (Hydra's own excluded)."""
    primary = OmegaConf.create(resources.files("spinsim.conf").joinpath(f"{command}.yaml").read_text())
    groups = set()
    for entry in primary.get("defaults", []):
        if isinstance(entry, DictConfig):
            groups.update(k for k in entry if not k.startswith(("override ", "hydra/")))
    return groups


def group_options(command: str | None = None) -> dict[str, list[str]]:
    """The config groups shipped in ``conf/`` and the options of each
    (only the groups ``command`` composes when given)."""
    root = resources.files("spinsim.conf")
    wanted = command_groups(command) if command in SCHEMAS else None
    groups = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if wanted is not None and entry.name not in wanted:
            continue
        if entry.is_dir() and entry.name not in ("hydra", "__pycache__"):
            options = sorted(f.name[: -len(".yaml")] for f in entry.iterdir() if f.name.endswith(".yaml"))
            if options:
                groups[entry.name] = options
    return groups


def _help_groups(command: str) -> str:
    """The config groups of ``command`` and their options."""
    rows = [f"  {g}: {', '.join(opts)}" for g, opts in group_options(command).items()]
    return "\n".join(rows) if rows else "  (none)"


def _help_usage(command: str) -> str:
    return _usage[command][0] if command in _usage else f"spinsim {command} [key=value ...]"


def _help_examples(command: str) -> str:
    return "\n".join(f"  {example}" for example in _usage.get(command, ("", ()))[1])


def _help_keys(command: str) -> str:
    schema = SCHEMAS[command]
    rows = [(f.name, f.metadata["help"]) for f in fields(schema) if "help" in f.metadata]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {text}" for name, text in rows)
