"""Atomic saving: file modes, symlinks, refused formats, long names, bad paths; load errors."""

import os
import stat
import zipfile

import keras
import numpy as np
import pytest

from tfp_flows.keras import DensityModel, ModelFileError, load_model, save_model

SMALL = ("real_nvp", {"event_shape": [2], "num_layers": 2, "hidden_units": [8]})
X = np.array([[0.5, -1.0], [2.0, 0.0]], "float32")


def _model(shift=0.0):
    model = DensityModel(*SMALL)
    for variable in model.trainable_variables:
        variable.assign(variable + shift)
    return model


def _save(model, method, path, **kwargs):
    if method == "save_model":
        return save_model(model, path, **kwargs)
    return getattr(model, method)(path, **kwargs)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("method, name", [("save", "m.keras"), ("save_weights", "w.weights.h5")])
def test_new_files_get_the_mode_the_umask_gives(tmp_path, method, name):
    old = os.umask(0o022)
    try:
        _save(_model(), method, tmp_path / name)
    finally:
        os.umask(old)
    assert _mode(tmp_path / name) == 0o644  # 0o666 & ~umask, as open() and Keras give
    assert os.listdir(tmp_path) == [name]


def test_overwriting_keeps_the_existing_files_mode(tmp_path):
    path = tmp_path / "m.keras"
    _model().save(path)
    os.chmod(path, 0o640)
    model = _model(0.1)
    model.save(path)
    assert _mode(path) == 0o640
    np.testing.assert_allclose(load_model(path).log_prob(X), model.log_prob(X), rtol=1e-6)


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    target, link = tmp_path / "target.keras", tmp_path / "link.keras"
    _model().save(target)
    link.symlink_to(target.name)
    model = _model(0.1)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == "target.keras"
    np.testing.assert_allclose(load_model(target).log_prob(X), model.log_prob(X), rtol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["link.keras", "target.keras"]


@pytest.mark.parametrize(
    "method, name, expected",
    [
        ("save", "m.h5", r"\.keras"),
        ("save", "m.hdf5", r"\.keras"),
        ("save_model", "m.h5", r"\.keras"),
        ("save_weights", "w.h5", r"\.weights\.h5"),
    ],
)
def test_legacy_h5_files_are_refused_before_writing(tmp_path, method, name, expected):
    path = str(tmp_path / name)
    with pytest.raises(ValueError, match=expected) as info:
        _save(_model(), method, path)
    assert repr(path) in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("method, suffix", [("save", ".keras"), ("save_weights", ".weights.h5")])
def test_any_valid_file_name_saves_even_a_long_one(tmp_path, method, suffix):
    name = "m" * (250 - len(suffix)) + suffix
    model = _model(0.1)
    _save(model, method, tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    restored = _model()
    if method == "save":
        restored = load_model(tmp_path / name)
    else:
        restored.load_weights(tmp_path / name)
    np.testing.assert_allclose(restored.log_prob(X), model.log_prob(X), rtol=1e-6)


@pytest.mark.parametrize(
    "method, path, error",
    [
        ("save", "", ValueError),
        ("save", "model.txt", ValueError),
        ("save", "a_file/m.keras", OSError),  # a parent that is a file: fails as root too
        ("save", "a_dir.keras", OSError),  # the path is a directory
        ("save_weights", "", ValueError),
        ("save_weights", "w.txt", ValueError),
        ("save_weights", "a_file/w.weights.h5", OSError),
    ],
)
def test_bad_paths_are_named_and_leave_nothing_behind(tmp_path, monkeypatch, method, path, error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "a_dir.keras").mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error) as info:
        _save(_model(), method, path)
    assert repr(path) in str(info.value)
    assert ".tmp" not in str(info.value)  # the hidden temporary file is not what failed
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "a_dir.keras") == []


def test_an_error_naming_the_temporary_file_names_the_path(tmp_path, monkeypatch):
    def fail(model, filepath, **kwargs):
        raise OSError(f"[Errno 28] No space left on device: {str(filepath)!r}")

    monkeypatch.setattr(keras.Model, "save", fail)
    path = str(tmp_path / "new" / "dir" / "m.keras")  # the directories made for it go too
    with pytest.raises(OSError, match="No space left") as info:
        save_model(_model(), path)
    assert repr(path) in str(info.value) and ".tmp" not in str(info.value)
    assert "No space left" in str(info.value.__cause__)
    assert os.listdir(tmp_path) == []


def test_remote_paths_go_to_keras_unchanged(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.Model, "save", lambda model, path, **kw: calls.append((path, kw)))
    save_model(_model(), "gs://bucket/m.keras", overwrite=False)
    assert calls == [("gs://bucket/m.keras", {"overwrite": False})]


def test_sharded_weights_are_written_under_their_own_names(tmp_path):
    model = _model(0.1)
    model.save_weights(tmp_path / "w.weights.json", max_shard_size=1e-6)
    names = sorted(os.listdir(tmp_path))
    assert "w.weights.json" in names and len(names) >= 2
    assert all(n.startswith("w") for n in names), names  # no temporary names
    restored = _model()
    restored.load_weights(tmp_path / "w.weights.json")
    np.testing.assert_allclose(restored.log_prob(X), model.log_prob(X), rtol=1e-6)


def _edit_config(path, old, new):
    edited = path.with_name("edited.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(edited, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                assert old.encode() in data
                data = data.replace(old.encode(), new.encode())
            dst.writestr(name, data)
    return edited


@keras.saving.register_keras_serializable(package="test_saving")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def test_load_error_names_a_class_that_cannot_be_found(tmp_path):
    model = keras.Sequential([keras.Input([2]), Doubler()])
    model.save(tmp_path / "m.keras")
    edited = _edit_config(tmp_path / "m.keras", 'Doubler"', 'NoSuchDoubler"')
    with pytest.raises(ModelFileError, match="Could not locate class 'NoSuchDoubler'") as info:
        load_model(edited)
    assert "edited.keras" in str(info.value)


def test_load_error_keeps_the_reason_for_a_bad_config(tmp_path):
    _model().save(tmp_path / "m.keras")
    edited = _edit_config(tmp_path / "m.keras", '"num_layers"', '"num_layerz"')
    with pytest.raises(ModelFileError, match="unexpected keyword argument 'num_layerz'"):
        load_model(edited)
