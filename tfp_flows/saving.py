"""Crash-safe saving and checked loading of Keras model files.

`atomic_write(path, write)` has `write` fill a temporary file in the directory of `path`, flushes
it to disk and renames it over `path` with `os.replace` (atomic on POSIX and Windows within one
file system). A crash or an error while writing leaves the previous file untouched; readers see
either the old file or the new one, never a partial one. `save_model(model, path)` saves any Keras
model so; the models of `tfp_flows.models` save this way themselves, so
`keras.callbacks.ModelCheckpoint` and `BackupAndRestore` write atomically too.

`load_model(path)` checks the file before Keras reads it (a zip archive whose members pass their
CRC checks) and raises `ModelFileError` naming the file and the problem for a missing, truncated
or corrupted file. It always loads in Keras' safe mode: a file carrying Python code (a `Lambda`
layer's bytecode) is refused, and no code from the file runs.

Example:

>>> import os, tempfile
>>> from tfp_flows.saving import atomic_write
>>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
>>> atomic_write(path, lambda tmp: open(tmp, "w").write("kept"))
>>> def crash(tmp):
...     open(tmp, "w").write("half")
...     raise RuntimeError("power cut")
>>> try:
...     atomic_write(path, crash)
... except RuntimeError:
...     pass
>>> open(path).read(), len(os.listdir(os.path.dirname(path)))
('kept', 1)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import zipfile
import zlib
from collections.abc import Callable

import keras

__all__ = ["ModelFileError", "atomic_write", "check_model_file", "load_model", "save_model"]

_KERAS_SUFFIXES = (".weights.h5", ".weights.json", ".keras", ".h5")
_NAME_MAX = 255  # bytes in a file name (ext4, XFS, Btrfs, APFS; NTFS: 255 characters)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: missing, truncated, corrupted or unsafe."""


def _suffix(name: str) -> str:
    for suffix in _KERAS_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return os.path.splitext(name)[1]


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_name(name: str) -> str:
    """`.<name>.<random>.tmp<suffix>`, `<name>` shortened to keep it within 255 bytes."""
    tail = f".{secrets.token_hex(4)}.tmp{_suffix(name)}"
    head = "." + name
    while len(os.fsencode(head + tail)) > _NAME_MAX and len(head) > 1:
        head = head[:-1]
    return head + tail


def _missing_directories(directory: str) -> list[str]:
    """`directory` and its ancestors that do not exist, deepest first."""
    missing = []
    while not os.path.exists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    return missing


def _naming(error: BaseException, path: str, tmp: str) -> BaseException | None:
    """`error` restated to name `path` instead of the temporary file `tmp` (None: keep it).

    Every `OSError` is restated (it concerns where the file goes); a `ValueError` only if it
    names `tmp`.
    """
    text = str(error).replace(tmp, path).replace(os.path.basename(tmp), os.path.basename(path))
    restate = isinstance(error, OSError) or (isinstance(error, ValueError) and text != str(error))
    if not restate:
        return None
    message = f"Cannot write {path!r}: {text}"
    try:
        restated = type(error)(message)
    except Exception:
        restated = (OSError if isinstance(error, OSError) else ValueError)(message)
    if isinstance(error, OSError):
        restated.errno = error.errno
    return restated


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], object], *, overwrite: bool = True
) -> None:
    """Writes `path` all at once: `write(tmp)` fills a temporary file that replaces `path`.

    The temporary file lies in the same directory (a hidden name ending in the same suffix,
    e.g. `.keras`, so writers that check the suffix accept it) and is removed if `write`
    raises, as are the directories made for `path`. After a hard kill (SIGKILL, power loss)
    during `write`, `path` is still the previous file and at most a stale hidden
    `.<name>.*.tmp<suffix>` file is left beside it.

    As `open(path, "w")` would: a symbolic link is written through (its target is replaced, the
    link stays), and the file keeps the mode of the file it replaces, or gets `0o666` less the
    umask if new (its owner is the writer's, though). Errors name `path`, not the temporary file
    (the original error is the `__cause__`).

    Args:
      path: the file to write.
      write: called with the temporary file's path; must write the whole file there.
      overwrite: if False, raise `FileExistsError` when `path` exists.
    """
    path = os.fspath(path)
    if not os.path.basename(path):
        raise ValueError(f"Cannot write {path!r}: it names no file.")
    target = os.path.realpath(path)  # through symbolic links
    if not overwrite and os.path.exists(target):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, _temporary_name(name))
    made, created = _missing_directories(directory), False
    try:
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError as e:  # a component of `directory` is a file
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", e.filename) from e
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # less the umask
        created = True
        mode = os.stat(target if os.path.exists(target) else tmp).st_mode
        write(tmp)
        os.chmod(tmp, stat.S_IMODE(mode))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if created:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        for made_directory in made:
            with contextlib.suppress(OSError):
                os.rmdir(made_directory)
        restated = _naming(e, path, tmp)
        if restated is None:
            raise
        raise restated from e
    _fsync_directory(directory)


def _is_local(path: str) -> bool:
    return "://" not in path


def save_model(model: keras.Model, filepath, *, overwrite: bool = True, **kwargs) -> None:
    """Saves any Keras model to a `.keras` file atomically (`atomic_write`).

    The file is written beside `filepath` under a temporary name and renamed over it, so a
    crash while writing leaves the previous file intact and loadable; as with `open`, a symbolic
    link is written through and the file keeps its mode (a new one: 0o666 less the umask).
    Remote paths (`gs://...`) are passed to `keras.Model.save` unchanged, without that guarantee.

    Raises:
      ValueError: naming `filepath`, for a legacy `.h5`/`.hdf5` file (`load_model` could not read
        it back) or a local path not ending in `.keras`; before anything is written.
    """
    filepath = os.fspath(filepath)
    remote = not _is_local(filepath)
    if filepath.endswith((".h5", ".hdf5")) or not (remote or filepath.endswith(".keras")):
        raise ValueError(
            f"Cannot save a model to {filepath!r}: use a `.keras` file (legacy `.h5`/`.hdf5` "
            "files are refused: neither Keras' nor tfp_flows' `load_model` reads them back)."
        )
    if remote:
        return keras.Model.save(model, filepath, overwrite=overwrite, **kwargs)
    atomic_write(
        filepath,
        lambda tmp: keras.Model.save(model, tmp, overwrite=True, **kwargs),
        overwrite=overwrite,
    )


def check_model_file(path: str | os.PathLike) -> None:
    """Raises `ModelFileError` unless `path` is a complete, uncorrupted `.keras` archive."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"Cannot load {path!r}: no such file.")
    if os.path.isdir(path):
        raise ModelFileError(
            f"Cannot load {path!r}: it is a directory, not a .keras file (TF SavedModel "
            "directories are not Keras 3 model files)."
        )
    size = os.path.getsize(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"Cannot load {path!r} ({size} bytes): not a complete .keras archive (a .keras "
            "file is a zip archive; this one is truncated, corrupted or of another format)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for info in archive.infolist():
                try:
                    with archive.open(info) as member:
                        while member.read(1 << 20):
                            pass
                except (zipfile.BadZipFile, EOFError, zlib.error) as e:
                    raise ModelFileError(
                        f"Cannot load {path!r}: member {info.filename!r} is corrupted "
                        f"({type(e).__name__}: {e})."
                    ) from e
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(
            f"Cannot load {path!r} ({size} bytes): corrupted archive ({type(e).__name__}: {e})."
        ) from e
    missing = sorted({"config.json", "metadata.json"} - names)
    if missing or not any(n.startswith("model.weights") for n in names):
        missing = missing or ["model.weights.*"]
        raise ModelFileError(
            f"Cannot load {path!r}: not a Keras 3 model archive (missing {', '.join(missing)})."
        )


def load_model(path: str | os.PathLike, *, custom_objects=None, compile: bool = True):
    """Loads a `.keras` model file in Keras' safe mode, after checking it is intact.

    Raises:
      ModelFileError: (a `ValueError`) naming the file and the problem, if it is missing,
        truncated, corrupted, not a Keras archive, or carries code that safe mode refuses
        (e.g. a `Lambda` layer).
    """
    path = os.fspath(path)
    if _is_local(path):
        check_model_file(path)
    try:
        return keras.models.load_model(
            path, custom_objects=custom_objects, compile=compile, safe_mode=True
        )
    except ModelFileError:
        raise
    except Exception as e:
        message = str(e)
        chain, cause = [], e
        while cause is not None and len(chain) < 10:
            chain.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        if any("safe_mode" in text or "unsafe" in text.lower() for text in chain):
            raise ModelFileError(
                f"Refusing to load {path!r}: it contains Python code (e.g. a Lambda layer's "
                "bytecode), and tfp_flows always loads in Keras' safe mode so that no code "
                f"from a file runs. ({type(e).__name__}: {message.splitlines()[0]})"
            ) from e
        raise ModelFileError(f"Cannot load {path!r}: {type(e).__name__}: {_reason(message)}") from e


# Where Keras quotes the error behind its own ("... Exception encountered: <inner error>").
_INNER_ERROR = re.compile(r"(?:Exception|Error) encountered[\w ]*:\s*")


def _reason(message: str) -> str:
    """Keras' message in one line: its first, and the innermost error it quotes, if any.

    E.g. "<class 'Sequential'> could not be deserialized properly: Could not locate class 'X'..."
    rather than only its first line, which blames `from_config`.
    """
    first = (message.strip().splitlines() or [""])[0]
    inner = (_INNER_ERROR.split(message)[-1].strip().splitlines() or [""])[0]
    return first if inner == first else f"{first.split('. ')[0]}: {inner}"
