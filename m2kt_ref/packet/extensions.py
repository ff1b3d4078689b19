"""TEMPORARY stand-in for the 1.1 registered extensions (replaced by the format-1.1 branch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DERIVATIONS",
    "FORMAT_1_1",
    "SELECTION_METHODS",
    "STEP_DECODINGS",
    "derivation_block",
    "operators_block",
]

FORMAT_1_1 = "1.1"
DERIVATIONS = ("teacher-geometry", "teacher-probe", "teacher-trace", "declared")
STEP_DECODINGS = ("teacher-readout", "nearest-concept", "declared")
SELECTION_METHODS = ("cover", "random", "declared")


def derivation_block(
    edges: Sequence[str],
    *,
    trace_steps: str | None = None,
    trace_selection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"edges": list(edges)}
    if trace_steps is not None:
        data["trace_steps"] = trace_steps
    if trace_selection is not None:
        data["trace_selection"] = dict(trace_selection)
    return {"critical": False, "data": data}


def operators_block(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"critical": False, "data": {"entries": [dict(e) for e in entries]}}
