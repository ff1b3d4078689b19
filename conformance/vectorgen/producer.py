"""Producer vectors: packets to emit, byte for byte, and invalid ones a producer must refuse.

``encode`` vectors give the JSON form and expect the normative CBOR; ``produce`` vectors give a
description (fields and tensor bytes) and expect the packet a producer lays out from it. The
refusals make sure a producer does not write what every reader would reject.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from .common import DIM, DTYPE_TENSORS, FULL_TENSORS, T, f32_bytes, full_fields, minimal_fields
from .packets import Bases, build, json_form, mutate, pad_length
from .suite import Suite, b64, intermediates


def describe(fields: dict[str, Any], tensors: dict[str, T]) -> dict[str, Any]:
    """The ``description`` input of a ``produce`` vector: body fields and tensor bytes."""
    out = []
    for name, t in tensors.items():
        d: dict[str, Any] = {
            "name": name,
            "dtype": t.dtype,
            "shape": t.shape,
            "b64": b64(t.raw),
        }
        if t.scale is not None:
            d["scale"] = t.scale
        out.append(d)
    return {"fields": fields, "tensors": out}


def add_vectors(s: Suite, bases: Bases) -> None:
    """Re-encoding, producing from a description (dtypes, numbers, pads, alignment), refusals."""
    full, minimal = bases.full, bases.minimal
    for vid, b, desc in (
        ("p-encode-minimal", minimal, "the minimal packet"),
        ("p-encode-full", full, "the full packet (every section, every dtype)"),
    ):
        s.add(
            vid,
            f"Re-encode the JSON form of {desc} to the normative CBOR.",
            op="encode",
            spec=["json", "deterministic"],
            inp={"encoding": "json", "b64": b64(json_form(b))},
            expected={"outcome": "valid", "packet_b64": b64(b.encode())},
            tags=["encode"],
            intermediate=intermediates(b, b.encode()),
        )

    def produce(
        vid: str,
        desc: str,
        fields: dict[str, Any],
        tensors: dict[str, T],
        tags: list[str],
        spec: list[str],
    ) -> None:
        b = build(fields, tensors)
        s.add(
            vid,
            desc,
            op="produce",
            spec=spec,
            inp={"description": describe(fields, tensors)},
            expected={"outcome": "valid", "packet_b64": b64(b.encode())},
            tags=["produce", *tags],
            intermediate=intermediates(b, b.encode()),
        )

    produce(
        "p-produce-minimal",
        "Emit the minimal packet.",
        minimal_fields(),
        {},
        [],
        ["envelope", "deterministic"],
    )
    produce(
        "p-produce-full",
        "Emit the full packet: every section, four dtypes, tensors laid out in the given order "
        "at 64-byte aligned offsets.",
        full_fields(),
        FULL_TENSORS,
        ["every-section", "every-dtype"],
        ["envelope", "deterministic", "data"],
    )
    for dtype in ("f32", "f16", "bf16", "i8"):
        fields = minimal_fields()
        fields["concepts"] = [{"id": "c", "label": "c", "kind": "k", "embedding": "e"}]
        t = DTYPE_TENSORS[dtype]
        produce(
            f"p-produce-dtype-{dtype}",
            f"Emit a packet with one {dtype} tensor"
            + (" and its scale." if dtype == "i8" else "."),
            fields,
            {"e": t},
            ["dtype", f"dtype-{dtype}"],
            ["dtypes", "data"],
        )

    def numbers(f: dict[str, Any]) -> None:
        f["teacher"]["n_parameters"] = 2**33
        f["provenance"]["seed"] = -1000
        f["provenance"]["parameters"] = {"a": 0.5, "b": 0.1, "c": 1e10, "d": -0.0, "e": 24}
        f["header"]["title"] = "élan 数 🧮"

    fields = minimal_fields()
    numbers(fields)
    produce(
        "p-produce-number-encodings",
        "Emit a body whose numbers need every integer head width and float width, and whose "
        "text is non-ASCII.",
        fields,
        {},
        ["numbers", "unicode"],
        ["deterministic"],
    )
    fields = minimal_fields()
    for want in (0, 87):
        title = next(
            "y" * n
            for n in range(1, 200)
            if pad_length(
                len(
                    build(
                        mutate(minimal_fields(), lambda f, n=n: f["header"].update(title="y" * n))
                    ).body_bytes
                ),
                0,
            )
            == want
        )
        produce(
            f"p-produce-pad-{want}",
            f"Emit a packet whose envelope pad is {want} bytes long.",
            mutate(minimal_fields(), lambda f, t=title: f["header"].update(title=t)),
            {},
            ["padding"],
            ["envelope"],
        )
    many = {
        f"t{i}": T("i8", [n], bytes(range(1, n + 1)), 0.5) for i, n in enumerate((1, 63, 64, 65, 3))
    }
    produce(
        "p-produce-alignment",
        "Emit five i8 tensors of 1, 63, 64, 65 and 3 bytes: offsets 0, 64, 128, 192, 320; the "
        "data section is padded with zeros to 384 bytes.",
        minimal_fields(),
        many,
        ["layout"],
        ["data"],
    )

    # refusals: a producer must not emit what a reader refuses
    for vid, desc, code, fn, tensors in (
        (
            "p-refuse-nonfinite-tensor",
            "A tensor holding NaN.",
            "NONFINITE_VALUE",
            lambda f: f.update(concepts=[{"id": "c", "label": "c", "kind": "k", "embedding": "e"}]),
            {"e": T("f32", [DIM], f32_bytes([0, math.nan, 0, 0]))},
        ),
        (
            "p-refuse-dangling",
            "An edge naming an unknown concept.",
            "DANGLING_REFERENCE",
            lambda f: f["graph"]["edges"].append(
                {"source": "num:0", "target": "ghost", "relation": "implies", "weight": 1.0}
            ),
            FULL_TENSORS,
        ),
        (
            "p-refuse-isa-cycle",
            "is_a edges forming a cycle.",
            "ISA_CYCLE",
            lambda f: f["graph"]["edges"].append(
                {"source": "number", "target": "num:1", "relation": "is_a", "weight": 1.0}
            ),
            FULL_TENSORS,
        ),
        (
            "p-refuse-dimension",
            "An embedding whose width differs from latent_dim.",
            "DIMENSION_MISMATCH",
            lambda f: f["teacher"].update(latent_dim=5),
            FULL_TENSORS,
        ),
    ):
        fields = full_fields() if tensors is FULL_TENSORS else minimal_fields()
        fn(fields)
        s.add(
            vid,
            f"Asked to emit an invalid packet ({desc[0].lower()}{desc[1:-1]}), the producer "
            f"refuses with {code}.",
            op="produce",
            spec=["semantics"],
            inp={"description": describe(fields, tensors)},
            expected={"outcome": "invalid", "code": code},
            tags=["produce", "refuse"],
        )
    s.add(
        "p-encode-refuse-base64",
        "Asked to re-encode a JSON form with invalid base64 tensor data, the producer refuses "
        "with JSON_MALFORMED.",
        op="encode",
        spec=["json"],
        inp={
            "encoding": "json",
            "b64": b64(
                json_form(full).replace(
                    json.dumps(base64.b64encode(full.data[:16]).decode()).encode(), b'"!!!!"'
                )
            ),
        },
        expected={"outcome": "invalid", "code": "JSON_MALFORMED"},
        tags=["encode", "refuse"],
    )
