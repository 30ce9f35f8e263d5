"""Base distributions (`tfp_flows.flows.bases`): fixed and trainable, in every factory."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import datasets, flows
from tfp_flows.flows import bases

tfd = tfp.distributions
TRAINABLE = ["diag_normal", "mixture", "student_t"]
NAMES = ["normal", *TRAINABLE]
SHAPES = {"vector": [3], "image": [2, 2, 2]}


def _perturb(base, seed=0):
    """Moves every variable of a trainable base away from its initial value."""
    for i, variable in enumerate(base.keras_variables):
        noise = tf.random.stateless_normal(variable.shape, seed=[seed, i], dtype=variable.dtype)
        variable.assign(variable + 0.3 * noise)


def _reference(name, base, shape):
    """The TFP distribution `base` stands for, built from its variables' values."""
    values = {v.name: tf.convert_to_tensor(v) for v in getattr(base, "keras_variables", ())}
    rank = len(shape)
    if name == "normal":
        return tfd.Independent(tfd.Normal(tf.zeros(shape), 1.0), rank)
    if name == "diag_normal":
        scale = tf.nn.softplus(values["raw_scale"])
        return tfd.Independent(tfd.Normal(values["loc"], scale), rank)
    if name == "student_t":
        df, scale = 1.0 + tf.exp(values["raw_df"]), tf.nn.softplus(values["raw_scale"])
        return tfd.Independent(tfd.StudentT(df, values["loc"], scale), rank)
    components = tfd.MultivariateNormalDiag(values["locs"], tf.nn.softplus(values["raw_scales"]))
    flat = tfd.MixtureSameFamily(tfd.Categorical(logits=values["logits"]), components)
    return tfd.TransformedDistribution(flat, tfp.bijectors.Reshape(shape, [int(np.prod(shape))]))


@pytest.mark.parametrize("kind", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_log_prob_is_the_tfp_distributions(name, kind):
    shape = SHAPES[kind]
    base = bases.get(name, shape)
    if name != "normal":
        _perturb(base)
    x = 2.0 * tf.random.stateless_normal([7, *shape], seed=[1, 2])
    expected = _reference(name, base, shape).log_prob(x)
    np.testing.assert_allclose(base.log_prob(x), expected, rtol=1e-5, atol=1e-5)
    assert base.event_shape == shape and base.batch_shape == []


@pytest.mark.parametrize("name", NAMES)
def test_untrained_bases_are_standard_normal_or_close(name):
    z = tf.random.stateless_normal([4000, 2], seed=[3, 4])
    normal = tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))
    kl = float(tf.reduce_mean(normal.log_prob(z) - bases.get(name, [2]).log_prob(z)))
    assert abs(kl) < {"normal": 1e-6, "diag_normal": 1e-6}.get(name, 0.1), kl


@pytest.mark.parametrize("name", TRAINABLE)
def test_variables_are_keras_variables_the_flow_trains(name):
    dist = flows.real_nvp(2, num_layers=2, hidden_units=(4,), base=name)
    base_variables = dist.distribution.keras_variables
    assert base_variables and all(isinstance(v, keras.Variable) for v in base_variables)
    assert {id(v.value) for v in base_variables} <= {id(v) for v in dist.trainable_variables}
    _, variables = flows.keras_objects(dist)
    assert [id(v) for v in variables[-len(base_variables) :]] == [id(v) for v in base_variables]
    x = tf.random.stateless_normal([16, 2], seed=[5, 6]) * 3.0
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(x))
    grads = tape.gradient(loss, [v.value for v in base_variables])
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_sampling_with_a_stateless_seed_is_deterministic(name):
    dist = flows.maf(2, num_layers=1, hidden_units=(4,), base=name)
    first, again = dist.sample(5, seed=(1, 2)), dist.sample(5, seed=(1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, dist.sample(5, seed=(1, 3)))


@pytest.mark.parametrize("name", TRAINABLE)
def test_float64_bases(name):
    dist = flows.maf(2, num_layers=1, hidden_units=(4,), base=name, dtype=tf.float64)
    assert all(v.dtype == "float64" for v in dist.distribution.keras_variables)
    samples, log_prob = dist.experimental_sample_and_log_prob(3, seed=(1, 2))
    assert samples.dtype == log_prob.dtype == tf.float64


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_image_flows_take_every_base(name):
    dist = flows.glow((4, 4, 1), levels=1, steps_per_level=1, filters=4, base=name)
    x = tf.random.stateless_uniform([3, 4, 4, 1], seed=[1, 1])
    log_prob = dist.log_prob(x)  # also initialises ActNorm
    assert log_prob.shape == [3] and np.all(np.isfinite(log_prob))
    samples, sample_log_prob = dist.experimental_sample_and_log_prob(2, seed=(3, 4))
    assert samples.shape == [2, 4, 4, 1]
    np.testing.assert_allclose(
        sample_log_prob, dist.log_prob(tf.identity(samples)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("factory", ["real_nvp", "maf", "iaf"])
def test_every_factory_takes_a_base_and_conditions_with_it(factory):
    dist = flows.FACTORIES[factory](
        2, num_layers=1, hidden_units=(4,), base="student_t", conditional_size=3
    )
    conditioned = flows.condition(dist, tf.zeros([5, 3]))
    samples, log_prob = conditioned.experimental_sample_and_log_prob(2, seed=(1, 2))
    assert samples.shape == [2, 5, 2] and log_prob.shape == [2, 5]


def test_options_and_instances():
    dist = flows.maf(
        3, num_layers=1, hidden_units=(4,), base={"name": "mixture", "num_components": 3}
    )
    assert dist.distribution.distribution.mixture_distribution.logits.shape == [3]
    mine = bases.student_t([3], df=4.0)
    dist = flows.maf(3, num_layers=1, hidden_units=(4,), base=mine)
    assert dist.distribution is mine
    assert flows.keras_objects(dist)[1][-3:] == list(mine.keras_variables)
    fixed = tfd.Sample(tfd.Laplace(0.0, 1.0), [3])  # any distribution of the event shape
    dist = flows.maf(3, num_layers=1, hidden_units=(4,), base=fixed)
    assert dist.log_prob(tf.zeros([2, 3])).shape == [2]


def test_the_mixtures_components_differ():
    base = bases.get("mixture", [2])
    locs = base.distribution.components_distribution.distribution.loc
    assert np.min(np.ptp(locs.numpy(), axis=0)) > 0.1
    np.testing.assert_array_equal(
        locs, bases.get("mixture", [2]).distribution.components_distribution.distribution.loc
    )


@pytest.mark.parametrize(
    "base, match",
    [
        ("bogus", r"`base` must be one of \('normal', 'diag_normal', 'mixture', 'student_t'\)"),
        (3, "`base` must be one of"),
        (None, "`base` must be one of"),
        ({"name": "mixture", "bogus": 1}, r"`base`: bad options \{'bogus': 1\} for 'mixture'"),
        ({"name": "normal", "df": 3}, "`base` must be one of"),
        ({"name": "student_t", "df": 0.5}, r"`df` must be a number in \(1, 1e6\)"),
        ({"name": "mixture", "num_components": 0}, "`num_components` must be a positive"),
        (tfd.Normal(0.0, 1.0), r"event shape \(\) \(the flow's is \[2\]\)"),
        (tfd.MultivariateNormalDiag(tf.zeros([4, 2])), r"batch shape \(4,\) \(must be \[\]\)"),
        (tfd.MultivariateNormalDiag(tf.zeros(2, tf.float64)), r"dtype tf.float64"),
    ],
)
def test_bad_bases_are_clear_errors(base, match):
    with pytest.raises(ValueError, match=match):
        flows.real_nvp(2, num_layers=1, hidden_units=(4,), base=base)


def test_density_model_trains_saves_and_reloads_the_base(tmp_path):
    from tfp_flows.keras import DensityModel

    spec = {"event_shape": [2], "num_layers": 2, "hidden_units": [8], "base": "student_t"}
    model = DensityModel("real_nvp", spec)
    before = [v.numpy().copy() for v in model.flow.distribution.keras_variables]
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x = tfd.StudentT(2.0, 0.0, 1.0).sample([256, 2], seed=(1, 2)).numpy()
    model.fit(x, batch_size=64, epochs=2, verbose=0)
    after = [v.numpy() for v in model.flow.distribution.keras_variables]
    assert all(np.any(a != b) for a, b in zip(after, before))  # the base trained
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode is on by default
    for a, b in zip(loaded.flow.distribution.keras_variables, after):
        np.testing.assert_array_equal(a.numpy(), b)
    np.testing.assert_array_equal(loaded.log_prob(x[:16]), model.log_prob(x[:16]))


def test_vi_surrogates_take_a_base():
    from tfp_flows import vi

    model = tfd.JointDistributionNamed({"a": tfd.Normal(0.0, 1.0), "b": tfd.Normal(0.0, 2.0)})

    def surrogate(base):
        return vi.flow_surrogate_posterior(model, num_layers=2, hidden_units=(4,), base=base)

    q, plain = surrogate("diag_normal"), surrogate("normal")
    names = [v.name for v in q.trainable_variables]
    assert len(names) == len(plain.trainable_variables) + 2 and "raw_scale:0" in names
    assert np.all(np.isfinite(q.log_prob(q.sample(3, seed=(1, 2)))))


# -- quality: does a trainable base help where it should? -------------------------------------


def _fit_nll(x_train, x_test, base, steps, seed=0):
    """Held-out NLL (nats) of a small Real NVP with `base`, fitted with Adam."""
    keras.utils.set_random_seed(seed)
    dist = flows.real_nvp(2, num_layers=4, hidden_units=(32, 32), normalization=None, base=base)
    optimizer = keras.optimizers.Adam(3e-3)
    variables = [*flows.keras_objects(dist)[1]]
    variables += [w for layer in flows.keras_objects(dist)[0] for w in layer.trainable_weights]
    data = tf.data.Dataset.from_tensor_slices(x_train).shuffle(4096, seed=seed).repeat().batch(256)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(batch))
        optimizer.apply_gradients(zip(tape.gradient(loss, [v.value for v in variables]), variables))

    for batch in data.take(steps):
        step(batch)
    return -float(tf.reduce_mean(dist.log_prob(x_test)))


@pytest.mark.slow
def test_a_student_t_base_fits_heavy_tails_better():
    target = tfd.Independent(tfd.StudentT(2.0, tf.zeros(2), 1.0), 1)
    x_train = target.sample(8192, seed=(1, 2)).numpy()
    x_test = target.sample(8192, seed=(3, 4))
    start = time.perf_counter()
    normal, heavy = (_fit_nll(x_train, x_test, b, steps=1500) for b in ("normal", "student_t"))
    truth = -float(tf.reduce_mean(target.log_prob(x_test)))
    print(
        f"heavy tails: true {truth:.3f}, normal {normal:.3f}, student_t {heavy:.3f} nats "
        f"({time.perf_counter() - start:.0f} s)"
    )
    assert heavy <= normal - 0.05


@pytest.mark.slow
def test_a_mixture_base_fits_eight_gaussians_at_least_as_well():
    x_train = datasets.eight_gaussians(8192, seed=1).astype("float32")
    x_test = datasets.eight_gaussians(8192, seed=2).astype("float32")
    start = time.perf_counter()
    normal, mixed = (_fit_nll(x_train, x_test, b, steps=1500) for b in ("normal", "mixture"))
    truth = -float(np.mean(datasets.eight_gaussians_log_prob(x_test)))
    print(
        f"eight gaussians: true {truth:.3f}, normal {normal:.3f}, mixture {mixed:.3f} nats "
        f"({time.perf_counter() - start:.0f} s)"
    )
    assert mixed <= normal + 0.01
