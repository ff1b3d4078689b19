"""Run ``m2kt`` (its ``main``, in this process) and stop it at one point of one file's write.

For tests/test_crash.py. The environment says where:

- ``M2KT_CRASH_FILE``: the name of the file whose write is interrupted (``report.json``, ...);
- ``M2KT_CRASH_POINT``: ``mid`` (half of the first buffer written to the file's temporary
  file), ``before-replace`` (the temporary file is complete, not yet renamed) or
  ``after-replace`` (the new file is in place, the command has not finished);
- ``M2KT_CRASH_MARK``: a path this process creates when it has stopped there; it then sleeps
  until the test kills it with SIGKILL.

The hooks wrap ``os.pwritev``, ``os.pwrite``, ``os.write`` and ``os.replace``, the system calls
every writer of m2kt goes through (``m2kt_ref.packet.files``), so the code under test is the
shipped code. Linux only (the name of a descriptor's file is read from ``/proc/self/fd``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

NAME = os.environ["M2KT_CRASH_FILE"]
POINT = os.environ["M2KT_CRASH_POINT"]
MARK = Path(os.environ["M2KT_CRASH_MARK"])

_real_pwritev, _real_pwrite, _real_write, _real_replace = (
    os.pwritev,
    os.pwrite,
    os.write,
    os.replace,
)


def _stop() -> None:
    MARK.write_text(POINT)
    while True:  # the test kills us here
        time.sleep(1)


def _is_target_tmp(fd: int) -> bool:
    try:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return False
    return name.startswith(f".{NAME}.")


def _pwritev_hook(fd: int, buffers: Any, offset: int, *rest: Any) -> int:
    if POINT == "mid" and _is_target_tmp(fd):
        first = memoryview(buffers[0]).cast("B")
        _real_pwrite(fd, first[: max(1, len(first) // 2)], offset)
        _stop()
    return _real_pwritev(fd, buffers, offset, *rest)


def _pwrite_hook(fd: int, data: Any, offset: int) -> int:
    if POINT == "mid" and _is_target_tmp(fd):
        view = memoryview(data).cast("B")
        _real_pwrite(fd, view[: max(1, len(view) // 2)], offset)
        _stop()
    return _real_pwrite(fd, data, offset)


def _write_hook(fd: int, data: Any) -> int:
    if POINT == "mid" and _is_target_tmp(fd):
        view = memoryview(data).cast("B")
        _real_write(fd, view[: max(1, len(view) // 2)])
        _stop()
    return _real_write(fd, data)


def _replace_hook(src: Any, dst: Any, **kw: Any) -> None:
    hit = Path(dst).name == NAME
    if hit and POINT == "before-replace":
        _stop()
    _real_replace(src, dst, **kw)
    if hit and POINT == "after-replace":
        _stop()


os.pwritev, os.pwrite, os.write, os.replace = (
    _pwritev_hook,
    _pwrite_hook,
    _write_hook,
    _replace_hook,
)

if __name__ == "__main__":
    from m2kt_ref.cli import main

    sys.exit(main(sys.argv[1:]))
