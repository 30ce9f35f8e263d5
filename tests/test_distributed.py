"""tf.distribute: MirroredStrategy over two logical CPUs, MultiWorkerMirroredStrategy over two
worker processes, compared with one device on the same global batches.

Logical devices and multi-worker clusters must be set up before TensorFlow initialises, so each
scenario runs in a fresh interpreter (`_mirrored_worker.py`, `_mwms_worker.py`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
TOL = 1e-5  # float32 rounding of sums split across replicas, after several steps


def _env(**extra):
    return {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", **extra}


def _kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and nothing else
        proc.wait()


def _mirrored(*scenarios, timeout=600):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TESTS, "_mirrored_worker.py"), *scenarios],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        pytest.fail(f"MirroredStrategy worker timed out after {timeout} s")
    lines = [line for line in out.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, out[-5000:]
    results = json.loads(lines[-1][len("RESULTS ") :])
    print("MirroredStrategy figures:", json.dumps(results))  # shown with `pytest -s`
    return results


@pytest.fixture(scope="module")
def mirrored():
    """One interpreter for the fast scenarios (a TensorFlow import costs seconds)."""
    return _mirrored("actnorm_uneven", "maf", "vi_refused", "guard", "skip", "record")


@pytest.mark.parametrize("mode", ["function", "eager"])
def test_actnorm_init_uses_global_batch_statistics(mirrored, mode):
    # Replica batches of 5 and 11 examples: sums and counts are reduced, not per-replica means.
    result = mirrored["actnorm_uneven"][mode]
    assert result["flags"] == [True, True]
    assert result["replicas_equal"]
    assert result["shift_diff"] < 1e-6 * 50  # the data's mean is 50 in one channel
    assert result["log_scale_diff"] < 1e-6
    assert result["mean_of_means_diff"] > 1e-2  # what a mean of replica means would give


def _check_fit(result, flow):
    assert result["num_replicas"] == 2
    assert result["variable_type"] == "MirroredVariable"
    assert result["iterations"] == 6  # 2 epochs of 3 steps (the last one 13 + 12 examples)
    np.testing.assert_allclose(result["dist_nll"], result["single_nll"], rtol=1e-6)
    assert result["max_weight_change"] > 0.1  # training moved the weights...
    assert result["max_weight_diff"] < TOL  # ...identically on one device and on two
    if flow == "real_nvp":
        assert result["num_actnorm_variables"] == 6
        assert result["max_actnorm_diff"] < TOL


def test_mirrored_maf_fit_equals_one_device(mirrored):
    _check_fit(mirrored["maf"], "maf")


def test_stop_on_nonfinite_restores_every_replica_and_resumes(mirrored):
    r = mirrored["guard"]
    # The NaN kernel is caught at step 5 whatever the loss shows: oneDNN's fused
    # MatMul+BiasAdd+Relu (graph mode, AVX-512) maps NaN to 0, so the loss can stay finite; the
    # step's own check of the weights catches it on every kernel set.
    assert r["step"] == 5 and "weights at step 5" in r["message"], r["message"]
    assert "weights and optimizer state (those step 4" in r["message"], r["message"]
    # Weights and Adam's moments on both replicas are those step 4 started from, bit for bit.
    assert r["max_weight_diff"] == 0.0 and r["max_optimizer_diff"] == 0.0
    assert r["iterations"] == 3
    assert all(np.isfinite(r["resumed_nll"]))  # and training goes on from there


def test_non_finite_steps_are_skipped_on_every_replica_without_a_callback(mirrored):
    r = mirrored["skip"]
    assert "3 consecutive training steps were skipped" in (r["message"] or ""), r["message"]
    assert "the loss and gradient were NaN or inf" in r["message"], r["message"]
    # Only replica 0's share overflowed, yet neither replica applied anything.
    assert r["max_weight_diff"] == 0.0 and r["max_optimizer_diff"] == 0.0
    assert r["skipped"] == 3


def test_step_record_is_the_global_batch_on_two_replicas(mirrored):
    r = mirrored["record"]
    # Batches of 32 (16 + 16) and 31 (16 + 15 rows): each replica's share, in order, bit for bit.
    assert r["shapes"] == [[32, 3], [31, 3]] and r["dtypes"] == ["float32", "float32"]
    assert r["equal"] == [True, True]
    assert r["skipped"] == 1  # the 3e38 batch overflows the step; its record is still exact


@pytest.mark.slow
def test_mirrored_real_nvp_with_actnorm_fit_equals_one_device():
    _check_fit(_mirrored("real_nvp")["real_nvp"], "real_nvp")


def test_variational_model_refuses_several_replicas(mirrored):
    assert "does not support training on several tf.distribute replicas" in (
        mirrored["vi_refused"]["error"] or ""
    )


@pytest.mark.slow
def test_mirrored_glow_equals_one_device():
    result = _mirrored("glow", "glow:adam", timeout=1500)
    sgd, adam = result["glow"], result["glow:adam"]
    assert sgd["num_actnorm_variables"] == 12  # 4 steps of ActNorm: shift, log-scale, flag
    np.testing.assert_allclose(sgd["dist_nll"], sgd["single_nll"], rtol=1e-6)
    assert sgd["max_weight_change"] > 0.1
    assert sgd["max_relative_weight_diff"] < TOL
    # Adam divides by sqrt(v): rounding-level differences in near-zero gradients become
    # update-sized. Two replicas stay within what reordering each batch does on one device.
    nll_diff = np.abs(np.subtract(adam["dist_nll"], adam["single_nll"]))
    reorder_nll_diff = np.abs(np.subtract(adam["single_reordered_nll"], adam["single_nll"]))
    assert np.all(nll_diff <= 2 * reorder_nll_diff + 1e-6 * np.abs(adam["single_nll"]))
    assert adam["max_weight_diff"] <= max(2 * adam["single_reordered_max_weight_diff"], TOL)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_cluster(out_dir, flow="real_nvp", epochs=2, timeout=480):
    """Starts two MultiWorkerMirroredStrategy workers on 127.0.0.1 and waits for both.

    Kills both (by process id) if either fails or the time runs out.
    """
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs, logs = [], []
    try:
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            log = open(os.path.join(out_dir, f"log_{index}.txt"), "w")
            logs.append(log)
            command = [sys.executable, os.path.join(TESTS, "_mwms_worker.py"), out_dir, flow]
            procs.append(
                subprocess.Popen(
                    [*command, str(epochs)],
                    env=_env(TF_CONFIG=json.dumps(config)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            _kill(p)
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if codes != [0, 0]:
        text = "\n".join(open(os.path.join(out_dir, f"log_{i}.txt")).read()[-3000:] for i in (0, 1))
        pytest.fail(f"workers ended with {codes} (negative: killed at the time limit):\n{text}")
    return [json.load(open(os.path.join(out_dir, f"result_{i}.json"))) for i in (0, 1)]


@pytest.mark.slow
def test_multi_worker_fit_matches_one_device_and_the_chief_saves(tmp_path):
    from tfp_flows.keras import load_model

    chief, other = run_cluster(str(tmp_path))
    print("MultiWorkerMirroredStrategy figures:", json.dumps(chief))  # shown with `pytest -s`
    assert chief["num_replicas"] == other["num_replicas"] == 2
    assert chief["iterations"] == other["iterations"] == 8  # 2 epochs of 64 / 16
    # Both workers hold the same weights: synchronous training.
    w0, w1 = np.load(tmp_path / "weights_0.npz"), np.load(tmp_path / "weights_1.npz")
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    # The same as one device on the same global batches.
    np.testing.assert_allclose(chief["nll"], chief["single_nll"], rtol=1e-6)
    assert chief["max_weight_change"] > 0.1
    assert chief["max_weight_diff_vs_single"] < TOL
    # Only the chief wrote the model file, and it loads with the trained weights.
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == ["model.keras"]
    model = load_model(str(tmp_path / "model.keras"))
    for variable, key in zip(model.weights, w0.files, strict=True):
        np.testing.assert_array_equal(variable.numpy(), w0[key])
