"""Reader vectors about the request rather than the packet: a missing file, an unknown limit."""

from __future__ import annotations

from .packets import Bases
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """The last reader vectors: an I/O error and a usage error."""
    min_raw = bases.minimal_raw

    # ---- how the request is made
    s.invalid(
        "r-io-missing-file",
        "The input is a path to a file that does not exist.",
        None,
        "IO_ERROR",
        spec=["requests"],
        tags=["io"],
        file="missing",
        mutation=("none", "file", "no file at the path"),
    )
    s.invalid(
        "r-usage-unknown-limit",
        "The request names a limit that does not exist (max_widgets).",
        min_raw,
        "USAGE",
        spec=["requests", "limits"],
        tags=["usage"],
        limits={"max_widgets": 1},
        mutation=("minimal", "limits", "max_widgets := 1"),
    )
