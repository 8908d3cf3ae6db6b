"""File operations of the model store: `os` for a local folder, `tf.io.gfile` for gs://, s3://...

`textclf models list` and `rollback` are emergency commands: on a local store they must not pay
TensorFlow's import (seconds, tens of seconds on a loaded machine), so TensorFlow is imported
only for a remote path. Every failure is raised as `OSError` (a remote one too), so callers
confine it with one `except`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import shutil
from typing import IO, Any, Iterator

# The name of TensorFlow's error for a path that is not there (FileNotFoundError here).
_REMOTE_MISSING = "NotFoundError"
# In the name of a file being written, before it is renamed into place: `<name>.tmp-<pid>`.
TEMPORARY_INFIX = ".tmp-"


def is_remote(path: str) -> bool:
    return "://" in path


def join(*parts: str) -> str:
    return posixpath.join(*parts)


def _gfile() -> Any:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.io.gfile


@contextlib.contextmanager
def _remote_errors_as_oserror() -> Iterator[None]:
    """Raises TensorFlow's file errors as OSError (FileNotFoundError for a missing path)."""
    try:
        yield
    except OSError:
        raise
    except Exception as error:  # pylint: disable=broad-except
        if type(error).__module__.startswith("tensorflow"):
            kind = FileNotFoundError if type(error).__name__ == _REMOTE_MISSING else OSError
            raise kind(str(error)) from error
        raise


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    with _remote_errors_as_oserror():
        return _gfile().isdir(path)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.lexists(path)
    with _remote_errors_as_oserror():
        return _gfile().exists(path)


def listdir(path: str) -> list[str]:
    """The names in folder `path` (no trailing slashes), sorted."""
    if not is_remote(path):
        return sorted(os.listdir(path))
    with _remote_errors_as_oserror():
        return sorted(name.rstrip("/") for name in _gfile().listdir(path))


def read_bytes(path: str, limit: int) -> bytes:
    """The content of file `path`; OSError when it is over `limit` bytes or not a file."""
    if isdir(path):
        raise IsADirectoryError(f"{posixpath.basename(path)} is a folder, not a file")
    with open_binary(path) as handle:
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise OSError(f"{posixpath.basename(path)} is over {limit} bytes")
    return content


@contextlib.contextmanager
def open_binary(path: str) -> Iterator[IO[bytes]]:
    if not is_remote(path):
        with open(path, "rb") as handle:
            yield handle
        return
    with _remote_errors_as_oserror(), _gfile().GFile(path, "rb") as handle:
        yield handle


def write_bytes(path: str, content: bytes) -> None:
    """Replaces file `path` whole: a reader sees the old content or the new, never a part.

    Locally through a temporary file renamed over it (after fsync); an object store's upload
    is atomic by itself.
    """
    if is_remote(path):
        with _remote_errors_as_oserror(), _gfile().GFile(path, "wb") as handle:
            handle.write(content)
        return
    temporary = f"{path}{TEMPORARY_INFIX}{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def remove(path: str) -> None:
    if not is_remote(path):
        os.remove(path)
        return
    with _remote_errors_as_oserror():
        _gfile().remove(path)


def rename(source: str, target: str) -> None:
    """Renames a file or folder; fails if `target` exists (atomic on a local file system)."""
    if not is_remote(source):
        if os.path.lexists(target):
            raise FileExistsError(f"{target} exists")
        os.rename(source, target)
        return
    with _remote_errors_as_oserror():
        _gfile().rename(source, target, overwrite=False)


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    with _remote_errors_as_oserror():
        _gfile().makedirs(path)


def rmtree(path: str) -> None:
    if not is_remote(path):
        shutil.rmtree(path)
        return
    with _remote_errors_as_oserror():
        _gfile().rmtree(path)


def files_below(path: str) -> Iterator[tuple[str, str]]:
    """(relative POSIX path, full path) of every file below folder `path`, in a stable order."""
    if not is_remote(path):
        for folder, folders, files in os.walk(path):
            folders.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                yield posixpath.relpath(full, path).replace(os.sep, "/"), full
        return
    with _remote_errors_as_oserror():
        for folder, _, files in _gfile().walk(path):
            for name in sorted(files):
                full = posixpath.join(folder, name)
                yield posixpath.relpath(full, path), full


def copy_tree(source: str, target: str) -> None:
    makedirs(target)
    for relative, full in files_below(source):
        destination = posixpath.join(target, relative)
        makedirs(posixpath.dirname(destination))
        copy_file(full, destination)


def copy_file(source: str, target: str) -> None:
    if not is_remote(source) and not is_remote(target):
        shutil.copyfile(source, target)
        return
    with _remote_errors_as_oserror():
        _gfile().copy(source, target, overwrite=True)


def content_stamp(path: str) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, modification time in ns) of every file below `path`.

    Changes when any file is added, removed or rewritten: a server re-examines a version it
    refused once this changes (signed in place, a missing file copied in).
    """
    stamp = []
    for relative, full in files_below(path):
        if is_remote(full):
            with _remote_errors_as_oserror():
                stat = _gfile().stat(full)
            stamp.append((relative, stat.length, stat.mtime_nsec))
        else:
            stat = os.stat(full)
            stamp.append((relative, stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


@contextlib.contextmanager
def exclusive_lock(folder: str) -> Iterator[None]:
    """Holds an exclusive lock on `folder` (one writer at a time) on a local file system.

    Object stores have no locks: there one writer at a time is the deployment's promise (one
    pipeline's Pusher, an operator's rollback).
    """
    if is_remote(folder):
        yield
        return
    with open(os.path.join(folder, ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
