"""Atomic writes and run provenance (pdmodel.io)."""

import pytest

from pdmodel.io import atomic_write, atomic_write_bytes, atomic_write_text

# --------------------------------------------------------------------------- atomic writes


def test_atomic_write(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(p, boom)
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]


def test_atomic_write_with_a_path_writer(tmp_path):
    """``atomic_write`` hands the writer a temporary path in the same folder; a failing writer
    leaves the previous file and no temporary file."""
    p = tmp_path / "f.nc"
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"new")

    assert atomic_write(p, write) == p and p.read_bytes() == b"new"
    assert seen[0].parent == tmp_path and seen[0] != p

    def half(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, half)
    assert p.read_bytes() == b"new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.nc"]
