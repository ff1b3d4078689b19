"""The suite being built: an ordered list of vectors, and the helpers that write one.

Vectors are kept in the order they are added, which is the order of the manifest; a topic module
that adds its vectors earlier or later changes ``manifest.json`` even when no vector changes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .common import SEC, widen
from .packets import Built, json_form, pad_length
from .reference import PROFILES, summarize


@dataclass
class Suite:
    """The vectors so far. :meth:`add` writes any vector; :meth:`valid` and :meth:`invalid` are
    the shorthands for ``decode`` vectors, which compute the expected summary and intermediates
    from the built packet so that no expected value is typed by hand."""

    vectors: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        vid: str,
        description: str,
        *,
        op: str,
        spec: list[str],
        inp: dict[str, Any],
        expected: dict[str, Any],
        tags: list[str] | None = None,
        mutation: tuple[str, str, str] | None = None,
        intermediate: dict[str, Any] | None = None,
        profiles: list[str] | None = None,
    ) -> None:
        if any(v["id"] == vid for v in self.vectors):
            raise AssertionError(f"duplicate vector id {vid}")
        if profiles is None:
            profiles = [p for p, ops in PROFILES.items() if op in ops]
        doc: dict[str, Any] = {
            "id": vid,
            "description": description,
            "op": op,
            "profiles": profiles,
            "spec": [SEC[s] for s in spec],
            "tags": tags or [],
            "input": inp,
            "expected": expected,
        }
        if mutation is not None:
            doc["mutation"] = dict(zip(("base", "kind", "detail"), mutation, strict=True))
        if intermediate:
            doc["intermediate"] = intermediate
        self.vectors.append(doc)

    # -- reader helpers

    def valid(
        self,
        vid: str,
        description: str,
        b: Built,
        *,
        spec: list[str],
        tags: list[str] | None = None,
        encoding: str = "cbor",
        values: bool = False,
        limits: dict[str, int] | None = None,
        mutation: tuple[str, str, str] | None = None,
        file: bool = False,
    ) -> None:
        raw = b.encode() if encoding == "cbor" else json_form(b)
        inp: dict[str, Any] = {"encoding": encoding, "b64": b64(raw)}
        if file:
            inp["file"] = "present"
        if limits:
            inp["limits"] = limits
        vals = None
        if values:
            inp["values"] = True
            vals = {
                t["name"]: widen(
                    t["dtype"], b.data[t["offset"] : t["offset"] + t["length"]], t.get("scale")
                )
                for t in b.body["tensors"]
            }
        self.add(
            vid,
            description,
            op="decode",
            spec=spec,
            inp=inp,
            expected={
                "outcome": "valid",
                "packet_id": b.packet_id,
                "summary": summarize(b.body, signed=b.signatures is not None, values=vals),
            },
            tags=["valid", *(tags or [])],
            mutation=mutation,
            intermediate=intermediates(b, raw if encoding == "cbor" else None),
        )

    def invalid(
        self,
        vid: str,
        description: str,
        raw: bytes | None,
        code: str,
        *,
        spec: list[str],
        mutation: tuple[str, str, str],
        tags: list[str] | None = None,
        encoding: str = "cbor",
        limits: dict[str, Any] | None = None,
        file: str | None = None,
        intermediate: dict[str, Any] | None = None,
    ) -> None:
        inp: dict[str, Any] = {"encoding": encoding}
        if raw is not None:
            inp["b64"] = b64(raw)
        if file:
            inp["file"] = file
        if limits:
            inp["limits"] = limits
        self.add(
            vid,
            description,
            op="decode",
            spec=spec,
            inp=inp,
            expected={"outcome": "invalid", "code": code},
            tags=tags,
            mutation=mutation,
            intermediate=intermediate,
        )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def intermediates(b: Built, packet: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {"packet_id": b.packet_id, "body_length": len(b.body_bytes)}
    if packet is not None:
        pad = pad_length(len(b.body_bytes), len(b.data))
        out["pad_length"] = pad
        out["data_offset"] = (
            len(packet) - len(b.data) - (0 if b.signatures is None else 11 + len(b.signatures))
        )
    return out
