"""A tiny CBOR encoder for the vector generator that can also write what a packet must not hold.

Plain Python values (``dict``, ``list``, ``str``, ``bytes``, ``int``, ``float``, ``bool``,
``None``) are written in the deterministic encoding of RFC 8949 §4.2.1 (keys sorted by their
encoded bytes, minimal heads, shortest exact float). The wrapper classes write the non-deterministic
or ill-formed variants the conformance vectors need, byte by byte:

* :class:`Pairs` - a map written in the given order, duplicates allowed;
* :class:`Wide` - an integer, or the length head of a string/array/map, with a wider head than
  needed;
* :class:`Indef` - an indefinite-length array, map, text or byte string;
* :class:`Float` - a float written with a given width (2, 4 or 8 bytes);
* :class:`Raw` - literal bytes.

This module is deliberately separate from both the reference library and the independent
implementation; the generator checks that it agrees with the reference's canonical encoder.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class Pairs:
    items: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Wide:
    """``value`` (an int, str, bytes, list or dict) written with a head of ``width`` bytes."""

    value: Any
    width: int


@dataclass(frozen=True)
class Indef:
    """``value`` (list, dict, str or bytes) written with indefinite length (strings in 2 chunks)."""

    value: Any


@dataclass(frozen=True)
class Float:
    value: float
    width: int


def head(major: int, n: int, width: int | None = None) -> bytes:
    """The initial byte(s) of an item: minimal unless ``width`` (0, 1, 2, 4 or 8) is given."""
    if width is None:
        if n < 24:
            width = 0
        elif n < 1 << 8:
            width = 1
        elif n < 1 << 16:
            width = 2
        elif n < 1 << 32:
            width = 4
        else:
            width = 8
    if width == 0:
        return bytes([(major << 5) | n])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([(major << 5) | info]) + n.to_bytes(width, "big")


def shortest_float(x: float) -> bytes:
    """Shortest of binary16/32/64 that holds ``x`` exactly; NaN is 0xf97e00 (RFC 8949 §4.2.2)."""
    if math.isnan(x):
        return b"\xf9\x7e\x00"
    for fmt, prefix in (("e", 0xF9), ("f", 0xFA)):
        try:
            packed = struct.pack(">" + fmt, x)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == x:
            return bytes([prefix]) + packed
    return b"\xfb" + struct.pack(">d", x)


def enc(value: Any) -> bytes:
    """Encode ``value`` (see the module docstring for the wrappers)."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return shortest_float(value)
    if isinstance(value, Float):
        fmt, prefix = {2: ("e", 0xF9), 4: ("f", 0xFA), 8: ("d", 0xFB)}[value.width]
        return bytes([prefix]) + struct.pack(">" + fmt, value.value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw
    if isinstance(value, (bytes, bytearray)):
        return head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return head(4, len(value)) + b"".join(enc(v) for v in value)
    if isinstance(value, dict):
        items = sorted((enc(k), enc(v)) for k, v in value.items())
        return head(5, len(items)) + b"".join(k + v for k, v in items)
    if isinstance(value, Pairs):
        return head(5, len(value.items)) + b"".join(enc(k) + enc(v) for k, v in value.items)
    if isinstance(value, Wide):
        v, w = value.value, value.width
        if isinstance(v, int):
            return head(0, v, w) if v >= 0 else head(1, -1 - v, w)
        if isinstance(v, str):
            raw = v.encode("utf-8")
            return head(3, len(raw), w) + raw
        if isinstance(v, bytes):
            return head(2, len(v), w) + v
        if isinstance(v, list):
            return head(4, len(v), w) + b"".join(enc(x) for x in v)
        if isinstance(v, dict):
            items = sorted((enc(k), enc(x)) for k, x in v.items())
            return head(5, len(items), w) + b"".join(k + x for k, x in items)
        raise TypeError(f"cannot widen {type(v).__name__}")
    if isinstance(value, Indef):
        v = value.value
        if isinstance(v, list):
            return b"\x9f" + b"".join(enc(x) for x in v) + b"\xff"
        if isinstance(v, dict):
            items = sorted((enc(k), enc(x)) for k, x in v.items())
            return b"\xbf" + b"".join(k + x for k, x in items) + b"\xff"
        if isinstance(v, str):
            half = len(v) // 2
            return b"\x7f" + enc(v[:half]) + enc(v[half:]) + b"\xff"
        if isinstance(v, bytes):
            half = len(v) // 2
            return b"\x5f" + enc(v[:half]) + enc(v[half:]) + b"\xff"
        raise TypeError(f"cannot write {type(v).__name__} with indefinite length")
    raise TypeError(f"cannot encode {type(value).__name__}")
