"""Arrays of records in a body (tensor descriptors, concepts, anchors, edges), checked by column.

A packet of many small tensors spends its decode time on records, not on bytes: thousands of
concept maps and tensor descriptors, each re-encoded through cbor2's canonical encoder to prove
the body canonical (about 3 µs a descriptor) and walked one by one by the layout rules. Both
checks have a columnar form:

* :func:`canonical_length` gives the length of the deterministic encoding of a decoded array of
  records from its columns. Every CBOR head, string length and float has exactly one shortest
  form, so an encoding whose maps list their keys in canonical order is the canonical one
  exactly when it has that length: comparing lengths (the decoder reports how many bytes the
  array took) replaces re-encoding it.
* :func:`layout_is_valid` checks offsets, lengths and the dtype/scale pairing with numpy.

Each gives a verdict only for what it covers and ``None`` (or ``False``) otherwise; the callers
then take the general per-item path. A shortcut never accepts what the general path refuses,
and it never reports a problem itself, so errors and their order do not change.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Union

import numpy as np

from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.model import TensorInfo

__all__ = [
    "ANCHOR",
    "CONCEPT",
    "DESCRIPTOR",
    "EDGE",
    "RecordSpec",
    "canonical_length",
    "float_lengths",
    "layout_is_valid",
]

#: Field kinds: a text string, an unsigned integer, an array of unsigned integers, a float.
TEXT, UINT, UINTS, FLOAT = "text", "uint", "uints", "float"


@dataclass(frozen=True)
class RecordSpec:
    """The fields a record may hold and the kind of each (a kind or a nested record)."""

    fields: Mapping[str, Union[str, RecordSpec]]  # noqa: UP007 - a forward reference


DESCRIPTOR = RecordSpec(
    {
        "name": TEXT,
        "dtype": TEXT,
        "shape": UINTS,
        "offset": UINT,
        "length": UINT,
        "sha256": TEXT,
        "scale": FLOAT,
    }
)
MANIFOLD = RecordSpec({"directions": TEXT, "variances": TEXT, "spread": FLOAT, "support": UINT})
CONCEPT = RecordSpec(
    {
        "id": TEXT,
        "label": TEXT,
        "kind": TEXT,
        "embedding": TEXT,
        "manifold": MANIFOLD,
        "level": UINT,
    }
)
ANCHOR = RecordSpec({"id": TEXT, "input": UINTS, "position": UINT, "state": TEXT, "concept": TEXT})
EDGE = RecordSpec({"source": TEXT, "target": TEXT, "relation": TEXT, "weight": FLOAT})

#: Integers above this are left to the general path (numpy int64 arithmetic stays exact).
_BULK_MAX = 1 << 62


def _heads(values: np.ndarray) -> int:
    """Total bytes of the shortest CBOR heads carrying these non-negative integers."""
    return int(
        values.size
        + np.count_nonzero(values >= 24)
        + np.count_nonzero(values >= 1 << 8)
        + 2 * np.count_nonzero(values >= 1 << 16)
        + 4 * np.count_nonzero(values >= 1 << 32)
    )


@lru_cache(maxsize=256)
def _in_canonical_order(keys: tuple[str, ...]) -> bool:
    """Keys in RFC 8949 §4.2.1 order (text keys shorter than 24 bytes: by length, then bytes)."""
    encoded = [(len(k.encode()), k.encode()) for k in keys]
    return all(len(k.encode()) < 24 for k in keys) and encoded == sorted(encoded)


def _all_of(column: list[Any], kind: type) -> bool:
    """Every value is exactly of type ``kind`` (not a subclass: ``bool`` is no ``int`` here)."""
    return set(map(type, column)) <= {kind}


def _uints(column: list[Any]) -> np.ndarray | None:
    if not _all_of(column, int):
        return None
    if column and not 0 <= min(column) <= max(column) < _BULK_MAX:
        return None
    return np.fromiter(column, np.int64, len(column))


def float_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes of each finite float in canonical CBOR: 3, 5 or 9.

    The shortest IEEE width (half, single, double) that holds the value exactly, as RFC 8949
    §4.2.2 and cbor2's canonical encoder choose (tests compare the two on every half-precision
    value and on random singles and doubles).
    """
    with np.errstate(over="ignore"):
        half = values.astype(np.float16).astype(np.float64) == values
        single = values.astype(np.float32).astype(np.float64) == values
    return np.where(half, 3, np.where(single, 5, 9))


def _column_length(column: list[Any], kind: str | RecordSpec) -> int | None:
    """Encoded bytes of every value of one field, or None when one is outside ``kind``."""
    if isinstance(kind, RecordSpec):
        return _records_length(column, kind)
    if kind == TEXT:
        if not _all_of(column, str):
            return None
        if "".join(column).isascii():
            sizes = np.fromiter(map(len, column), np.int64, len(column))
        else:
            sizes = np.fromiter((len(s.encode("utf-8")) for s in column), np.int64, len(column))
        return _heads(sizes) + int(sizes.sum())
    if kind == UINT:
        ints = _uints(column)
        return None if ints is None else _heads(ints)
    if kind == UINTS:
        if not _all_of(column, list):
            return None
        flat = _uints([x for v in column for x in v])
        if flat is None:
            return None
        return _heads(np.fromiter(map(len, column), np.int64, len(column))) + _heads(flat)
    if kind == FLOAT:
        if not _all_of(column, float):
            return None
        values = np.array(column, np.float64)
        if not np.isfinite(values).all():
            return None
        return int(float_lengths(values).sum())
    raise AssertionError(f"unknown kind {kind!r}")


def _records_length(items: list[Any], spec: RecordSpec) -> int | None:
    """Encoded bytes of the records (maps) in ``items``, without an array head."""
    if not _all_of(items, dict):
        return None
    total = 0
    present: Counter[str] = Counter()
    for keys, count in Counter(map(tuple, items)).items():
        if not set(keys) <= spec.fields.keys() or not _in_canonical_order(keys):
            return None
        # map head (at most 23 entries: one byte) and the encoded keys
        total += count * (1 + sum(1 + len(k) for k in keys))
        present.update(dict.fromkeys(keys, count))
    for name, count in present.items():
        if count == len(items):
            column = list(map(itemgetter(name), items))
        else:
            column = [d[name] for d in items if name in d]
        size = _column_length(column, spec.fields[name])
        if size is None:
            return None
        total += size
    return total


def canonical_length(items: Any, spec: RecordSpec) -> int | None:
    """Length in bytes of the deterministic CBOR encoding of a decoded array of records.

    Args:
        items: a decoded array (e.g. a body's ``tensors``) of a body that passed validation,
            so every value is within its schema and every string is valid text.
        spec: the records' fields and kinds (:data:`DESCRIPTOR`, :data:`CONCEPT`, ...).

    Returns:
        The length, when every record lists its keys in canonical order and holds values of
        exactly the kinds of ``spec`` (an ``int`` where an integer is due, a ``float`` where a
        float is); ``None`` otherwise: then only a re-encoding can tell.
    """
    if type(items) is not list:
        return None
    size = _records_length(items, spec)
    if size is None:
        return None
    return _heads(np.array([len(items)], np.int64)) + size


def layout_is_valid(tensors: Sequence[TensorInfo]) -> bool:
    """True when every descriptor passes the layout rules (:func:`rules.iter_layout_errors`).

    The rules: a scale exactly for ``i8``, a length of itemsize x elements, and each offset the
    previous tensor's end rounded up to :data:`~tensors.ALIGNMENT`. False means "look one by
    one", not necessarily "invalid".
    """
    n = len(tensors)
    if n == 0:
        return True
    if any((t.dtype == "i8") != (t.scale is not None) for t in tensors):
        return False
    offsets = [t.offset for t in tensors]
    lengths = [t.length for t in tensors]
    wanted = [tz.itemsize(t.dtype) * math.prod(t.shape) for t in tensors]
    if lengths != wanted or max(max(offsets), max(lengths)) >= _BULK_MAX:
        return False
    start = np.fromiter(offsets, np.int64, n)
    end = start + np.fromiter(lengths, np.int64, n)
    expected = np.empty(n, np.int64)
    expected[0] = 0
    expected[1:] = -(-end[:-1] // tz.ALIGNMENT) * tz.ALIGNMENT
    return bool(np.array_equal(start, expected))
