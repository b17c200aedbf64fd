"""The digit classifier behind the Classifier Score (the Neural CPM paper's Table 2).

A small CNN reads the *type channels* of a state (one 0/1 map per cell type, the medium
left out) and predicts the digit class. The paper trained "a small CNN classifier on
the cellular MNIST dataset" without saying more; this one:

    average pool by ``pool`` (100x100 -> 50x50)
    3 x [3x3 conv (16, 32, 64 channels), ReLU, 2x2 max pool]   (50 -> 25 -> 12 -> 6)
    flatten, dropout 0.25, linear to the classes

(about 46,000 parameters at 100x100), trained with Adam (lr 1e-3) on cross entropy in
minibatches, on a random split of the data set: a ``holdout`` share is kept apart and
the accuracy on it is reported. ``shift`` > 0 trains on random circular shifts of up to
that many sites (the lattice is a torus, and a learned Hamiltonian need not put the
digit where the data generator's potential did). Seeded: the same data, seed and
thread count give the same classifier.

:func:`classifier_state` / :func:`classifier_from_state` turn a trained classifier into
plain data for a checkpoint file and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

WIDTHS = (16, 32, 64)


def type_channels(ids: np.ndarray, cell_type: np.ndarray, n_types: int) -> torch.Tensor:
    """Float ``[B, n_types - 1, H, W]``: 1 where a site's cell has type 1, 2, ... (the medium,
    type 0, left out). ``cell_type [n_ids]`` or ``[B, n_ids]``."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    table = torch.as_tensor(np.asarray(cell_type, dtype=np.int64))
    if table.dim() == 1:
        types = table[ids]
    else:
        types = torch.gather(table, 1, ids.reshape(ids.shape[0], -1)).reshape(ids.shape)
    return torch.stack([(types == t) for t in range(1, n_types)], 1).float()


def final_channels(runs: Sequence[Any]) -> torch.Tensor:
    """The type channels of the final states of every run (:class:`~spinsim.analysis.
    cpm_evaluation.Trajectories`), one batch, with as many channels as the run with most types."""
    n_types = max(len(r.type_names) for r in runs)
    return torch.cat([type_channels(r.final, r.cell_type, n_types) for r in runs])


class DigitClassifier(nn.Module):
    """The CNN of the module docstring, for type channels of ``shape``."""

    def __init__(self, channels: int, shape: Sequence[int], classes: int = 10, pool: int = 2) -> None:
        super().__init__()
        if pool < 1 or channels < 1 or classes < 2:
            raise ValueError("a classifier needs pool >= 1, at least one channel and two classes")
        self.channels, self.shape, self.classes, self.pool = (
            channels,
            tuple(int(s) for s in shape),
            classes,
            pool,
        )
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        size = [s // pool for s in self.shape]
        c = channels
        for width in WIDTHS:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, size = width, [s // 2 for s in size]
        if min(size) < 1:
            raise ValueError(f"a {'x'.join(map(str, self.shape))} lattice is too small for the classifier")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(c * size[0] * size[1], classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """``[B, classes]`` softmax class probabilities (evaluation mode)."""
        if tuple(x.shape[1:]) != (self.channels, *self.shape):
            raise ValueError(
                f"the classifier reads {self.channels} type channels of {'x'.join(map(str, self.shape))}, "
                f"got {list(x.shape[1:])}"
            )
        self.eval()
        out = [torch.softmax(self(x[i : i + batch_size]), 1) for i in range(0, len(x), batch_size)]
        return torch.cat(out).double().numpy()


@dataclass
class TrainedClassifier:
    model: DigitClassifier
    train_accuracy: float
    holdout_accuracy: float  # NaN without a held-out part
    n_train: int
    n_holdout: int
    epochs: int
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, accuracies


def accuracy(model: DigitClassifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    if not len(x):
        return float("nan")
    return float((model.probabilities(x).argmax(1) == labels.numpy()).mean())


def random_shifts(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each sample circularly shifted by its own offsets, uniform in ``[-shift, shift]`` per axis."""
    if shift <= 0:
        return x
    offsets = torch.randint(-shift, shift + 1, (len(x), 2), generator=generator)
    return torch.stack([torch.roll(s, (int(a), int(b)), (1, 2)) for s, (a, b) in zip(x, offsets)])


def train_classifier(
    x: torch.Tensor,
    labels: Sequence[int] | np.ndarray,
    *,
    classes: int = 10,
    holdout: float = 0.2,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    pool: int = 2,
    shift: int = 0,
) -> TrainedClassifier:
    """Train :class:`DigitClassifier` on type channels ``x [B, C, H, W]`` and their labels
    (0..classes-1), keeping a random ``holdout`` share apart for the reported accuracy."""
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if x.dim() != 4 or len(x) != len(labels):
        raise ValueError(f"{len(labels)} labels for type channels of shape {list(x.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be 0 to {classes - 1}")
    if not 0 <= holdout < 1:
        raise ValueError("the held-out share must be in [0, 1)")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    n_holdout = int(round(holdout * len(labels)))
    if len(labels) - n_holdout < 1:
        raise ValueError(f"{len(labels)} samples leave none to train on")
    test, train = order[:n_holdout], order[n_holdout:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(x.shape[1], x.shape[2:], classes, pool)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        history = []
        for epoch in range(epochs):
            model.train()
            perm = train[torch.randperm(len(train), generator=generator)]
            total = 0.0
            for i in range(0, len(perm), batch_size):
                idx = perm[i : i + batch_size]
                optimiser.zero_grad()
                loss = loss_fn(model(random_shifts(x[idx], shift, generator)), labels[idx])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            history.append({"epoch": epoch + 1, "loss": total / len(train)})
        history[-1]["train_accuracy"] = accuracy(model, x[train], labels[train])
        history[-1]["holdout_accuracy"] = accuracy(model, x[test], labels[test])
    last = history[-1]
    return TrainedClassifier(
        model=model, train_accuracy=last["train_accuracy"], holdout_accuracy=last["holdout_accuracy"],
        n_train=len(train), n_holdout=n_holdout, epochs=epochs, seed=seed, history=history,
    )  # fmt: skip


def classifier_state(trained: TrainedClassifier, **extra: Any) -> dict[str, Any]:
    """Plain data for a checkpoint: the weights, the architecture's sizes, the accuracies."""
    m = trained.model
    return {
        "weights": {k: v.detach().clone() for k, v in m.state_dict().items()},
        "channels": m.channels, "shape": list(m.shape), "classes": m.classes, "pool": m.pool,
        "train_accuracy": trained.train_accuracy, "holdout_accuracy": trained.holdout_accuracy,
        "n_train": trained.n_train, "n_holdout": trained.n_holdout, "epochs": trained.epochs,
        "seed": trained.seed, "loss": [h["loss"] for h in trained.history], **extra,
    }  # fmt: skip


def classifier_from_state(state: dict[str, Any]) -> DigitClassifier:
    """The classifier of :func:`classifier_state`'s data (ValueError when it is not one)."""
    try:
        model = DigitClassifier(
            int(state["channels"]), state["shape"], int(state["classes"]), int(state["pool"])
        )
        model.load_state_dict(state["weights"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"not a spinsim digit classifier ({type(error).__name__}: {error})") from None
    model.eval()
    return model
