"""Mixed precision: under Keras' `mixed_bfloat16` policy the conditioners compute in bfloat16,
while variables, log-determinants and log-probabilities stay float32."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import flows
from tfp_flows.keras import DensityModel
from tfp_flows.testing import perturb_variables

# |log_prob(mixed) - log_prob(float32)| <= ATOL + RTOL * |log_prob(float32)|, per example.
# bfloat16 keeps 8 significant bits (relative rounding 2^-9 ~ 0.002) in each conditioner; the
# errors of the shifts and log-scales add up over the layers.
ATOL, RTOL = 0.05, 0.01


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _networks(dist):
    return [layer for b in flows.flow_bijectors(dist) for layer in getattr(b, "keras_layers", ())]


BUILDERS = {
    "real_nvp": (lambda: flows.real_nvp([4], num_layers=4, hidden_units=[32]), [64, 4]),
    "maf": (lambda: flows.maf(4, num_layers=3, hidden_units=[32]), [64, 4]),
    "iaf": (lambda: flows.iaf(3, num_layers=2, hidden_units=[16]), [16, 3]),
    "glow": (
        lambda: flows.glow((8, 8, 2), levels=2, steps_per_level=2, filters=16),
        [16, 8, 8, 2],
    ),
    "real_nvp_image": (
        lambda: flows.real_nvp((4, 4, 1), num_scales=2, steps_per_scale=1, filters=8),
        [16, 4, 4, 1],
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # the IAF's D-pass inverse warns
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_log_prob_matches_float32_flow(name, mixed_bfloat16):
    keras.utils.set_random_seed(int(os.environ.get("TFP_FLOWS_TEST_SEED", "0")))
    build, shape = BUILDERS[name]
    x = tf.random.stateless_normal(shape, seed=[1, 2]) * 0.7
    with _float32():
        reference = build()
        reference.log_prob(x)  # ActNorm's data-dependent init
        perturb_variables(reference.bijector, 0.1)
    mixed = build()
    assert len(mixed.variables) == len(reference.variables)
    for target, source in zip(mixed.variables, reference.variables):
        assert target.dtype == source.dtype and target.shape == source.shape
        target.assign(source)

    networks = _networks(mixed)
    assert networks
    for layer in networks:
        assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    for layer in _networks(reference):
        assert layer.compute_dtype == "float32"
    # The conditioners really compute in bfloat16: their outputs are bfloat16 tensors.
    first = networks[0]
    inputs = tf.zeros([2, *_input_shape(first)])
    outputs = tf.nest.flatten(first(inputs))
    assert all(t.dtype == tf.bfloat16 for t in outputs)

    expected = reference.log_prob(x)
    got = mixed.log_prob(x)
    assert got.dtype == tf.float32
    ildj = mixed.bijector.inverse_log_det_jacobian(x, event_ndims=len(shape) - 1)
    assert ildj.dtype == tf.float32
    error = np.abs(got.numpy() - expected.numpy())
    bound = ATOL + RTOL * np.abs(expected.numpy())
    print(f"{name}: max |diff| {error.max():.4f}, max |log_prob| {np.abs(expected).max():.2f}")
    assert np.all(error <= bound), (error.max(), np.abs(expected).max())
    # bfloat16 is in use: the results differ from float32 (a float32 run would match exactly).
    assert error.max() > 0.0
    samples = mixed.sample(4, seed=[3, 4])
    assert samples.dtype == tf.float32 and np.isfinite(samples).all()


def _float32():
    class Scope:
        def __enter__(self):
            keras.mixed_precision.set_global_policy("float32")

        def __exit__(self, *exc):
            keras.mixed_precision.set_global_policy("mixed_bfloat16")

    return Scope()


def _input_shape(layer):
    if hasattr(layer, "image_shape"):
        return layer.image_shape
    return [getattr(layer, "input_size", None) or layer.event_size]


def test_density_model_trains_under_mixed_bfloat16(mixed_bfloat16):
    model = DensityModel("maf", {"dim": 2, "num_layers": 2, "hidden_units": [16]})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(0).normal(size=(512, 2)).astype(np.float32) * [1.0, 3.0]
    history = model.fit(x, batch_size=128, epochs=3, verbose=0)
    nll = history.history["nll"]
    assert np.isfinite(nll).all() and nll[-1] < nll[0]
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert model.log_prob(x[:8]).dtype == tf.float32


def test_policy_is_reset():
    assert keras.mixed_precision.global_policy().name == "float32"
