"""Keras 3 models: fit, metrics, save/load, callbacks, bad input."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import datasets
from tfp_flows.bijectors import ActNorm
from tfp_flows.flows import flow_bijectors
from tfp_flows.keras import DensityModel, VariationalModel, keras_objects

tfd = tfp.distributions
SMALL = {"event_shape": [2], "num_layers": 3, "hidden_units": [16]}


def _weights(model):
    return [v.numpy().copy() for v in model.weights]


def _density_model(**kwargs):
    model = DensityModel("real_nvp", dict(SMALL), **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    return model


def test_flow_variables_are_the_models():
    model = _density_model()
    model_values = {id(v.value) for v in model.trainable_variables}
    assert {id(v) for v in model.flow.trainable_variables} == model_values
    flags = [v for v in model.non_trainable_variables if "initialized" in v.path]
    assert len(flags) == 2  # two ActNorm layers between three couplings


def test_fit_lowers_the_loss_and_initialises_actnorm():
    model = _density_model()
    x = datasets.two_moons(2048, seed=1)
    history = model.fit(
        x, batch_size=256, epochs=4, validation_data=datasets.two_moons(512, seed=2), verbose=0
    )
    nll = history.history["nll"]
    assert nll[-1] < nll[0] - 0.1
    assert "val_nll" in history.history
    actnorms = [b for b in flow_bijectors(model.flow) if isinstance(b, ActNorm)]
    assert actnorms and all(bool(a.is_initialized) for a in actnorms)


def test_save_and_load_round_trip_is_exact_and_keeps_actnorm(tmp_path):
    model = _density_model()
    x = datasets.two_moons(1024, seed=1)
    model.fit(x, batch_size=256, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode is on by default
    assert isinstance(loaded, DensityModel)
    np.testing.assert_array_equal(loaded.log_prob(x[:64]), model.log_prob(x[:64]))
    # New data of another scale must not re-initialise the restored ActNorm layers.
    before = _weights(loaded)
    loaded.log_prob(x[:64] * 10.0 + 5.0)
    for a, b in zip(before, _weights(loaded)):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_and_backup_and_restore(tmp_path):
    model = _density_model()
    x = datasets.two_moons(512, seed=1)
    ckpt = str(tmp_path / "best.keras")
    backup = str(tmp_path / "backup")
    callbacks = [
        keras.callbacks.ModelCheckpoint(ckpt, monitor="nll", mode="min", save_best_only=True),
        keras.callbacks.BackupAndRestore(backup),
    ]
    model.fit(x, batch_size=128, epochs=2, callbacks=callbacks, verbose=0)
    assert os.path.exists(ckpt)
    restored = keras.models.load_model(ckpt)
    assert np.all(np.isfinite(restored.log_prob(x[:8]).numpy()))


def test_image_model_reports_bits_per_dim():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 17, size=(64, 8, 8, 1))
    x = ((pixels + rng.random(pixels.shape)) / 17.0).astype("float32")
    flow_kwargs = {
        "image_shape": [8, 8, 1],
        "levels": 2,
        "steps_per_level": 1,
        "filters": 8,
        "logit_alpha": 0.05,
    }
    model = DensityModel("glow", flow_kwargs, num_bins=17)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, batch_size=32, epochs=2, verbose=0)
    bpd = history.history["bits_per_dim"]
    assert np.all(np.isfinite(bpd)) and 0.0 < bpd[-1] < 20.0
    nll = history.history["nll"][-1]
    np.testing.assert_allclose(bpd[-1], (nll + 64 * np.log(17)) / (64 * np.log(2)), rtol=1e-5)


def test_conditional_density_model():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(512, 1)).astype("float32")
    x = (c * [1.0, -1.0] + 0.1 * rng.normal(size=(512, 2))).astype("float32")
    model = DensityModel("real_nvp", {**SMALL, "conditional_size": 1})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, c, batch_size=128, epochs=3, verbose=0)
    assert history.history["nll"][-1] < history.history["nll"][0]
    assert model.log_prob(x[:4], c[:4]).shape == (4,)
    with pytest.raises(ValueError, match="conditional"):
        model.log_prob(x[:4])
    with pytest.raises(ValueError, match="conditional"):
        model.fit(x, batch_size=128, epochs=1, verbose=0)


def test_bad_data_is_refused_before_any_weight_changes():
    model = _density_model()
    x = datasets.two_moons(256, seed=1)
    before = _weights(model)
    with pytest.raises(TypeError, match="integer"):
        model.fit(np.round(x * 10).astype("int64"), verbose=0)
    bad = x.copy()
    bad[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite .* index \(7, 1\)"):
        model.fit(bad, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(256, 1\)"):
        model.fit(x[:, :1], verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(bad).batch(64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        model.fit(dataset, verbose=0)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_tf_keras_variables_are_refused():
    flow = tfd.TransformedDistribution(
        tfd.Normal(0.0, 1.0), tfp.bijectors.Shift(tf.Variable(0.0, name="raw_shift"))
    )
    with pytest.raises(ValueError, match="raw_shift"):
        keras_objects(flow)


@keras.saving.register_keras_serializable(package="tfp_flows_tests")
class GaussianTarget:
    def __init__(self, loc=(1.0, -1.0), scale=(0.5, 2.0)):
        self.loc, self.scale = list(loc), list(scale)

    def __call__(self, z):
        return tfd.MultivariateNormalDiag(self.loc, self.scale).log_prob(z)

    def get_config(self):
        return {"loc": self.loc, "scale": self.scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def test_variational_model_fits_and_reports(tmp_path):
    model = VariationalModel(
        "real_nvp", dict(SMALL), target_log_prob_fn=GaussianTarget(), num_samples=128
    )
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    history = model.fit(steps_per_epoch=150, epochs=2, verbose=0)
    assert set(history.history) == {"elbo", "log_z", "ess", "skipped_steps"}
    assert history.history["elbo"][-1] > history.history["elbo"][0]
    assert abs(history.history["log_z"][-1]) < 0.1  # the target is normalised: log Z = 0
    path = str(tmp_path / "v.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    z = np.zeros([3, 2], "float32")
    np.testing.assert_array_equal(loaded(z), model(z))


def test_variational_target_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="one log-density per sample"):
        VariationalModel("real_nvp", dict(SMALL), target_log_prob_fn=lambda z: tf.reduce_sum(z))


@pytest.mark.parametrize(
    "flow, flow_kwargs, shape",
    [
        ("maf", {"dim": 3, "num_layers": 2, "hidden_units": [8]}, [3]),
        ("iaf", {"dim": 3, "num_layers": 2, "hidden_units": [8]}, [3]),
        (
            "maf",
            {
                "dim": 3,
                "num_layers": 2,
                "hidden_units": [8],
                "transformer": "spline",
                "num_bins": 4,
            },
            [3],
        ),
        (
            "glow",
            {"image_shape": [4, 4, 2], "levels": 2, "steps_per_level": 1, "filters": 4},
            [4, 4, 2],
        ),
    ],
    ids=["maf", "iaf", "maf_spline", "glow"],
)
@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
def test_every_factory_trains_saves_and_reloads_exactly(tmp_path, flow, flow_kwargs, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, *shape)).astype("float32")
    model = DensityModel(flow, flow_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / f"{flow}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.log_prob(x[:5]), model.log_prob(x[:5]))


def test_first_fit_traces_the_training_step_once():
    # Keras builds the optimizer inside the first trace unless it is built before `fit`; a
    # tf.function that creates variables is traced twice (twice the time to the first step).
    model = _density_model()
    calls, train_step = [], model.train_step

    def counting_step(data):
        calls.append(1)
        return train_step(data)

    model.train_step = counting_step
    model.fit(datasets.two_moons(512, seed=1), batch_size=256, epochs=2, verbose=0)
    assert model.optimizer.built
    assert len(calls) == 1
