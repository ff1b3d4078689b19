"""The conformance protocol (spec/conformance.md §4): messages, schema, and judging replies.

The harness and an implementation exchange one JSON object per line. Every message is described
by ``schemas/conformance-protocol.schema.json``; :func:`check_message` validates one against its
``$defs`` entry. :func:`summarize` computes the content summary a reader reports for a valid
packet (§3.2), and :func:`judge` compares a reply's result with a vector's expected outcome.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from m2kt_ref.errors import UsageError

__all__ = [
    "PROFILES",
    "PROTOCOL_VERSION",
    "SCHEMA_DIR",
    "VALUE_RTOL",
    "check_message",
    "judge",
    "load_schema",
    "message_problem",
    "summarize",
]

#: The protocol version this harness and the reference adapter speak.
PROTOCOL_VERSION = 1

#: Profiles, and the operations each one runs (spec/conformance.md §2).
PROFILES: dict[str, tuple[str, ...]] = {
    "reader": ("decode",),
    "verifier": ("decode", "verify"),
    "producer": ("encode", "produce"),
}

#: Relative tolerance for ``tensor_values`` (i8 dequantisation may round once differently).
VALUE_RTOL = 1e-6

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``schemas/`` (``name`` without the ``.schema.json`` suffix)."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _validator(name: str, definition: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    sub = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(sub)


def message_problem(definition: str, message: Any) -> str | None:
    """Why ``message`` is not a valid ``definition`` message of the protocol (None when it is)."""
    error = jsonschema.exceptions.best_match(
        _validator("conformance-protocol", definition).iter_errors(message)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message}" + (f" at /{where}" if where else "")


def check_message(definition: str, message: Any) -> None:
    """Raise ``USAGE`` when ``message`` is not a valid ``definition`` message."""
    problem = message_problem(definition, message)
    if problem:
        raise UsageError(f"invalid {definition} message: {problem}")


def summarize(
    body: Mapping[str, Any], *, signed: bool, values: Mapping[str, list[float]] | None = None
) -> dict[str, Any]:
    """The content summary of a decoded packet (spec/conformance.md §3.2).

    Args:
        body: the packet body in the JSON data model.
        signed: whether the envelope carries a signatures item.
        values: tensor name -> elements widened to float32, when the request asked for them.
    """
    out: dict[str, Any] = {
        "format": body["header"]["format"],
        "version": body["header"]["version"],
        "teacher": body["teacher"]["name"],
        "latent_dim": body["teacher"]["latent_dim"],
        "counts": {
            "concepts": len(body["concepts"]),
            "edges": len(body["graph"]["edges"]),
            "traces": len(body["traces"]),
            "anchors": len(body["anchors"]),
            "tensors": len(body["tensors"]),
        },
        "extensions": sorted(body.get("extensions") or {}),
        "signed": signed,
        "tensors": [
            {"name": t["name"], "dtype": t["dtype"], "shape": list(t["shape"])}
            for t in body["tensors"]
        ],
    }
    if values is not None:
        out["tensor_values"] = {k: list(v) for k, v in values.items()}
    return out


def _values_match(want: Mapping[str, list[float]], got: Any) -> str | None:
    if not isinstance(got, dict) or set(got) != set(want):
        return "tensor_values: tensor names differ"
    for name, expected in want.items():
        actual = got[name]
        if not isinstance(actual, list) or len(actual) != len(expected):
            count = len(actual) if isinstance(actual, list) else "?"
            return f"tensor_values[{name}]: {count} elements, expected {len(expected)}"
        for i, (a, b) in enumerate(zip(actual, expected, strict=True)):
            if not isinstance(a, (int, float)) or isinstance(a, bool):
                return f"tensor_values[{name}][{i}] is not a number"
            if not math.isclose(a, b, rel_tol=VALUE_RTOL, abs_tol=1e-30):
                return f"tensor_values[{name}][{i}] = {a!r}, expected {b!r}"
    return None


def _summary_problem(want: Mapping[str, Any], got: Any) -> str | None:
    if not isinstance(got, dict):
        return "no summary"
    for key, expected in want.items():
        if key == "tensor_values":
            problem = _values_match(expected, got.get(key))
            if problem:
                return problem
        elif got.get(key) != expected:
            return f"summary.{key} = {json.dumps(got.get(key))}, expected {json.dumps(expected)}"
    extra = set(got) - set(want)
    if extra:
        return f"summary has unexpected member(s) {sorted(extra)}"
    return None


def _b64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def judge(expected: Mapping[str, Any], result: Mapping[str, Any], op: str) -> str | None:
    """Compare a reply's ``result`` with a vector's ``expected``; None when it passes.

    For ``encode`` and ``produce`` the emitted bytes must equal the expected packet exactly; the
    harness additionally decodes them with the reference (see :mod:`.harness`).
    """
    if expected["outcome"] == "invalid":
        if result.get("outcome") != "invalid":
            return f"accepted; expected {expected['code']}"
        if result.get("code") != expected["code"]:
            return f"refused with {result.get('code')}; expected {expected['code']}"
        return None
    if result.get("outcome") != "valid":
        return f"refused with {result.get('code')}: {result.get('message', '')}".rstrip(": ")
    if op in ("encode", "produce"):
        got = _b64(result.get("packet_b64"))
        if got is None:
            return "packet_b64 missing or not base64"
        want = base64.b64decode(expected["packet_b64"])
        if got != want:
            first = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            return f"emitted {len(got)} bytes, expected {len(want)}; first difference at {first}"
        return None
    if result.get("packet_id") != expected["packet_id"]:
        return f"packet_id {result.get('packet_id')}, expected {expected['packet_id']}"
    problem = _summary_problem(expected["summary"], result.get("summary"))
    if problem:
        return problem
    if "signers" in expected and result.get("signers") != expected["signers"]:
        return f"signers {result.get('signers')}, expected {expected['signers']}"
    return None
