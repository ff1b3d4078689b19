"""Files: memory-mapped reads and atomic writes, for every file m2kt reads or writes.

Packets, keys, trust stores, reports, model directories and docs all go through these two
calls, so a reader never copies a packet it can map, and a writer never leaves a half-written
file behind (temporary file beside the target, fsync, rename; cleaned up on any error or
interrupt).
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

from m2kt_ref.errors import FileAccessError

__all__ = ["read_bytes", "write_atomic"]


def read_bytes(path: str | Path) -> memoryview:
    """Map a file read-only (zero-copy); empty files give an empty view."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {exc.strerror}") from None


def write_atomic(path: str | Path, chunks: list[bytes | memoryview], mode: int = 0o644) -> None:
    """Write chunks to a temporary file beside ``path``, fsync, then rename over ``path``."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise FileAccessError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:  # an interrupt must not leave the temporary file behind either
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise FileAccessError(f"cannot write {target}: {exc.strerror}") from None
        raise
