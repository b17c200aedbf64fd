"""`spinsim evaluate`: the classifier trained on generated Cellular MNIST data (held-out
accuracy above a bound: a fast 3-class variant, the full 10 classes marked slow), the metrics
of simulated runs against a data set with known answers (the initial single-site cells are out
of the volume range; a data set against itself has axial RMSE 0; the coupled generator scores
above the uncoupled one), the output files, and bad input as one-line errors."""

import csv

import h5py
import numpy as np
import pytest

import spinsim
from conftest import simulate_quiet, spinsim_cli
from spinsim.analysis.classifier import (
    DigitClassifier,
    classifier_from_state,
    classifier_state,
    random_shifts,
)
from spinsim.commands import evaluate
from spinsim.errors import ConfigError, OutputError
from spinsim.io import checkpoint

# three digit classes; the classic copy rule: 6x fewer real copy attempts an MCS than the authors'
# boundary rule (the default of experiment=cellular_mnist), which the classifier does not need
THREE = ["model.digit_classes=[0,1,7]", "sampler.site=any", "sampler.neighbour=any", "sampler.direction=pull"]


def evaluate_run(*overrides):
    return evaluate.run(spinsim.compose("evaluate", list(overrides)))


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """A 3-class data set (60 final states after 150 MCS), a classifier trained on it (30
    epochs), and two simulated runs of 6 trajectories (snapshots every 30 MCS): the generator
    itself, and the generator without the coupling to the digit. ~8 s."""
    root = tmp_path_factory.mktemp("mnist")
    data = simulate_quiet(
        root / "data.h5", "experiment=cellular_mnist", "batch=60", "sweeps=150", "seed=1", *THREE
    )
    coupled = simulate_quiet(root / "sim.h5", "experiment=cellular_mnist", "batch=6", "sweeps=150", "seed=2",
                             "snapshot_every=30", *THREE)  # fmt: skip
    free = simulate_quiet(root / "free.h5", "experiment=cellular_mnist", "batch=6", "sweeps=150", "seed=2",
                          "snapshot_every=30", "model.potential_coupling=0", *THREE)  # fmt: skip
    trained = evaluate_run(f"path={data.path}", "mode=train_classifier", f"output={root / 'clf'}")
    return {"root": root, "data": data.path, "sim": coupled.path, "free": free.path, "trained": trained}


def test_the_classifier_learns_the_digits_of_generated_data(mnist):
    trained = mnist["trained"]
    # 30 epochs on 48 samples; measured over 3 data sets x 3 seeds: 0.83-1.0 (15 epochs: 0.5-1.0);
    # chance is 1/3
    assert trained.summary["n_holdout"] == 12 and trained.summary["n_train"] == 48
    assert trained.summary["holdout_accuracy"] >= 0.6
    path = mnist["root"] / "clf" / "classifier.pt"
    assert trained.files[0] == path and (mnist["root"] / "clf" / "training.csv").is_file()
    state = checkpoint.load(path)["state"]
    assert state["holdout_accuracy"] == trained.summary["holdout_accuracy"] and state["shape"] == [100, 100]
    assert state["label_counts"][0] + state["label_counts"][1] + state["label_counts"][7] == 60
    with open(mnist["root"] / "clf" / "training.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]


def test_a_classifier_checkpoint_gives_the_same_predictions():
    import torch

    model = DigitClassifier(2, (24, 24), classes=4, pool=1)
    x = torch.rand(5, 2, 24, 24)
    state = classifier_state(type("T", (), {"model": model, "train_accuracy": 1.0, "holdout_accuracy": 0.5,
                                             "n_train": 4, "n_holdout": 1, "epochs": 1, "seed": 0,
                                             "history": [{"loss": 1.0}]})())  # fmt: skip
    np.testing.assert_allclose(classifier_from_state(state).probabilities(x), model.probabilities(x))
    with pytest.raises(ValueError, match="not a spinsim digit classifier"):
        classifier_from_state({"channels": 2})
    shifted = random_shifts(x, 3, torch.Generator().manual_seed(0))
    assert all(
        any(torch.equal(s, torch.roll(o, (a, b), (1, 2))) for a in range(-3, 4) for b in range(-3, 4))
        for s, o in zip(shifted, x)
    )


def test_evaluate_scores_the_generator_above_the_uncoupled_model(mnist):
    clf = mnist["root"] / "clf" / "classifier.pt"
    common = [f"reference={mnist['data']}", f"classifier={clf}"]
    good = evaluate_run(f"path={mnist['sim']}", *common, f"output={mnist['root'] / 'good'}")
    bad = evaluate_run(f"path={mnist['free']}", *common, f"output={mnist['root'] / 'bad'}")
    # frames at 0, 30, ..., 150: every 5th is 0 and 150; at 0 every cell is one site (volume 1)
    assert good.frames["step"].tolist() == [0, 150] and good.frames["n"].tolist() == [6, 6]
    assert good.frames["p_volume"][0] == 0.0 and good.summary["n_states"] == 12
    assert good.summary["p_volume"] == pytest.approx(good.frames["p_volume"].mean())
    assert good.frames["p_unfragmented"][0] == 1.0  # single sites are never in pieces
    assert good.summary["classifier_score"] > bad.summary["classifier_score"]
    assert good.summary["label_accuracy"] > bad.summary["label_accuracy"]
    assert 1.0 <= bad.summary["classifier_score"] <= good.summary["classifier_score"] <= 3.0
    names = {p.name for p in good.files}
    assert {"evaluate.h5", "summary.csv", "frames.csv", "variance_fractions.csv", "axial.csv", "frames.png",
            "variance_fractions.png", "classes.png"} <= names  # fmt: skip
    with h5py.File(mnist["root"] / "good" / "evaluate.h5") as f:
        assert f["summary/classifier_score"][0] == good.summary["classifier_score"]
        assert f["frames/step"][...].tolist() == [0, 150]
        assert f["variance_fractions/step"][...].tolist() == [0, 30, 60, 90, 120, 150]
        assert f["parameters"].attrs["command"] == "evaluate"


@pytest.fixture(scope="module")
def bipolar(tmp_path_factory):
    """A bipolar data set (4 final states after 1000 MCS) and an undriven run of 4 trajectories
    (snapshots every 250 MCS). ~3 s."""
    root = tmp_path_factory.mktemp("bipolar")
    data = simulate_quiet(root / "data.h5", "experiment=bipolar", "batch=4", "sweeps=1000", "seed=1")
    free = simulate_quiet(root / "free.h5", "experiment=bipolar", "batch=4", "sweeps=1000", "seed=2",
                          "snapshot_every=250", "model.drift_strength=0")  # fmt: skip
    return {"root": root, "data": data.path, "free": free.path}


def test_a_data_set_against_itself_and_an_undriven_run(bipolar):
    same = evaluate_run(f"path={bipolar['data']}", f"reference={bipolar['data']}", "volume_tolerance=0.15",
                        "frame_every=1", f"output={bipolar['root'] / 'same'}")  # fmt: skip
    assert same.summary["axial_rmse"] == 0.0
    assert same.frames["step"].tolist() == [0, 1000] and same.frames["p_volume"].tolist()[1] == 1.0
    assert same.summary["type2_fraction"] > 0.85 and same.summary["type1_fraction"] < 0.15
    free = evaluate_run(f"path={bipolar['free']}", f"reference={bipolar['data']}", "volume_tolerance=0.15",
                        f"output={bipolar['root'] / 'free'}")  # fmt: skip
    assert free.summary["axial_rmse"] > 100  # measured 451 (8 vs 20 states, 2000 MCS)
    assert free.variance_fractions["step"].tolist() == [0, 250, 500, 750, 1000]
    assert free.axial["source"].tolist() == ["simulated", "reference"]
    assert free.axial["type2_fraction"][1] == pytest.approx(same.summary["type2_fraction"])
    with open(bipolar["root"] / "free" / "variance_fractions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 250, 500, 750, 1000] and "type1_std" in rows[0]
    # no reference: p_unfragmented and the variance fractions only
    alone = evaluate_run(f"path={bipolar['free']}", f"output={bipolar['root'] / 'alone'}")
    assert "p_volume" not in alone.summary and "axial_rmse" not in alone.summary
    assert alone.summary["p_unfragmented"] == 1.0


def test_bad_input_is_one_line(mnist, bipolar, tmp_path):
    clf = mnist["root"] / "clf" / "classifier.pt"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    ising = simulate_quiet(tmp_path / "ising.h5", "lattice.size=8", "sweeps=2", "thermalize=0")
    cases = [
        ([f"path={mnist['sim']}", "metrics=[p_volume]"], "metrics=[p_volume]: p_volume needs reference="),
        ([f"path={mnist['sim']}", "metrics=[classifier_score]"],
         "metrics=[classifier_score]: classifier_score needs classifier="),
        ([f"path={mnist['sim']}", "metrics=[volume]"], "metrics=[volume]: null or a list of p_volume"),
        ([f"path={mnist['sim']}", f"classifier={tmp_path / 'junk.pt'}"],
         f"classifier={tmp_path / 'junk.pt'}: not a readable spinsim checkpoint"),
        ([f"path={bipolar['free']}", f"classifier={clf}"],
         f"classifier={clf}: reads 2 cell types on 100x100 lattices; the runs have 2 on 149x149"),
        ([f"path={ising.path}"], f"path={ising.path}: a ising run; evaluate reads cellular Potts runs"),
        ([f"path={bipolar['data']}", "mode=train_classifier"],
         f"path={bipolar['data']}: has no /parameters/digit_label to train on"),
        ([f"path={mnist['sim']}", "frame_every=0"], "frame_every=0: must be an integer >= 1"),
        ([f"path={mnist['sim']}", "volume_tolerance=-1"], "volume_tolerance=-1.0: must be a number >= 0"),
        ([f"path={mnist['sim']}", "polar_type=3"], "polar_type=3: a cell type of the runs: 1 to 2"),
        ([f"path={tmp_path / 'none.h5'}"], f"path={tmp_path / 'none.h5'}: no such file or folder"),
        ([f"path={mnist['sim']}", "reference=[]"], "reference=[]: give a run file"),
        ([f"path={tmp_path}"], f"path={tmp_path}: holds no cellular Potts run with stored snapshots"),
    ]  # fmt: skip
    for overrides, message in cases:
        with pytest.raises(ConfigError) as error:
            evaluate_run(*overrides, f"output={tmp_path / 'out'}")
        assert str(error.value).startswith(message), (overrides, str(error.value))
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        evaluate_run(f"path={mnist['sim']}", f"output={tmp_path / 'file' / 'out'}")


def test_the_command_line(mnist, tmp_path):
    out = spinsim_cli("evaluate", str(mnist["sim"]), "metrics=[p_unfragmented]", f"output={tmp_path}/e",
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "p_unfragmented" in out.stdout and (tmp_path / "e" / "frames.csv").is_file()
    out = spinsim_cli("evaluate", str(mnist["sim"]), "metrics=[p_volume]", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        "spinsim evaluate: error: metrics=[p_volume]: "
        "p_volume needs reference= (the training data's run files)"
    )
    (tmp_path / "file").write_text("")
    out = spinsim_cli("evaluate", str(mnist["sim"]), f"output={tmp_path}/file/e", cwd=tmp_path)
    assert out.returncode == 1 and "is a file, not a folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_the_classifier_on_all_ten_digits(tmp_path):
    """400 samples of all 10 classes after 300 MCS, 30 epochs; measured held-out accuracy 0.90
    (500 samples). ~45 s."""
    data = simulate_quiet(
        tmp_path / "data.h5", "experiment=cellular_mnist", "batch=400", "sweeps=300", "seed=3"
    )
    trained = evaluate_run(f"path={data.path}", "mode=train_classifier", f"output={tmp_path / 'clf'}")
    assert trained.summary["n_holdout"] == 80
    assert trained.summary["holdout_accuracy"] >= 0.75
