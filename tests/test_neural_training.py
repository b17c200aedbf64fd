"""Contrastive divergence (resume bit for bit, observables, options), augmentation, the Table 1 metric."""

from __future__ import annotations

import io

import pytest
import torch
from neural_cpm_states import blob_state, single_thread  # noqa: F401

from spinsim.models.cpm.cellsort import CellSortHamiltonian
from spinsim.models.cpm.closure import ClosureHamiltonian
from spinsim.models.cpm.state import permute_types
from spinsim.training import ContrastiveDivergence, rotate_states
from spinsim.training.metrics import cellsort_vector, parameter_errors


def data(n=6, shape=(18, 18), cells=6, seed=0):
    s = blob_state(n, shape, cells, 7.0, seed=seed)
    return s.ids, s.types


def trainer(kind, seed=0, **options):
    ids, types = data()
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)  # the networks' initial weights come from torch's global generator
    if kind == "cellsort":
        h = CellSortHamiltonian(target_area=20.0, learn_target_area=True, generator=g)
    else:
        h = ClosureHamiltonian(
            target_area=20.0, neural=dict(dims=(4, 4), pools=(3, 1), readout=4), generator=g
        )
    settings = dict(batch=3, sampler_mcs=0.25, proposals=6, p_reset=0.5, permute_types=True, reg=1e-3,
                    ema=0.9, grad_clip=0.5, rotate="uniform", lr=0.01, seed=seed)  # fmt: skip
    settings.update(options)
    return ContrastiveDivergence(h, ids, types, **settings)


def snapshot(cd):
    return {
        "params": [p.detach().clone() for p in cd.hamiltonian.parameters()],
        "ema": [p.detach().clone() for p in cd.ema_model.parameters()] if cd.ema_model is not None else [],
        "chains": cd.chains.ids.clone(),
        "types": cd.chains.types.clone(),
        "measure": cd.measure(),
    }


def assert_identical(a, b):
    for x, y in zip(a["params"] + a["ema"], b["params"] + b["ema"]):
        assert torch.equal(x, y)
    assert torch.equal(a["chains"], b["chains"]) and torch.equal(a["types"], b["types"])
    assert a["measure"].keys() == b["measure"].keys()
    for k in a["measure"]:
        assert torch.equal(a["measure"][k], b["measure"][k]), k


@pytest.mark.parametrize("kind", ["cellsort", "closure"])
def test_resume_from_a_checkpoint_is_bit_for_bit_one_run(kind):
    whole = trainer(kind)
    whole.advance(6)
    first = trainer(kind)
    first.advance(3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = trainer(kind, seed=99)  # a different seed: everything must come from the checkpoint
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    resumed.advance(3)
    assert_identical(snapshot(whole), snapshot(resumed))
    # and the run did move: parameters changed, chains differ from the data they started from
    fresh = trainer(kind)
    assert any(
        not torch.equal(p, q) for p, q in zip(fresh.hamiltonian.parameters(), whole.hamiltonian.parameters())
    )


def test_measure_and_frames():
    cd = trainer("closure", optimizer="sgd", momentum=0.5, ema=0.0, rotate="quarter")
    cd.advance(2)
    m = cd.measure()
    assert m["contact"].shape == (3, 3) and m["loss"].shape == (1,) and m["energy_data"].shape == (3,)
    for key in ("lambda_area", "target_area", "w_symbolic", "w_neural", "grad_norm", "acceptance", "step"):
        assert key in m
    assert 0 < float(m["acceptance"].mean()) <= 1 and float(m["step"]) == 2
    torch.testing.assert_close(m["contact"], m["contact"].T)
    f = cd.frames()
    assert f["chains"].dtype == torch.int16 and f["chains"].shape == (3, 18, 18)
    assert f["chain_types"].dtype == torch.int8
    assert cd.evaluated_model() is cd.hamiltonian
    assert trainer("cellsort").evaluated_model() is not None


def test_rotations_by_right_angles_are_exact_and_permutations_keep_type_counts():
    s = blob_state(4, (12, 12), 8, 5.0, seed=2)
    ids = s.ids
    quarter = rotate_states(ids, torch.tensor([0.0, 90.0, 180.0, 270.0]))
    assert torch.equal(quarter[0], ids[0])
    assert torch.equal(quarter[2, 0], torch.rot90(ids[2, 0], 2))
    assert torch.equal(quarter[1, 0], torch.rot90(ids[1, 0], -1))
    assert torch.equal(quarter[3, 0], torch.rot90(ids[3, 0], 1))
    back = rotate_states(rotate_states(ids, torch.full((4,), 37.0)), torch.full((4,), -37.0))
    assert (back != ids).float().mean() < 0.1  # nearest neighbour: nearly, not exactly
    p = permute_types(s.types, torch.Generator().manual_seed(0))
    assert (p[:, 0] == 0).all() and not torch.equal(p, s.types)
    for b in range(4):
        assert torch.equal(torch.bincount(p[b], minlength=3), torch.bincount(s.types[b], minlength=3))


def test_table1_metric():
    true = cellsort_vector([[0.0, 2.5, 1.0], [2.5, 1.0, 4.5], [1.0, 4.5, 1.0]], 0.5)
    assert true.tolist() == [0.5, 0.0, 2.5, 1.0, 1.0, 4.5, 1.0]
    learned = 2.0 * true + torch.tensor([0.0, 0.0, 0.02, 0.0, 0.0, 0.0, -0.02])
    e = parameter_errors(learned, true)
    s = float(learned @ true / (true @ true))  # 2.001
    assert abs(e["scale"] - s) < 1e-12 and abs(e["temperature"] - 1 / s) < 1e-12
    assert abs(e["rmse_t1"] - float((learned - true).norm())) < 1e-12
    assert e["rmse_tstar"] < 0.02 and abs(e["residual_tstar"] - e["scale"] * e["rmse_tstar"]) < 1e-12
    assert abs(e["log10_rmse_t1"] - torch.log10((learned - true).norm()).item()) < 1e-12
    with pytest.raises(ValueError):
        parameter_errors(-true, true)


def test_symbolic_parameters_take_their_own_learning_rate():
    """``symbolic_lr``: the closure's symbolic parameters (lambda, contacts, V*, the weights) in
    an Adam group of their own. Adam's first step moves every parameter with a nonzero gradient
    by its group's learning rate (to within eps), so the first step shows the split."""
    from spinsim.models.cpm.registry import parameter_groups

    cd = trainer("closure", symbolic_lr=0.2, lr=0.001, grad_clip=0.0, ema=0.0)
    h = cd.hamiltonian
    symbolic, network = parameter_groups(h)
    assert {id(p) for p in network} == {id(p) for p in h.neural.parameters()}
    assert {id(p) for p in symbolic} == {id(p) for p in h.parameters()} - {id(p) for p in network}
    assert any(p is h.symbolic.lambda_raw for p in symbolic) and any(p is h.weight_symbolic for p in symbolic)
    before = [p.detach().clone() for p in h.parameters()]
    cd.advance(1)
    moved = {id(p): (p.detach() - b).abs().max().item() for p, b in zip(h.parameters(), before)}
    assert max(moved[id(p)] for p in network) <= 0.001 * 1.001
    assert abs(moved[id(h.symbolic.lambda_raw)] - 0.2) < 1e-3
    assert abs(moved[id(h.weight_symbolic)] - 0.2) < 1e-3
    with pytest.raises(ValueError, match="symbolic_lr"):
        trainer("closure", symbolic_lr=0.0)
