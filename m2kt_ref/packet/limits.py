"""Decoding limits (spec §8): every one is checked before the memory it guards is allocated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from m2kt_ref.errors import LimitError

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Upper bounds a reader enforces; the defaults are the spec's minimums a reader must accept.

    Pass a different instance to the decoder to be stricter (a network service) or more generous
    (a large local packet). Every limit is checked before the memory it guards is allocated.

    Args:
        max_packet_bytes: size of the whole encoded packet.
        max_body_bytes: size of the encoded body.
        max_signature_bytes: size of the signatures entry.
        max_tensor_bytes: size of one tensor.
        max_tensors: number of tensors.
        max_concepts: number of concepts.
        max_edges: number of graph edges.
        max_traces: number of traces.
        max_trace_steps: steps of one trace.
        max_anchors: number of anchors.
        max_depth: nesting depth of CBOR or JSON values.
        max_body_items: data items of the body (every array, map, key and value once), counted
            before any of them is built: the bound on the reader's work and memory that a byte
            limit alone cannot give (a one-byte empty map costs the decoder some 70 bytes).

    Example:
        >>> import m2kt_ref
        >>> m2kt_ref.DEFAULT_LIMITS.max_depth
        32
        >>> blob = m2kt_ref.encode(m2kt_ref.demo_packet())
        >>> strict = m2kt_ref.Limits(max_packet_bytes=4096)
        >>> try:
        ...     m2kt_ref.decode(blob, strict)
        ... except m2kt_ref.LimitError as exc:
        ...     print(exc.code)
        LIMIT_EXCEEDED
    """

    max_packet_bytes: int = 1 << 34
    max_body_bytes: int = 1 << 28
    max_signature_bytes: int = 1 << 20
    max_tensor_bytes: int = 1 << 33
    max_tensors: int = 1 << 20
    max_concepts: int = 1 << 20
    max_edges: int = 1 << 24
    max_traces: int = 1 << 16
    max_trace_steps: int = 4096
    max_anchors: int = 1 << 20
    max_depth: int = 32
    max_body_items: int = 1 << 22

    def check(self, name: str, value: int, *, path: str | None = None) -> None:
        """Raise ``LIMIT_EXCEEDED`` when ``value`` is above the limit called ``name``.

        Raises:
            LimitError: ``LIMIT_EXCEEDED``, with ``path`` when given.
        """
        limit = getattr(self, name)
        if value > limit:
            raise LimitError(f"{name.removeprefix('max_')} {value} exceeds {limit}", path=path)

    def to_dict(self) -> dict[str, Any]:
        """The limits by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_LIMITS = Limits()
