"""Site potentials of the Neural CPM data sets (spinsim.models.cpm.potentials) and their config
keys: the distance transform against brute force, digit potentials (scikit-learn digits, image
files), the drift wells' values, per-replica digits through `spinsim simulate`'s set-up, and bad
input as one-line errors."""

import numpy as np
import pytest
import torch

import spinsim
from spinsim.commands import simulate
from spinsim.config.setup import build_simulation
from spinsim.errors import ConfigError
from spinsim.lattice import Lattice
from spinsim.models.cpm.potentials import (
    digit_potential,
    distance_transform,
    drift_wells,
    mnist_frame,
    sklearn_digit_potentials,
    sklearn_digits,
)


def test_distance_transform_is_the_exact_euclidean_distance():
    rng = np.random.default_rng(0)
    for shape, density in (((9, 13), 0.1), ((20, 7), 0.02), ((5, 5), 0.5)):
        mask = rng.random(shape) < density
        mask[0, 0] = True
        ink = np.argwhere(mask)
        grid = np.indices(shape).reshape(2, -1).T
        brute = np.sqrt(((grid[:, None, :] - ink[None, :, :]) ** 2).sum(-1)).min(1).reshape(shape)
        np.testing.assert_allclose(distance_transform(mask), brute, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="no pixel at or above half intensity"):
        distance_transform(np.zeros((4, 4), dtype=bool))


def test_digit_potential_is_zero_on_the_digit_and_grows_away_from_it():
    image = np.zeros((10, 10))
    image[3:7, 4:6] = 200.0  # ink (>= 255 / 2)
    image[0, 0] = 100.0  # below half intensity: background
    phi = digit_potential(image, (50, 50), full_scale=255.0)
    assert phi.shape == (50, 50) and (phi >= 0).all()
    assert phi[22:28, 23:27].max() == 0.0  # the middle of the bar (pixels 4-5, 5 lattice sites each)
    # far corner: (0, 0) is sqrt(3^2 + 4^2) = 5 image pixels from the bar's corner (3, 4)
    assert phi[0, 0] == pytest.approx(5.0, abs=0.35)
    assert phi[0, 0] > phi[10, 10] > phi[20, 22]


def test_scikit_learn_digits_in_the_mnist_frame():
    images, labels = sklearn_digits()
    assert images.shape == (1797, 8, 8) and labels[:10].tolist() == list(range(10))
    framed = mnist_frame(images[0])
    assert framed.shape == (28, 28)
    assert np.abs(framed[:4]).max() == 0 and np.abs(framed[:, 24:]).max() == 0  # the 4-pixel margin
    phi, lab = sklearn_digit_potentials([0, 1, 0], (100, 100))
    assert lab.tolist() == [0, 1, 0] and phi.shape == (3, 100, 100)
    np.testing.assert_array_equal(phi[0], phi[2])
    # the potential's zero set covers the ink of the digit, scaled into the 20x20 box (4..24 of 28)
    box = (phi[1] == 0)[15:85, 15:85]
    assert 0.05 < box.mean() < 0.5 and (phi[1] == 0)[:10].sum() == 0
    assert phi.max() > 8  # corners: about 10 MNIST pixels from the digit


def test_drift_wells_values():
    lat = Lattice("square", [21, 41], colourable=False)  # centre (10, 20)
    U = drift_wells(lat, ["none", "band", "poles"], [0.0, 2.0, 0.5], axis=-1, pole_distance=10)
    assert U.shape == (3, 21, 41) and (U[0] == 0).all()
    assert U[1, 4, 20] == 0 and U[1, 0, 25] == pytest.approx(10.0) and U[1, 7, 0] == pytest.approx(40.0)
    assert U[2, 10, 10] == 0 and U[2, 10, 30] == 0  # the two poles
    assert U[2, 13, 14] == pytest.approx(0.5 * 5.0)  # 3-4-5 from the pole (10, 10)
    assert U[2, 10, 20] == pytest.approx(0.5 * 10.0)  # the centre: 10 from either pole
    assert U[2, 10, 0] == pytest.approx(0.5 * 10.0)  # periodic: the left pole, not 30 away
    flat = drift_wells(lat, ["none", "band", "poles"], [0.0, 2.0, 0.5], -1, 10, band_width=3, pole_radius=2)
    assert flat[1, 0, 23] == 0 and flat[1, 0, 25] == pytest.approx(4.0)  # |5| - 3 = 2, times 2
    assert flat[2, 12, 10] == 0 and flat[2, 10, 15] == pytest.approx(0.5 * 3.0)
    rows = drift_wells(lat, ["none", "band", "none"], [0, 1.0, 0], axis=0)
    assert rows[1, 0, 7] == pytest.approx(10.0) and rows[1, 10, 40] == 0
    with pytest.raises(ValueError, match="pole distance"):
        drift_wells(lat, ["none", "poles", "none"], [0, 1.0, 0], -1, pole_distance=25)


def compose_mnist(tmp_path, *overrides):
    return spinsim.compose(
        "simulate",
        ["experiment=cellular_mnist", "progress=false", "device.threads=1", f"output={tmp_path / 'x.h5'}",
         *overrides],
    )  # fmt: skip


def test_cellular_mnist_gives_every_replica_its_own_digit(tmp_path):
    sim = build_simulation(compose_mnist(tmp_path, "batch=3", "seed=5"))
    labels, index = sim.arrays["digit_label"], sim.arrays["digit_index"]
    assert labels.shape == (3,) and index.shape == (3,)
    assert labels.tolist() == sklearn_digits()[1][index].tolist()
    assert sim.model.potential.shape == (3, 100 * 100) and sim.model.coupling.tolist() == [0.0, 0.0, 10.0]
    expected, _ = sklearn_digit_potentials(index, (100, 100))
    np.testing.assert_allclose(sim.model.potential.numpy(), expected.reshape(3, -1))
    again = build_simulation(compose_mnist(tmp_path, "batch=3", "seed=5"))
    assert again.arrays["digit_index"].tolist() == index.tolist()  # the run's seed draws them
    other = build_simulation(compose_mnist(tmp_path, "batch=3", "seed=5", "model.digit_seed=11"))
    assert other.arrays["digit_index"].tolist() != index.tolist()
    sevens = build_simulation(compose_mnist(tmp_path, "batch=4", "model.digit_classes=[1,7]"))
    assert set(sevens.arrays["digit_label"].tolist()) <= {1, 7}
    chosen = build_simulation(compose_mnist(tmp_path, "batch=2", "model.digit_index=[10,21]"))
    assert chosen.arrays["digit_index"].tolist() == [10, 21] and chosen.arrays["digit_label"].tolist() == [
        0,
        1,
    ]
    one = build_simulation(compose_mnist(tmp_path, "temperature=[1.0,1.5]", "batch=2", "model.digit_index=4"))
    assert one.arrays["digit_index"].tolist() == [4] * 4  # every replica of every temperature


def test_the_labels_are_stored_with_the_samples(tmp_path):
    cfg = compose_mnist(tmp_path, "batch=2", "sweeps=3", "measure_every=1", "model.digit_index=[3,14]")
    result = simulate.run(cfg)
    run = spinsim.load(result.path)
    assert run.parameters["digit_label"].tolist() == [3, 4]
    assert run.parameters["digit_index"].tolist() == [3, 14]
    assert run.snapshots.value.shape == (2, 2, 100, 100)  # the initial layout and the final state


def test_an_image_file_potential(tmp_path):
    from PIL import Image

    img = np.zeros((20, 20), dtype=np.uint8)
    img[5:15, 9:11] = 255
    Image.fromarray(img).save(tmp_path / "one.png")
    overrides = ["model=cpm", "lattice.size=40", "model.cells=[2,2]", "model.layout_cell_size=4",
                 f"model.potential={tmp_path / 'one.png'}", "model.potential_coupling=[0,2]"]  # fmt: skip
    sim = build_simulation(spinsim.compose("simulate", overrides))
    phi = sim.model.potential.reshape(40, 40)
    assert sim.model.potential.dim() == 1 and phi[14:26, 19:21].max() == 0 and phi[0, 0] > 5
    assert "digit_label" not in sim.arrays


def test_the_bipolar_drift_reaches_the_model(tmp_path):
    cfg = spinsim.compose("simulate", ["experiment=bipolar", f"output={tmp_path / 'x.h5'}"])
    sim = build_simulation(cfg)
    lat = Lattice("square", 149, colourable=False)
    expected = drift_wells(lat, ["none", "band", "poles"], [0, 0.3, 0.1], -1, 45.0, 10.0, 15.0)
    assert torch.equal(sim.model.drift, expected.reshape(3, -1))
    assert sim.model.potential is None and sim.arrays.keys() == {
        "cell_type",
        "type_names",
        "contact",
        "target_area",
    }
    plain = build_simulation(spinsim.compose("simulate", ["experiment=bipolar", "model.drift_strength=0"]))
    assert plain.model.drift is None


BAD = [
    (["model.digit_index=[1,2]"],
     "model.digit_index=[1,2]: an index from 0 to 1796 (every replica) or a list of 3"),
    (["model.digit_index=1797"], "model.digit_index=1797: an index from 0 to 1796"),
    (["model.digit_classes=[3,11]"], "model.digit_classes=[3,11]: null or a list of distinct digits 0-9"),
    (["model.digit_seed=-1"], "model.digit_seed=-1: must be an integer >= 0"),
    (["lattice=cubic", "lattice.size=12", "model.cells=[2,2]"],
     "model.potential=digits: digit potentials need a 2D lattice"),
    (["model.potential=missing.png"], "model.potential=missing.png: no such image file"),
    (["model.drift_target=north"], "model.drift_target=north: none, band, poles: one for every cell type"),
    (["model.drift_target=[band]"], "model.drift_target=[band]: none, band, poles"),
    (["model.drift_strength=[1]"], "model.drift_strength=[1]: a number, or a list of 2"),
    (["model.drift_axis=2"], "model.drift_axis=2: must be an integer from -2 to 1"),
    (["model.drift_pole_distance=50"], "model.drift_pole_distance=50.0: null or a number in (0, 50)"),
    (["model.drift_band_width=-1"], "model.drift_band_width=-1.0: must be a number >= 0"),
]  # fmt: skip


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_names_key_value_and_what_is_allowed(tmp_path, args, message):
    cfg = compose_mnist(tmp_path, "batch=3", "model.drift_strength=[0.1,0.1]", *args)
    with pytest.raises(ConfigError) as error:
        simulate.run(cfg)
    assert str(error.value).startswith(message), str(error.value)
    assert not (tmp_path / "x.h5").exists()
