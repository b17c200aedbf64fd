"""Parallel tempering in the fast engine's compiled loop (``advance_tempered``): the same chain as
the exchange rule written out in Python with the same uniforms, and the rule's acceptance."""

import math

import numpy as np
import pytest
import torch

from spinsim.engines.cpu.exchange import exchange_round, exchange_uniform
from spinsim.engines.cpu.families import cpu_engine
from spinsim.engines.tempering import ParallelTempering, exchange_generator
from spinsim.lattice import Lattice
from spinsim.models import Couplings, IsingModel
from spinsim.samplers import HeatBath, Metropolis

TEMPS = [0.8, 1.1, 1.5, 2.0]
LADDERS = 3

CASES = {
    # packing, model, sampler: two colours (sums counted as the sweep writes), three (a pass after)
    "pm glass square, slab": ("slab", lambda: IsingModel(Lattice("square", 6), Couplings.build(
        Lattice("square", 6), "pm", seed=2)), Metropolis()),
    "pm glass cubic, replica, heat bath": ("replica", lambda: IsingModel(Lattice("cubic", 4), Couplings.build(
        Lattice("cubic", 4), "pm", seed=3)), HeatBath()),
    "triangular in a field, one replica a word": (
        "slab1", lambda: IsingModel(Lattice("triangular", 6), Couplings.build(Lattice("triangular", 6)),
                                    field=0.2), Metropolis()),
}  # fmt: skip


def _engine(case):
    packing, make_model, sampler = CASES[case]
    model = make_model()
    T = torch.tensor(TEMPS, dtype=torch.float64).repeat_interleave(LADDERS)
    state = model.random_state(len(T), torch.Generator().manual_seed(5))
    per_word = 1 if packing == "slab1" else None
    eng = cpu_engine(model, sampler, state, 1.0 / T, seed=5, packing=packing.rstrip("1"),
                    replicas_per_word=per_word)  # fmt: skip
    return model, eng


def _wrap(model, eng, exchange_every):
    beta = 1.0 / torch.tensor(TEMPS, dtype=torch.float64)
    return ParallelTempering(eng, model.energy, beta, LADDERS, exchange_every, exchange_generator(5, "cpu"),
                             temperatures=TEMPS)  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_compiled_tempering_is_the_rule_written_out(case):
    """Sweeps, rounds and measurements in one kernel call give the states, slot map, counts and
    observables of sweeping in Python and applying the rule by hand with the same uniforms
    (and of calling ``exchange()`` between sweeps)."""
    model, eng = _engine(case)
    pt = _wrap(model, eng, 2)
    assert pt.compiled
    pt.advance(3)
    rows = pt.advance_measured(8, 3)  # exchanges after sweeps 4, 6, 8, 10; measured after 6, 9

    _, by_hand = _engine(case)
    _, twin_engine = _engine(case)
    twin = _wrap(model, twin_engine, 10**9)  # exchanges only when told
    k0, k1 = (np.uint64(k) for k in pt.exchange_key)
    P = len(TEMPS) - 1
    attempts, accepted = np.zeros(P, np.int64), np.zeros(P, np.int64)
    measured = []
    for sweep in range(1, 12):
        by_hand.advance(1)
        twin.advance(1)
        if sweep % 2 == 0:
            k = sweep // 2 - 1  # the round
            E = by_hand.energies().numpy().reshape(len(TEMPS), LADDERS)  # slot rows are in T order here
            source = np.arange(len(TEMPS) * LADDERS).reshape(len(TEMPS), LADDERS)
            for p in range(k % 2, P, 2):
                attempts[p] += LADDERS
                for r in range(LADDERS):
                    log_p = (1 / TEMPS[p] - 1 / TEMPS[p + 1]) * (E[p, r] - E[p + 1, r])
                    if log_p >= 0 or exchange_uniform(k0, k1, k, p * LADDERS + r) < math.exp(log_p):
                        source[p, r], source[p + 1, r] = source[p + 1, r], source[p, r]
                        accepted[p] += 1
            by_hand.permute_replicas(source.reshape(-1))
            twin.exchange()
        if sweep in (6, 9):
            measured.append({k: v.numpy() for k, v in by_hand.measure().items()})
            np.testing.assert_array_equal(twin.measure()["e"].numpy(), measured[-1]["e"])
    assert pt.rounds == twin.rounds == 5 and accepted.sum() > 0
    np.testing.assert_array_equal(pt.attempts.numpy(), attempts)
    np.testing.assert_array_equal(pt.accepted.numpy(), accepted)
    np.testing.assert_array_equal(twin.accepted.numpy(), accepted)
    for other in (by_hand, twin.engine):
        np.testing.assert_array_equal(eng.slot_replica, other.slot_replica)
        assert torch.equal(eng.state, other.state)
        np.testing.assert_array_equal(eng.act, other.act)
        np.testing.assert_array_equal(eng.lvl, other.lvl)
    for key in ("e", "m", "abs_m", "m2", "m4"):
        np.testing.assert_array_equal(rows[key], np.stack([m[key] for m in measured]), err_msg=key)


def test_compiled_exchange_acceptance_is_min_1_exp_dbeta_de():
    """One pair, many ladders: log p = +1 always swaps; log p = -1 swaps a fraction e^-1
    within 4 binomial standard errors; the round counts its attempts and swaps."""
    ladders = 40000
    energy = np.concatenate([np.where(np.arange(ladders) % 2 == 0, 2.0, -2.0), np.zeros(ladders)])
    slots = np.arange(2 * ladders, dtype=np.int64)
    lo, hi = slots[:ladders].reshape(1, -1).copy(), slots[ladders:].reshape(1, -1).copy()
    slot_replica = slots.copy()
    attempts, accepted = np.zeros(1, np.int64), np.zeros(1, np.int64)
    swaps = exchange_round(energy, slot_replica, lo, hi, np.array([0.5]), 0, np.uint64(3), np.uint64(4),
                           attempts, accepted)  # fmt: skip
    swapped = slot_replica[:ladders] != slots[:ladders]
    np.testing.assert_array_equal(slot_replica[ladders:][swapped], slots[:ladders][swapped])
    assert swapped[0::2].all()
    p, n = math.exp(-1.0), ladders // 2
    assert abs(swapped[1::2].mean() - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert swaps == accepted[0] == swapped.sum() and attempts[0] == ladders
    # round 1 takes the odd pairs: with one pair, none
    assert exchange_round(energy, slot_replica, lo, hi, np.array([0.5]), 1, np.uint64(3), np.uint64(4),
                          attempts, accepted) == 0 and attempts[0] == ladders  # fmt: skip


def test_exchange_uniforms_are_uniform_and_keyed():
    """The uniforms' mean and variance within 4 standard errors of 1/2 and 1/12; another key,
    round or position gives another number."""
    u = np.array([exchange_uniform(np.uint64(1), np.uint64(2), k // 1000, k % 1000) for k in range(20000)])
    assert ((u >= 0) & (u < 1)).all()
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / len(u))
    assert abs(u.var() - 1 / 12) < 4 * math.sqrt(1 / 180 / len(u))
    a = exchange_uniform(np.uint64(1), np.uint64(2), 7, 3)
    assert a != exchange_uniform(np.uint64(1), np.uint64(3), 7, 3)
    assert a != exchange_uniform(np.uint64(1), np.uint64(2), 8, 3)
    assert a != exchange_uniform(np.uint64(1), np.uint64(2), 7, 4)
