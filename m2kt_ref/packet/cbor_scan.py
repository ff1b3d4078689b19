"""A structural pass over CBOR bytes that builds no objects: item counts and exact duplicate keys.

cbor2 decodes fast but materialises everything, and it compares map keys as Python values, for
which ``1``, ``1.0`` and ``True`` are one key although they are three distinct CBOR items
(RFC 8949 §5.6). This module walks the bytes themselves:

* :func:`count_items` counts the data items of one well-formed item, stopping as soon as a budget
  is exceeded, so a reader can refuse a body whose decoding would allocate too much *before*
  allocating it (``max_body_items``, spec/packet-1.1.md §8). Its memory is the nesting depth.
* :func:`has_duplicate_keys` says whether some map really holds one key twice, comparing keys as
  CBOR items; it runs only when cbor2 has reported a duplicate.

Both assume nothing about well-formedness beyond what they check: malformed input makes them
stop (``count_items`` returns what it counted; the decoder reports the problem).
"""

from __future__ import annotations

import struct
from typing import Any

import cbor2

__all__ = ["KeepTags", "count_items", "has_duplicate_keys"]


def _head(buf: bytes | memoryview, pos: int) -> tuple[int, int, int, int]:
    """(major type, additional info, argument, position after the head); IndexError when short.

    The argument of an indefinite-length head (info 31) is -1.
    """
    first = buf[pos]
    major, info = first >> 5, first & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info <= 27:
        width = 1 << (info - 24)
        if pos + width > len(buf):
            raise IndexError(pos)
        return major, info, int.from_bytes(buf[pos : pos + width], "big"), pos + width
    return major, info, -1, pos


def count_items(buf: bytes | memoryview, budget: int) -> int:
    """The number of data items in the CBOR item at the start of ``buf``, counting every array,
    map, map key and value, string, number, tag and simple value once; the count stops at
    ``budget + 1``.

    Linear in the bytes it reads, with memory proportional to the nesting depth. Ill-formed or
    truncated input ends the count early (what was counted is returned); the decoder that runs
    next reports the problem with its code.
    """
    count = 0
    pos = 0
    pending = [1]  # items still to read, per open container; the outermost is one item
    n = len(buf)
    try:
        while pending:
            if pending[-1] == 0:
                pending.pop()
                continue
            pending[-1] -= 1
            count += 1
            if count > budget:
                return count
            major, _info, arg, pos = _head(buf, pos)
            if arg < 0:  # indefinite lengths are refused by the decoder
                return count
            if major in (2, 3):
                pos += arg
                if pos > n:
                    return count
            elif major == 4:
                if arg > n - pos:  # each item needs at least one byte
                    return count
                pending.append(arg)
            elif major == 5:
                if arg > (n - pos) // 2:
                    return count
                pending.append(2 * arg)
            elif major == 6:
                pending.append(1)
    except IndexError:
        pass
    return count


def _item_end(buf: bytes, pos: int) -> int:
    """The position after the (well-formed) item starting at ``pos``."""
    pending = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        major, _, arg, pos = _head(buf, pos)
        if arg < 0:
            raise IndexError(pos)
        if major in (2, 3):
            pos += arg
        elif major == 4:
            pending.append(arg)
        elif major == 5:
            pending.append(2 * arg)
        elif major == 6:
            pending.append(1)
    if pos > len(buf):
        raise IndexError(pos)
    return pos


def _marker(value: Any) -> Any:
    """A hashable stand-in for a decoded key that is equal only for equal CBOR items."""
    if type(value) is int:
        return ("int", value)
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if value is None or isinstance(value, bool):
        return ("simple", value)
    if isinstance(value, (str, bytes)):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_marker(v) for v in value))
    if isinstance(value, dict) or hasattr(value, "items"):
        return ("map", frozenset((_marker(k), _marker(v)) for k, v in value.items()))
    if isinstance(value, cbor2.CBORTag):
        return ("tag", value.tag, _marker(value.value))
    return ("other", repr(value))


class KeepTags(dict):  # type: ignore[type-arg]
    """``semantic_decoders`` that keeps every tag as a :class:`cbor2.CBORTag` around the item it
    holds, interpreting none: readers do not interpret tags in the signatures entry (spec §4.1),
    so ``1([])`` is a well-formed item there (cbor2's own decoder for tag 1 would refuse it as a
    bad date), and a map key is compared as the item it is."""

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: object, default: Any = None) -> Any:
        return lambda value, *_: cbor2.CBORTag(key, value)

    def __getitem__(self, key: object) -> Any:
        return self.get(key)


def _decode_key(raw: bytes) -> Any:
    import io

    return cbor2.CBORDecoder(
        io.BytesIO(raw), semantic_decoders=KeepTags(), allow_duplicate_keys=True
    ).decode()


def has_duplicate_keys(buf: bytes, max_depth: int) -> bool:
    """Whether a map of the item at the start of ``buf`` holds two keys that are the same CBOR
    item (``1`` and ``1.0`` are different keys; ``1`` twice is a duplicate).

    Returns True as well when the item cannot be walked (ill-formed, deeper than ``max_depth``):
    the caller then keeps the decoder's own error.
    """
    stack: list[tuple[int, set[Any] | None]] = [(1, None)]  # (items left, keys seen if a map)
    pos = 0
    expect_key = [False]
    try:
        while stack:
            left, seen = stack[-1]
            if left == 0:
                stack.pop()
                expect_key.pop()
                continue
            stack[-1] = (left - 1, seen)
            if seen is not None and expect_key[-1]:
                end = _item_end(buf, pos)
                marker = _marker(_decode_key(buf[pos:end]))
                if marker in seen:
                    return True
                seen.add(marker)
                expect_key[-1] = False
                pos = end
                continue
            if seen is not None:
                expect_key[-1] = True
            major, _, arg, pos = _head(buf, pos)
            if arg < 0 or len(stack) > max_depth + 1:
                return True
            if major in (2, 3):
                pos += arg
            elif major == 4:
                stack.append((arg, None))
                expect_key.append(False)
            elif major == 5:
                stack.append((2 * arg, set()))
                expect_key.append(True)
            elif major == 6:
                stack.append((1, None))
                expect_key.append(False)
    except (IndexError, ValueError, cbor2.CBORDecodeError):
        return True
    return False
