"""Item counts of a JSON form's text before it is parsed (spec/packet-1.1.md §4.5 and §8).

``json.loads`` builds every value it reads: a text of ``[{},{},...]`` costs some 60 bytes of
memory per three bytes of input. The reader therefore counts the items of the text first, with no
object built, and refuses before parsing when the body holds more than ``max_body_items`` or the
members beside it more than their bound.

Items are counted as in the CBOR form: every array, object, member name and value once (an object
of n members is 1 + 2n items). A bound on the whole text's items comes first, at C speed and
with no memory (``bytes.count`` of the separators and opening brackets); only a text whose bound
is over a limit is walked token by token, to split the body's items from the rest, and the walk
stops as soon as a limit is passed, so its work is bounded by the limits, not by the text.
Ill-formed text is counted as far as it goes; the parser that runs next reports it.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

__all__ = ["JsonItemCount", "count_json_items", "item_bound", "outside_body_budget"]

#: Every token, closing brackets and separators included.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]|[^\s\[\]{},:"]+', re.DOTALL)


def outside_body_budget(max_tensors: int) -> int:
    """Items the members beside ``body`` may hold: ``2 × max_tensors + 8`` (spec/packet-1.1.md
    §4.5), what a signed packet with ``max_tensors`` tensors needs: the top object and its four
    member names, the values of ``m2kt_json`` and ``signatures``, and ``tensor_data`` with a name
    and a string per tensor."""
    return 2 * max_tensors + 8


def item_bound(text: bytes) -> int:
    """At least the number of items in the whole text, at C speed and with no memory.

    A JSON value holds 1 + (commas) + (colons) + (non-empty arrays and objects) items, each
    separator and bracket counted outside strings; counting them inside strings too only adds.
    """
    return 1 + sum(text.count(c) for c in (b",", b":", b"[", b"{"))


class JsonItemCount(NamedTuple):
    """Items of the ``body`` member and of everything else, each stopped one past its budget."""

    body: int
    other: int


def _is_body_key(token: bytes) -> bool:
    if token == b'"body"':
        return True
    if b"\\" not in token:
        return False
    try:
        return json.loads(token) == "body"  # "bo\\u0064y" names the body too
    except ValueError:
        return False


def count_json_items(text: bytes, body_budget: int, other_budget: int) -> JsonItemCount:
    """The items of the top-level ``body`` member's value and of the rest of the text.

    Each count stops at its budget + 1. When :func:`item_bound` of the whole text is within
    the smaller budget, both counts are that bound (no walk is needed: neither can be over).
    """
    bound = item_bound(text)
    if bound <= min(body_budget, other_budget):
        return JsonItemCount(bound, bound)
    body = other = 0
    depth = 0
    body_depth = -1  # depth at which the body's value started; -1: not inside it
    last_top_key = b""
    body_value_next = False
    previous = b""
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[:1]
        if first in (b"]", b"}"):
            depth -= 1
            if depth == body_depth:
                body_depth = -1
            previous = first
            continue
        if first in (b",", b":"):
            body_value_next = first == b":" and depth == 1 and _is_body_key(last_top_key)
            previous = first
            continue
        if depth == 1 and first == b'"' and previous in (b"{", b","):
            last_top_key = token
        if body_value_next:
            body_depth = depth
            body_value_next = False
        if body_depth >= 0:
            body += 1
            if body > body_budget:
                break
        else:
            other += 1
            if other > other_budget:
                break
        if first in (b"[", b"{"):
            depth += 1
        elif depth == body_depth:  # a scalar body is one item
            body_depth = -1
        previous = first
    return JsonItemCount(body, other)
