"""Training end to end: densities recovered by forward KL, a target by reverse KL, images."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import datasets, flows, losses, train
from tfp_flows.bijectors import initialize_actnorm
from tfp_flows.images import bits_per_dim, dequantize

tfd = tfp.distributions


def _fit(dist, data, *, steps, lr, batch=256, jit_compile=True):
    data = tf.constant(data)
    n = int(data.shape[0])

    def nll():  # in-graph minibatches: no input pipeline on the hot path
        return losses.forward_kl(dist, tf.gather(data, tf.random.uniform([batch], 0, n, tf.int32)))

    return train.minimize(
        nll, dist.trainable_variables, num_steps=steps, learning_rate=lr, jit_compile=jit_compile
    ).losses


def _nll_gap(factory, sample, log_prob, *, steps, lr):
    tf.random.set_seed(2)
    train, test = sample(20_000, seed=1), sample(20_000, seed=2)
    dist = factory()
    initialize_actnorm(dist, train[:2048])
    _fit(dist, train, steps=steps, lr=lr)
    # Paired with the true log-density on the same held-out points: an estimate of KL(p || q).
    return float(-tf.reduce_mean(dist.log_prob(test))) - float(-np.mean(log_prob(test)))


FAST = {
    "maf": lambda: flows.maf(2, num_layers=3, hidden_units=(32, 32)),
    "real_nvp": lambda: flows.real_nvp(2, num_layers=4, hidden_units=(32, 32)),
}


@pytest.mark.parametrize("name", list(FAST))
def test_fit_recovers_a_gaussian_mixture(name):
    gap = _nll_gap(
        FAST[name],
        datasets.gaussian_mixture,
        datasets.gaussian_mixture_log_prob,
        steps=500,
        lr=5e-3,
    )
    print(f"{name}: held-out NLL - entropy = {gap:.4f} nats")
    assert -0.02 < gap < 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory",
    [
        # In 2-D each affine MAF layer moves one coordinate given the other: it needs depth.
        lambda: flows.maf(2, num_layers=10, hidden_units=(64, 64)),
        lambda: flows.real_nvp(2, num_layers=8, hidden_units=(64, 64)),
    ],
    ids=["maf", "real_nvp"],
)
def test_fit_recovers_two_moons(factory):
    gap = _nll_gap(factory, datasets.two_moons, datasets.two_moons_log_prob, steps=5000, lr=2e-3)
    print(f"two moons: held-out NLL - entropy = {gap:.4f} nats")
    assert -0.02 < gap < 0.05


def _mixture_target():
    """The normalised `gaussian_mixture` density as a TFP distribution (log Z = 0)."""
    from tfp_flows.datasets import _MIXTURE_CHOLESKY, _MIXTURE_MEANS, _MIXTURE_WEIGHTS

    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=tf.constant(_MIXTURE_WEIGHTS, tf.float32)),
        tfd.MultivariateNormalTriL(
            tf.constant(_MIXTURE_MEANS, tf.float32), tf.constant(_MIXTURE_CHOLESKY, tf.float32)
        ),
    )


def test_mixture_target_matches_the_dataset_density():
    x = datasets.gaussian_mixture(100, seed=0)
    np.testing.assert_allclose(
        _mixture_target().log_prob(x), datasets.gaussian_mixture_log_prob(x), rtol=1e-5
    )


def test_reverse_kl_reaches_log_z():
    tf.random.set_seed(3)
    target = _mixture_target()
    q = flows.real_nvp(2, num_layers=4, hidden_units=(32, 32), normalization=None)
    train.minimize(
        lambda: losses.reverse_kl(q, target.log_prob, 256, stick_the_landing=True),
        q.trainable_variables,
        num_steps=800,
        learning_rate=5e-3,
    )
    diagnostics = train.importance_diagnostics(q, target.log_prob, 50_000, seed=[1, 2])
    elbo, log_z = float(diagnostics["elbo"]), float(diagnostics["log_z"])
    print(f"ELBO {elbo:.4f}, IS log Z {log_z:.4f}, ESS {float(diagnostics['ess_fraction']):.3f}")
    assert -0.05 < elbo <= 0.005  # log Z = 0
    assert abs(log_z) < 0.02


def _images(n, num_bins=4, seed=0):
    """Dequantised 8x8 images: a bright blob at a random place on a dark background."""
    rng = np.random.default_rng(seed)
    i, j = np.indices((8, 8))
    centres = rng.integers(2, 6, size=(n, 2))
    blob = np.exp(-((i - centres[:, :1, None]) ** 2 + (j - centres[:, 1:, None]) ** 2) / 4.0)
    levels = np.clip(np.round(blob * (num_bins - 1)), 0, num_bins - 1).astype(np.int64)
    return dequantize(levels[..., None], num_bins, seed=[seed, 1])


@pytest.mark.parametrize(
    "factory",
    [
        lambda: flows.glow((8, 8, 1), levels=2, steps_per_level=1, filters=8, logit_alpha=0.05),
        lambda: flows.glow((8, 8, 1), levels=2, steps_per_level=1, filters=8, coupling="additive"),
        lambda: flows.real_nvp(
            (8, 8, 1), num_scales=2, steps_per_scale=1, filters=8, logit_alpha=0.05
        ),
    ],
    ids=["glow", "glow_additive", "real_nvp"],
)
def test_image_flows_train_and_report_bits_per_dim(factory):
    tf.random.set_seed(4)
    x = _images(512)
    dist = factory()
    initialize_actnorm(dist, x[:256])
    start = float(np.mean(bits_per_dim(dist.log_prob(x), num_dims=64, num_bins=4)))
    # A few steps: XLA's compile time of a multi-scale flow would dominate them.
    history = _fit(dist, x, steps=40, lr=3e-3, batch=64, jit_compile=False)
    end = float(np.mean(bits_per_dim(dist.log_prob(x), num_dims=64, num_bins=4)))
    print(f"bits/dim {start:.3f} -> {end:.3f}")
    assert np.all(np.isfinite(history))
    assert math.isfinite(end) and end < start
