"""Building many small objects at once, with Python's cyclic garbage collector paused.

Decoding or assembling a body of 10^5 concepts and edges creates millions of dicts, strings and
pydantic models in one call. CPython's cyclic collector runs every few hundred allocations and
its older generations walk every live object, so the collections cost more the bigger the body
(``validate_body`` of 10^5 concepts, edges and descriptors: 1.88 s with the collector running,
1.25 s with it paused; ``benchmarks/codec.py``, docs/performance.md). None of these objects
form reference cycles that
need collecting during the call, so the collector is paused for its duration and any cyclic
garbage is collected afterwards as usual. The state is restored on exit: a collector the caller
had disabled stays disabled.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the ``with`` block (reference counting runs)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
