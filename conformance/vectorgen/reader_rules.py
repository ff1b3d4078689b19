"""Reader vectors for rules that single-rule mutants broke unnoticed (``conformance/mutants``).

Each vector here kills at least one mutant of ``conformance/mutants/catalogue.py`` that the
vectors of the other modules let through: depth and tags inside the signatures entry, bytes left
over inside the body, duplicate keys of every key type (and keys that only look equal), shortest
encodings of negative integers and NaNs, integer overflow in ``shape`` x element size, the digest
of every dtype, base64 spelling in the JSON form, a ``format`` that is not text.
"""

from __future__ import annotations

import json
from typing import Any

from .common import FULL_TENSORS, T, f16_bytes, full_fields, minimal_fields
from .packets import Bases, Built, build, json_form, mutate, replace_tensor
from .rawcbor import Pairs, Raw, Wide, enc
from .reference import summarize
from .suite import Suite, b64


def nested(levels: int, inner: Any = 0) -> Any:
    """``levels`` arrays, one inside the other, around ``inner``."""
    value = inner
    for _ in range(levels):
        value = [value]
    return value


def add_vectors(s: Suite, bases: Bases) -> None:
    """Signatures-entry depth and tags, body framing, keys, numbers, tensors, JSON spelling."""
    full, minimal = bases.full, bases.minimal

    def signed_with(item: bytes, base: Built = full) -> Built:
        return Built(base.body, base.body_bytes, base.data, item)

    # ---- the signatures entry: depth counts arrays, maps and tags; tags are not interpreted
    s.valid(
        "r-valid-signatures-depth-32",
        "A signatures entry of 32 nested arrays around 0: the 0 lies inside 32 arrays, the "
        "default max_depth (the outermost item lies inside none).",
        signed_with(enc(nested(32))),
        spec=["envelope", "limits"],
        tags=["signatures-item", "depth"],
    )
    s.invalid(
        "r-limit-depth-signatures",
        "A signatures entry of 33 nested arrays around 0: nested deeper than max_depth.",
        signed_with(enc(nested(33))).encode(),
        "LIMIT_EXCEEDED",
        spec=["envelope", "limits"],
        tags=["signatures-item", "depth", "limits"],
        mutation=("r-valid-signatures-depth-32", "set", "one more nested array"),
    )
    s.valid(
        "r-valid-signatures-empty-at-depth-33",
        "A signatures entry of 33 nested arrays, the innermost empty: that array lies inside 32 "
        "and holds nothing, so no item lies deeper than max_depth.",
        signed_with(enc(nested(32, inner=[]))),
        spec=["envelope", "limits"],
        tags=["signatures-item", "depth"],
    )
    tags5 = b"\xd8\x62" * 5  # tag 98, five times
    s.valid(
        "r-valid-signatures-tags-depth-32",
        "A signatures entry of 5 tags around 27 nested arrays around 0: the 0 lies inside 32 "
        "levels (tags count as levels).",
        signed_with(tags5 + enc(nested(27))),
        spec=["envelope", "limits"],
        tags=["signatures-item", "depth", "tags"],
    )
    s.invalid(
        "r-limit-depth-signatures-tags",
        "A signatures entry of 6 tags around 27 nested arrays around 0: 33 levels, because tags "
        "count as levels of nesting in the signatures item.",
        signed_with(b"\xd8\x62" + tags5 + enc(nested(27))).encode(),
        "LIMIT_EXCEEDED",
        spec=["envelope", "limits"],
        tags=["signatures-item", "depth", "tags", "limits"],
        mutation=("r-valid-signatures-tags-depth-32", "set", "one more tag"),
    )
    s.valid(
        "r-valid-signatures-tag-1",
        "A signatures entry c1 80: tag 1 (epoch time) around an empty array. Well-formed; a "
        "reader does not interpret tags there (a verifier refuses it).",
        signed_with(b"\xc1\x80"),
        spec=["envelope"],
        tags=["signatures-item", "tags"],
    )
    s.invalid(
        "r-duplicate-key-signatures",
        "A signatures entry that is a map holding the integer key 1 twice.",
        signed_with(enc(Pairs(((1, 0), (1, 1))))).encode(),
        "DUPLICATE_KEY",
        spec=["envelope"],
        tags=["signatures-item", "duplicate-key"],
        mutation=("full", "set", "signatures := {1: 0, 1: 1}"),
    )
    distinct = Pairs(((1, 0), (-1, 0), (1.0, 0), (True, 0), (b"\x01", 0), ("1", 0), ([1], 0)))
    s.valid(
        "r-valid-signatures-distinct-keys",
        "A signatures entry that is a map with the keys 1, -1, 1.0, true, h'01', \"1\" and [1]: "
        "distinct CBOR items (some languages call 1, 1.0 and true equal), so no duplicate.",
        signed_with(enc(distinct)),
        spec=["envelope", "deterministic"],
        tags=["signatures-item", "duplicate-key"],
    )

    # ---- the body: one item filling its byte string, no empty-container depth error
    trailing = Built(minimal.body, minimal.body_bytes + b"\x00", minimal.data)
    s.invalid(
        "r-trailing-inside-body",
        "The body byte string holds the body map followed by one more byte (00): bytes left "
        "over inside the body.",
        trailing.encode(),
        "TRAILING_BYTES",
        spec=["deterministic", "order"],
        tags=["trailing"],
        mutation=("minimal", "append", "00 inside the body byte string"),
    )

    def ext_data(data: Any) -> dict[str, Any]:
        # body (1) -> extensions (2) -> x-deep (3) -> data (4...)
        return mutate(
            minimal_fields(),
            lambda f: f.update(extensions={"x-deep": {"critical": False, "data": data}}),
        )

    s.valid(
        "r-valid-depth-33-empty",
        "Extension data of 30 nested arrays, the innermost empty: it lies inside 32 containers "
        "(depth 33 counting the body map as 1) and holds no item, so the body is within "
        "max_depth.",
        build(ext_data(nested(29, inner=[]))),
        spec=["limits", "deterministic"],
        tags=["limits", "depth"],
    )

    # ---- duplicate keys of every key type (step 2 comes before the schema's text-key rule)
    for name, key in (
        ("uint", 1),
        ("negative", -1),
        ("bytes", b"\x01"),
        ("float", 1.5),
        ("simple", True),
        ("null", None),
        ("array", [1]),
        ("map", {"a": 1}),
    ):
        s.invalid(
            f"r-duplicate-key-{name}",
            f"provenance.parameters.k is a map holding the key {enc(key).hex()} twice "
            "(a duplicate key is refused whatever its type, before the schema looks at keys).",
            build(
                minimal_fields(),
                body_hook=lambda b, k=key: mutate(
                    b, lambda f: f["provenance"].update(parameters={"k": Pairs(((k, 0), (k, 1)))})
                ),
            ).encode(),
            "DUPLICATE_KEY",
            spec=["deterministic"],
            tags=["duplicate-key"],
            mutation=("minimal", "set", f"parameters.k := {{{enc(key).hex()}: 0, same: 1}}"),
        )
    s.invalid(
        "r-schema-distinct-nontext-keys",
        "provenance.parameters.k is a map with the keys 1 and 1.0: distinct CBOR items, so no "
        "duplicate key, but not text keys.",
        build(
            minimal_fields(),
            body_hook=lambda b: mutate(
                b, lambda f: f["provenance"].update(parameters={"k": Pairs(((1, 0), (1.0, 0)))})
            ),
        ).encode(),
        "SCHEMA_VIOLATION",
        spec=["deterministic", "model"],
        tags=["schema", "duplicate-key"],
        mutation=("minimal", "set", "parameters.k := {1: 0, 1.0: 0}"),
    )

    # ---- shortest encodings: negative integers, NaN payloads
    def params(value: Any) -> bytes:
        return build(
            minimal_fields(),
            body_hook=lambda b: mutate(b, lambda f: f["provenance"].update(parameters=value)),
        ).encode()

    s.invalid(
        "r-noncanonical-non-minimal-negative-int",
        "provenance.parameters.n is -1 written with a one-byte argument (38 00) instead of 20.",
        params({"n": Wide(-1, 1)}),
        "NON_CANONICAL",
        spec=["deterministic"],
        tags=["non-canonical", "non-minimal", "numbers"],
        mutation=("minimal", "set", "parameters.n := 38 00"),
    )
    for name, raw, what in (
        ("nan-payload", "f97e01", "a binary16 NaN with payload 1 (f9 7e 01)"),
        ("nan-negative", "f9fe00", "a binary16 NaN with the sign bit set (f9 fe 00)"),
        ("nan-signalling", "f97c01", "a signalling binary16 NaN (f9 7c 01)"),
    ):
        s.invalid(
            f"r-noncanonical-{name}",
            f"The third edge's weight is {what}: the only encoding of NaN is f9 7e 00, so the "
            "body is not deterministic (step 2 comes before the finiteness rule of step 4).",
            build(
                full_fields(),
                FULL_TENSORS,
                body_hook=lambda b, r=raw: mutate(
                    b, lambda f: f["graph"]["edges"][2].update(weight=Raw(bytes.fromhex(r)))
                ),
            ).encode(),
            "NON_CANONICAL",
            spec=["deterministic"],
            tags=["non-canonical", "nonfinite", "numbers"],
            mutation=("full", "set", f"graph.edges[2].weight := {raw}"),
        )

    # ---- types outside the body's data model, in free-form values and the header
    for vid, desc, value in (
        (
            "r-schema-integer-key-free-form",
            "provenance.parameters has the integer key 1 (map keys are text everywhere).",
            Pairs(((1, "x"),)),
        ),
        (
            "r-schema-bytes-in-parameters",
            "provenance.parameters.b is a byte string (outside the JSON data model).",
            {"b": b"\x01\x02"},
        ),
    ):
        s.invalid(
            vid,
            desc,
            params(value),
            "SCHEMA_VIOLATION",
            spec=["deterministic", "provenance"],
            tags=["schema", "free-form"],
            mutation=("minimal", "set", desc),
        )
    s.invalid(
        "r-schema-format-not-text",
        "header.format is the integer 1: a format that is not text is SCHEMA_VIOLATION (only "
        "text other than m2kt is UNSUPPORTED_VERSION).",
        build(mutate(minimal_fields(), lambda f: f["header"].update(format=1))).encode(),
        "SCHEMA_VIOLATION",
        spec=["header", "versioning"],
        tags=["schema", "version"],
        mutation=("minimal", "set", "header.format := 1"),
    )

    # ---- tensors: overflow of shape x element size, the digest of every dtype, f16 NaN
    def overflow(infos: list[dict[str, Any]], data: bytearray) -> None:
        infos[0]["shape"] = [(1 << 61) + 1, 8]  # 8 x (2^61 + 1) = 2^64 + 8: 8 modulo 2^64

    s.invalid(
        "r-tensor-shape-overflow",
        "An i8 tensor of 8 bytes declares shape [2^61 + 1, 8]: the product is 2^64 + 8, which "
        "a reader that wraps at 64 bits would take for 8.",
        build(
            minimal_fields(), {"t": T("i8", [1, 8], bytes(8), 1.0)}, infos_hook=overflow
        ).encode(),
        "TENSOR_SHAPE",
        spec=["length", "limits"],
        tags=["shape", "overflow"],
        mutation=("minimal", "set", "tensors[0].shape := [2^61 + 1, 8], length 8"),
    )
    for dtype, name in (
        ("f16", "concept/num:0/directions"),
        ("bf16", "concept/number/embedding"),
        ("i8", "anchor/a0/state"),
    ):
        flipped = bytearray(full.data)
        info = next(t for t in full.body["tensors"] if t["name"] == name)
        flipped[info["offset"]] ^= 0x01  # the lowest bit: the value stays finite, never -128
        s.invalid(
            f"r-tensor-digest-{dtype}",
            f"The lowest bit of the {dtype} tensor {name!r} flipped after hashing: its SHA-256 "
            "no longer matches (every dtype's digest is checked).",
            Built(full.body, full.body_bytes, bytes(flipped)).encode(),
            "TENSOR_DIGEST",
            spec=["tensors", "packet_id"],
            tags=["digest", "every-dtype"],
            mutation=("full", "flip", f"first byte of {name} ^= 01"),
        )
    s.invalid(
        "r-nonfinite-tensor-f16-nan",
        "An f16 tensor holding a NaN (7e 00).",
        build(
            full_fields(),
            replace_tensor(
                FULL_TENSORS,
                "concept/num:0/directions",
                T("f16", [2, 4], f16_bytes([0.5] * 7) + b"\x00\x7e"),
            ),
        ).encode(),
        "NONFINITE_VALUE",
        spec=["dtypes"],
        tags=["nonfinite", "every-dtype"],
        mutation=("full", "set", "directions[1][3] := NaN"),
    )

    # ---- the JSON form: any member order and white space; base64 and tensor_data names
    def unsorted(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unsorted(value[k]) for k in sorted(value, reverse=True)}
        if isinstance(value, list):
            return [unsorted(v) for v in value]
        return value

    spaced = json.dumps(unsorted(json.loads(json_form(full))), indent="\t", ensure_ascii=False)
    s.add(
        "r-valid-json-spaced",
        "The full packet's JSON form with every object's members in reverse order, indented with "
        "tabs and line feeds: readers accept any member order and white space.",
        op="decode",
        spec=["json"],
        inp={"encoding": "json", "b64": b64(("\r\n " + spaced + "\n").encode())},
        expected={
            "outcome": "valid",
            "packet_id": full.packet_id,
            "summary": summarize(full.body, signed=False),
        },
        tags=["valid", "json-form"],
    )

    def json_variant(fn: Any) -> bytes:
        doc = json.loads(json_form(full))
        fn(doc["tensor_data"])
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    emb = "concept/num:0/embedding"  # its base64 holds '+', '/' and '=' padding
    for vid, desc, fn, code in (
        (
            "r-json-base64-unpadded",
            f"tensor_data[{emb!r}] without its '=' padding.",
            lambda td: td.update({emb: td[emb].rstrip("=")}),
            "JSON_MALFORMED",
        ),
        (
            "r-json-base64-urlsafe",
            f"tensor_data[{emb!r}] in the URL-safe alphabet ('-' and '_' for '+' and '/').",
            lambda td: td.update({emb: td[emb].replace("+", "-").replace("/", "_")}),
            "JSON_MALFORMED",
        ),
        (
            "r-json-tensor-data-bad-name",
            "tensor_data has a member '../escape', which names no tensor (and is not even of the "
            "form of a tensor name): DANGLING_REFERENCE, whatever the name.",
            lambda td: td.update({"../escape": "AAAA"}),
            "DANGLING_REFERENCE",
        ),
        (
            "r-json-tensor-data-too-long",
            f"tensor_data[{emb!r}] holds 17 bytes for a 16-byte tensor.",
            lambda td: td.update({emb: "ofjJP6Tflj/b+Z4+r5TFvgA="}),
            "TENSOR_SHAPE",
        ),
    ):
        s.invalid(
            vid,
            desc,
            json_variant(fn),
            code,
            spec=["json"],
            tags=["json-form"],
            encoding="json",
            mutation=("r-valid-json-full", "set", desc),
        )
