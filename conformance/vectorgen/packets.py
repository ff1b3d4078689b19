"""Packets built by hand: tensor layout, the body encoded with :mod:`rawcbor`, the envelope.

The generator does not build packets with the reference library, so that the reference can be
checked against these bytes (:func:`checks.check_reference_canonical`) and so that a vector can
hold what the library would refuse to write. :class:`Bases` holds the two base packets every
topic module starts from, built once.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import rawcbor
from .common import ALIGN, FORMAT_VERSION, FULL_TENSORS, MAGIC, T, full_fields, minimal_fields
from .rawcbor import enc


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Built:
    """A packet built by hand: body (data model), its bytes, the data section, the envelope."""

    body: Any
    body_bytes: bytes
    data: bytes
    signatures: bytes | None = None

    @property
    def packet_id(self) -> str:
        return sha(self.body_bytes)

    def encode(self, **kw: Any) -> bytes:
        return envelope(self.body_bytes, self.data, self.signatures, **kw)


def layout(tensors: dict[str, T]) -> tuple[list[dict[str, Any]], bytearray]:
    infos, offset = [], 0
    for name, t in tensors.items():
        offset = aligned(offset)
        info: dict[str, Any] = {
            "name": name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "offset": offset,
            "length": len(t.raw),
        }
        if t.scale is not None:
            info["scale"] = float(t.scale)
        infos.append(info)
        offset += len(t.raw)
    data = bytearray(aligned(offset))
    for info, t in zip(infos, tensors.values(), strict=True):
        data[info["offset"] : info["offset"] + len(t.raw)] = t.raw
    for info in infos:
        info["sha256"] = sha(bytes(data[info["offset"] : info["offset"] + info["length"]]))
    return infos, data


def build(
    fields: dict[str, Any],
    tensors: dict[str, T] | None = None,
    *,
    infos_hook: Callable[[list[dict[str, Any]], bytearray], Any] | None = None,
    redigest: bool = True,
    body_hook: Callable[[dict[str, Any]], Any] | None = None,
) -> Built:
    """Lay out tensors, fill the descriptors, apply hooks, encode the body with :mod:`rawcbor`.

    ``infos_hook(infos, data)`` may change descriptors and data (return a new bytearray to replace
    the data section); digests are then recomputed unless ``redigest`` is false. ``body_hook``
    maps the body (data model) to what is encoded (it may return rawcbor wrappers).
    """
    infos, data = layout(tensors or {})
    if infos_hook is not None:
        replaced = infos_hook(infos, data)
        if isinstance(replaced, bytearray):
            data = replaced
    if redigest:
        for info in infos:
            start, n = info["offset"], info["length"]
            if start + n <= len(data):
                info["sha256"] = sha(bytes(data[start : start + n]))
    body = {**copy.deepcopy(fields), "tensors": infos}
    encoded = body_hook(body) if body_hook is not None else body
    return Built(body, enc(encoded), bytes(data))


def pad_length(body_len: int, data_len: int) -> int:
    for n in range(128):
        start = (
            len(MAGIC)
            + 1
            + 4
            + len(rawcbor.head(2, n))
            + n
            + 5
            + len(rawcbor.head(2, body_len))
            + body_len
            + 5
            + len(rawcbor.head(2, data_len))
        )
        if start % ALIGN == 0:
            return n
    raise AssertionError("unreachable")


def envelope(
    body: bytes,
    data: bytes,
    signatures: bytes | None = None,
    *,
    pad: bytes | None = None,
    body_head: bytes | None = None,
) -> bytes:
    """The envelope bytes: 55799({"pad": zeros, "body": bstr, "data": bstr, ?"signatures"})."""
    if pad is None:
        pad = bytes(pad_length(len(body), len(data)))
    parts = [
        MAGIC,
        b"\xa4" if signatures is not None else b"\xa3",
        enc("pad"),
        enc(pad),
        enc("body"),
        body_head if body_head is not None else rawcbor.head(2, len(body)),
        body,
        enc("data"),
        enc(data),
    ]
    if signatures is not None:
        parts += [enc("signatures"), signatures]
    return b"".join(parts)


def json_form(b: Built) -> bytes:
    """The JSON form (sorted keys, no spaces) written independently of m2kt_ref.packet.codec."""
    doc: dict[str, Any] = {
        "m2kt_json": FORMAT_VERSION,
        "body": b.body,
        "tensor_data": {
            t["name"]: base64.b64encode(b.data[t["offset"] : t["offset"] + t["length"]]).decode()
            for t in b.body["tensors"]
        },
    }
    if b.signatures is not None:
        doc["signatures"] = base64.b64encode(b.signatures).decode()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def data_items(value: Any) -> int:
    """Data items of a value as spec/packet-1.1.md §8 counts them for ``max_body_items``: every
    array, map, key and value once (a map of n entries is 1 + 2n)."""
    if isinstance(value, dict):
        return 1 + sum(1 + data_items(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(data_items(v) for v in value)
    return 1


def data_offset(packet: bytes, b: Built) -> int:
    """Offset of the data payload in an unsigned packet."""
    return len(packet) - len(b.data)


def aligned_variant(b: Built, *, body_head: bytes) -> bytes:
    """The envelope with a custom body head and a pad recomputed so the data stays aligned."""
    for n in range(128):
        raw = envelope(b.body_bytes, b.data, b.signatures, pad=bytes(n), body_head=body_head)
        if (len(raw) - len(b.data)) % ALIGN == 0:
            return raw
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- body mutations


def mutate(fields: dict[str, Any], fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    out = copy.deepcopy(fields)
    fn(out)
    return out


def replace_tensor(tensors: dict[str, T], name: str, t: T) -> dict[str, T]:
    out = dict(tensors)
    out[name] = t
    return out


def sorted_pairs(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """A map's entries in deterministic order (by encoded key), for re-encoding by hand."""
    return sorted(d.items(), key=lambda kv: enc(kv[0]))


def body_variant(fn: Callable[[dict[str, Any]], Any], base: Built) -> bytes:
    """``base`` with its body re-encoded from ``fn(copy of the body)`` (rawcbor wrappers allowed).

    The data section and pad follow the new body, so only the body's encoding differs.
    """
    return envelope(enc(fn(copy.deepcopy(base.body))), base.data)


# --------------------------------------------------------------------------- the base packets


@dataclass(frozen=True)
class Bases:
    """The two base packets most vectors mutate, and their encoded bytes.

    Built once per run and shared by every topic module, so that each module does not rebuild
    them (they are deterministic, and nothing mutates them: mutations work on copies).
    """

    full: Built
    minimal: Built
    full_raw: bytes
    minimal_raw: bytes

    @classmethod
    def make(cls) -> Bases:
        full = build(full_fields(), FULL_TENSORS)
        minimal = build(minimal_fields())
        return cls(full, minimal, full.encode(), minimal.encode())
