"""Reader vectors about the bytes: the envelope and the CBOR encoding of the body."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import rawcbor
from .common import MAGIC
from .packets import (
    Bases,
    Built,
    aligned_variant,
    body_variant,
    data_offset,
    envelope,
    json_form,
    pad_length,
    sorted_pairs,
)
from .rawcbor import Float, Indef, Pairs, Raw, Wide, enc
from .suite import Suite


def add_vectors(s: Suite, bases: Bases) -> None:
    """Truncation, malformed CBOR, not a packet, non-deterministic encodings, indefinite
    lengths, duplicate keys, trailing bytes and padding, in that order."""
    full, minimal = bases.full, bases.minimal
    full_raw, min_raw = bases.full_raw, bases.minimal_raw

    # ---- truncation
    fs = data_offset(full_raw, full)
    body_at = full_raw.index(full.body_bytes)
    cuts = {
        0: "empty input",
        1: "inside the self-describe tag",
        3: "after the tag",
        4: "after the map head",
        6: "inside the pad key",
        body_at - 2: "inside the body head",
        body_at + 1: "just inside the body",
        body_at + len(full.body_bytes) // 2: "in the middle of the body",
        body_at + len(full.body_bytes) - 1: "one byte before the end of the body",
        body_at + len(full.body_bytes) + 3: "inside the data key",
        fs - 1: "inside the data head",
        fs: "at the start of the data payload",
        fs + 100: "inside the data payload",
        len(full_raw) - 1: "one byte before the end",
    }
    for at, where in sorted(cuts.items()):
        s.invalid(
            f"r-truncated-{at:04d}",
            f"The full packet cut after {at} of {len(full_raw)} bytes ({where}).",
            full_raw[:at],
            "TRUNCATED",
            spec=["order"],
            tags=["truncation"],
            mutation=("full", "truncate", f"keep bytes [0, {at})"),
        )

    # inside the body: heads announcing more than there is
    def body_with(raw_body: bytes) -> bytes:
        return envelope(raw_body, b"")

    huge_array = enc(
        Pairs(
            tuple(
                (k, Raw(b"\x9b" + (1 << 32).to_bytes(8, "big")) if k == "concepts" else v)
                for k, v in sorted(minimal.body.items(), key=lambda kv: enc(kv[0]))
            )
        )
    )
    s.invalid(
        "r-truncated-array-head-huge",
        "The concepts array head announces 2^32 items in a small body: the reader must report "
        "truncation without allocating for the announced count.",
        body_with(huge_array),
        "TRUNCATED",
        spec=["order", "limits"],
        tags=["truncation", "allocation"],
        mutation=("minimal", "replace", "concepts array head := 0x9b 00000001 00000000"),
    )
    s.invalid(
        "r-truncated-text-head-huge",
        "A text string head inside the body announces 2^40 bytes.",
        body_with(
            enc(minimal.body).replace(b"\x63mlp", b"\x7b" + (1 << 40).to_bytes(8, "big") + b"mlp")
        ),
        "TRUNCATED",
        spec=["order", "limits"],
        tags=["truncation", "allocation"],
        mutation=("minimal", "replace", "teacher.architecture head := 0x7b 2^40"),
    )

    # ---- malformed CBOR
    def body_replace(old: bytes, new: bytes, base: Built = minimal) -> bytes:
        assert base.body_bytes.count(old) == 1, old
        return envelope(base.body_bytes.replace(old, new), base.data)

    s.invalid(
        "r-malformed-reserved-info",
        "teacher.latent_dim uses the reserved additional information 28 (0x1c).",
        body_replace(b"\x6alatent_dim\x04", b"\x6alatent_dim\x1c"),
        "CBOR_MALFORMED",
        spec=["order"],
        tags=["malformed"],
        mutation=("minimal", "replace", "latent_dim value 0x04 := 0x1c"),
    )
    s.invalid(
        "r-malformed-lone-break",
        "A break byte (0xff) where teacher.latent_dim's value should be.",
        body_replace(b"\x6alatent_dim\x04", b"\x6alatent_dim\xff"),
        "CBOR_MALFORMED",
        spec=["order"],
        tags=["malformed"],
        mutation=("minimal", "replace", "latent_dim value 0x04 := 0xff"),
    )
    s.invalid(
        "r-malformed-utf8",
        "teacher.architecture is a text string holding invalid UTF-8 (0xff 0xfe 0xfd).",
        body_replace(b"\x63mlp", b"\x63\xff\xfe\xfd"),
        "CBOR_MALFORMED",
        spec=["order"],
        tags=["malformed"],
        mutation=("minimal", "replace", "'mlp' := bytes ff fe fd"),
    )
    s.invalid(
        "r-malformed-simple-value",
        "A two-byte simple value below 32 (0xf8 0x10), which RFC 8949 §3.3 forbids.",
        body_replace(b"\x6alatent_dim\x04", b"\x6alatent_dim\xf8\x10"),
        "CBOR_MALFORMED",
        spec=["order"],
        tags=["malformed"],
        mutation=("minimal", "replace", "latent_dim value := f8 10"),
    )
    s.invalid(
        "r-malformed-envelope-head",
        "The byte after the self-describe tag uses reserved additional information (0xbc).",
        MAGIC + b"\xbc" + min_raw[4:],
        "CBOR_MALFORMED",
        spec=["envelope"],
        tags=["malformed"],
        mutation=("minimal", "replace", "byte 3 := 0xbc"),
    )
    signed_dummy = envelope(minimal.body_bytes, b"", b"\x84\x40\xa0\xf6\x80")
    s.invalid(
        "r-malformed-signatures",
        "The signatures item is a 4-element array whose last element is cut short by a "
        "reserved head (0x1c).",
        signed_dummy[:-1] + b"\x1c",
        "CBOR_MALFORMED",
        spec=["envelope"],
        tags=["malformed", "signatures-item"],
        mutation=("minimal", "replace", "signatures item := 84 40 a0 f6 1c"),
    )

    # ---- not a packet
    for vid, desc, raw in (
        ("r-not-packet-integer", "A single CBOR integer (0).", b"\x00"),
        ("r-not-packet-untagged", "The envelope map without the self-describe tag.", min_raw[3:]),
        (
            "r-not-packet-array",
            "Tag 55799 around an array instead of a map.",
            MAGIC + enc([b"", minimal.body_bytes, b""]),
        ),
        (
            "r-not-packet-other-tag",
            "The envelope map under tag 55800 instead of 55799.",
            b"\xd9\xd9\xf8" + min_raw[3:],
        ),
        (
            "r-not-packet-missing-data",
            "The envelope map lacks the data entry.",
            MAGIC + enc(Pairs((("pad", b""), ("body", minimal.body_bytes)))),
        ),
        (
            "r-not-packet-extra-key",
            'The envelope map has a fifth entry "zzz".',
            MAGIC + b"\xa4" + min_raw[4:] + enc("zzzzzzzzzzzz") + b"\x00",
        ),
        (
            "r-not-packet-json-array",
            "A JSON array where the JSON form's object should be.",
            b"[1,2,3]",
        ),
    ):
        s.invalid(
            vid,
            desc,
            raw,
            "NOT_A_PACKET",
            spec=["json" if "json" in vid else "envelope"],
            tags=["not-a-packet"],
            encoding="json" if "json" in vid else "cbor",
            mutation=("minimal", "replace", desc),
        )

    # ---- non-deterministic encodings
    noncanon: list[tuple[str, str, Callable[[dict[str, Any]], Any], str, list[str]]] = [
        (
            "unsorted-body-keys",
            "The body map's keys in reverse order.",
            lambda b: Pairs(tuple(reversed(sorted_pairs(b)))),
            "body keys reversed",
            ["unsorted-keys"],
        ),
        (
            "unsorted-nested-keys",
            'The teacher map\'s keys in alphabetical order ("architecture" before "layer"), '
            "not in encoded-bytes order (shorter first).",
            lambda b: {**b, "teacher": Pairs(tuple(sorted(b["teacher"].items())))},
            "teacher keys sorted as strings",
            ["unsorted-keys"],
        ),
        (
            "non-minimal-int",
            "teacher.latent_dim (4) written with a one-byte argument (0x18 0x04).",
            lambda b: {**b, "teacher": {**b["teacher"], "latent_dim": Wide(4, 1)}},
            "latent_dim 0x04 := 0x18 0x04",
            ["non-minimal"],
        ),
        (
            "non-minimal-int-8",
            "provenance.task_inputs_used (0) written with an eight-byte argument.",
            lambda b: {
                **b,
                "provenance": {**b["provenance"], "task_inputs_used": Wide(0, 8)},
            },
            "task_inputs_used 0x00 := 0x1b 00..00",
            ["non-minimal"],
        ),
        (
            "non-minimal-text-length",
            "teacher.name (19 bytes) with a one-byte length argument (0x78 0x13).",
            lambda b: {**b, "teacher": {**b["teacher"], "name": Wide(b["teacher"]["name"], 1)}},
            "name head 0x73 := 0x78 0x13",
            ["non-minimal"],
        ),
        (
            "non-minimal-array-length",
            "The empty concepts array written as 0x98 0x00.",
            lambda b: {**b, "concepts": Wide([], 1)},
            "concepts head 0x80 := 0x98 0x00",
            ["non-minimal"],
        ),
        (
            "non-minimal-map-length",
            "The header map (3 entries) written with a two-byte length argument.",
            lambda b: {**b, "header": Wide(b["header"], 2)},
            "header head 0xa3 := 0xb9 0x0003",
            ["non-minimal"],
        ),
    ]
    for name, desc, fn, detail, tags in noncanon:
        s.invalid(
            f"r-noncanonical-{name}",
            desc,
            body_variant(fn, minimal),
            "NON_CANONICAL",
            spec=["deterministic"],
            tags=["non-canonical", *tags],
            mutation=("minimal", "re-encode", detail),
        )

    def edge_weight(w: Any) -> Callable[[dict[str, Any]], Any]:
        def fn(b: dict[str, Any]) -> Any:
            b["graph"]["edges"][2]["weight"] = w
            return b

        return fn

    for name, w, desc in (
        ("float-not-shortest-32", Float(0.5, 4), "0.5 written as binary32"),
        ("float-not-shortest-64", Float(0.5, 8), "0.5 written as binary64"),
        ("float-as-integer", 1, "1.0 written as the integer 1"),
        ("nan-not-canonical", Float(math.nan, 8), "NaN written as binary64"),
    ):
        s.invalid(
            f"r-noncanonical-{name}",
            f"The third edge's weight: {desc}.",
            body_variant(edge_weight(w), full),
            "NON_CANONICAL",
            spec=["deterministic"],
            tags=["non-canonical", "float-width"],
            mutation=("full", "re-encode", desc),
        )
    s.invalid(
        "r-noncanonical-body-length-head",
        "The envelope's body byte string with a non-minimal length head (4 bytes instead of "
        "2); the pad is adjusted so the data stays aligned.",
        aligned_variant(minimal, body_head=rawcbor.head(2, len(minimal.body_bytes), 4)),
        "NON_CANONICAL",
        spec=["envelope", "deterministic"],
        tags=["non-canonical", "non-minimal"],
        mutation=("minimal", "re-encode", "body head 0x59 := 0x5a"),
    )
    s.invalid(
        "r-noncanonical-envelope-order",
        "Envelope entries in the order body, pad, data.",
        MAGIC
        + b"\xa3"
        + enc("body")
        + enc(minimal.body_bytes)
        + enc("pad")
        + enc(bytes(pad_length(len(minimal.body_bytes), 0)))
        + enc("data")
        + enc(b""),
        "NON_CANONICAL",
        spec=["envelope", "deterministic"],
        tags=["non-canonical", "unsorted-keys"],
        mutation=("minimal", "re-encode", "envelope keys body, pad, data"),
    )

    # ---- indefinite lengths
    for name, fn, desc in (
        ("array", lambda b: {**b, "concepts": Indef([])}, "the concepts array"),
        ("map", lambda b: {**b, "teacher": Indef(b["teacher"])}, "the teacher map"),
        (
            "text",
            lambda b: {**b, "teacher": {**b["teacher"], "name": Indef(b["teacher"]["name"])}},
            "teacher.name (two chunks)",
        ),
    ):
        s.invalid(
            f"r-indefinite-{name}",
            f"Indefinite-length encoding of {desc} in the body.",
            body_variant(fn, minimal),
            "INDEFINITE_LENGTH",
            spec=["deterministic"],
            tags=["indefinite"],
            mutation=("minimal", "re-encode", f"{desc} with indefinite length"),
        )
    s.invalid(
        "r-indefinite-envelope-body",
        "The envelope's body byte string as an indefinite-length byte string (two chunks).",
        MAGIC
        + b"\xa3"
        + enc("pad")
        + enc(b"")
        + enc("body")
        + enc(Indef(minimal.body_bytes))
        + enc("data")
        + enc(b""),
        "INDEFINITE_LENGTH",
        spec=["envelope"],
        tags=["indefinite"],
        mutation=("minimal", "re-encode", "body bstr with indefinite length"),
    )

    # ---- duplicate keys
    s.invalid(
        "r-duplicate-key-body",
        'The body map holds "graph" twice (8 + 1 entries, adjacent).',
        body_variant(
            lambda b: Pairs(
                tuple(
                    kv
                    for k, v in sorted_pairs(b)
                    for kv in ([(k, v), (k, v)] if k == "graph" else [(k, v)])
                )
            ),
            minimal,
        ),
        "DUPLICATE_KEY",
        spec=["deterministic"],
        tags=["duplicate-key"],
        mutation=("minimal", "re-encode", "body entry graph repeated"),
    )
    s.invalid(
        "r-duplicate-key-nested",
        'The teacher map holds "name" twice with different values.',
        body_variant(
            lambda b: {
                **b,
                "teacher": Pairs((("name", "a"), ("name", "b"), *sorted_pairs(b["teacher"])[1:])),
            },
            minimal,
        ),
        "DUPLICATE_KEY",
        spec=["deterministic"],
        tags=["duplicate-key"],
        mutation=("minimal", "re-encode", "teacher.name given twice"),
    )
    s.invalid(
        "r-duplicate-key-envelope",
        'The envelope map holds "pad" twice.',
        MAGIC + b"\xa4" + enc("pad") + enc(b"") + min_raw[4:],
        "DUPLICATE_KEY",
        spec=["envelope"],
        tags=["duplicate-key"],
        mutation=("minimal", "re-encode", "envelope entry pad repeated first"),
    )
    s.invalid(
        "r-duplicate-key-json",
        'The JSON form\'s top-level object holds "m2kt_json" twice.',
        b'{"m2kt_json":"1.0",' + json_form(minimal)[1:],
        "DUPLICATE_KEY",
        spec=["json"],
        tags=["duplicate-key", "json-form"],
        encoding="json",
        mutation=("minimal", "json", "member m2kt_json repeated"),
    )

    # ---- trailing bytes
    s.invalid(
        "r-trailing-byte",
        "One zero byte after the packet.",
        min_raw + b"\x00",
        "TRAILING_BYTES",
        spec=["envelope"],
        tags=["trailing"],
        mutation=("minimal", "append", "00"),
    )
    s.invalid(
        "r-trailing-second-packet",
        "Two packets back to back.",
        min_raw + min_raw,
        "TRAILING_BYTES",
        spec=["envelope"],
        tags=["trailing"],
        mutation=("minimal", "append", "the packet again"),
    )
    s.invalid(
        "r-trailing-after-signatures",
        "A byte after the signatures item.",
        signed_dummy + b"\x00",
        "TRAILING_BYTES",
        spec=["envelope"],
        tags=["trailing", "signatures-item"],
        mutation=("minimal", "append", "a signatures item 84 40 a0 f6 80, then 00"),
    )

    # ---- padding
    pad_n = pad_length(len(full.body_bytes), len(full.data))
    bad_pad = bytearray(pad_n)
    bad_pad[-1] = 1
    s.invalid(
        "r-bad-padding-nonzero",
        "The pad's last byte is 0x01.",
        full.encode(pad=bytes(bad_pad)),
        "BAD_PADDING",
        spec=["envelope"],
        tags=["padding"],
        mutation=("full", "replace", "last pad byte := 01"),
    )
    s.invalid(
        "r-bad-padding-too-long",
        "The pad is 64 bytes longer than needed (the data stays aligned).",
        full.encode(pad=bytes(pad_n + 64)),
        "BAD_PADDING",
        spec=["envelope"],
        tags=["padding"],
        mutation=("full", "replace", f"pad of {pad_n + 64} zero bytes"),
    )
    s.invalid(
        "r-bad-padding-misaligned",
        "The pad is one byte short, so the data payload starts one byte before a multiple of 64.",
        full.encode(pad=bytes(max(pad_n - 1, 0)) if pad_n else bytes(63)),
        "BAD_PADDING",
        spec=["envelope", "data"],
        tags=["padding"],
        mutation=("full", "replace", "pad one byte shorter"),
    )
