"""The toy densities: samplers agree with their exact log-densities, which are normalised.

Each set's density is evaluated once on a fine grid over [-5, 5]^2 (cached); the grid gives the
total mass, the entropy, and the expected counts of a 20 x 20 histogram for a chi-square test of
the sampler against `exp(log_prob)`.
"""

import functools

import numpy as np
import pytest

from tfp_flows import datasets

NAMES = sorted(datasets.TOY_DENSITIES)
LIM, CELLS, BIN = 5.0, 200, 10  # grid cells of 0.05; histogram bins of 10 x 10 cells (0.5)


@functools.cache
def _grid(name: str):
    """Log-density at the grid cell centres, `[CELLS, CELLS]` (rows: x2, columns: x1)."""
    h = 2 * LIM / CELLS
    centres = -LIM + h * (np.arange(CELLS) + 0.5)
    x1, x2 = np.meshgrid(centres, centres)
    log_p = datasets.TOY_DENSITIES[name].log_prob(np.stack([x1, x2], axis=-1))
    return log_p, h


def _grid_entropy(name: str) -> float:
    log_p, h = _grid(name)
    p = np.exp(log_p)
    return float(-np.sum(np.where(p > 0, p * np.where(p > 0, log_p, 0.0), 0.0)) * h * h)


def _chi_square(name: str, x: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of `x` against the grid's bin probabilities, and its degrees of freedom.

    Bins expecting fewer than 5 points are pooled into one bin, with the mass outside the grid.
    """
    log_p, h = _grid(name)
    cells = np.exp(log_p) * h * h
    probs = cells.reshape(CELLS // BIN, BIN, CELLS // BIN, BIN).sum(axis=(1, 3)).ravel()
    edges = np.linspace(-LIM, LIM, CELLS // BIN + 1)
    counts, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=[edges, edges])
    counts = counts.ravel()
    expected = len(x) * probs
    keep = expected >= 5
    pooled_expected = len(x) - expected[keep].sum()
    pooled_count = len(x) - counts[keep].sum()
    stat = float(np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep]))
    if pooled_expected > 0:
        stat += (pooled_count - pooled_expected) ** 2 / pooled_expected
    return stat, int(keep.sum())


@pytest.mark.parametrize("name", NAMES)
def test_sampler_shape_dtype_and_seed(name):
    sample = datasets.TOY_DENSITIES[name].sample
    x = sample(300, seed=3)
    assert x.shape == (300, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, sample(300, seed=3))
    assert not np.allclose(x, sample(300, seed=4))
    assert np.all(np.isfinite(datasets.TOY_DENSITIES[name].log_prob(x)))


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_integrates_to_one(name):
    log_p, h = _grid(name)
    assert np.sum(np.exp(log_p)) * h * h == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("name", NAMES)
def test_samples_match_density_histogram(name):
    x = datasets.TOY_DENSITIES[name].sample(20_000, seed=11)
    stat, dof = _chi_square(name, x)
    # Chi-square with `dof` degrees of freedom: mean dof, sd sqrt(2 dof).
    assert stat < dof + 5 * np.sqrt(2 * dof), (stat, dof)


@pytest.mark.parametrize("name", ["checkerboard", "moons", "pinwheel"])
def test_histogram_check_detects_mirrored_samples(name):
    """The chi-square test has power: samples mirrored in the x1 axis (these sets are not
    symmetric under it) must fail it."""
    x = datasets.TOY_DENSITIES[name].sample(20_000, seed=11) * np.array([1.0, -1.0], np.float32)
    stat, dof = _chi_square(name, x)
    assert stat > dof + 20 * np.sqrt(2 * dof), (stat, dof)


@pytest.mark.parametrize("name", NAMES)
def test_monte_carlo_entropy_matches_grid(name):
    dataset = datasets.TOY_DENSITIES[name]
    h_mc, se = datasets.entropy(dataset.sample, dataset.log_prob, n=20_000, seed=5)
    assert abs(h_mc - _grid_entropy(name)) < 4 * se + 2e-3


def test_entropies_against_closed_form_approximations():
    """Independent checks: well-separated components add their entropies to log(#components)."""
    gaussian = np.log(2 * np.pi * np.e * (0.5 / np.sqrt(2)) ** 2)
    assert _grid_entropy("8gaussians") == pytest.approx(np.log(8) + gaussian, abs=0.01)
    assert _grid_entropy("checkerboard") == pytest.approx(np.log(32.0), abs=1e-9)
    # Thin rings: log(ring length) + the 1-D Gaussian noise entropy across the ring.
    radii = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])
    ring = np.mean(np.log(2 * np.pi * radii)) + 0.5 * np.log(2 * np.pi * np.e * 0.08**2)
    assert _grid_entropy("rings") == pytest.approx(np.log(4) + ring, abs=0.005)
    # Pinwheel: a volume-preserving twist of N(., diag(0.3^2, 0.1^2)), doubled, per arm.
    arm = np.log(2 * np.pi * np.e * 0.3 * 0.1) + np.log(4.0)
    assert _grid_entropy("pinwheel") == pytest.approx(np.log(5) + arm, abs=0.01)
    # Scaling by 2 adds log 4 to the entropy of sklearn-style moons.
    h_unscaled, se = datasets.entropy(datasets.two_moons, datasets.two_moons_log_prob, n=20_000)
    assert _grid_entropy("moons") - np.log(4.0) == pytest.approx(h_unscaled, abs=4 * se + 2e-3)


def test_rings_closed_form_matches_angular_quadrature():
    x = np.concatenate(
        [datasets.rings(200, seed=1), np.random.default_rng(2).uniform(-4, 4, (200, 2))]
    )
    t = 2 * np.pi * (np.arange(4000) + 0.5) / 4000  # periodic midpoint rule: spectral accuracy
    radii = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])
    centres = (radii[:, None, None] * np.stack([np.cos(t), np.sin(t)], -1)).reshape(-1, 2)
    sq = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    density = np.exp(-0.5 * sq / 0.08**2).mean(axis=1) / (2 * np.pi * 0.08**2)
    near = density > 1e-200
    np.testing.assert_allclose(
        datasets.rings_log_prob(x)[near], np.log(density[near]), rtol=0, atol=1e-8
    )


def test_checkerboard_support():
    x = datasets.checkerboard(5_000, seed=0)
    assert np.all(np.abs(x) <= 4.0)
    cells = np.floor(x / 2).astype(int)
    assert np.all((cells.sum(axis=1) % 2) == 0)
    assert set(map(tuple, cells)) == {
        (i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0
    }
    assert np.isneginf(datasets.checkerboard_log_prob(np.array([[1.0, -1.0], [0.5, 4.5]]))).all()


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((4, 3))])
def test_log_prob_rejects_wrong_shape(bad):
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        datasets.rings_log_prob(bad)


def test_package_exports_every_name_from_its_modules():
    """`tfp_flows.datasets` is a package of modules by responsibility; every public name of each
    module is importable from the package itself, and `__all__` is exactly their union."""
    from tfp_flows.datasets import ffjord, real_data, toy

    union = {*toy.__all__, *ffjord.__all__, *real_data.__all__}
    assert set(datasets.__all__) == union
    for module in (toy, ffjord, real_data):
        for name in module.__all__:
            assert getattr(datasets, name) is getattr(module, name), name
    assert datasets.TOY_DENSITIES["moons"] == (
        datasets.scaled_moons,
        datasets.scaled_moons_log_prob,
    )
