"""Data items of a value as spec/packet-1.1.md §8 counts them, for tests that check the counters.

Written here from the spec's words, not taken from the code under test: every array, map, key
and value once, so a map of n entries is 1 + 2n items and an array of n elements 1 + n.
"""

from __future__ import annotations

from typing import Any


def data_items(value: Any) -> int:
    """The number of data items in ``value`` (a JSON or CBOR data-model value)."""
    if isinstance(value, dict):
        return 1 + sum(1 + data_items(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(data_items(v) for v in value)
    return 1
