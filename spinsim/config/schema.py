"""The configuration schema: structured-config dataclasses (registered with Hydra by
:mod:`spinsim.config.composition`).

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
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING


class LatticeName(Enum):
    chain = "chain"
    square = "square"
    triangular = "triangular"
    honeycomb = "honeycomb"
    cubic = "cubic"


class Boundary(Enum):
    periodic = "periodic"
    open = "open"


class DeviceName(Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"  # cuda when available, else cpu


class EngineName(Enum):
    auto = "auto"  # the fast engine where it supports the config, else the reference
    reference = "reference"  # the torch reference (convolutions, differentiable)
    fast = "fast"  # compiled kernels (CPU: numba, CUDA: triton); an error where unsupported


class InitialState(Enum):
    random = "random"  # infinite temperature: every spin uniform over its states
    ordered = "ordered"  # zero temperature ferromagnet: every spin in state 0 (Ising: +1)


def documented(default: Any, help: str) -> Any:
    """A dataclass field carrying its one-line help (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class LatticeConfig:
    name: LatticeName = documented(MISSING, "lattice geometry")
    size: Any = documented(32, "linear size L (same in every direction) or a list, one per direction")
    boundary: Boundary = documented(Boundary.periodic, "periodic (torus) or open (free edges)")


@dataclass
class ModelConfig:
    """Base of every model option; ``name`` selects the Hamiltonian."""

    name: str = documented(MISSING, "which Hamiltonian")


@dataclass
class SamplerConfig:
    name: str = documented(MISSING, "update rule")


class Discretize(Enum):
    step = "step"  # relaxed chain; step function at the end, no gradient through it (the paper)
    straight_through = "straight_through"  # relaxed chain; step at the end, identity gradient
    every_sweep = "every_sweep"  # straight-through step after every colour update


@dataclass
class RelaxedMetropolisConfig(SamplerConfig):
    name: str = "relaxed_metropolis"
    alpha: float = documented(3.0, "sharpness of the logistic accept step (alpha -> inf: Metropolis)")
    discretize: Discretize = documented(
        Discretize.every_sweep, "step, straight_through (at the end of a chain) or every_sweep"
    )


@dataclass
class WolffConfig(SamplerConfig):
    name: str = "wolff"
    clusters: Optional[int] = documented(None, "clusters a sweep grows per replica (null: calibrated)")
    calibration: int = documented(50, "sweeps that calibrate the clusters per sweep (with clusters=null)")


@dataclass
class CPMSamplerConfig(SamplerConfig):
    copy_neighbourhood: Optional[int] = documented(
        None, "neighbourhood order copied from (null: the model's)"
    )


class NeighbourChoice(Enum):
    differing = "differing"  # a neighbour of another id, uniformly (the Neural CPM paper)
    any = "any"  # any neighbour, uniformly (the classic dynamics' proposal; same id: a no-op)


class CopyDirection(Enum):
    pull = "pull"  # the drawn site takes the neighbour's id (the Neural CPM paper's Algorithm 2)
    push = "push"  # the neighbour takes the drawn site's id (the authors' code)


class CopySite(Enum):
    any = "any"  # uniform over the lattice (the classic random-sequential dynamics)
    boundary = "boundary"  # uniform over the sites with a neighbour of another id


@dataclass
class CPMSequentialConfig(CPMSamplerConfig):
    name: str = "cpm_sequential"
    site: CopySite = documented(CopySite.any, "any (the classic dynamics) or boundary (the authors' code)")
    neighbour: NeighbourChoice = documented(
        NeighbourChoice.any, "any (classic) or differing (the authors' code)"
    )
    direction: CopyDirection = documented(CopyDirection.pull, "pull (classic) or push (the authors' code)")


@dataclass
class CPMApproxConfig(SamplerConfig):
    name: str = "cpm_approx_parallel"
    proposals: int = documented(50, "P: boundary sites that propose a copy per iteration, per replica")
    copy_neighbourhood: int = documented(2, "neighbourhood order copied from (2: Moore)")
    neighbour: NeighbourChoice = documented(
        NeighbourChoice.differing, "differing (the paper) or any (the classic proposal)"
    )
    direction: CopyDirection = documented(
        CopyDirection.push, "push (the neighbour changes: the authors' code) or pull (the drawn site)"
    )


@dataclass
class DeviceConfig:
    name: DeviceName = documented(DeviceName.auto, "cpu, cuda or auto")
    threads: int = documented(0, "CPU threads for torch (0: torch's default)")


@dataclass
class SimulateConfig:
    model: ModelConfig = MISSING
    lattice: LatticeConfig = MISSING
    sampler: SamplerConfig = MISSING
    device: DeviceConfig = MISSING
    temperature: Any = documented(
        2.269, "k_B T in units of J: a number, or a list (each gets `batch` replicas)"
    )
    batch: int = documented(1, "independent replicas per temperature")
    sweeps: int = documented(1000, "sweeps after thermalization (one update attempt per site each)")
    thermalize: int = documented(100, "first sweeps, left out of the summary statistics")
    measure_every: int = documented(1, "sweeps between measurements")
    snapshot_every: int = documented(100, "sweeps between stored lattices (0: none)")
    seed: int = documented(0, "seed of the run's random numbers")
    exchange_every: int = documented(
        0, "parallel tempering: sweeps between exchanges of neighbouring temperatures (0: off)"
    )
    init: InitialState = documented(InitialState.random, "initial state: random or ordered")
    output: str = documented("simulate.h5", "HDF5 file; a relative path lands in the run directory")
    progress: bool = documented(True, "show a progress bar (plain lines when not on a terminal)")
    engine: EngineName = documented(
        EngineName.auto, "auto (fast where supported), reference (torch) or fast (compiled kernels)"
    )
    resume: Optional[str] = documented(
        None, "continue a run file (or a multirun folder) from its last commit; sweeps= may extend it"
    )


@dataclass
class BenchConfig:
    device: DeviceConfig = MISSING
    cases: Any = documented("default", "case names (a list), default (the paper's Table III sizes) or all")
    engines: Any = documented(["reference", "fast"], "engine kinds to time: reference, fast")
    repeats: int = documented(5, "timed repeats per engine (the median is reported)")
    reference_repeats: int = documented(3, "timed repeats of the (slow) reference engine")
    min_seconds: float = documented(0.2, "least duration of one timed repeat (steps double until reached)")
    settle_seconds: float = documented(1.0, "pause after each engine timed (torch's threads spin down)")
    output: str = documented("bench.json", "results file (JSON); a relative path lands in the run directory")


@dataclass
class CollectConfig:
    path: str = documented(MISSING, "a sweep folder (searched recursively for run files) or one run file")
    output: Any = documented(None, "folder for table.h5, table.csv, curves.png (null: <DIR>/collect)")
    bootstrap: int = documented(2000, "resamples for the uncertainty of the Binder crossings")
    seed: int = documented(0, "seed of the bootstrap resamples")


@dataclass
class RenderConfig:
    path: str = documented(MISSING, "the run file (.h5) to draw")
    replicas: Any = documented(None, "replica indices (null: the first replica of each temperature)")
    steps: Any = documented(
        None, "snapshot steps for the grid and GIF (null: 6 for the grid, all for the GIF)"
    )
    columns: int = documented(6, "snapshot columns in the grid when steps is null")
    fps: float = documented(10.0, "frames per second of the GIF (and the video)")
    video: Optional[str] = documented(None, "also a video of the frames: mp4 or webm (needs imageio-ffmpeg)")
    scale: int = documented(0, "pixels per lattice site (0: about 256 pixels per lattice)")
    output: Any = documented(None, "output folder (null: <run folder>/<run name>_render)")


@dataclass
class ImportConfig:
    path: str = documented(MISSING, "label images: a TIFF / OME-TIFF stack, a .npy array or a .npz archive")
    types: Optional[str] = documented(
        None, "cell types: a CSV of id,type rows or a type image (null: one type, 'cell', for all)"
    )
    type_names: Any = documented(None, "names of the integer types 0, 1, ... (the medium's first)")
    size: Any = documented(
        None, "lattice [H, W]: crop or pad with medium about the centre (null: the images')"
    )
    downsample: int = documented(1, "k: each k x k block takes its most frequent label (1: none)")
    boundary: str = documented("periodic", "the lattice's boundary in the run file: periodic or open")
    max_cells: Optional[int] = documented(None, "refuse frames with more cells (null: no limit)")
    output: Optional[str] = documented(None, "the run file to write (null: <images folder>/<name>.h5)")


@dataclass
class ExportConfig:
    path: str = documented(MISSING, "the run file (.h5) to export")
    formats: Any = documented(
        ["tiff", "csv"], "tiff (snapshots, cell types), vtk (ParaView; the vtk extra), csv (observables)"
    )
    output: Optional[str] = documented(None, "output folder (null: <run folder>/<run name>_export)")


class EvaluateMode(Enum):
    evaluate = "evaluate"  # the Neural CPM metrics of simulated runs against a training data set
    train_classifier = "train_classifier"  # the Classifier Score's CNN, trained on a data set


@dataclass
class EvaluateConfig:
    path: str = documented(
        MISSING, "simulated runs: a run file or a folder of them (mode=train_classifier: the data set)"
    )
    mode: EvaluateMode = documented(EvaluateMode.evaluate, "evaluate (the metrics) or train_classifier")
    reference: Any = documented(
        None, "the training data: a run file, a folder or a list of them (p_volume's range, axial RMSE)"
    )
    classifier: Optional[str] = documented(
        None,
        "classifier checkpoint: read by classifier_score, written by train_classifier (OUT/classifier.pt)",
    )
    metrics: Any = documented(
        None, "p_volume, p_unfragmented, classifier_score, axial (null: every one the inputs allow)"
    )
    frame_every: int = documented(5, "p_volume, p_unfragmented: every k-th stored frame, the first included")
    volume_tolerance: float = documented(
        0.1, "p_volume: cell volumes in [min - f V*, max + f V*] of the reference's (the paper's 10%)"
    )
    max_fragmented: int = documented(
        3, "p_unfragmented: states with at most this many fragmented (or vanished) cells"
    )
    periodic_fragments: bool = documented(
        False, "p_unfragmented: count a cell's pieces across the edges of a periodic lattice (authors: no)"
    )
    dilation: int = documented(2, "p_unfragmented: sites each cell is dilated by before counting its pieces")
    polar_type: int = documented(2, "axial: the cell type whose centres give the principal (polar) axis")
    output: Any = documented(None, "output folder (null: <run folder>/<run name>_evaluate, or DIR/evaluate)")
    epochs: int = documented(30, "train_classifier: passes over the training part")
    holdout: float = documented(0.2, "train_classifier: share of the data set held out for the accuracy")
    batch_size: int = documented(64, "train_classifier: samples per gradient step")
    lr: float = documented(1e-3, "train_classifier: Adam's learning rate")
    shift: int = documented(0, "train_classifier: random circular shifts of up to this many sites (0: none)")
    seed: int = documented(0, "train_classifier: seed of the split, the weights and the minibatches")


class Loss(Enum):
    l2 = "l2"  # the paper's ||t - x||^2 / N
    l2_up_to_flip = "l2_up_to_flip"  # min(||t - x||^2, ||t + x||^2) / N


class GroundStateMethod(Enum):
    anneal = "anneal"  # simulated annealing (Metropolis, T lowered linearly)
    gradient = "gradient"  # gradient descent on relaxed spins with quantised updates
    dmc = "dmc"  # differentiable Monte Carlo: Monte Carlo moves plus gradient steps


@dataclass
class TaskConfig:
    name: str = documented(MISSING, "what to optimise")


@dataclass
class CouplingsTaskConfig(TaskConfig):
    name: str = "couplings"
    target: str = documented("stripes", "stripes, checkerboard, disc, or the path of an image file")
    width: int = documented(4, "stripe width and checkerboard block size, in sites")
    radius: float = documented(0.3, "disc radius as a fraction of the smaller lattice side")
    invert: bool = documented(False, "swap +1 and -1 in the target (images: white is +1)")
    temperature: float = documented(0.9, "k_B T of the chains, in units of J")
    chain_sweeps: int = documented(20, "relaxed Metropolis sweeps per chain and optimisation step")
    backprop_sweeps: int = documented(1, "differentiate through the last k sweeps of a chain (0: all)")
    loss: Loss = documented(
        Loss.l2_up_to_flip,
        "l2 (the paper) or l2_up_to_flip (the model cannot tell a pattern from its negative)",
    )  # noqa: E501
    learn_field: bool = documented(False, "also learn a field h per site (the paper: no field)")


@dataclass
class GroundStateTaskConfig(TaskConfig):
    name: str = "ground_state"
    method: GroundStateMethod = documented(GroundStateMethod.dmc, "anneal, gradient or dmc")
    T_start: float = documented(3.0, "temperature of the first sweep (anneal, dmc)")
    T_end: float = documented(0.01, "temperature of the last sweep, lowered linearly (anneal, dmc)")


@dataclass
class OptimizerConfig:
    name: str = documented(MISSING, "which optimiser")
    lr: float = documented(1e-3, "learning rate")
    symbolic_lr: Optional[float] = documented(
        None, "train: learning rate of the symbolic parameters (contacts, lambda, V*, weights; null: lr)"
    )


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    beta1: float = documented(0.9, "decay of the first-moment average")
    beta2: float = documented(0.999, "decay of the second-moment average")
    eps: float = documented(1e-8, "added to the denominator")


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    momentum: float = documented(0.0, "momentum factor (0: plain gradient descent)")


@dataclass
class OptimizeConfig:
    model: ModelConfig = MISSING
    lattice: LatticeConfig = MISSING
    sampler: SamplerConfig = MISSING
    device: DeviceConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    task: TaskConfig = MISSING
    batch: int = documented(16, "chains per optimisation step (couplings) or independent runs (ground_state)")
    steps: int = documented(1000, "optimisation steps (couplings) or sweeps (ground_state)")
    measure_every: int = documented(1, "steps between recorded observables")
    snapshot_every: int = documented(50, "steps between stored states and couplings (0: none)")
    checkpoint_every: int = documented(100, "steps between checkpoints (0: none)")
    seed: int = documented(0, "seed of the run's random numbers")
    resume: Optional[str] = documented(None, "checkpoint file to continue from (a new run file is written)")
    output: str = documented("optimize.h5", "HDF5 file; a relative path lands in the run directory")
    progress: bool = documented(True, "show a progress bar (plain lines when not on a terminal)")


class Rotation(Enum):
    none = "none"
    uniform = "uniform"  # U(0, 360) degrees, nearest-site (the paper's bipolar training)
    quarter = "quarter"  # 0, 90, 180 or 270 degrees (exact on a square lattice)


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    sampler: SamplerConfig = MISSING
    device: DeviceConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    data: Any = documented(
        None, "run files or folders of cellular Potts runs (a path or a list; null: the default data set)"
    )
    data_after: Optional[int] = documented(
        None, "take every snapshot at a step >= this (null: each replica's final snapshot)"
    )
    steps: int = documented(200, "training steps (one persistent contrastive divergence step each)")
    batch: int = documented(8, "chains and data states per step")
    sampler_mcs: float = documented(
        0.25, "sampler work per step, in MCS of the lattice (H W / P iterations each)"
    )
    temperature: float = documented(1.0, "temperature of the chains (the data's is not identifiable)")
    p_reset: float = documented(1.0, "probability per step that a chain restarts from a data state")
    permute_types: bool = documented(False, "permute the cell types of restarted chains")
    reg: float = documented(0.0, "lambda_reg: weight of the mean squared energies in the loss")
    ema: float = documented(0.0, "EMA decay of the saved and evaluated parameters (0: off)")
    grad_clip: float = documented(0.0, "clip the gradient norm to this (0: no clipping)")
    rotate: Rotation = documented(Rotation.none, "rotation augmentation of the data: none, uniform, quarter")
    measure_every: int = documented(1, "steps between recorded observables")
    snapshot_every: int = documented(100, "steps between stored chains (0: none)")
    checkpoint_every: int = documented(100, "steps between checkpoints (0: at the end only)")
    seed: int = documented(0, "seed of the run's random numbers (data draws, resets, sampler)")
    resume: Optional[str] = documented(
        None,
        "a train run file (.h5: continued in place from its last commit) or its checkpoint "
        "(.ckpt.pt: continued into a new run file)",
    )
    output: str = documented("train.h5", "HDF5 file; the checkpoint is <name>.ckpt.pt beside it")
    progress: bool = documented(True, "show a progress bar (plain lines when not on a terminal)")


# The primary schema of each command, by command name.
SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "optimize": OptimizeConfig,
    "train": TrainConfig,
    "collect": CollectConfig,
    "render": RenderConfig,
    "bench": BenchConfig,
    "evaluate": EvaluateConfig,
    "import": ImportConfig,
    "export": ExportConfig,
}

# Schemas of group options, by group and option name; conf/<group>/<option>.yaml
# lists /schema/<group>/<option> first in its defaults. The model group's come from
# the model families (spinsim.config.families).
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "lattice": {name.value: LatticeConfig for name in LatticeName},
    "sampler": {
        "metropolis": SamplerConfig,
        "heat_bath": SamplerConfig,
        "cpm_sequential": CPMSequentialConfig,
        "cpm_parallel": CPMSamplerConfig,
        "cpm_approx_parallel": CPMApproxConfig,
        "relaxed_metropolis": RelaxedMetropolisConfig,
        "wolff": WolffConfig,
        "swendsen_wang": SamplerConfig,
    },
    "device": {name.value: DeviceConfig for name in DeviceName},
    "optimizer": {"adam": AdamConfig, "sgd": SGDConfig},
    "task": {"couplings": CouplingsTaskConfig, "ground_state": GroundStateTaskConfig},
}
