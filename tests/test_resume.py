"""Crashes and resumption: SIGKILL mid-epoch and mid-write, atomic saving, checked safe loading."""

import csv
import os
import signal
import subprocess
import sys
import time
import zipfile

import _resume_worker as worker
import keras
import numpy as np
import pytest

from tfp_flows.keras import DensityModel, ModelFileError, load_model, save_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ("maf", {"dim": 2, "num_layers": 2, "hidden_units": [8]})


def _weights(model):
    return [v.numpy() for v in model.weights]


def _npz(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x, "f8") - np.asarray(y, "f8")))) for x, y in zip(a, b)
    )


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """Runs `_resume_worker.py` until it blocks mid-epoch while writing, then SIGKILLs it."""
    out = str(tmp_path_factory.mktemp("killed"))
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
    log = open(os.path.join(out, "log.txt"), "w")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "_resume_worker.py"), out],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready = os.path.join(out, "ready")
    deadline = time.monotonic() + 300
    try:
        while not os.path.exists(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"worker never reached the crash point:\n{open(log.name).read()}")
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    return out


def _history(out):
    with open(os.path.join(out, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_kill_mid_epoch_then_resume_keeps_every_completed_epoch(killed_run, tmp_path):
    out = killed_run
    # Killed during epoch 2: epochs 0 and 1 were completed, logged and backed up.
    assert [int(row["epoch"]) for row in _history(out)] == [0, 1]
    assert os.path.exists(os.path.join(out, "backup"))

    # Restart in a fresh model object: state comes only from the files on disk.
    model = worker.make_model()
    probe = worker.Probe(out)
    history = worker.fit(model, [*worker.callbacks(out), probe])
    steps = worker.ROWS // worker.BATCH
    assert probe.first_epoch == worker.CRASH_EPOCH  # resumed at the interrupted epoch
    assert probe.start_iterations == worker.CRASH_EPOCH * steps  # optimizer state restored
    # The restored weights (ActNorm's init flag included) are those at the end of epoch 1.
    restored = _npz(os.path.join(out, f"weights_epoch{worker.CRASH_EPOCH - 1}.npz"))
    assert _max_diff(probe.start_weights, restored) == 0.0
    assert len(history.history["nll"]) == worker.EPOCHS - worker.CRASH_EPOCH
    rows = _history(out)
    assert [int(row["epoch"]) for row in rows] == list(range(worker.EPOCHS))
    assert all(np.isfinite(float(row["nll"])) for row in rows)

    # The same as an uninterrupted run.
    reference = worker.make_model()
    worker.fit(reference, [])
    assert _max_diff(_weights(model), _weights(reference)) < 1e-6

    # The final weights save, load and evaluate.
    path = str(tmp_path / "final.keras")
    model.save(path)
    loaded = load_model(path)
    x = worker.data()[:16]
    log_prob = loaded.log_prob(x).numpy()
    assert np.all(np.isfinite(log_prob))
    np.testing.assert_array_equal(log_prob, model.log_prob(x).numpy())


def test_kill_while_writing_leaves_the_previous_checkpoint_intact(killed_run):
    out = killed_run
    # The ModelCheckpoint file is the one written after the last batch of epoch 1.
    previous = load_model(os.path.join(out, "ckpt.keras"))
    epoch1 = _npz(os.path.join(out, "weights_epoch1.npz"))
    assert _max_diff(_weights(previous), epoch1) == 0.0
    # The interrupted write is a hidden, partial temporary file beside it, refused on load.
    stale = [n for n in os.listdir(out) if n.startswith(".ckpt.keras.")]
    assert len(stale) == 1 and stale[0].endswith(".tmp.keras")
    with pytest.raises(ModelFileError, match=r"not a complete \.keras archive"):
        load_model(os.path.join(out, stale[0]))


def _saved(tmp_path, name="m.keras"):
    """A model with non-trivial weights (no training: these tests are about files), saved."""
    model = DensityModel(*SMALL)
    model.compile(optimizer="adam")
    _perturb(model, 0.1)
    path = str(tmp_path / name)
    model.save(path)
    return model, path


def _perturb(model, amount):
    for variable in model.trainable_variables:
        variable.assign(variable + amount)


def test_error_while_saving_keeps_the_old_file(tmp_path, monkeypatch):
    from keras.src.saving import saving_lib

    model, path = _saved(tmp_path)
    before = open(path, "rb").read()
    _perturb(model, 0.2)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated, mid-write)")

    monkeypatch.setattr(saving_lib, "_save_state", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before  # untouched
    assert os.listdir(tmp_path) == ["m.keras"]  # the temporary files were removed
    restored = load_model(path)
    x = np.zeros([3, 2], "float32")
    assert np.all(np.isfinite(restored.log_prob(x)))
    assert not np.allclose(restored.log_prob(x), model.log_prob(x))  # the old weights


def test_model_checkpoint_and_save_weights_write_atomically(tmp_path, monkeypatch):
    model, _ = _saved(tmp_path)
    model.compile(optimizer="adam", run_eagerly=True)  # one step: no need to trace it
    calls = []
    import tfp_flows.saving as saving

    original = saving.atomic_write

    def spy(path, write, **kwargs):
        calls.append(os.path.basename(path))
        return original(path, write, **kwargs)

    monkeypatch.setattr(saving, "atomic_write", spy)
    monkeypatch.setattr("tfp_flows.models._base.atomic_write", spy)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras")),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True),
    ]
    model.fit(np.zeros([32, 2], "float32"), epochs=1, verbose=0, callbacks=callbacks)
    assert calls == ["best.keras", "w.weights.h5"]
    assert load_model(str(tmp_path / "best.keras")) is not None


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model, path = _saved(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        save_model(model, path, overwrite=False)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "not_zip", "no_weights"])
def test_damaged_files_raise_a_clear_error(tmp_path, damage):
    _, path = _saved(tmp_path)
    data = open(path, "rb").read()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":  # corrupt bytes inside the weights member, zip structure intact
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("model.weights.h5")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        start += info.compress_size // 2
        data = data[:start] + bytes(b ^ 0xFF for b in data[start : start + 64]) + data[start + 64 :]
    elif damage == "empty":
        data = b""
    elif damage == "not_zip":
        data = b'{"class_name": "DensityModel"}'
    elif damage == "no_weights":
        rewritten = tmp_path / "rewritten.keras"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
            for name in ("config.json", "metadata.json"):
                dst.writestr(name, src.read(name))
        data = rewritten.read_bytes()
    bad = tmp_path / "bad.keras"
    bad.write_bytes(data)
    expected = {
        "truncated": r"not a complete \.keras archive",
        "flipped": r"'model\.weights\.h5' is corrupted",
        "empty": r"not a complete \.keras archive",
        "not_zip": r"not a complete \.keras archive",
        "no_weights": r"missing model\.weights",
    }[damage]
    with pytest.raises(ModelFileError, match=expected) as info:
        load_model(str(bad))
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="no such file") as info:
        load_model(str(tmp_path / "nope.keras"))
    assert "nope.keras" in str(info.value)


def test_loading_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "code_ran"

    # A lambda that creates `marker`, a stand-in for arbitrary code: Keras stores its bytecode.
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    model = keras.Sequential([keras.Input([2]), keras.layers.Lambda(payload)])
    marker.unlink(missing_ok=True)  # building the model may have run it
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ModelFileError, match="safe mode") as info:
        load_model(path)
    assert "lambda.keras" in str(info.value)
    assert not marker.exists()
    # Keras without safe mode would run the file's code while loading: the file really has it.
    keras.models.load_model(path, safe_mode=False)
    assert marker.exists()
