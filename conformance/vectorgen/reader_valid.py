"""Reader vectors that must decode: the base packets, every dtype, numbers, Unicode, pads."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import DIM, DTYPE_TENSORS, T, f32_bytes, minimal_fields
from .packets import Bases, build, mutate, pad_length
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """The valid packets, first in the manifest."""
    full, minimal, full_raw = bases.full, bases.minimal, bases.full_raw

    # ---- valid packets
    s.valid(
        "r-valid-minimal",
        "The smallest valid packet: every required section, empty lists, no tensors, "
        "an empty data section.",
        minimal,
        spec=["model", "envelope"],
        tags=["every-section"],
    )
    s.valid(
        "r-valid-full",
        "Every section and optional field: manifold, is_a/precedes/x- edges, a trace with "
        "states, an anchor, provenance with a parent, full safety policy, a non-critical "
        "extension; tensors of all four dtypes.",
        full,
        spec=["model", "envelope", "tensors", "summary"],
        tags=["every-section", "every-dtype", "extension-noncritical"],
    )
    s.valid(
        "r-valid-full-values",
        "The full packet, asking for every tensor widened to float32 (f16 and bf16 widen "
        "exactly; i8 is q times scale in binary32).",
        full,
        spec=["dtypes"],
        tags=["every-dtype", "values"],
        values=True,
    )
    s.valid(
        "r-valid-full-from-file",
        "The full packet, given as a file path instead of inline bytes.",
        full,
        spec=["order"],
        file=True,
    )
    for dtype, t in DTYPE_TENSORS.items():
        fields = minimal_fields()
        fields["concepts"] = [
            {"id": "c", "label": "c", "kind": "k", "embedding": "e"},
        ]
        s.valid(
            f"r-valid-dtype-{dtype}",
            f"One concept whose embedding is a {dtype} tensor with edge-case values; the "
            "reader reports the values widened to float32.",
            build(fields, {"e": t}),
            spec=["dtypes"],
            tags=["dtype", f"dtype-{dtype}", "values"],
            values=True,
        )
    s.valid(
        "r-valid-json-minimal",
        "The minimal packet in the JSON form.",
        minimal,
        spec=["json"],
        tags=["json-form"],
        encoding="json",
    )
    s.valid(
        "r-valid-json-full",
        "The full packet in the JSON form (tensor bytes as base64).",
        full,
        spec=["json"],
        tags=["json-form", "every-dtype"],
        encoding="json",
    )
    s.valid(
        "r-valid-version-minor",
        "A higher minor version (1.9) of the same major version is accepted.",
        build(mutate(minimal_fields(), lambda f: f["header"].update(version="1.9"))),
        spec=["versioning"],
    )
    s.valid(
        "r-valid-extension-noncritical",
        "Unknown extensions that are not critical are ignored (one registered-style name, one "
        "x- name, nested data).",
        build(
            mutate(
                minimal_fields(),
                lambda f: f.update(
                    extensions={
                        "acme.tags": {"critical": False, "data": ["a", 1, [2.5, {"k": None}]]},
                        "x-empty": {"critical": False, "data": None},
                    }
                ),
            )
        ),
        spec=["extensions"],
        tags=["extension-noncritical"],
    )

    def dag(f: dict[str, Any]) -> None:
        f["concepts"] = [{"id": c, "label": c, "kind": "k", "embedding": f"e/{c}"} for c in "abcd"]
        f["graph"]["edges"] = [
            {"source": "a", "target": "b", "relation": "is_a", "weight": 1.0},
            {"source": "a", "target": "c", "relation": "is_a", "weight": 1.0},
            {"source": "b", "target": "d", "relation": "is_a", "weight": 1.0},
            {"source": "c", "target": "d", "relation": "is_a", "weight": 1.0},
            {"source": "d", "target": "a", "relation": "precedes", "weight": 0.0},
            {"source": "b", "target": "c", "relation": "similar_to", "weight": 0.5},
            {"source": "c", "target": "b", "relation": "similar_to", "weight": 0.5},
        ]

    four = {f"e/{c}": T("f32", [DIM], f32_bytes([i, 0, 0, 1])) for i, c in enumerate("abcd")}
    s.valid(
        "r-valid-isa-diamond",
        "is_a edges forming a diamond (a DAG, not a cycle), plus cycles through other "
        "relations (precedes, similar_to), which are allowed.",
        build(mutate(minimal_fields(), dag), four),
        spec=["graph", "semantics"],
        tags=["graph"],
    )

    def relations(f: dict[str, Any]) -> None:
        dag(f)
        rels = ["is_a", "part_of", "implies", "similar_to", "precedes", "inverse_of"]
        rels += ["composes_to", "x-Custom.rel_1"]
        f["graph"]["edges"] = [
            {"source": "a", "target": "b", "relation": r, "weight": w / 8}
            for w, r in enumerate(rels)
        ]

    s.valid(
        "r-valid-every-relation",
        "One edge for each registered relation and one x- relation, weights 0 to 7/8.",
        build(mutate(minimal_fields(), relations), four),
        spec=["graph"],
        tags=["graph"],
    )

    def numbers(f: dict[str, Any]) -> None:
        f["teacher"]["n_parameters"] = 2**40 + 1
        f["provenance"]["seed"] = -5
        f["provenance"]["task_inputs_used"] = 65536
        f["provenance"]["concept_probes_used"] = 255
        f["provenance"]["task"]["options"] = {"a": -24, "b": -25, "c": 23, "d": 24, "e": -(2**40)}
        f["provenance"]["parameters"] = {
            "f16": 0.5,
            "f32": float(np.float32(1.1)),
            "f64": 0.1,
            "big": 100000.0,
            "tiny": 5e-324,
            "neg": -2.0,
            "zero": 0.0,
            "negzero": -0.0,
        }

    s.valid(
        "r-valid-number-encodings",
        "Integers at every head width (1, 2, 3, 5, 9 bytes), negative integers, and floats "
        "whose shortest exact form is binary16, binary32 and binary64 (including -0.0 and a "
        "subnormal).",
        build(mutate(minimal_fields(), numbers)),
        spec=["deterministic"],
        tags=["numbers"],
    )

    def unicode(f: dict[str, Any]) -> None:
        f["header"]["title"] = "Zahlen und Grössen — 数 🧮"
        f["teacher"]["name"] = "教師"
        f["provenance"]["parameters"] = {"z": 1, "é": 2, "aa": 3, "日本": 4, "b": 5}

    s.valid(
        "r-valid-unicode",
        "Non-ASCII text (2-, 3- and 4-byte UTF-8) in labels and map keys; keys sort by their "
        "encoded bytes (shorter first).",
        build(mutate(minimal_fields(), unicode)),
        spec=["deterministic"],
        tags=["unicode"],
    )
    for want in (0, 23, 24, 87):
        title = next(
            "x" * n
            for n in range(1, 200)
            if pad_length(
                len(
                    build(
                        mutate(minimal_fields(), lambda f, n=n: f["header"].update(title="x" * n))
                    ).body_bytes
                ),
                0,
            )
            == want
        )
        s.valid(
            f"r-valid-pad-{want}",
            f"A body whose length makes the envelope pad exactly {want} bytes long.",
            build(mutate(minimal_fields(), lambda f, t=title: f["header"].update(title=t))),
            spec=["envelope"],
            tags=["padding"],
        )
    s.valid(
        "r-valid-limits-at-bounds",
        "Per-vector limits set exactly to the packet's counts and sizes: every value equal to "
        "its limit is accepted.",
        full,
        spec=["limits"],
        tags=["limits"],
        limits={
            "max_packet_bytes": len(full_raw),
            "max_body_bytes": len(full.body_bytes),
            "max_tensors": 7,
            "max_concepts": 3,
            "max_edges": 4,
            "max_traces": 1,
            "max_trace_steps": 3,
            "max_anchors": 1,
            "max_tensor_bytes": 24,
        },
    )
