"""Atomic writes: the target appears whole or not at all, whatever happens while writing."""

from __future__ import annotations

import os
import stat

import pytest

from m2kt_ref.errors import FileAccessError
from m2kt_ref.packet import files


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_atomic_round_trip_and_mode(tmp_path):
    target = tmp_path / "out.bin"
    files.write_atomic(target, [b"abc", memoryview(b"defg"), b""], mode=0o600)
    assert target.read_bytes() == b"abcdefg"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert bytes(files.read_bytes(target)) == b"abcdefg"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failure_inside_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(failure)), files.AtomicFile(target) as fh:
        fh.write([b"new bytes"])
        raise failure
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_os_errors_become_coded(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(FileAccessError), files.AtomicFile(target) as fh:
        fh.write([b"x"])
        raise OSError(28, "No space left on device")
    assert not target.exists() and leftovers(tmp_path) == []
    with pytest.raises(FileAccessError):
        files.write_atomic(tmp_path / "missing" / "out.bin", [b"x"])


def test_positioned_writes_short_writes_and_writeback(tmp_path, monkeypatch):
    """Chunks split at the writeback size, short pwritev results resumed, holes read as zeros."""
    monkeypatch.setattr(files, "WRITEBACK_BYTES", 4096)
    real = os.pwritev
    hints = []
    monkeypatch.setattr(os, "pwritev", lambda fd, bufs, off: real(fd, bufs[:2], off) // 2 or 1)
    if hasattr(os, "posix_fadvise"):
        real_advise = os.posix_fadvise
        monkeypatch.setattr(os, "posix_fadvise", lambda *a: hints.append(a[1:3]) or real_advise(*a))
    chunks = [bytes([i % 251]) * (1000 + 37 * i) for i in range(40)]
    payload = b"".join(chunks)
    target = tmp_path / "out.bin"
    with files.AtomicFile(target) as fh:
        fh.seek(100)
        fh.write(chunks)
        fh.pwrite(b"H" * 10, 0)
        mapped = fh.map()
    assert target.read_bytes() == b"H" * 10 + bytes(90) + payload
    assert bytes(mapped) == target.read_bytes()
    if hasattr(os, "posix_fadvise"):
        assert hints and all(length >= 4096 for _, length in hints)
