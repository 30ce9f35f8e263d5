"""Distillation: an IAF student learns a trained MAF teacher's density from its log_prob alone."""

import inspect
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets, flows, losses, train, vi
from tfp_flows.bijectors import PerformanceWarning


def test_iaf_student_matches_maf_teacher():
    tf.random.set_seed(1)
    data = tf.constant(datasets.gaussian_mixture(10_000, seed=1))
    teacher = flows.maf(2, num_layers=3, hidden_units=(32, 32))

    def nll():
        return losses.forward_kl(
            teacher, tf.gather(data, tf.random.uniform([256], 0, 10_000, tf.int32))
        )

    train.minimize(nll, teacher.trainable_variables, num_steps=500, learning_rate=5e-3)
    teacher_before = [v.numpy().copy() for v in teacher.trainable_variables]

    student = flows.iaf(2, num_layers=3, hidden_units=(32, 32))
    history = vi.distill(
        teacher, student, num_steps=600, sample_size=256, learning_rate=5e-3
    ).losses
    assert history[-50:].mean() < history[:10].mean()
    for a, v in zip(teacher_before, teacher.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())  # the teacher is not trained

    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)  # sampling takes one pass
        z, log_s = student.experimental_sample_and_log_prob(20_000, seed=[5, 6])
    kl = float(tf.reduce_mean(log_s - teacher.log_prob(z)))
    print(f"KL(student || teacher) = {kl:.4f} nats")
    assert -0.01 < kl < 0.05


def test_distill_takes_fits_keywords_with_its_own_defaults():
    fit_keywords = {
        name for name, p in inspect.signature(vi.fit).parameters.items() if p.kind is p.KEYWORD_ONLY
    }
    signature = inspect.signature(vi.distill)
    assert list(signature.parameters)[:2] == ["teacher", "student"]
    assert set(signature.parameters) - {"teacher", "student"} == fit_keywords - {
        "trainable_variables"
    }
    defaults = {k: p.default for k, p in signature.parameters.items()}
    assert (defaults["num_steps"], defaults["sample_size"], defaults["learning_rate"]) == (
        2000,
        256,
        1e-3,
    )
    assert defaults["jit_compile"] is inspect.signature(vi.fit).parameters["jit_compile"].default
    with pytest.raises(TypeError, match="num_samples"):  # a wrong name, before any work
        vi.distill(None, None, num_samples=3)
    with pytest.raises(TypeError, match="trainable_variables"):  # the student's own
        vi.distill(None, None, trainable_variables=[])
