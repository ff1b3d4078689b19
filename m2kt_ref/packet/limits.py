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
    (a large local packet).
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

    def check(self, name: str, value: int, *, path: str | None = None) -> None:
        """Raise ``LIMIT_EXCEEDED`` when ``value`` is above the limit called ``name``."""
        limit = getattr(self, name)
        if value > limit:
            raise LimitError(f"{name.removeprefix('max_')} {value} exceeds {limit}", path=path)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_LIMITS = Limits()
