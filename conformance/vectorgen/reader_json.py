"""Reader vectors for the JSON form (packet-1.1.md §4.5) that break it after it was written."""

from __future__ import annotations

import base64
import json

from .packets import Bases, json_form
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """Malformed JSON, bad base64, unknown members, missing or short tensor data."""
    full, minimal = bases.full, bases.minimal

    # ---- JSON form
    text = json_form(full)
    s.invalid(
        "r-json-malformed-truncated",
        "The JSON form cut in the middle.",
        text[: len(text) // 2],
        "JSON_MALFORMED",
        spec=["json"],
        tags=["json-form"],
        encoding="json",
        mutation=("full", "truncate", f"keep {len(text) // 2} of {len(text)} bytes"),
    )
    name0 = "anchor/a0/state"
    a0 = next(t for t in full.body["tensors"] if t["name"] == name0)
    a0_bytes = full.data[a0["offset"] : a0["offset"] + a0["length"]]
    good = json.dumps(base64.b64encode(a0_bytes).decode())
    assert text.count(good.encode()) == 1
    s.invalid(
        "r-json-malformed-base64",
        "A tensor_data entry that is not base64 ('*' characters).",
        text.replace(good.encode(), b'"****"'),
        "JSON_MALFORMED",
        spec=["json"],
        tags=["json-form"],
        encoding="json",
        mutation=("full", "replace", f"tensor_data[{name0!r}] := '****'"),
    )
    s.invalid(
        "r-json-malformed-nan",
        "A NaN literal (not JSON) as an edge weight.",
        text.replace(b'"weight":0.5', b'"weight":NaN'),
        "JSON_MALFORMED",
        spec=["json"],
        tags=["json-form", "nonfinite"],
        encoding="json",
        mutation=("full", "replace", "weight 0.5 := NaN"),
    )
    s.invalid(
        "r-json-unknown-member",
        "The JSON form's top-level object has an extra member.",
        b'{"extra":1,' + json_form(minimal)[1:],
        "SCHEMA_VIOLATION",
        spec=["json"],
        tags=["json-form"],
        encoding="json",
        mutation=("minimal", "json", "add member extra"),
    )
    s.invalid(
        "r-json-missing-tensor-data",
        "The JSON form lacks the tensor_data entry of one tensor.",
        json.dumps(
            {
                **json.loads(json_form(full)),
                "tensor_data": {
                    k: v
                    for k, v in json.loads(json_form(full))["tensor_data"].items()
                    if k != name0
                },
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode(),
        "DANGLING_REFERENCE",
        spec=["json"],
        tags=["json-form", "dangling"],
        encoding="json",
        mutation=("full", "json", f"drop tensor_data[{name0!r}]"),
    )
    s.invalid(
        "r-json-tensor-data-length",
        "A tensor_data entry one byte shorter than the descriptor's length.",
        text.replace(good.encode(), json.dumps(base64.b64encode(a0_bytes[:3]).decode()).encode()),
        "TENSOR_SHAPE",
        spec=["json", "tensors"],
        tags=["json-form", "shape"],
        encoding="json",
        mutation=("full", "replace", f"tensor_data[{name0!r}] := first 3 bytes"),
    )
