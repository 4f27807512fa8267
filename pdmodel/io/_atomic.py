"""Atomic file writes: the one way pdmodel writes a file a reader may see.

Every file is written to a temporary name in its own folder, fsynced and renamed over the
target, so a killed process leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

FileContent = bytes | str | Callable[[BinaryIO], Any]
"""Content of a file: bytes, text (UTF-8) or a function writing to a binary file."""


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (best effort; not on every OS)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_new_file(path: Path, content: FileContent) -> None:
    """Write ``content`` to a new file ``path`` and fsync it (not atomic by itself)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        if isinstance(content, str):
            f.write(content.encode("utf-8"))
        elif isinstance(content, bytes | bytearray | memoryview):
            f.write(content)
        elif callable(content):
            content(f)
        else:
            raise TypeError(f"cannot write {type(content).__name__} to {path.name}: give bytes, "
                            "str or a function taking a binary file")
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` atomically with ``write(tmp)``, a function that writes a new file at the
    temporary path ``tmp`` (in the same folder); the file is then fsynced and renamed.

    For writers that need a file name rather than a file object (netCDF). Missing parent folders
    are created; on any error the previous file (if any) is unchanged and no temporary file is
    left behind. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], Any]) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    Parameters
    ----------
    path : path
        Target; missing parent folders are created.
    data : bytes, or function taking a binary file
        Content.

    Returns
    -------
    Path
        ``path``. On any error the previous file (if any) is unchanged.
    """
    return atomic_write(path, lambda tmp: write_new_file(tmp, data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding))
