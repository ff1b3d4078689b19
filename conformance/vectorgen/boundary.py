"""Boundary vectors: the edges the spec states explicitly, on both sides of each edge.

Depth and integer ranges at their bounds, scalar and empty tensors, and the JSON form's own rules
(packet-1.1.md §4.5): a reader must accept the last value inside a bound and refuse the first
one outside it, so each bound gets a valid vector and an invalid one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from .common import DIM, FULL_TENSORS, T, bf16_bytes, f32_bytes, full_fields, minimal_fields
from .packets import Bases, Built, build, data_items, envelope, json_form, mutate
from .rawcbor import enc
from .reference import summarize
from .suite import Suite, b64, intermediates


def add_vectors(s: Suite, bases: Bases) -> None:
    """Depth 32 and 33, int range ends, scalar and empty tensors, then the JSON form's rules."""
    full, minimal = bases.full, bases.minimal

    def nested(levels: int) -> Any:
        value: Any = 0
        for _ in range(levels):
            value = [value]
        return value

    def with_ext(levels: int) -> dict[str, Any]:
        # body (1) -> extensions (2) -> x-deep (3) -> data arrays (4...)
        return mutate(
            minimal_fields(),
            lambda f: f.update(extensions={"x-deep": {"critical": False, "data": nested(levels)}}),
        )

    s.valid(
        "r-valid-depth-32",
        "Extension data nested so that the body's depth is exactly 32 (the default limit; the "
        "body map is depth 1).",
        build(with_ext(29)),
        spec=["limits", "deterministic"],
        tags=["limits", "depth"],
    )
    s.invalid(
        "r-limit-depth-33",
        "The same packet one level deeper: depth 33 exceeds the default limit.",
        build(with_ext(30)).encode(),
        "LIMIT_EXCEEDED",
        spec=["limits", "deterministic"],
        tags=["limits", "depth"],
        mutation=("r-valid-depth-32", "set", "one more nested array"),
    )
    s.valid(
        "r-valid-int-bounds",
        "Integers at the ends of the int range: seed -2^63, a free-form 2^64 - 1, "
        "n_parameters 2^64 - 1.",
        build(
            mutate(
                minimal_fields(),
                lambda f: (
                    f["provenance"].update(seed=-(2**63), parameters={"max": 2**64 - 1}),
                    f["teacher"].update(n_parameters=2**64 - 1),
                ),
            )
        ),
        spec=["common", "deterministic"],
        tags=["numbers"],
    )
    for vid, desc, fn in (
        (
            "r-schema-seed-below-int",
            "provenance.seed is -2^63 - 1, below the range of int.",
            lambda f: f["provenance"].update(seed=-(2**63) - 1),
        ),
        (
            "r-schema-free-form-int-range",
            "provenance.parameters holds -2^64 (encodable in CBOR, outside int).",
            lambda f: f["provenance"].update(parameters={"x": -(2**64)}),
        ),
    ):
        s.invalid(
            vid,
            desc,
            build(mutate(minimal_fields(), fn)).encode(),
            "SCHEMA_VIOLATION",
            spec=["common", "semantics"],
            tags=["schema", "numbers"],
            mutation=("minimal", "set", desc),
        )
    s.invalid(
        "r-schema-integer-key",
        "provenance.parameters has the integer key 1: map keys are text strings everywhere.",
        envelope(
            enc(
                {**minimal.body, "provenance": {**minimal.body["provenance"], "parameters": {1: 2}}}
            ),
            b"",
        ),
        "SCHEMA_VIOLATION",
        spec=["deterministic", "semantics"],
        tags=["schema", "data-model"],
        mutation=("minimal", "re-encode", "parameters := {1: 2}"),
    )
    fields = full_fields()
    fields["graph"]["edges"][2]["relation"] = "IsA"
    s.invalid(
        "r-schema-relation-form",
        'An edge with relation "IsA": not of the form of a relation name at all.',
        build(fields, FULL_TENSORS).encode(),
        "SCHEMA_VIOLATION",
        spec=["graph"],
        tags=["schema", "relation"],
        mutation=("full", "set", "graph.edges[2].relation := IsA"),
    )
    s.valid(
        "r-valid-scalar-and-empty-tensors",
        "Tensors that nothing names: a scalar (shape [], one element), an empty one (shape "
        "[0, 4], length 0, at the same offset as the next) and a bf16 pair.",
        build(
            minimal_fields(),
            {
                "scalar": T("f32", [], f32_bytes([2.5])),
                "empty": T("f16", [0, DIM], b""),
                "pair": T("bf16", [2], bf16_bytes([1.0, -2.0])),
            },
        ),
        spec=["descriptors", "dtypes", "data"],
        tags=["dtype", "values"],
        values=True,
    )

    # ---- the JSON form's own rules
    doc = json.loads(json_form(minimal))

    def json_variant(fn: Callable[[dict[str, Any]], Any]) -> bytes:
        d = copy.deepcopy(doc)
        fn(d)
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    cases = [
        (
            "r-json-version-major-2",
            'The JSON form\'s m2kt_json is "2.0".',
            json_variant(lambda d: d.update(m2kt_json="2.0")),
            "UNSUPPORTED_VERSION",
        ),
        (
            "r-json-float-for-int",
            "teacher.latent_dim written 4.0 in the JSON form (an integer field takes a JSON "
            "integer, although JSON Schema counts 4.0 as one).",
            json_form(minimal).replace(b'"latent_dim":4', b'"latent_dim":4.0'),
            "SCHEMA_VIOLATION",
        ),
        (
            "r-json-number-overflow",
            "An edge weight written 1e999, beyond binary64.",
            json_form(full).replace(b'"weight":0.5', b'"weight":1e999'),
            "NONFINITE_VALUE",
        ),
        (
            "r-json-lone-surrogate",
            "A free-form text value holding the escape \\ud800 (a lone surrogate).",
            json_variant(lambda d: d["body"]["provenance"]["parameters"].update(s="@")).replace(
                b'"s":"@"', b'"s":"\\ud800"'
            ),
            "JSON_MALFORMED",
        ),
        (
            "r-json-lone-surrogate-typed",
            "A typed text field (teacher.name, a label) holding the escape \\udfff: the JSON "
            "text rule decides before the field's schema rule.",
            json_variant(lambda d: d["body"]["teacher"].update(name="@t@")).replace(
                b'"name":"@t@"', b'"name":"\\udfff"'
            ),
            "JSON_MALFORMED",
        ),
        (
            "r-json-limit-depth",
            "The JSON form's body nested 33 deep (the depth limit applies to the JSON form too).",
            json_variant(
                lambda d: d["body"].update(
                    extensions={"x-deep": {"critical": False, "data": nested(30)}}
                )
            ),
            "LIMIT_EXCEEDED",
        ),
    ]
    for vid, desc, raw, code in cases:
        s.invalid(
            vid,
            desc,
            raw,
            code,
            spec=["json"],
            tags=["json-form"],
            encoding="json",
            mutation=("minimal" if "minimal" in desc else "json-form", "json", desc),
        )
    integral = json.loads(json_form(full))
    integral["body"]["graph"]["edges"][0]["weight"] = 1
    text = json.dumps(integral, sort_keys=True, separators=(",", ":")).encode()
    assert b'"weight":1}' in text
    s.add(
        "r-valid-json-integral-number",
        "The full packet's JSON form with a weight written 1 (not 1.0): a number field is a "
        "float whatever its JSON spelling, so the packet id is the CBOR form's.",
        op="decode",
        spec=["json", "packet_id"],
        inp={"encoding": "json", "b64": b64(text)},
        expected={
            "outcome": "valid",
            "packet_id": full.packet_id,
            "summary": summarize(full.body, signed=False),
        },
        tags=["valid", "json-form", "numbers"],
        intermediate=intermediates(full, None),
    )
    s.add(
        "p-encode-integral-number",
        "Re-encode a JSON form whose weight is written 1: the CBOR holds the float 1.0 (f9 3c 00).",
        op="encode",
        spec=["json", "deterministic"],
        inp={"encoding": "json", "b64": b64(text)},
        expected={"outcome": "valid", "packet_b64": b64(full.encode())},
        tags=["encode", "numbers"],
        intermediate=intermediates(full, full.encode()),
    )
    _item_limits(s, full)


def _item_limits(s: Suite, full: Built) -> None:
    """``max_body_items`` on both sides of its edge, in both encodings, and the JSON form's bound
    on the items beside the body (packet-1.1.md §8 and §4.5)."""
    items = data_items(full.body)
    tensors = len(full.body["tensors"])
    for encoding in ("cbor", "json"):
        suffix = "" if encoding == "cbor" else "-json"
        form = "The full packet" if encoding == "cbor" else "The full packet's JSON form"
        s.valid(
            f"r-valid-body-items-at-limit{suffix}",
            f"{form} under max_body_items = {items}: its body holds exactly that many items "
            "(a map of n entries is 1 + 2n items).",
            full,
            spec=["limits", "json"] if encoding == "json" else ["limits"],
            tags=["limits", "per-vector-limits"],
            encoding=encoding,
            limits={"max_body_items": items},
        )
    s.invalid(
        "r-json-limit-body-items",
        f"The full packet's JSON form under max_body_items = {items - 1}: one body item too "
        "many, counted as in the CBOR form.",
        json_form(full),
        "LIMIT_EXCEEDED",
        spec=["limits", "json"],
        tags=["limits", "per-vector-limits", "json-form"],
        encoding="json",
        limits={"max_body_items": items - 1},
        mutation=("r-valid-body-items-at-limit-json", "limits", f"max_body_items := {items - 1}"),
    )
    doc = json.loads(json_form(full))
    beside = 1 + 2 + 1 + 2 + 2 * tensors  # top object, m2kt_json, body's name, tensor_data
    bound = 2 * tensors + 8
    numbers = bound + 1 - beside - 2  # the member's name and array, then its numbers
    doc["x"] = [0] * numbers
    s.invalid(
        "r-json-limit-items-beside-body",
        f"The full packet's JSON form under max_tensors = {tensors} with an unknown member "
        f"holding {numbers} number(s): {bound + 1} items beside the body, one more than "
        "2 × max_tensors + 8 (refused before the unknown member is seen).",
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
        "LIMIT_EXCEEDED",
        spec=["limits", "json"],
        tags=["limits", "per-vector-limits", "json-form"],
        encoding="json",
        limits={"max_tensors": tensors},
        mutation=("full", "json", f"add member x with {numbers} number(s)"),
    )
    doc["x"] = [0] * (numbers - 1)
    s.invalid(
        "r-json-unknown-member-at-item-bound",
        f"The same with one number fewer: {bound} items beside the body, at the bound, so "
        "the unknown member is what is refused.",
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
        "SCHEMA_VIOLATION",
        spec=["limits", "json"],
        tags=["limits", "per-vector-limits", "json-form"],
        encoding="json",
        limits={"max_tensors": tensors},
        mutation=("full", "json", f"add member x with {numbers - 1} number(s)"),
    )
