"""Reader vectors about what the body says: limits, versions, schema and semantic rules."""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Callable
from typing import Any

from . import rawcbor
from .common import DIM, FULL_TENSORS, MAGIC, T, f16_bytes, f32_bytes, full_fields, minimal_fields
from .packets import Bases, body_variant, build, data_items, mutate, replace_tensor
from .rawcbor import Raw, enc
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """Limits, versions and extensions, schema violations, semantic rules, non-finite values."""
    full, minimal, full_raw = bases.full, bases.minimal, bases.full_raw

    # ---- limits
    s.invalid(
        "r-limit-body-head-default",
        "The body byte string's head announces 2^33 bytes (above the default body limit of "
        "2^28) in a 60-byte input: rejected from the head, before reading or allocating.",
        MAGIC
        + b"\xa3"
        + enc("pad")
        + enc(b"")
        + enc("body")
        + rawcbor.head(2, 1 << 33)
        + bytes(40),
        "LIMIT_EXCEEDED",
        spec=["limits"],
        tags=["limits", "allocation"],
        mutation=("minimal", "replace", "body head := 0x5b 2^33, then 40 zero bytes"),
    )

    def huge_tensor(infos: list[dict[str, Any]], data: bytearray) -> None:
        infos[0]["shape"] = [1 << 32]
        infos[0]["length"] = 1 << 34

    one_tensor = build(
        mutate(
            minimal_fields(),
            lambda f: f.update(concepts=[{"id": "c", "label": "c", "kind": "k", "embedding": "e"}]),
        ),
        {"e": T("f32", [DIM], f32_bytes([1, 2, 3, 4]))},
        infos_hook=huge_tensor,
    )
    s.invalid(
        "r-limit-tensor-bytes-default",
        "A tensor descriptor declares 2^34 bytes (f32 [2^32]), above the default limit of "
        "2^33, in a small packet: rejected from the descriptor before touching the data.",
        one_tensor.encode(),
        "LIMIT_EXCEEDED",
        spec=["limits"],
        tags=["limits", "allocation"],
        mutation=("one-tensor", "replace", "tensors[0].shape := [2^32], length := 2^34"),
    )

    def deep(f: dict[str, Any]) -> None:
        nested: Any = 0
        for _ in range(100):
            nested = [nested]
        f["extensions"] = {"x-deep": {"critical": False, "data": nested}}

    s.invalid(
        "r-limit-depth-default",
        "Extension data nested 100 arrays deep (above the default depth limit of 32).",
        build(mutate(minimal_fields(), deep)).encode(),
        "LIMIT_EXCEEDED",
        spec=["limits"],
        tags=["limits", "depth"],
        mutation=("minimal", "replace", "extensions.x-deep.data := 100 nested arrays"),
    )
    for name, value, what in (
        ("max_packet_bytes", len(full_raw) - 1, "the packet is one byte longer"),
        ("max_body_bytes", len(full.body_bytes) - 1, "the body is one byte longer"),
        ("max_tensors", 6, "7 tensors"),
        ("max_concepts", 2, "3 concepts"),
        ("max_edges", 3, "4 edges"),
        ("max_traces", 0, "1 trace"),
        ("max_trace_steps", 2, "a trace of 3 steps"),
        ("max_anchors", 0, "1 anchor"),
        ("max_tensor_bytes", 23, "a 24-byte tensor"),
        ("max_depth", 4, "provenance.parameters.nested.k is at depth 5"),
        ("max_body_items", data_items(full.body) - 1, f"{data_items(full.body)} body items"),
    ):
        s.invalid(
            f"r-limit-{name.removeprefix('max_').replace('_', '-')}",
            f"The full packet under the limit {name} = {value}: {what}.",
            full_raw,
            "LIMIT_EXCEEDED",
            spec=["limits"],
            tags=["limits", "per-vector-limits"],
            limits={name: value},
            mutation=("full", "limits", f"{name} := {value}"),
        )

    # ---- versions and extensions
    for name, patch, desc in (
        ("major-2", {"version": "2.0"}, "version 2.0"),
        ("major-0", {"version": "0.9"}, "version 0.9"),
        ("format", {"format": "m2kt-next"}, 'format "m2kt-next"'),
    ):
        s.invalid(
            f"r-version-{name}",
            f"The header declares {desc}.",
            build(mutate(minimal_fields(), lambda f, p=patch: f["header"].update(p))).encode(),
            "UNSUPPORTED_VERSION",
            spec=["versioning"],
            tags=["version"],
            mutation=("minimal", "set", desc),
        )
    for name in ("acme.must-understand", "x-critical"):
        s.invalid(
            f"r-critical-extension-{name.replace('.', '-')}",
            f"An unknown extension {name!r} marked critical.",
            build(
                mutate(
                    minimal_fields(),
                    lambda f, n=name: f.update(extensions={n: {"critical": True, "data": 1}}),
                )
            ).encode(),
            "CRITICAL_EXTENSION",
            spec=["extensions", "versioning"],
            tags=["extension-critical"],
            mutation=("minimal", "set", f"extensions.{name} := critical"),
        )

    # ---- schema violations (on the minimal or the full body)
    def schema(
        vid: str,
        desc: str,
        fn: Callable[[dict[str, Any]], Any],
        base: str = "minimal",
        tags: list[str] | None = None,
        code: str = "SCHEMA_VIOLATION",
        spec: list[str] | None = None,
    ) -> None:
        fields = minimal_fields() if base == "minimal" else full_fields()
        tensors = None if base == "minimal" else FULL_TENSORS
        fn(fields)
        s.invalid(
            vid,
            desc,
            build(fields, tensors).encode(),
            code,
            spec=spec or ["model"],
            tags=tags or ["schema"],
            mutation=(base, "set", desc),
        )

    schema("r-schema-missing-section", "The safety section is missing.", lambda f: f.pop("safety"))
    schema(
        "r-schema-unknown-field",
        'The body has an unknown top-level field "comment".',
        lambda f: f.update(comment="hi"),
    )
    schema(
        "r-schema-unknown-nested-field",
        'A concept has an unknown field "color".',
        lambda f: f["concepts"][0].update(color="red"),
        "full",
    )
    schema(
        "r-schema-wrong-type",
        'teacher.latent_dim is the text "4".',
        lambda f: f["teacher"].update(latent_dim="4"),
    )
    schema(
        "r-schema-bool-for-int",
        "safety.min_signers is true instead of an integer.",
        lambda f: f["safety"].update(min_signers=True),
    )
    schema(
        "r-schema-float-for-int",
        "teacher.latent_dim is the float 4.0.",
        lambda f: f["teacher"].update(latent_dim=4.0),
    )
    schema(
        "r-schema-weight-range",
        "An edge weight of 1.5 (weights lie in [0, 1]).",
        lambda f: f["graph"]["edges"][0].update(weight=1.5),
        "full",
        spec=["graph"],
    )
    schema(
        "r-schema-digest-pattern",
        "teacher.model_digest without the sha256: prefix.",
        lambda f: f["teacher"].update(model_digest="ab" * 32),
        spec=["teacher"],
    )
    schema(
        "r-schema-pattern-final-newline",
        "teacher.model_digest followed by a line feed: schema patterns are ECMA-262, where $ "
        "matches only at the very end (not before a final newline, as in some regex engines).",
        lambda f: f["teacher"].update(model_digest="sha256:" + "ab" * 32 + "\n"),
        spec=["teacher", "model"],
    )
    schema(
        "r-schema-id-pattern",
        "A concept id starting with a hyphen.",
        lambda f: f["concepts"][0].update(id="-num"),
        "full",
        spec=["concepts"],
    )
    schema(
        "r-schema-empty-steps",
        "A trace with no steps.",
        lambda f: f["traces"][0].update(steps=[]),
        "full",
        spec=["traces"],
    )
    schema(
        "r-schema-version-pattern",
        'header.version "1.0.0" (MAJOR.MINOR only).',
        lambda f: f["header"].update(version="1.0.0"),
        spec=["header"],
    )
    schema(
        "r-schema-created-pattern",
        "header.created without the trailing Z.",
        lambda f: f["header"].update(created="2026-01-01T00:00:00"),
        spec=["header"],
    )
    s.invalid(
        "r-schema-unknown-dtype",
        'A tensor descriptor with dtype "f64", not in the dtype set.',
        build(
            full_fields(), FULL_TENSORS, infos_hook=lambda i, d: i[0].update(dtype="f64")
        ).encode(),
        "SCHEMA_VIOLATION",
        spec=["dtypes"],
        tags=["schema"],
        mutation=("full", "set", "tensors[0].dtype := f64"),
    )
    s.invalid(
        "r-schema-too-many-dims",
        "A tensor descriptor with 9 dimensions (at most 8).",
        build(
            full_fields(),
            FULL_TENSORS,
            infos_hook=lambda i, d: i[2].update(shape=[1] * 8 + [2]),
        ).encode(),
        "SCHEMA_VIOLATION",
        spec=["data"],
        tags=["schema"],
        mutation=("full", "set", "tensors[2].shape := [1,1,1,1,1,1,1,1,2]"),
    )
    s.invalid(
        "r-schema-byte-string-for-text",
        "teacher.name is a CBOR byte string, not a text string.",
        body_variant(lambda b: {**b, "teacher": {**b["teacher"], "name": b"teacher"}}, minimal),
        "SCHEMA_VIOLATION",
        spec=["model", "deterministic"],
        tags=["schema", "data-model"],
        mutation=("minimal", "re-encode", "teacher.name := h'74656163686572'"),
    )
    s.invalid(
        "r-noncanonical-tag-in-body",
        "provenance.parameters holds a tagged value (tag 1, epoch time): the body holds no tags.",
        body_variant(
            lambda b: {
                **b,
                "provenance": {
                    **b["provenance"],
                    "parameters": {"t": Raw(b"\xc1\x1a\x65\x00\x00\x00")},
                },
            },
            minimal,
        ),
        "NON_CANONICAL",
        spec=["deterministic"],
        tags=["non-canonical", "tag"],
        mutation=("minimal", "re-encode", "parameters.t := 1(1694498816)"),
    )
    s.invalid(
        "r-schema-undefined-in-body",
        "provenance.parameters holds the simple value undefined (0xf7).",
        body_variant(
            lambda b: {**b, "provenance": {**b["provenance"], "parameters": {"u": Raw(b"\xf7")}}},
            minimal,
        ),
        "SCHEMA_VIOLATION",
        spec=["model", "deterministic"],
        tags=["schema", "data-model"],
        mutation=("minimal", "re-encode", "parameters.u := undefined"),
    )

    # ---- semantic rules
    def sem(
        vid: str,
        desc: str,
        code: str,
        fn: Callable[[dict[str, Any]], Any],
        tensors: dict[str, T] | None = None,
        spec: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        fields = full_fields()
        fn(fields)
        s.invalid(
            vid,
            desc,
            build(fields, tensors if tensors is not None else FULL_TENSORS).encode(),
            code,
            spec=spec or ["semantics"],
            tags=tags or [],
            mutation=("full", "set", desc),
        )

    sem(
        "r-duplicate-id-concept",
        'Two concepts with the id "num:1".',
        "DUPLICATE_ID",
        lambda f: f["concepts"][2].update(id="num:1"),
        tags=["duplicate-id"],
    )
    sem(
        "r-duplicate-id-trace",
        'Two traces with the id "t0".',
        "DUPLICATE_ID",
        lambda f: f["traces"].append(copy.deepcopy(f["traces"][0])),
        tags=["duplicate-id"],
    )
    sem(
        "r-duplicate-id-anchor",
        'Two anchors with the id "a0".',
        "DUPLICATE_ID",
        lambda f: f["anchors"].append(copy.deepcopy(f["anchors"][0])),
        tags=["duplicate-id"],
    )
    s.invalid(
        "r-duplicate-id-tensor",
        'Two tensor descriptors named "concept/num:1/embedding" (the second is the bf16 one).',
        build(
            full_fields(),
            FULL_TENSORS,
            infos_hook=lambda i, d: i[4].update(name="concept/num:1/embedding"),
        ).encode(),
        "DUPLICATE_ID",
        spec=["semantics"],
        tags=["duplicate-id"],
        mutation=("full", "set", "tensors[4].name := tensors[3].name"),
    )
    sem(
        "r-dangling-edge",
        'An edge to the unknown concept "num:9".',
        "DANGLING_REFERENCE",
        lambda f: f["graph"]["edges"][2].update(target="num:9"),
        tags=["dangling"],
    )
    sem(
        "r-dangling-trace-step",
        'A trace step naming the unknown concept "num:9".',
        "DANGLING_REFERENCE",
        lambda f: f["traces"][0]["steps"][1].update(concept="num:9"),
        tags=["dangling"],
    )
    sem(
        "r-dangling-anchor-concept",
        'An anchor naming the unknown concept "num:9".',
        "DANGLING_REFERENCE",
        lambda f: f["anchors"][0].update(concept="num:9"),
        tags=["dangling"],
    )
    sem(
        "r-dangling-protected-concept",
        'safety.protected_concepts names the unknown concept "num:9".',
        "DANGLING_REFERENCE",
        lambda f: f["safety"].update(protected_concepts=["num:9"]),
        tags=["dangling"],
    )
    sem(
        "r-dangling-embedding",
        "A concept's embedding names a tensor that does not exist.",
        "DANGLING_REFERENCE",
        lambda f: f["concepts"][1].update(embedding="concept/none"),
        tags=["dangling"],
    )
    sem(
        "r-dangling-trace-states",
        "A trace's states name a tensor that does not exist.",
        "DANGLING_REFERENCE",
        lambda f: f["traces"][0].update(states="trace/none"),
        tags=["dangling"],
    )
    sem(
        "r-dimension-embedding",
        "A concept embedding of shape [5] while latent_dim is 4.",
        "DIMENSION_MISMATCH",
        lambda f: None,
        tensors=replace_tensor(
            FULL_TENSORS, "concept/num:1/embedding", T("f32", [5], f32_bytes([1, 2, 3, 4, 5]))
        ),
        tags=["dimension"],
    )
    sem(
        "r-dimension-trace-states",
        "Trace states of shape [3, 4] for a trace of 2 steps.",
        "DIMENSION_MISMATCH",
        lambda f: f["traces"][0]["steps"].pop(),
        tags=["dimension"],
    )
    sem(
        "r-dimension-variances",
        "Manifold variances of shape [3] for 2 principal directions.",
        "DIMENSION_MISMATCH",
        lambda f: None,
        tensors=replace_tensor(
            FULL_TENSORS, "concept/num:0/variances", T("f32", [3], f32_bytes([1, 2, 3]))
        ),
        tags=["dimension"],
    )
    sem(
        "r-dimension-anchor-state",
        "An anchor state of shape [2, 2] instead of [4].",
        "DIMENSION_MISMATCH",
        lambda f: None,
        tensors=replace_tensor(
            FULL_TENSORS,
            "anchor/a0/state",
            T(
                "i8",
                [2, 2],
                FULL_TENSORS["anchor/a0/state"].raw,
                FULL_TENSORS["anchor/a0/state"].scale,
            ),
        ),
        tags=["dimension"],
    )
    for name, edges in (
        ("self-loop", [("num:0", "num:0")]),
        ("two", [("number", "num:0")]),
        ("three", [("num:0", "num:1"), ("number", "num:1")]),
    ):
        sem(
            f"r-isa-cycle-{name}",
            "is_a edges with a cycle: " + ", ".join(f"{a} is_a {b}" for a, b in edges) + ".",
            "ISA_CYCLE",
            lambda f, e=edges: f["graph"]["edges"].extend(
                {"source": a, "target": b, "relation": "is_a", "weight": 1.0} for a, b in e
            ),
            spec=["graph", "semantics"],
            tags=["cycle"],
        )
    sem(
        "r-unknown-relation",
        'An edge with relation "causes" (not registered, not x-).',
        "UNKNOWN_RELATION",
        lambda f: f["graph"]["edges"][2].update(relation="causes"),
        spec=["graph"],
        tags=["relation"],
    )
    sem(
        "r-unknown-relation-x-underscore",
        'An edge with relation "x_custom" (x_ is not the extension prefix x-).',
        "UNKNOWN_RELATION",
        lambda f: f["graph"]["edges"][2].update(relation="x_custom"),
        spec=["graph"],
        tags=["relation"],
    )

    # ---- non-finite values
    for vid, path, value in (
        ("r-nonfinite-body-nan", "graph.edges[2].weight", math.nan),
        ("r-nonfinite-body-inf", "concepts[0].manifold.spread", math.inf),
        ("r-nonfinite-body-neg-inf", "traces[0].steps[0].similarity", -math.inf),
        ("r-nonfinite-parameters", "provenance.parameters.lr", math.nan),
        ("r-nonfinite-extension-data", "extensions.x-note.data.purpose", math.inf),
    ):

        def setter(f: dict[str, Any], p: str = path, v: float = value) -> None:
            obj: Any = f
            keys = [
                int(k) if k.isdigit() else k
                for k in p.replace("[", ".").replace("]", "").split(".")
            ]
            for k in keys[:-1]:
                obj = obj[k]
            obj[keys[-1]] = v

        sem(
            vid,
            f"{path} is {value} (shortest CBOR form).",
            "NONFINITE_VALUE",
            setter,
            spec=["model", "semantics"],
            tags=["nonfinite"],
        )
    for name, dtype, raw in (
        ("f32-nan", "f32", f32_bytes([1, math.nan, 0, 0])),
        ("f32-inf", "f32", f32_bytes([1, 0, math.inf, 0])),
        ("f16-inf", "f16", f16_bytes([1, 0, 0, -math.inf])),
        ("bf16-nan", "bf16", struct.pack("<4H", 0x3F80, 0x7FC1, 0, 0)),
        ("bf16-inf", "bf16", struct.pack("<4H", 0x3F80, 0, 0xFF80, 0)),
    ):
        fields = minimal_fields()
        fields["concepts"] = [{"id": "c", "label": "c", "kind": "k", "embedding": "e"}]
        s.invalid(
            f"r-nonfinite-tensor-{name}",
            f"A {dtype} embedding holding {name.split('-')[1].upper()} (its digest matches).",
            build(fields, {"e": T(dtype, [DIM], raw)}).encode(),
            "NONFINITE_VALUE",
            spec=["dtypes", "semantics"],
            tags=["nonfinite", "tensor-nonfinite"],
            mutation=("one-tensor", "set", f"embedding := {name}"),
        )
