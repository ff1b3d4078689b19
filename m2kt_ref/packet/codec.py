"""Packet encodings (spec §4): the normative deterministic CBOR envelope and the JSON form.

Envelope (deterministic CBOR, RFC 8949 §4.2.1)::

    55799( {                      ; self-described CBOR tag, then a map of 3 or 4 entries
      "pad":  bstr,               ; zeros, so the data payload starts at a multiple of 64
      "body": bstr .cbor body,    ; the canonical body; packet id = SHA-256 of these bytes
      "data": bstr,               ; every tensor's bytes, 64-byte aligned, addressed by offset
      ? "signatures": COSE_Sign   ; present once signed (spec §7), always last
    } )

The keys appear in that order because deterministic CBOR sorts keys by their encoded bytes.
Tensor bytes never pass through the generic CBOR encoder or decoder: the envelope is written and
parsed here, and tensors are read as zero-copy numpy views of the data payload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import cbor2
import numpy as np
import pydantic

from m2kt_ref.errors import (
    DecodeError,
    LimitError,
    M2ktError,
    TensorError,
    UsageError,
    ValidationError,
    VersionError,
)
from m2kt_ref.packet import columns, json_scan
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.buffers import copy_into, join_bytes
from m2kt_ref.packet.bulk import gc_paused
from m2kt_ref.packet.cbor_scan import KeepTags, count_items, has_duplicate_keys
from m2kt_ref.packet.files import read_bytes, write_atomic
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits
from m2kt_ref.packet.model import PacketBody, TensorInfo
from m2kt_ref.packet.rules import iter_semantic_errors, iter_tensor_data_errors

__all__ = [
    "FORMAT_VERSION",
    "KEY_BODY",
    "KEY_DATA",
    "KEY_PAD",
    "KEY_SIGNATURES",
    "MAGIC",
    "PENDING_DIGEST",
    "Packet",
    "assemble",
    "bstr_header",
    "canonical_cbor",
    "data_length",
    "decode",
    "decode_json",
    "decode_json_data",
    "decode_strict_cbor",
    "describe_tensors",
    "encode",
    "encode_chunks",
    "encode_into",
    "encode_json",
    "encoded_size",
    "envelope_parts",
    "iter_body_errors",
    "iter_packet_errors",
    "pad_length",
    "read_packet",
    "sniff_json",
    "to_json_data",
    "validate_body",
    "write_packet",
]

MAGIC = b"\xd9\xd9\xf7"
KEY_PAD = b"\x63pad"
KEY_BODY = b"\x64body"
KEY_DATA = b"\x64data"
KEY_SIGNATURES = b"\x6asignatures"
FORMAT_VERSION = "1.0"


def bstr_header(n: int) -> bytes:
    """Minimal-length CBOR byte-string header (major type 2) for ``n`` bytes."""
    if n < 24:
        return bytes([0x40 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([0x40 | info]) + n.to_bytes(width, "big")
    raise ValueError("byte string too long for CBOR")


def pad_length(body_len: int, data_len: int) -> int:
    """The smallest pad that puts the data payload at a multiple of 64 (spec §4.1)."""
    for n in range(128):
        start = (
            len(MAGIC)
            + 1
            + len(KEY_PAD)
            + len(bstr_header(n))
            + n
            + len(KEY_BODY)
            + len(bstr_header(body_len))
            + body_len
            + len(KEY_DATA)
            + len(bstr_header(data_len))
        )
        if start % tz.ALIGNMENT == 0:
            return n
    raise AssertionError("a pad below 128 bytes always exists")


def canonical_cbor(value: Any) -> bytes:
    """Deterministic CBOR of a value in the JSON data model (text keys, shortest floats)."""
    return cbor2.dumps(value, canonical=True)


@dataclass(frozen=True, eq=False)
class Packet:
    """A decoded or assembled packet: its body, its tensor data and its signatures.

    Build one with :func:`assemble`, :func:`decode`, :func:`decode_json` or :func:`read_packet`
    rather than by hand: they validate the body and check the data against it.

    Args:
        body: the validated body.
        body_bytes: the canonical CBOR of ``body`` (the packet id hashes these bytes).
        data: the data section, a view of the decoded buffer (never a copy).
        signatures: the encoded COSE_Sign item (opaque here; see :func:`verify_packet`), or
            None for an unsigned packet.
        data_verified: whether ``data`` was checked against the tensor descriptors.

    Example:
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> len(packet.packet_id), packet.body.teacher.latent_dim
        (64, 8)
        >>> packet.tensor_info("trace/t0/states").dtype
        'bf16'
        >>> packet.tensor("trace/t0/states").dtype      # stored values, a zero-copy view
        dtype('uint16')
        >>> packet.tensor_f32("trace/t0/states").shape  # widened to float32
        (3, 8)
        >>> packet.signatures is None
        True
    """

    body: PacketBody
    body_bytes: bytes
    data: memoryview
    signatures: bytes | None = None
    #: The data section was checked against the descriptors (sizes, padding, SHA-256 digests,
    #: finite values) when this packet was decoded, so :func:`~m2kt_ref.verify_packet` need not
    #: hash it again. Not part of equality: two packets with the same bytes are equal.
    data_verified: bool = field(default=False, compare=False)

    @property
    def packet_id(self) -> str:
        """Hex SHA-256 of the canonical body bytes (spec §4.4)."""
        return hashlib.sha256(self.body_bytes).hexdigest()

    def tensor(self, name: str) -> np.ndarray:
        """Stored values of tensor ``name`` as a zero-copy view (bf16 as raw uint16).

        Raises:
            ValidationError: ``DANGLING_REFERENCE`` when the packet has no such tensor.
        """
        info = self.tensor_info(name)
        return tz.view(self.data, info.dtype, tuple(info.shape), info.offset)

    def tensor_f32(self, name: str) -> np.ndarray:
        """Tensor ``name`` widened (and dequantised) to float32.

        Raises:
            ValidationError: ``DANGLING_REFERENCE`` when the packet has no such tensor.
        """
        info = self.tensor_info(name)
        return tz.to_float32(self.tensor(name), info.dtype, info.scale)

    def tensor_info(self, name: str) -> TensorInfo:
        """The descriptor of tensor ``name``; raises ``DANGLING_REFERENCE`` when absent."""
        if name not in self._tensor_index:
            raise ValidationError("DANGLING_REFERENCE", f"no tensor named {name!r}")
        return self.body.tensors[self._tensor_index[name]]

    @cached_property
    def _tensor_index(self) -> dict[str, int]:
        return {t.name: i for i, t in enumerate(self.body.tensors)}

    def with_signatures(self, signatures: bytes | None) -> Packet:
        """The same packet carrying another signatures item (the body, hence the id, unchanged)."""
        return replace(self, signatures=signatures)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (
            self.body_bytes == other.body_bytes
            and self.data == other.data
            and self.signatures == other.signatures
        )

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- building

#: The digest a descriptor holds until its tensor is hashed: the same length as a real one,
#: so a body's encoded size is known before any tensor is hashed.
PENDING_DIGEST = "0" * 64


def describe_tensors(tensors: Mapping[str, tz.EncodedTensor]) -> list[dict[str, Any]]:
    """Descriptors for tensors laid out in order (spec §5.3), digests :data:`PENDING_DIGEST`."""
    infos: list[dict[str, Any]] = []
    offset = 0
    for name, t in tensors.items():
        offset = tz.aligned(offset)
        info: dict[str, Any] = {
            "name": name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "offset": offset,
            "length": t.nbytes,
            "sha256": PENDING_DIGEST,
        }
        if t.scale is not None:
            info["scale"] = float(t.scale)
        infos.append(info)
        offset += t.nbytes
    return infos


def data_length(infos: list[dict[str, Any]]) -> int:
    """Bytes of the data section that holds tensors laid out as ``infos`` say."""
    return tz.aligned(infos[-1]["offset"] + infos[-1]["length"]) if infos else 0


def assemble(
    fields: Mapping[str, Any],
    tensors: Mapping[str, tz.EncodedTensor],
    *,
    workers: int | None = None,
) -> Packet:
    """Build a packet from body fields (everything but ``tensors``) and named tensors.

    Lays the tensors out in the given order, hashes them (on a thread pool), validates the body
    (schema and semantics) and encodes it canonically. Raises the first problem found.

    Args:
        fields: the body's sections in the JSON data model (``header``, ``teacher``,
            ``concepts``, ``graph``, ``traces``, ``anchors``, ``provenance``, ``safety`` and
            optionally ``extensions``); the ``tensors`` descriptors are written here.
        tensors: tensor name -> :class:`EncodedTensor` (see :func:`encode_tensor`), in the order
            they are laid out in the data section.
        workers: threads that hash the tensors (default: one per CPU, at most 8).

    Returns:
        The packet, unsigned, with its body canonically encoded.

    Raises:
        LimitError: ``LIMIT_EXCEEDED`` when a count is above :data:`DEFAULT_LIMITS`.
        VersionError: ``UNSUPPORTED_VERSION`` for another format or major version;
            ``CRITICAL_EXTENSION`` for an unknown extension marked critical.
        ValidationError: ``SCHEMA_VIOLATION`` (a field missing, unknown or out of range),
            ``NONFINITE_VALUE``, ``DUPLICATE_ID``, ``DANGLING_REFERENCE`` (e.g. a concept names a
            tensor that is not given), ``DIMENSION_MISMATCH``, ``ISA_CYCLE`` or
            ``UNKNOWN_RELATION``.
        TensorError: ``TENSOR_DTYPE`` when a tensor's scale does not fit its dtype.

    Example:
        >>> import numpy as np
        >>> import m2kt_ref
        >>> fields = {
        ...     "header": {"format": "m2kt", "version": "1.0", "created": "2026-01-01T00:00:00Z"},
        ...     "teacher": {"name": "tiny", "architecture": "mlp", "latent_dim": 2,
        ...                 "layer": "final", "model_digest": "sha256:" + "0" * 64},
        ...     "concepts": [{"id": "zero", "label": "0", "kind": "symbol", "embedding": "e/0"}],
        ...     "graph": {"edges": []},
        ...     "traces": [],
        ...     "anchors": [],
        ...     "provenance": {"generator": {"name": "example", "version": "1"},
        ...                    "task": {"name": "modular", "options": {"p": 5}},
        ...                    "parents": [], "task_inputs_used": 0, "concept_probes_used": 1,
        ...                    "parameters": {}},
        ...     "safety": {"require_signature": False, "min_signers": 1},
        ... }
        >>> packet = m2kt_ref.assemble(fields, {"e/0": m2kt_ref.encode_tensor(np.array([1, 0]))})
        >>> packet.tensor_f32("e/0")
        array([1., 0.], dtype=float32)
        >>> try:
        ...     m2kt_ref.assemble(fields, {})
        ... except m2kt_ref.ValidationError as exc:
        ...     print(exc.code, exc.path)
        DANGLING_REFERENCE /body/concepts/0/embedding
    """
    infos = describe_tensors(tensors)
    data = bytearray(data_length(infos))
    for info, t in zip(infos, tensors.values(), strict=True):
        data[info["offset"] : info["offset"] + t.nbytes] = t.data
    view = memoryview(data)
    digests = tz.sha256_many(
        [view[i["offset"] : i["offset"] + i["length"]] for i in infos], workers
    )
    for info, digest in zip(infos, digests, strict=True):
        info["sha256"] = digest
    body = validate_body({**fields, "tensors": infos})
    with gc_paused():
        body_bytes = canonical_cbor(body.to_data(share_free_form=True))
    return Packet(body, body_bytes, view.toreadonly())


# --------------------------------------------------------------------------- validation


def _schema_errors(exc: pydantic.ValidationError) -> Iterator[M2ktError]:
    for err in exc.errors(include_url=False, include_input=False):
        path = "/body/" + "/".join(str(p) for p in err["loc"])
        code = "NONFINITE_VALUE" if err["type"] == "finite_number" else "SCHEMA_VIOLATION"
        yield ValidationError(code, err["msg"], path=path)


def _check_counts(raw: Any, limits: Limits) -> None:
    """Count limits, checked on the raw decoded body before model objects are built."""
    if not isinstance(raw, dict):
        return
    for key, limit in (
        ("concepts", "max_concepts"),
        ("traces", "max_traces"),
        ("anchors", "max_anchors"),
        ("tensors", "max_tensors"),
    ):
        items = raw.get(key)
        if isinstance(items, list):
            limits.check(limit, len(items), path=f"/body/{key}")
    graph = raw.get("graph")
    if isinstance(graph, dict) and isinstance(graph.get("edges"), list):
        limits.check("max_edges", len(graph["edges"]), path="/body/graph/edges")
    traces, tensors = raw.get("traces"), raw.get("tensors")
    for i, trace in enumerate(traces if isinstance(traces, list) else []):
        if isinstance(trace, dict) and isinstance(trace.get("steps"), list):
            limits.check("max_trace_steps", len(trace["steps"]), path=f"/body/traces/{i}/steps")
    lengths = [t.get("length") for t in tensors if type(t) is dict] if type(tensors) is list else []
    if max((n for n in lengths if type(n) is int), default=0) <= limits.max_tensor_bytes:
        return  # the loop below only finds the first one too long
    for i, t in enumerate(tensors if isinstance(tensors, list) else []):
        if isinstance(t, dict) and isinstance(t.get("length"), int):
            limits.check("max_tensor_bytes", t["length"], path=f"/body/tensors/{i}/length")


def _check_version(raw: Any) -> None:
    """Refuse other formats and major versions before schema validation (spec §9)."""
    header = raw.get("header") if isinstance(raw, dict) else None
    if not isinstance(header, dict):
        return
    fmt, version = header.get("format"), header.get("version")
    if fmt != "m2kt" and isinstance(fmt, str):
        raise VersionError(
            "UNSUPPORTED_VERSION", f"format {fmt!r} is not m2kt", path="/body/header"
        )
    if isinstance(version, str) and version.split(".")[0] != "1":
        raise VersionError(
            "UNSUPPORTED_VERSION",
            f"version {version} (this reader implements 1.x)",
            path="/body/header/version",
        )


def iter_body_errors(raw: Any, limits: Limits = DEFAULT_LIMITS) -> Iterator[M2ktError]:
    """Every problem of a raw body: limits and version (fatal), then schema, then semantics."""
    try:
        _check_counts(raw, limits)
        _check_version(raw)
    except M2ktError as exc:
        yield exc
        return
    try:
        body = PacketBody.model_validate(raw)
    except pydantic.ValidationError as exc:
        yield from _schema_errors(exc)
        return
    yield from iter_semantic_errors(body)


def validate_body(raw: Any, limits: Limits = DEFAULT_LIMITS) -> PacketBody:
    """Validate a raw body (JSON data model) and return the model; raises the first problem."""
    _check_counts(raw, limits)
    _check_version(raw)
    with gc_paused():
        try:
            body = PacketBody.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise next(_schema_errors(exc)) from None
        for problem in iter_semantic_errors(body):
            raise problem
    return body


# --------------------------------------------------------------------------- CBOR


def envelope_parts(body_len: int, data_len: int, *, signed: bool) -> tuple[bytes, bytes]:
    """The envelope bytes before the body and between the body and the data payload.

    ``before + body + between`` is followed by the data payload, then (when ``signed``) by
    :data:`KEY_SIGNATURES` and the COSE_Sign item; the payload starts at a multiple of 64.
    """
    pad = pad_length(body_len, data_len)
    before = b"".join(
        (
            MAGIC,
            bytes([0xA4 if signed else 0xA3]),
            KEY_PAD,
            bstr_header(pad),
            bytes(pad),
            KEY_BODY,
            bstr_header(body_len),
        )
    )
    return before, KEY_DATA + bstr_header(data_len)


def encode_chunks(packet: Packet) -> list[bytes | memoryview]:
    """The envelope as a list of byte chunks (the data payload is not copied)."""
    body, data = packet.body_bytes, packet.data
    before, between = envelope_parts(len(body), len(data), signed=packet.signatures is not None)
    chunks: list[bytes | memoryview] = [before + body + between, data]
    if packet.signatures is not None:
        chunks += [KEY_SIGNATURES, packet.signatures]
    return chunks


def encoded_size(packet: Packet) -> int:
    """Length in bytes of :func:`encode`'s output, computed without encoding anything."""
    body, data = len(packet.body_bytes), len(packet.data)
    pad = pad_length(body, data)
    size = len(MAGIC) + 1 + len(KEY_PAD) + len(bstr_header(pad)) + pad
    size += len(KEY_BODY) + len(bstr_header(body)) + body
    size += len(KEY_DATA) + len(bstr_header(data)) + data
    if packet.signatures is not None:
        size += len(KEY_SIGNATURES) + len(packet.signatures)
    return size


def encode(packet: Packet) -> bytes:
    """The packet's deterministic CBOR bytes (the normative encoding, spec §4.1).

    Args:
        packet: the packet to encode.

    Returns:
        The envelope: magic tag, pad, canonical body, 64-byte aligned data section, and the
        signatures entry when the packet carries one. Equal packets give equal bytes.

    Example:
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> blob = m2kt_ref.encode(packet)
        >>> blob[:3].hex()                        # self-described CBOR, tag 55799
        'd9d9f7'
        >>> m2kt_ref.encode(m2kt_ref.decode(blob)) == blob
        True
    """
    # one copy of the payload into a buffer on huge pages: a fresh bytes object on 4 KiB pages
    # costs more in page faults than in copying (docs/performance.md, ## Codec)
    return join_bytes(encode_chunks(packet))


def encode_into(packet: Packet, out: Any) -> int:
    """Write the packet's CBOR bytes (as :func:`encode` gives them) to the start of ``out``.

    For callers that already hold memory for the packet (a reused ``bytearray``, a shared or
    mapped buffer, a numpy array): nothing is allocated and the payload is copied once.

    Args:
        packet: the packet to encode.
        out: a writable buffer (anything that supports the buffer protocol) of at least
            :func:`encoded_size` bytes.

    Returns:
        The number of bytes written, :func:`encoded_size` of the packet.

    Raises:
        UsageError: ``USAGE`` when ``out`` is read-only or too small.

    Example:
        >>> import m2kt_ref
        >>> from m2kt_ref.packet.codec import encode_into, encoded_size
        >>> packet = m2kt_ref.demo_packet()
        >>> buf = bytearray(encoded_size(packet) + 10)
        >>> n = encode_into(packet, buf)
        >>> bytes(buf[:n]) == m2kt_ref.encode(packet)
        True
    """
    view = memoryview(out)
    size = encoded_size(packet)
    if view.readonly or view.nbytes < size:
        raise UsageError(f"encode_into needs a writable buffer of {size} bytes")
    return copy_into(encode_chunks(packet), view.cast("B"))


class _Reader:
    """Cursor over the envelope that raises coded errors instead of IndexError."""

    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise DecodeError(
                "TRUNCATED", f"input ends at byte {len(self.buf)}, needed {self.pos + n}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def expect(self, literal: bytes, what: str) -> None:
        got = bytes(self.buf[self.pos : self.pos + len(literal)])
        if got != literal[: len(got)]:
            raise _Mismatch(what)
        self.take(len(literal))  # TRUNCATED when the input stops inside the literal

    def bstr_length(self, what: str) -> int:
        first = self.take(1)[0]
        if first >> 5 != 2:
            raise _Mismatch(what)
        info = first & 0x1F
        if info < 24:
            return info
        if info > 27:
            raise _Mismatch(what)
        width = 1 << (info - 24)
        n = int.from_bytes(self.take(width), "big")
        if bstr_header(n) != bytes([first]) + n.to_bytes(width, "big"):
            raise DecodeError("NON_CANONICAL", f"{what}: non-minimal length", path=f"/{what}")
        return n


class _Mismatch(Exception):
    """The fast envelope parser met something unexpected; the slow path classifies it."""


def _classify(buf: memoryview, limits: Limits) -> DecodeError | LimitError:
    """Explain why ``buf`` is not a packet envelope, using a strict generic CBOR decode."""
    if len(buf) > limits.max_body_bytes * 2 or bytes(buf[: len(MAGIC)]) != MAGIC:
        return DecodeError("NOT_A_PACKET", "input is not an m2kt packet envelope (spec §4.1)")
    # An envelope is a few byte strings and the signatures item: bounded in items before the
    # generic decode builds them (a tag and an array of millions of empty maps would not be).
    budget = limits.max_signature_bytes + 16
    if count_items(buf, budget) > budget:
        return LimitError(f"the envelope holds more than {budget} data items")
    stream = io.BytesIO(bytes(buf))
    try:
        value = cbor2.CBORDecoder(
            stream, max_depth=limits.max_depth, allow_indefinite=False, allow_duplicate_keys=False
        ).decode()
    except Exception as exc:  # cbor2 raises several types for hostile input
        return _cbor_error(exc, "/")
    if stream.tell() != len(buf):
        return DecodeError("TRAILING_BYTES", f"{len(buf) - stream.tell()} bytes after the packet")
    # The input starts with the magic tag, which cbor2 strips (older versions keep a CBORTag).
    inner = value.value if isinstance(value, cbor2.CBORTag) and value.tag == 55799 else value
    if isinstance(inner, Mapping) and {"pad", "body", "data"} <= set(inner) <= {
        "pad",
        "body",
        "data",
        "signatures",
    }:
        return DecodeError("NON_CANONICAL", "envelope entries out of order or not minimal")
    return DecodeError("NOT_A_PACKET", "input is not an m2kt packet envelope (spec §4.1)")


def _cbor_error(exc: Exception, path: str) -> DecodeError | LimitError:
    text = str(exc).lower()
    if isinstance(exc, cbor2.CBORDecodeEOF) or "premature end" in text or "unexpected end" in text:
        return DecodeError("TRUNCATED", "input ends inside a CBOR item", path=path)
    if "indefinite" in text:
        return DecodeError("INDEFINITE_LENGTH", "indefinite-length item", path=path)
    if "duplicate" in text:
        return DecodeError("DUPLICATE_KEY", "map holds a duplicate key", path=path)
    if "depth" in text:
        return LimitError("nesting depth exceeds the limit", path=path)
    return DecodeError("CBOR_MALFORMED", f"malformed CBOR ({text[:80]})", path=path)


class _TagRefused(Exception):
    """Raised inside the CBOR decoder when an item that may not hold tags holds one."""


def _refuse_tag(*_: Any) -> Any:
    raise _TagRefused


class _EveryTag(dict):  # type: ignore[type-arg]
    """``semantic_decoders`` that claims every tag number, so cbor2's built-in tag decoders
    (bignums, dates, sets...) refuse too; ``tag_hook`` alone only sees tags cbor2 does not know."""

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: object, default: Any = None) -> Any:
        return _refuse_tag

    def __getitem__(self, key: object) -> Any:
        return _refuse_tag


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def decode_strict_cbor(item: bytes, limits: Limits, path: str, *, tags: bool = True) -> Any:
    """Decode exactly one CBOR item with indefinite lengths and duplicate keys refused.

    With ``tags=False`` any tag is refused as ``NON_CANONICAL`` (the body may hold none, §4.2);
    with ``tags=True`` tags are kept uninterpreted, as :class:`cbor2.CBORTag`.

    Keys are duplicates when they are the same CBOR item: ``1``, ``1.0`` and ``true`` are
    three keys, which cbor2 (comparing Python values) takes for one. Such a map is re-checked
    by :func:`~m2kt_ref.packet.cbor_scan.has_duplicate_keys`; in the body it is then refused as
    ``SCHEMA_VIOLATION`` (body keys are text), elsewhere decoded with the look-alikes merged.
    """
    try:
        return _decode_cbor(item, limits, path, tags=tags, duplicates=False)
    except DecodeError as exc:
        if exc.code != "DUPLICATE_KEY" or has_duplicate_keys(item, limits.max_depth):
            raise
    value = _decode_cbor(item, limits, path, tags=tags, duplicates=True)
    if not tags:
        raise ValidationError(
            "SCHEMA_VIOLATION",
            "a map has keys that are not text strings (1, 1.0 or true, distinct CBOR keys)",
            path=path,
        )
    return value


def _decode_cbor(item: bytes, limits: Limits, path: str, *, tags: bool, duplicates: bool) -> Any:
    stream = io.BytesIO(item)
    no_tags: dict[str, Any] = (
        {"semantic_decoders": KeepTags()}
        if tags
        else {"semantic_decoders": _EveryTag(), "tag_hook": _refuse_tag}
    )
    try:
        value = cbor2.CBORDecoder(
            stream,
            max_depth=limits.max_depth,
            allow_indefinite=False,
            allow_duplicate_keys=duplicates,
            str_errors="strict",
            **no_tags,
        ).decode()
    except Exception as exc:
        if _caused_by(exc, _TagRefused):
            raise DecodeError("NON_CANONICAL", "the body holds a CBOR tag", path=path) from None
        raise _cbor_error(exc, path) from None
    if stream.tell() != len(item):
        raise DecodeError(
            "TRAILING_BYTES", f"{len(item) - stream.tell()} bytes after the item", path=path
        )
    return value


@dataclass(frozen=True)
class _Envelope:
    body_bytes: bytes
    data: memoryview
    signatures: bytes | None


def _split_envelope(buf: memoryview, limits: Limits) -> _Envelope:
    limits.check("max_packet_bytes", len(buf))
    r = _Reader(buf)
    try:
        r.expect(MAGIC, "magic")
        header = r.take(1)[0]
        if header not in (0xA3, 0xA4):
            raise _Mismatch("map")
        r.expect(KEY_PAD, "pad")
        pad = r.bstr_length("pad")
        pad_bytes = r.take(pad)
        r.expect(KEY_BODY, "body")
        body_len = r.bstr_length("body")
        limits.check("max_body_bytes", body_len, path="/body")
        body_view = r.take(body_len)
        # counted on the mapped bytes, reported after the envelope's own checks (step 1)
        too_many_items = _body_items_error(body_view, limits)
        body = b"" if too_many_items else bytes(body_view)
        r.expect(KEY_DATA, "data")
        data_len = r.bstr_length("data")
        data_start = r.pos
        data = r.take(data_len)
        signatures = None
        if header == 0xA4:
            r.expect(KEY_SIGNATURES, "signatures")
            rest = len(buf) - r.pos
            limits.check("max_signature_bytes", rest, path="/signatures")
            signatures = bytes(r.take(rest))
            decode_strict_cbor(signatures, limits, "/signatures")
            r.pos = len(buf)
    except _Mismatch:
        raise _classify(buf, limits) from None
    if r.pos != len(buf):
        raise DecodeError("TRAILING_BYTES", f"{len(buf) - r.pos} bytes after the packet")
    if pad != pad_length(body_len, data_len) or any(pad_bytes):
        raise DecodeError(
            "BAD_PADDING",
            f"pad of {pad} bytes; expected {pad_length(body_len, data_len)} zero bytes",
            path="/pad",
        )
    assert data_start % tz.ALIGNMENT == 0
    if too_many_items:
        raise too_many_items
    return _Envelope(body, data, signatures)


def _body_items_error(body: memoryview, limits: Limits) -> LimitError | None:
    """``max_body_items`` (spec §8, step 2), before any item is built or the body copied.

    Every item takes at least one byte, so a body no longer than the limit is within it and
    needs no count; a longer one is walked (no objects built) until the limit is passed, so the
    work is bounded by the limit, not by the body.
    """
    if len(body) <= limits.max_body_items:
        return None
    if count_items(body, limits.max_body_items) <= limits.max_body_items:
        return None
    return LimitError(f"the body holds more than {limits.max_body_items} data items", path="/body")


def _decode_body_entries(
    body_bytes: bytes, limits: Limits
) -> tuple[Any, dict[str, tuple[int, int]] | None]:
    """The raw body and, for each top-level entry, the bytes ``[start, end)`` it occupies.

    Decodes exactly as :func:`decode_strict_cbor` with ``tags=False``, one map entry at a time,
    so the bytes of the ``tensors`` array are known without re-encoding it (see
    :func:`_is_own_encoding`). Anything that is not a small definite map of unique text keys,
    and any error, goes to the whole-item decode, which raises the coded error; the spans are
    then None.
    """
    head = body_bytes[0] if body_bytes else 0
    if not 0xA0 <= head <= 0xB7:
        return decode_strict_cbor(body_bytes, limits, "/body", tags=False), None
    stream = io.BytesIO(body_bytes)
    stream.seek(1)
    decoder = cbor2.CBORDecoder(
        stream,
        max_depth=limits.max_depth - 1,  # the map itself is one level
        allow_indefinite=False,
        allow_duplicate_keys=False,
        str_errors="strict",
        semantic_decoders=_EveryTag(),
        tag_hook=_refuse_tag,
    )
    raw: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    try:
        for _ in range(head - 0xA0):
            start = stream.tell()
            key = decoder.decode()
            if type(key) is not str or key in raw:
                raise _Mismatch("key")
            raw[key] = decoder.decode()
            spans[key] = (start, stream.tell())
    except Exception:
        return decode_strict_cbor(body_bytes, limits, "/body", tags=False), None
    if stream.tell() != len(body_bytes):
        return decode_strict_cbor(body_bytes, limits, "/body", tags=False), None
    return raw, spans


#: Body entries that are arrays of records, checked by column (:mod:`columns`).
_RECORD_ARRAYS = {
    "tensors": columns.DESCRIPTOR,
    "concepts": columns.CONCEPT,
    "anchors": columns.ANCHOR,
}


def _canonical_key(key: str) -> bytes:
    return canonical_cbor(key)


def _column_checked_length(key: str, value: Any) -> int | None:
    """Canonical length of a body entry's value when it is checked by column, else None."""
    if key in _RECORD_ARRAYS:
        return columns.canonical_length(value, _RECORD_ARRAYS[key])
    if key == "graph" and type(value) is dict and tuple(value) == ("edges",):
        edges = columns.canonical_length(value["edges"], columns.EDGE)
        return None if edges is None else 1 + len(_canonical_key("edges")) + edges
    return None


def _is_own_encoding(
    body: PacketBody, raw: Any, body_bytes: bytes, spans: dict[str, tuple[int, int]] | None
) -> bool:
    """Whether ``body_bytes`` are exactly the canonical encoding of the validated ``body``.

    The same answer as ``canonical_cbor(body.to_data()) == body_bytes`` when it says True; it
    may say False where that comparison would succeed, and the caller then makes it. The arrays
    of records (tensor descriptors, concepts, anchors, edges), which cost most to re-encode, are
    canonical exactly when their maps list keys in canonical order and they are as long as their
    canonical encoding (:func:`columns.canonical_length`: any other encoding of the same values
    is longer); every other entry is re-encoded and compared.
    """
    if spans is None:
        return canonical_cbor(body.to_data(share_free_form=True)) == body_bytes
    lengths = {key: _column_checked_length(key, raw[key]) for key in spans}
    by_column = {key for key, size in lengths.items() if size is not None}
    data = body.to_data(share_free_form=True, exclude=by_column)
    keys = sorted([*data, *by_column], key=_canonical_key)
    if list(spans) != keys or body_bytes[0] != 0xA0 + len(keys):
        return False
    view = memoryview(body_bytes)
    for key in keys:
        start, end = spans[key]
        encoded_key = _canonical_key(key)
        if view[start : start + len(encoded_key)] != encoded_key:
            return False
        if key in by_column:
            if lengths[key] != end - start - len(encoded_key):
                return False
        elif view[start + len(encoded_key) : end] != canonical_cbor(data[key]):
            return False
    return True


def _check_canonical(raw: Any, body_bytes: bytes) -> None:
    """Raise ``NON_CANONICAL`` unless ``body_bytes`` are the deterministic encoding of ``raw``."""
    try:
        canonical = canonical_cbor(raw)
    except Exception:
        raise DecodeError(
            "NON_CANONICAL", "body holds values outside the JSON data model", path="/body"
        ) from None
    if canonical != body_bytes:
        raise DecodeError("NON_CANONICAL", "body is not deterministically encoded", path="/body")


def _check_reencodes(body: PacketBody, body_bytes: bytes) -> None:
    """Number types must match the schema (e.g. a float field never holds a CBOR integer)."""
    if canonical_cbor(body.to_data(share_free_form=True)) != body_bytes:
        raise DecodeError(
            "NON_CANONICAL",
            "body does not re-encode to the same bytes (a number has the wrong "
            "CBOR type, or a value is outside the data model)",
            path="/body",
        )


def iter_packet_errors(
    buf: bytes | memoryview, limits: Limits = DEFAULT_LIMITS, *, tensor_data: bool = True
) -> Iterator[M2ktError]:
    """Every problem of an encoded packet, stage by stage; later stages run only if earlier pass.

    Stages: envelope, body CBOR, limits/version, schema, semantics, tensor data (size, padding,
    digests, finiteness). Signatures are checked by :func:`verify_packet`, not here. Problems
    are yielded, never raised: this is the "all problems" counterpart of :func:`decode`.

    Args:
        buf: the encoded packet (CBOR envelope).
        limits: decoding limits.
        tensor_data: also check the data section against the descriptors.

    Yields:
        :class:`M2ktError` instances (each with ``code`` and ``path``), in check order; none
        for a valid packet.

    Example:
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> blob = bytearray(m2kt_ref.encode(packet))
        >>> list(m2kt_ref.iter_packet_errors(bytes(blob)))
        []
        >>> first = packet.body.tensors[0]
        >>> blob[len(blob) - len(packet.data) + first.offset] ^= 1   # flip one tensor bit
        >>> [(e.code, e.path) for e in m2kt_ref.iter_packet_errors(bytes(blob))]
        [('TENSOR_DIGEST', '/body/tensors/0/sha256')]
        >>> [e.code for e in m2kt_ref.iter_packet_errors(bytes(blob[:100]))]
        ['TRUNCATED']
    """
    try:
        env = _split_envelope(memoryview(buf), limits)
        with gc_paused():
            raw, spans = _decode_body_entries(env.body_bytes, limits)
    except M2ktError as exc:
        yield exc
        return
    # As in decode: a body that validates and is its own canonical encoding needs no second
    # full encode; otherwise the canonical check (stage 2) is reported before anything later.
    problems = list(iter_body_errors(raw, limits))
    try:
        if problems:
            _check_canonical(raw, env.body_bytes)
            yield from problems
            return
        body = PacketBody.model_validate(raw)
        with gc_paused():
            own = _is_own_encoding(body, raw, env.body_bytes, spans)
        if not own:
            _check_canonical(raw, env.body_bytes)
            _check_reencodes(body, env.body_bytes)
    except M2ktError as exc:
        yield exc
        return
    if tensor_data:
        yield from iter_tensor_data_errors(body, env.data)


def decode(
    buf: bytes | memoryview,
    limits: Limits = DEFAULT_LIMITS,
    *,
    verify_tensors: bool = True,
    workers: int | None = None,
) -> Packet:
    """Decode and validate a packet; tensors stay zero-copy views of ``buf``.

    Signatures are not checked here: pass the packet to :func:`verify_packet` for that.

    Args:
        buf: the encoded packet (bytes, a memoryview or an mmap).
        limits: decoding limits, checked before allocation.
        verify_tensors: also check the data section (digests, padding, finiteness). Leave it on
            for untrusted input; turn it off only for bytes already verified.
        workers: threads that hash tensor digests (default: one per CPU, at most 8).

    Returns:
        The packet; ``data_verified`` is ``verify_tensors``.

    Raises:
        DecodeError: ``TRUNCATED``, ``CBOR_MALFORMED``, ``NOT_A_PACKET``, ``NON_CANONICAL``,
            ``INDEFINITE_LENGTH``, ``DUPLICATE_KEY``, ``TRAILING_BYTES`` or ``BAD_PADDING``.
        LimitError: ``LIMIT_EXCEEDED`` for a size, count or depth above ``limits``.
        VersionError: ``UNSUPPORTED_VERSION`` or ``CRITICAL_EXTENSION``.
        ValidationError: ``SCHEMA_VIOLATION``, ``NONFINITE_VALUE``, ``DUPLICATE_ID``,
            ``DANGLING_REFERENCE``, ``DIMENSION_MISMATCH``, ``ISA_CYCLE`` or
            ``UNKNOWN_RELATION``.
        TensorError: ``TENSOR_DTYPE``, ``TENSOR_SHAPE``, ``TENSOR_LAYOUT`` or ``TENSOR_DIGEST``.

        Each is an :class:`M2ktError` (and a ``ValueError``); the first problem found is raised.

    Example:
        >>> import m2kt_ref
        >>> blob = m2kt_ref.encode(m2kt_ref.demo_packet())
        >>> packet = m2kt_ref.decode(blob)
        >>> packet.body.header.title, packet.data_verified
        ('demo: addition mod 5', True)
        >>> try:
        ...     m2kt_ref.decode(blob + bytes(1))
        ... except m2kt_ref.DecodeError as exc:
        ...     print(exc.code)
        TRAILING_BYTES
    """
    env = _split_envelope(memoryview(buf), limits)
    with gc_paused():
        raw, spans = _decode_body_entries(env.body_bytes, limits)
    # A valid body that re-encodes to its own bytes is canonical, so the canonical check of the
    # raw value (a second full encode) runs only on failure, to report NON_CANONICAL first as
    # iter_packet_errors does.
    try:
        body = validate_body(raw, limits)
    except M2ktError as exc:
        problem: M2ktError | None = exc
    else:
        problem = None
    if problem is not None:
        _check_canonical(raw, env.body_bytes)
        raise problem
    with gc_paused():
        own = _is_own_encoding(body, raw, env.body_bytes, spans)
    if not own:
        _check_canonical(raw, env.body_bytes)
        _check_reencodes(body, env.body_bytes)
    if verify_tensors:
        for problem in iter_tensor_data_errors(body, env.data, workers=workers):
            raise problem
    else:
        # The size check is O(1) and keeps every tensor view inside the data section.
        end = body.tensors[-1].offset + body.tensors[-1].length if body.tensors else 0
        if len(env.data) != tz.aligned(end):
            raise TensorError(
                "TENSOR_LAYOUT",
                f"data section holds {len(env.data)} bytes, descriptors need {tz.aligned(end)}",
                path="/data",
            )
    return Packet(
        body, env.body_bytes, env.data.toreadonly(), env.signatures, data_verified=verify_tensors
    )


# --------------------------------------------------------------------------- JSON form


def to_json_data(packet: Packet, *, share_free_form: bool = False) -> dict[str, Any]:
    """The JSON form (spec §4.5): body as JSON, each tensor's bytes as standard base64
    (``share_free_form``: see :meth:`PacketBody.to_data`)."""
    out: dict[str, Any] = {
        "m2kt_json": FORMAT_VERSION,
        "body": packet.body.to_data(share_free_form=share_free_form),
        "tensor_data": {
            t.name: base64.b64encode(packet.data[t.offset : t.offset + t.length]).decode("ascii")
            for t in packet.body.tensors
        },
    }
    if packet.signatures is not None:
        out["signatures"] = base64.b64encode(packet.signatures).decode("ascii")
    return out


def encode_json(packet: Packet) -> bytes:
    """The JSON form (spec §4.5) as UTF-8 bytes: sorted keys, no spaces, so it is stable too.

    The body travels as JSON and each tensor's bytes as standard base64; :func:`decode_json`
    turns it back into the packet with the same id.

    Args:
        packet: the packet to encode.

    Returns:
        The JSON document's bytes.

    Example:
        >>> import json
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> text = m2kt_ref.encode_json(packet)
        >>> sorted(json.loads(text))
        ['body', 'm2kt_json', 'tensor_data']
        >>> m2kt_ref.decode_json(text) == packet
        True
    """
    text = json.dumps(
        to_json_data(packet, share_free_form=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return text.encode("utf-8")


def _b64(text: Any, path: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError("SCHEMA_VIOLATION", "expected a base64 string", path=path)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("JSON_MALFORMED", "invalid base64", path=path) from None


def _check_depth_and_items(value: Any, limits: Limits, path: str) -> None:
    """The nesting and item limits the CBOR decoder applies to a body, applied to the JSON
    form's parsed body (a member name is an item, as a map key is in CBOR)."""
    stack = [(value, 1)]
    items = 0
    while stack:
        item, depth = stack.pop()
        items += 1
        if isinstance(item, (dict, list)):
            if depth > limits.max_depth:
                raise LimitError(f"nesting depth exceeds {limits.max_depth}", path=path)
            if isinstance(item, dict):
                items += len(item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    if items > limits.max_body_items:
        raise LimitError(f"the body holds more than {limits.max_body_items} data items", path=path)


def _check_text_items(text: bytes | str, limits: Limits) -> None:
    """The JSON form's item limits (spec §4.5), on the text, before it is parsed."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    other_budget = json_scan.outside_body_budget(limits.max_tensors)
    counted = json_scan.count_json_items(raw, limits.max_body_items, other_budget)
    if counted.body > limits.max_body_items:
        raise LimitError(
            f"the body holds more than {limits.max_body_items} data items", path="/body"
        )
    if counted.other > other_budget:
        raise LimitError(
            f"the members beside the body hold more than {other_budget} data items "
            f"(2 × max_tensors + 8)"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON_FORM_VERSION = re.compile(r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")


def decode_json_data(
    doc: Any, limits: Limits = DEFAULT_LIMITS, *, verify_tensors: bool = True
) -> Packet:
    """Build a packet from its parsed JSON form; the result encodes to the canonical CBOR."""
    if not isinstance(doc, dict) or doc.get("m2kt_json") is None or "body" not in doc:
        raise DecodeError("NOT_A_PACKET", "not the JSON form of an m2kt packet")
    version = doc["m2kt_json"]
    if not isinstance(version, str) or not _JSON_FORM_VERSION.fullmatch(version):
        raise ValidationError(
            "SCHEMA_VIOLATION", "m2kt_json must be a MAJOR.MINOR string", path="/m2kt_json"
        )
    if version.split(".")[0] != "1":
        raise VersionError(
            "UNSUPPORTED_VERSION",
            f"JSON form {version} (this reader implements 1.x)",
            path="/m2kt_json",
        )
    extra = set(doc) - {"m2kt_json", "body", "tensor_data", "signatures"}
    if extra:
        raise ValidationError("SCHEMA_VIOLATION", f"unknown member {sorted(extra)[0]!r}", path="/")
    _check_depth_and_items(doc["body"], limits, "/body")
    body = validate_body(doc["body"], limits)
    tensor_data = doc.get("tensor_data")
    if not isinstance(tensor_data, dict):
        raise ValidationError(
            "SCHEMA_VIOLATION", "tensor_data must be an object", path="/tensor_data"
        )
    names = {t.name for t in body.tensors}
    for name in tensor_data:
        if name not in names:
            raise ValidationError(
                "DANGLING_REFERENCE",
                f"tensor_data for unknown tensor {name!r}",
                path=f"/tensor_data/{name}",
            )
    # Decode every tensor first: the declared lengths are only trusted (and the data section
    # allocated) once the bytes that back them are in hand.
    decoded: list[bytes] = []
    for t in body.tensors:
        if t.name not in tensor_data:
            raise ValidationError(
                "DANGLING_REFERENCE", f"no tensor_data for {t.name!r}", path="/tensor_data"
            )
        raw = _b64(tensor_data[t.name], f"/tensor_data/{t.name}")
        if len(raw) != t.length:
            raise TensorError(
                "TENSOR_SHAPE",
                f"{t.name}: {len(raw)} bytes, descriptor says {t.length}",
                path=f"/tensor_data/{t.name}",
            )
        decoded.append(raw)
    end = body.tensors[-1].offset + body.tensors[-1].length if body.tensors else 0
    data = bytearray(tz.aligned(end))
    for t, raw in zip(body.tensors, decoded, strict=True):
        data[t.offset : t.offset + t.length] = raw
    signatures = None
    if "signatures" in doc:
        signatures = _b64(doc["signatures"], "/signatures")
        limits.check("max_signature_bytes", len(signatures), path="/signatures")
        decode_strict_cbor(signatures, limits, "/signatures")
    view = memoryview(data).toreadonly()
    if verify_tensors:
        for problem in iter_tensor_data_errors(body, view):
            raise problem
    try:
        body_bytes = canonical_cbor(body.to_data(share_free_form=True))
    except UnicodeEncodeError:
        # json.loads lets "\ud800" escapes through; RFC 8259 §8.2 text must be Unicode
        raise DecodeError(
            "JSON_MALFORMED", "a string holds a lone surrogate", path="/body"
        ) from None
    return Packet(body, body_bytes, view, signatures, data_verified=verify_tensors)


def decode_json(
    text: bytes | str, limits: Limits = DEFAULT_LIMITS, *, verify_tensors: bool = True
) -> Packet:
    """Parse the JSON form (NaN, Infinity and duplicate members refused).

    Args:
        text: the JSON form, as bytes or text.
        limits: decoding limits, checked before allocation.
        verify_tensors: also check the tensor data (digests, finiteness).

    Returns:
        The packet; it encodes (:func:`encode`) to the canonical CBOR of the same packet.

    Raises:
        DecodeError: ``JSON_MALFORMED`` (not JSON, bad base64, a lone surrogate),
            ``DUPLICATE_KEY`` or ``NOT_A_PACKET``; for the signatures entry, the CBOR codes.
        LimitError: ``LIMIT_EXCEEDED`` for a size, count or depth above ``limits``.
        VersionError: ``UNSUPPORTED_VERSION`` or ``CRITICAL_EXTENSION``.
        ValidationError: ``SCHEMA_VIOLATION``, ``DANGLING_REFERENCE`` (``tensor_data`` and the
            descriptors disagree) and the other body rules, as for :func:`decode`.
        TensorError: ``TENSOR_SHAPE`` when a tensor's bytes have another length than its
            descriptor, ``TENSOR_DIGEST`` and the other data checks.

    Example:
        >>> import m2kt_ref
        >>> packet = m2kt_ref.decode_json(m2kt_ref.encode_json(m2kt_ref.demo_packet()))
        >>> packet.body.header.title
        'demo: addition mod 5'
        >>> try:
        ...     m2kt_ref.decode_json('{"m2kt_json": "1.0", "body": NaN}')
        ... except m2kt_ref.DecodeError as exc:
        ...     print(exc.code)
        JSON_MALFORMED
    """
    limits.check("max_packet_bytes", len(text))
    _check_text_items(text, limits)
    try:
        doc = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_members
        )
    except DecodeError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise DecodeError("JSON_MALFORMED", "not valid JSON") from None
    return decode_json_data(doc, limits, verify_tensors=verify_tensors)


def _lone_surrogate(value: Any) -> bool:
    """Whether a string (or a list of values, recursively) holds a lone surrogate.

    ``json.loads`` lets ``"\\ud800"`` escapes through; RFC 8259 §8.2 text must be Unicode, and a
    typed field must fail as ``JSON_MALFORMED`` before its schema rule sees it. Objects are
    checked by their own hook call.
    """
    if isinstance(value, str):
        if value.isascii():
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DecodeError("DUPLICATE_KEY", "JSON object holds a duplicate member")
    if any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in pairs):
        raise DecodeError("JSON_MALFORMED", "a string holds a lone surrogate")
    return out


# --------------------------------------------------------------------------- files


def sniff_json(head: bytes) -> bool:
    """True when the bytes look like the JSON form (first non-space byte is '{')."""
    return head.lstrip()[:1] == b"{"


def read_packet(
    path: str | Path, limits: Limits = DEFAULT_LIMITS, *, verify_tensors: bool = True
) -> Packet:
    """Read a packet file in either encoding (the JSON form is recognised by its first byte).

    The file is memory-mapped: tensors are zero-copy views of the mapping.

    Args:
        path: the packet file.
        limits: decoding limits, checked before allocation.
        verify_tensors: also check the data section (digests, padding, finiteness).

    Returns:
        The decoded, validated packet.

    Raises:
        FileAccessError: ``IO_ERROR`` when the file cannot be read.
        DecodeError, LimitError, VersionError, ValidationError, TensorError: as for
            :func:`decode` (CBOR) or :func:`decode_json` (JSON form).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     m2kt_ref.write_packet(packet, Path(tmp) / "demo.m2kt")
        ...     m2kt_ref.write_packet(packet, Path(tmp) / "demo.json", encoding="json")
        ...     cbor = m2kt_ref.read_packet(Path(tmp) / "demo.m2kt")
        ...     text = m2kt_ref.read_packet(Path(tmp) / "demo.json")
        ...     print(cbor == packet, text == packet)
        True True
        >>> try:
        ...     m2kt_ref.read_packet("no/such/file.m2kt")
        ... except m2kt_ref.FileAccessError as exc:
        ...     print(exc.code)
        IO_ERROR
    """
    buf = read_bytes(path)
    if sniff_json(bytes(buf[:64])):
        return decode_json(bytes(buf), limits, verify_tensors=verify_tensors)
    return decode(buf, limits, verify_tensors=verify_tensors)


def write_packet(packet: Packet, path: str | Path, *, encoding: str = "cbor") -> None:
    """Write a packet atomically in ``cbor`` (normative) or ``json`` encoding.

    The bytes go to a temporary file beside ``path``, which is synced and then renamed over
    ``path``; on any error the temporary file is removed and ``path`` is left as it was.

    Args:
        packet: the packet to write.
        path: the destination file (replaced if it exists).
        encoding: ``cbor`` (:func:`encode`) or ``json`` (:func:`encode_json`).

    Raises:
        UsageError: ``USAGE`` for another encoding.
        FileAccessError: ``IO_ERROR`` when the file cannot be written.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     m2kt_ref.write_packet(packet, Path(tmp) / "demo.m2kt")
        ...     on_disk = (Path(tmp) / "demo.m2kt").read_bytes()
        >>> on_disk == m2kt_ref.encode(packet)
        True
    """
    if encoding == "json":
        write_atomic(path, [encode_json(packet)])
    elif encoding == "cbor":
        write_atomic(path, encode_chunks(packet))
    else:
        raise UsageError(f"unknown encoding {encoding!r} (cbor or json)")
