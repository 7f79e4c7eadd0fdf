"""Writing a user's file so that a failure never leaves it half-written.

Every file the ``cocopie`` commands and the converter write for a user (a
``.tflite``, a ``.keras``, a plot) goes through here: the new content is
written to a private temporary file in the destination's own directory,
flushed to disk, and renamed over the destination in one step. A failed write
(full disk, file size limit, a crash) leaves the old file as it was and no
temporary file behind. A destination that already exists keeps its
permission bits; a symbolic link keeps pointing where it did, at the new
content.

Example:

>>> write_bytes("model.tflite", tflite_bytes)
>>> with atomic_path("pruned.keras") as temporary:
...     model.save(temporary)          # renamed to pruned.keras on success
"""

import contextlib
import os
import stat
import tempfile


def _destination(path):
    """The file the write must replace: a symbolic link's target, not the link."""
    path = os.fspath(path)
    if not path:
        raise ValueError("Expected an output path. Received: an empty path")
    destination = os.path.realpath(path)
    if os.path.isdir(destination):
        raise IsADirectoryError(f"Expected a file path to write. Received: {path!r} "
                                "is a directory")
    return destination


def _new_file_mode(destination):
    """Permission bits for the result: the old file's, or what ``open`` would give."""
    try:
        return stat.S_IMODE(os.stat(destination).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # read the umask: there is no other way
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot sync a directory; the data is safe
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path to write; on success it replaces ``path``.

    Args:
        path: the file to create or replace.
        suffix: ending of the temporary name (default: ``path``'s extension,
            which writers such as ``model.save`` or matplotlib look at).

    Raises:
        IsADirectoryError: if ``path`` is a directory.
        OSError: if the temporary file cannot be created or renamed; the
            original file is then unchanged.
    """
    destination = _destination(path)
    directory, name = os.path.split(destination)
    if suffix is None:
        suffix = os.path.splitext(name)[1]
    mode = _new_file_mode(destination)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield temporary
        os.chmod(temporary, mode)
        _fsync_path(temporary)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_path(directory, directory=True)


def write_bytes(path, data):
    """Replaces the file at ``path`` with ``data``, atomically (see module doc)."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            f.write(data)
