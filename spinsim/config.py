"""The configuration schema: structured-config dataclasses registered with Hydra.

Every YAML option in ``conf/`` (installed as the package ``spinsim.conf``)
extends one of these dataclasses through its defaults list, so a misspelt key
or a value of the wrong type is rejected when the config is composed, before
anything runs. Each command has one primary config (``conf/<command>.yaml``)
typed by a dataclass here (``SimulateConfig`` for ``simulate``).

Values that a type cannot express (a positive temperature, a lattice size the
colouring can handle) are checked where they are used and reported as
:class:`spinsim.errors.ConfigError`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from enum import Enum
from importlib import resources
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class LatticeName(Enum):
    chain = "chain"
    square = "square"
    triangular = "triangular"
    honeycomb = "honeycomb"
    cubic = "cubic"


class Boundary(Enum):
    periodic = "periodic"
    open = "open"


class CouplingKind(Enum):
    uniform = "uniform"  # J_ij = J on every bond
    pm = "pm"  # J_ij = +J or -J with probability 1/2 each (the +-J spin glass)
    gaussian = "gaussian"  # J_ij ~ Normal(0, J^2) (the Gaussian spin glass)


class DeviceName(Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"  # cuda when available, else cpu


class EngineName(Enum):
    auto = "auto"  # the fast engine where it supports the config, else the reference
    reference = "reference"  # the torch reference (convolutions, differentiable)
    fast = "fast"  # compiled kernels (CPU: numba, CUDA: triton); an error where unsupported


class CPMLayout(Enum):
    aggregate = "aggregate"  # square (cubic) cells packed in a centred block
    scatter = "scatter"  # single-site cells at random positions in a centred disc


class InitialState(Enum):
    random = "random"  # infinite temperature: every spin uniform over its states
    ordered = "ordered"  # zero temperature ferromagnet: every spin in state 0 (Ising: +1)


def _key(default: Any, help: str) -> Any:
    """A dataclass field carrying its one-line help (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class LatticeConfig:
    name: LatticeName = _key(MISSING, "lattice geometry")
    size: Any = _key(32, "linear size L (same in every direction) or a list, one per direction")
    boundary: Boundary = _key(Boundary.periodic, "periodic (torus) or open (free edges)")


@dataclass
class ModelConfig:
    """Base of every model option; ``name`` selects the Hamiltonian."""

    name: str = _key(MISSING, "which Hamiltonian")


@dataclass
class SpinModelConfig(ModelConfig):
    J: float = _key(1.0, "coupling scale (J > 0 ferromagnetic)")
    h: float = _key(0.0, "external field")
    couplings: CouplingKind = _key(CouplingKind.uniform, "uniform, pm (+-J glass) or gaussian")
    couplings_seed: int = _key(0, "seed of the random couplings (pm, gaussian)")


@dataclass
class IsingConfig(SpinModelConfig):
    name: str = "ising"


@dataclass
class PottsConfig(SpinModelConfig):
    name: str = "potts"
    q: int = _key(3, "number of Potts states, q >= 2")


@dataclass
class CPMConfig(ModelConfig):
    """The cellular Potts model (spinsim.models.cpm). Per-type lists have one entry
    per cell type after the medium; ``contact`` covers every type, the medium first."""

    name: str = "cpm"
    types: List[str] = _key(["medium", "light", "dark"], "type names, the medium (cell id 0) first")
    cells: List[int] = _key([18, 18], "number of cells of each type after the medium")
    contact: Any = _key(
        [[0.0, 16.0, 16.0], [16.0, 14.0, 11.0], [16.0, 11.0, 2.0]],
        "contact energies J: a symmetric table over all types, the medium first",
    )
    contact_scale: float = _key(1.0, "factor on every contact energy (Neural CPM code: 0.25)")
    target_area: Any = _key(25.0, "target area A: a number, or one per cell type")
    cell_target_area: Optional[List[float]] = _key(None, "one target area per cell (overrides target_area)")
    lambda_area: Any = _key(1.0, "area multiplier lambda_V: a number, or one per cell type")
    target_perimeter: Any = _key(0.0, "target perimeter P: a number, or one per cell type")
    lambda_perimeter: Any = _key(0.0, "perimeter multiplier lambda_P (0: no perimeter term)")
    potential: Optional[str] = _key(None, "external potential phi: array file (.npy, .npz, .txt, .csv)")
    potential_coupling: Any = _key(0.0, "mu: coupling to phi, a number or one per cell type")
    neighbourhood: int = _key(2, "energy neighbourhood order 1-4 (square: 4, 8 = Moore, 12, 20 sites)")
    keep_cells: bool = _key(False, "reject copies that would remove a cell's last site")
    layout: CPMLayout = _key(CPMLayout.aggregate, "initial cells: aggregate or scatter")
    layout_cell_size: Optional[int] = _key(None, "aggregate: side of the square cells (default: sqrt(A))")
    layout_radius: Optional[float] = _key(None, "scatter: disc radius (default: smallest size / 4)")


@dataclass
class SamplerConfig:
    name: str = _key(MISSING, "update rule")


class Discretize(Enum):
    step = "step"  # relaxed chain; step function at the end, no gradient through it (the paper)
    straight_through = "straight_through"  # relaxed chain; step at the end, identity gradient
    every_sweep = "every_sweep"  # straight-through step after every colour update


@dataclass
class RelaxedMetropolisConfig(SamplerConfig):
    name: str = "relaxed_metropolis"
    alpha: float = _key(3.0, "sharpness of the logistic accept step (alpha -> inf: Metropolis)")
    discretize: Discretize = _key(
        Discretize.every_sweep, "step, straight_through (at the end of a chain) or every_sweep"
    )


@dataclass
class WolffConfig(SamplerConfig):
    name: str = "wolff"
    clusters: Optional[int] = _key(None, "clusters per sweep per replica (null: calibrated to ~N sites)")
    calibration: int = _key(50, "sweeps that calibrate the clusters per sweep (with clusters=null)")


@dataclass
class CPMSamplerConfig(SamplerConfig):
    copy_neighbourhood: Optional[int] = _key(None, "neighbourhood order copied from (null: the model's)")


@dataclass
class DeviceConfig:
    name: DeviceName = _key(DeviceName.auto, "cpu, cuda or auto")
    threads: int = _key(0, "CPU threads for torch (0: torch's default)")


@dataclass
class SimulateConfig:
    model: ModelConfig = MISSING
    lattice: LatticeConfig = MISSING
    sampler: SamplerConfig = MISSING
    device: DeviceConfig = MISSING
    temperature: Any = _key(2.269, "k_B T in units of J: a number, or a list (each gets `batch` replicas)")
    batch: int = _key(1, "independent replicas per temperature")
    sweeps: int = _key(1000, "sweeps after thermalization (one update attempt per site each)")
    thermalize: int = _key(100, "first sweeps, left out of the summary statistics")
    measure_every: int = _key(1, "sweeps between measurements")
    snapshot_every: int = _key(100, "sweeps between stored lattices (0: none)")
    seed: int = _key(0, "seed of the run's random numbers")
    exchange_every: int = _key(
        0, "parallel tempering: sweeps between exchanges of neighbouring temperatures (0: off)"
    )
    init: InitialState = _key(InitialState.random, "initial state: random or ordered")
    output: str = _key("simulate.h5", "HDF5 file; a relative path lands in the run directory")
    progress: bool = _key(True, "show a progress bar (plain lines when not on a terminal)")
    engine: EngineName = _key(
        EngineName.auto, "auto (fast where supported), reference (torch) or fast (compiled kernels)"
    )


@dataclass
class BenchConfig:
    device: DeviceConfig = MISSING
    cases: Any = _key("default", "case names (a list), default (the paper's Table III sizes) or all")
    engines: Any = _key(["reference", "fast"], "engine kinds to time: reference, fast")
    repeats: int = _key(5, "timed repeats per engine (the median is reported)")
    reference_repeats: int = _key(3, "timed repeats of the (slow) reference engine")
    min_seconds: float = _key(0.2, "least duration of one timed repeat (steps double until reached)")
    output: str = _key("bench.json", "results file (JSON); a relative path lands in the run directory")


@dataclass
class CollectConfig:
    path: str = _key(MISSING, "a sweep folder (searched recursively for run files) or one run file")
    output: Any = _key(None, "folder for table.h5, table.csv, curves.png (null: <DIR>/collect)")
    bootstrap: int = _key(2000, "resamples for the uncertainty of the Binder crossings")
    seed: int = _key(0, "seed of the bootstrap resamples")


@dataclass
class RenderConfig:
    path: str = _key(MISSING, "the run file (.h5) to draw")
    replicas: Any = _key(None, "replica indices (null: the first replica of each temperature)")
    steps: Any = _key(None, "snapshot steps for the grid and GIF (null: 6 for the grid, all for the GIF)")
    columns: int = _key(6, "snapshot columns in the grid when steps is null")
    fps: float = _key(10.0, "frames per second of the GIF")
    scale: int = _key(0, "pixels per lattice site (0: about 256 pixels per lattice)")
    output: Any = _key(None, "output folder (null: <run folder>/<run name>_render)")


class Loss(Enum):
    l2 = "l2"  # the paper's ||t - x||^2 / N
    l2_up_to_flip = "l2_up_to_flip"  # min(||t - x||^2, ||t + x||^2) / N


class GroundStateMethod(Enum):
    anneal = "anneal"  # simulated annealing (Metropolis, T lowered linearly)
    gradient = "gradient"  # gradient descent on relaxed spins with quantised updates
    dmc = "dmc"  # differentiable Monte Carlo: Monte Carlo moves plus gradient steps


@dataclass
class TaskConfig:
    name: str = _key(MISSING, "what to optimise")


@dataclass
class CouplingsTaskConfig(TaskConfig):
    name: str = "couplings"
    target: str = _key("stripes", "stripes, checkerboard, disc, or the path of an image file")
    width: int = _key(4, "stripe width and checkerboard block size, in sites")
    radius: float = _key(0.3, "disc radius as a fraction of the smaller lattice side")
    invert: bool = _key(False, "swap +1 and -1 in the target (images: white is +1)")
    temperature: float = _key(0.9, "k_B T of the chains, in units of J")
    chain_sweeps: int = _key(20, "relaxed Metropolis sweeps per chain and optimisation step")
    backprop_sweeps: int = _key(1, "differentiate through the last k sweeps of a chain (0: all)")
    loss: Loss = _key(
        Loss.l2_up_to_flip,
        "l2 (the paper) or l2_up_to_flip (the model cannot tell a pattern from its negative)",
    )  # noqa: E501
    learn_field: bool = _key(False, "also learn a field h per site (the paper: no field)")


@dataclass
class GroundStateTaskConfig(TaskConfig):
    name: str = "ground_state"
    method: GroundStateMethod = _key(GroundStateMethod.dmc, "anneal, gradient or dmc")
    T_start: float = _key(3.0, "temperature of the first sweep (anneal, dmc)")
    T_end: float = _key(0.01, "temperature of the last sweep, lowered linearly (anneal, dmc)")


@dataclass
class OptimizerConfig:
    name: str = _key(MISSING, "which optimiser")
    lr: float = _key(1e-3, "learning rate")


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    beta1: float = _key(0.9, "decay of the first-moment average")
    beta2: float = _key(0.999, "decay of the second-moment average")
    eps: float = _key(1e-8, "added to the denominator")


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    momentum: float = _key(0.0, "momentum factor (0: plain gradient descent)")


@dataclass
class OptimizeConfig:
    model: ModelConfig = MISSING
    lattice: LatticeConfig = MISSING
    sampler: SamplerConfig = MISSING
    device: DeviceConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    task: TaskConfig = MISSING
    batch: int = _key(16, "chains per optimisation step (couplings) or independent runs (ground_state)")
    steps: int = _key(1000, "optimisation steps (couplings) or sweeps (ground_state)")
    measure_every: int = _key(1, "steps between recorded observables")
    snapshot_every: int = _key(50, "steps between stored states and couplings (0: none)")
    checkpoint_every: int = _key(100, "steps between checkpoints (0: none)")
    seed: int = _key(0, "seed of the run's random numbers")
    resume: Optional[str] = _key(None, "checkpoint file to continue from (a new run file is written)")
    output: str = _key("optimize.h5", "HDF5 file; a relative path lands in the run directory")
    progress: bool = _key(True, "show a progress bar (plain lines when not on a terminal)")


# The primary schema of each command, by command name.
SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "optimize": OptimizeConfig,
    "collect": CollectConfig,
    "render": RenderConfig,
    "bench": BenchConfig,
}

# Schemas of group options, by group and option name; conf/<group>/<option>.yaml
# lists /schema/<group>/<option> first in its defaults.
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"ising": IsingConfig, "potts": PottsConfig, "cpm": CPMConfig},
    "lattice": {name.value: LatticeConfig for name in LatticeName},
    "sampler": {
        "metropolis": SamplerConfig,
        "heat_bath": SamplerConfig,
        "cpm_sequential": CPMSamplerConfig,
        "cpm_parallel": CPMSamplerConfig,
        "relaxed_metropolis": RelaxedMetropolisConfig,
        "wolff": WolffConfig,
        "swendsen_wang": SamplerConfig,
    },
    "device": {name.value: DeviceConfig for name in DeviceName},
    "optimizer": {"adam": AdamConfig, "sgd": SGDConfig},
    "task": {"couplings": CouplingsTaskConfig, "ground_state": GroundStateTaskConfig},
}

_registered = False


def register() -> None:
    """Register the schemas and the help resolvers with Hydra (idempotent)."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema)
    OmegaConf.register_new_resolver("spinsim_groups", _help_groups, replace=True)
    OmegaConf.register_new_resolver("spinsim_keys", _help_keys, replace=True)
    OmegaConf.register_new_resolver("spinsim_usage", _help_usage, replace=True)
    OmegaConf.register_new_resolver("spinsim_examples", _help_examples, replace=True)
    _registered = True


def compose(command: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<command>.yaml`` with overrides, as the command line does
    (also from inside a running spinsim command, whose Hydra already searches ``conf/``)."""
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
    from spinsim.cli import COMMANDS

    return COMMANDS[command].usage


def _help_examples(command: str) -> str:
    from spinsim.cli import COMMANDS

    return "\n".join(f"  {example}" for example in COMMANDS[command].examples)


def _help_keys(command: str) -> str:
    schema = SCHEMAS[command]
    rows = [(f.name, f.metadata["help"]) for f in fields(schema) if "help" in f.metadata]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {text}" for name, text in rows)
