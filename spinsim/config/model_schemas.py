"""The config schemas of the model families (``model=...``): structured-config dataclasses.

They live apart from the families (:mod:`spinsim.config.families`), which build the models and
need torch, so that composing a config (the command line, ``--help``, a config error) imports
neither torch nor the models. :data:`MODEL_SCHEMAS` lists them by ``model.name``; every family's
``schema`` is its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from spinsim.config.schema import ModelConfig, documented


class CouplingKind(Enum):
    uniform = "uniform"  # J_ij = J on every bond
    pm = "pm"  # J_ij = +J or -J with probability 1/2 each (the +-J spin glass)
    gaussian = "gaussian"  # J_ij ~ Normal(0, J^2) (the Gaussian spin glass)


@dataclass
class SpinModelConfig(ModelConfig):
    J: float = documented(1.0, "coupling scale (J > 0 ferromagnetic)")
    h: float = documented(0.0, "external field")
    couplings: CouplingKind = documented(CouplingKind.uniform, "uniform, pm (+-J glass) or gaussian")
    couplings_seed: int = documented(0, "seed of the random couplings (pm, gaussian)")


@dataclass
class IsingConfig(SpinModelConfig):
    name: str = "ising"


@dataclass
class PottsConfig(SpinModelConfig):
    name: str = "potts"
    q: int = documented(3, "number of Potts states, q >= 2")


@dataclass
class BlumeCapelConfig(SpinModelConfig):
    name: str = "blume_capel"
    D: float = documented(0.0, "crystal field D (D > 0 favours s = 0)")


class CPMLayout(Enum):
    aggregate = "aggregate"  # square (cubic) cells packed in a centred block
    scatter = "scatter"  # single-site cells at random positions in a centred disc
    data = "data"  # final states of the runs in layout_data, the cells' types permuted


@dataclass
class CPMConfig(ModelConfig):
    """The cellular Potts model (spinsim.models.cpm.classic). Per-type lists have one entry
    per cell type after the medium; ``contact`` covers every type, the medium first."""

    name: str = "cpm"
    types: List[str] = documented(["medium", "light", "dark"], "type names, the medium (cell id 0) first")
    cells: List[int] = documented([18, 18], "number of cells of each type after the medium")
    contact: Any = documented(
        [[0.0, 16.0, 16.0], [16.0, 14.0, 11.0], [16.0, 11.0, 2.0]],
        "contact energies J: a symmetric table over all types, the medium first",
    )
    contact_scale: float = documented(1.0, "factor on every contact energy (Neural CPM code: 0.25)")
    target_area: Any = documented(25.0, "target area A: a number, or one per cell type")
    cell_target_area: Optional[List[float]] = documented(
        None, "one target area per cell (overrides target_area)"
    )
    lambda_area: Any = documented(1.0, "area multiplier lambda_V: a number, or one per cell type")
    target_perimeter: Any = documented(0.0, "target perimeter P: a number, or one per cell type")
    lambda_perimeter: Any = documented(0.0, "perimeter multiplier lambda_P (0: no perimeter term)")
    potential: Optional[str] = documented(
        None,
        "external potential phi: an array file (.npy, .npz, .txt, .csv), a digit image file (.png, .jpg,"
        " ...) or `digits` (scikit-learn's digits, one per replica); images: binarised, distance transform",
    )
    potential_coupling: Any = documented(0.0, "mu: coupling to phi, a number or one per cell type")
    digit_classes: Optional[List[int]] = documented(
        None, "potential=digits: the digit classes drawn from (null: 0-9)"
    )
    digit_index: Any = documented(
        None, "potential=digits: sample indices (0-1796), one for all or one per replica (null: drawn)"
    )
    digit_seed: Optional[int] = documented(None, "potential=digits: seed of the draw (null: the run's seed)")
    drift_target: Any = documented(
        "none", "directed motion: none, band or poles, one for all or one per cell type"
    )
    drift_strength: Any = documented(0.0, "directed motion: energy per site and unit distance, per cell type")
    drift_axis: int = documented(-1, "directed motion: the axis of band and poles (-1: the last, x)")
    drift_pole_distance: Optional[float] = documented(
        None, "directed motion: poles at centre +- this along the axis (null: a quarter of its length)"
    )
    drift_band_width: float = documented(0.0, "directed motion: half-width of the band (no drift inside)")
    drift_pole_radius: float = documented(0.0, "directed motion: radius of the poles (no drift inside)")
    neighbourhood: int = documented(2, "energy neighbourhood order 1-4 (square: 4, 8 = Moore, 12, 20 sites)")
    keep_cells: bool = documented(False, "reject copies that would remove a cell's last site")
    layout: CPMLayout = documented(CPMLayout.aggregate, "initial cells: aggregate, scatter or data")
    layout_cell_size: Optional[int] = documented(
        None, "aggregate: side of the square cells (default: sqrt(A))"
    )
    layout_radius: Optional[float] = documented(None, "scatter: disc radius (default: smallest size / 4)")
    layout_data: Optional[str] = documented(
        None, "data: run file(s) or folder whose final states start the replicas"
    )
    layout_types: str = documented(
        "permuted", "data: permuted (the model's cells, types in random order) or data (each state's own)"
    )


# The network sizes a config may set (null: the class default, or the preset's).
NETWORK_KEYS = (
    "dims", "pools", "widths", "embed_kernel", "embed_stride", "readout", "mlp_blocks", "mlp",
    "nh_dim", "nh_pool", "padding", "delta_method",
)  # fmt: skip
NETWORK_HELP = (
    "network sizes (null: the default or preset's): dims, pools, widths, embed_kernel, embed_stride, "
    "readout, mlp_blocks (NH), mlp, nh_dim, nh_pool (CNN baselines), padding, "
    "delta_method (NH: fast|straightforward)"
)


class HamiltonianName(Enum):
    closure = "closure"  # Neural Hamiltonian + the cell-sorting closure (the paper's best model)
    neural = "neural"  # the Neural Hamiltonian alone
    cellsort = "cellsort"  # the learnable cell-sorting Hamiltonian (contact table, lambda, V*)
    cellsort_potential = "cellsort_potential"  # cellsort plus a learnable external potential
    cnn = "cnn"  # the paper's CNN baseline (not permutation invariant)
    nh1_cnn = "nh1_cnn"  # one NH layer, then a CNN (the paper's baseline)


class Layout(Enum):
    aggregate = "aggregate"
    scatter = "scatter"
    data = "data"


@dataclass
class NeuralCPMConfig(ModelConfig):
    """A trainable typed-CPM Hamiltonian (spinsim.models.cpm)."""

    name: str = "neural_cpm"
    hamiltonian: HamiltonianName = documented(
        HamiltonianName.closure, "closure, neural, cellsort, cellsort_potential, cnn or nh1_cnn"
    )
    preset: Optional[str] = documented(None, "the paper's NH sizes: cellular_mnist or bipolar (null: none)")
    network: Any = field(
        default_factory=lambda: {key: None for key in NETWORK_KEYS}, metadata={"help": NETWORK_HELP}
    )
    target_area: Optional[float] = documented(
        None, "V* of the symbolic part (null: the data's mean cell area)"
    )
    learn_target_area: bool = documented(False, "learn V* too")
    energy_offset: bool = documented(
        False, "a learnable constant added to the symbolic part's H (the authors' Cellsort)"
    )
    lambda_area: Optional[float] = documented(None, "initial lambda of the symbolic part (null: random)")
    init_seed: int = documented(0, "seed of the initial parameters")
    checkpoint: Optional[str] = documented(
        None, "simulate: the trained model (train.ckpt.pt or a saved model)"
    )
    types: Optional[List[str]] = documented(
        None, "simulate: type names, medium first (null: the checkpoint's)"
    )
    cells: Optional[List[int]] = documented(None, "simulate: cells per type (null: the checkpoint's)")
    layout: Layout = documented(Layout.scatter, "simulate: initial cells, aggregate, scatter or data")
    layout_cell_size: Optional[int] = documented(None, "aggregate: side of the square cells")
    layout_radius: Optional[float] = documented(None, "scatter: disc radius (default: smallest size / 4)")
    layout_data: Optional[str] = documented(
        None, "data: run file(s) or folder whose final states start the replicas"
    )
    layout_types: str = documented(
        "permuted", "data: permuted (the model's cells, types in random order) or data (each state's own)"
    )


MODEL_SCHEMAS: dict[str, type[ModelConfig]] = {
    "ising": IsingConfig,
    "potts": PottsConfig,
    "cpm": CPMConfig,
    "blume_capel": BlumeCapelConfig,
    "neural_cpm": NeuralCPMConfig,
}
