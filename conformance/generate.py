#!/usr/bin/env python3
"""Rebuild every conformance vector and the manifest, deterministically.

Usage::

    conformance/generate [--out DIR] [--no-check]

Vectors are built from two small base packets (``minimal`` and ``full``) by the described
mutations, with this directory's own CBOR writer (:mod:`rawcbor`) so that ill-formed and
non-deterministic encodings can be written byte by byte. Fixed seeds, fixed timestamps and
Ed25519 keys derived from fixed seeds make the output identical on every run; a test regenerates
into a temporary directory and fails when the committed files differ.

Every vector states its expected outcome here, by construction. Unless ``--no-check`` is given,
the generator then runs each vector through the reference adapter and through the independent
implementation (``independent/m2kt_indep.py``, its own CBOR decoder, pynacl for Ed25519) and,
for signed vectors, checks every signature with pycose; any disagreement stops the run.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import math
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import rawcbor  # noqa: E402
from rawcbor import Float, Indef, Pairs, Raw, Wide, enc  # noqa: E402

from m2kt_ref.conformance.protocol import PROFILES, PROTOCOL_VERSION, summarize  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402

SUITE_VERSION = "1.0"
FORMAT_VERSION = "1.0"
CREATED = "2026-01-01T00:00:00Z"
ALIGN = 64
MAGIC = b"\xd9\xd9\xf7"

#: Spec sections, by topic (spec/packet-1.0.md, spec/signing.md, spec/conformance.md).
SEC = {
    "model": "packet-1.0.md §3",
    "common": "packet-1.0.md §3.1",
    "header": "packet-1.0.md §3.2",
    "teacher": "packet-1.0.md §3.3",
    "concepts": "packet-1.0.md §3.4",
    "graph": "packet-1.0.md §3.5",
    "traces": "packet-1.0.md §3.6",
    "anchors": "packet-1.0.md §3.7",
    "provenance": "packet-1.0.md §3.8",
    "safety": "packet-1.0.md §3.9",
    "descriptors": "packet-1.0.md §3.10",
    "extensions": "packet-1.0.md §3.11",
    "envelope": "packet-1.0.md §4.1",
    "deterministic": "packet-1.0.md §4.2",
    "data": "packet-1.0.md §4.3",
    "packet_id": "packet-1.0.md §4.4",
    "json": "packet-1.0.md §4.5",
    "tensors": "packet-1.0.md §5",
    "dtypes": "packet-1.0.md §5.1",
    "length": "packet-1.0.md §5.2",
    "semantics": "packet-1.0.md §6",
    "limits": "packet-1.0.md §8",
    "versioning": "packet-1.0.md §9",
    "order": "packet-1.0.md §10",
    "signed": "signing.md §2",
    "ed25519-keys": "signing.md §3.1",
    "ed25519-sigs": "signing.md §3.2",
    "cose": "signing.md §4.1",
    "cose-signature": "signing.md §4.2",
    "sig-structure": "signing.md §4.3",
    "cose-encoding": "signing.md §4.4",
    "trust": "signing.md §6.1",
    "policy": "signing.md §6.2",
    "window": "signing.md §6.3",
    "verify": "signing.md §7",
    "provenance-complete": "signing.md §8",
    "profiles": "conformance.md §2",
    "summary": "conformance.md §3.2",
    "requests": "conformance.md §4.3",
}

# --------------------------------------------------------------------------- tensors


def f32_bytes(values: Any) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def f16_bytes(values: Any) -> bytes:
    return np.asarray(values, dtype="<f2").tobytes()


def bf16_bytes(values: Any) -> bytes:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (finite inputs)."""
    bits = np.asarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def widen(dtype: str, raw: bytes, scale: float | None) -> list[float]:
    """Stored bytes -> float32 values, written independently of m2kt_ref.packet.tensors."""
    if dtype == "f32":
        return [float(v) for v in np.frombuffer(raw, "<f4")]
    if dtype == "f16":
        return [float(v) for v in np.frombuffer(raw, "<f2").astype(np.float32)]
    if dtype == "bf16":
        bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return [float(v) for v in bits.view("<f4")]
    assert scale is not None
    return [float(np.float32(q) * np.float32(scale)) for q in np.frombuffer(raw, "i1")]


@dataclass
class T:
    """A tensor to place in a packet: dtype, shape, stored bytes, scale (i8 only)."""

    dtype: str
    shape: list[int]
    raw: bytes
    scale: float | None = None


def i8_tensor(values: Any, shape: list[int]) -> T:
    x = np.asarray(values, dtype=np.float32)
    peak = float(np.abs(x).max())
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(x / np.float32(scale)), -127, 127).astype("i1")
    return T("i8", shape, q.tobytes(), scale)


RNG = np.random.default_rng(20260101)
DIM = 4


def _vec(n: int) -> np.ndarray:
    return np.round(RNG.standard_normal(n), 4).astype(np.float32)


FULL_TENSORS: dict[str, T] = {
    "concept/num:0/embedding": T("f32", [DIM], f32_bytes(_vec(DIM))),
    "concept/num:0/directions": T(
        "f16", [2, DIM], f16_bytes([[0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, -0.5]])
    ),
    "concept/num:0/variances": T("f32", [2], f32_bytes([0.02, 0.01])),
    "concept/num:1/embedding": T("f32", [DIM], f32_bytes(_vec(DIM))),
    "concept/number/embedding": T("bf16", [DIM], bf16_bytes(_vec(DIM))),
    "trace/t0/states": T("bf16", [3, DIM], bf16_bytes(_vec(3 * DIM))),
    "anchor/a0/state": i8_tensor(_vec(DIM), [DIM]),
}

#: One [DIM] tensor per dtype, with edge-case values (subnormals, -0.0, the f16 maximum...).
DTYPE_TENSORS: dict[str, T] = {
    "f32": T("f32", [DIM], f32_bytes([1.5, -2.25, 3.0e-3, 65504.0])),
    "f16": T("f16", [DIM], f16_bytes([1.0, -0.0, 6.1e-5, 5.96e-8])),
    "bf16": T("bf16", [DIM], bf16_bytes([1.0, -3.140625, 1e30, -1e-30])),
    "i8": T("i8", [DIM], np.array([127, -127, 0, 5], "i1").tobytes(), 0.03125),
}

# --------------------------------------------------------------------------- base bodies


def minimal_fields() -> dict[str, Any]:
    """The smallest valid body: every required section, no concepts, no tensors."""
    return {
        "header": {"format": "m2kt", "version": FORMAT_VERSION, "created": CREATED},
        "teacher": {
            "name": "conformance-teacher",
            "architecture": "mlp",
            "latent_dim": DIM,
            "layer": "hidden",
            "model_digest": "sha256:" + "ab" * 32,
        },
        "concepts": [],
        "graph": {"edges": []},
        "traces": [],
        "anchors": [],
        "provenance": {
            "generator": {"name": "m2kt-conformance", "version": SUITE_VERSION},
            "task": {"name": "none", "options": {}},
            "parents": [],
            "task_inputs_used": 0,
            "concept_probes_used": 0,
            "parameters": {},
        },
        "safety": {"require_signature": False, "min_signers": 1},
    }


def full_fields() -> dict[str, Any]:
    """A body with every section and every optional field filled (7 tensors, all 4 dtypes)."""
    return {
        "header": {
            "format": "m2kt",
            "version": FORMAT_VERSION,
            "created": CREATED,
            "title": "conformance: every section",
        },
        "teacher": {
            "name": "conformance-teacher",
            "architecture": "transformer",
            "latent_dim": DIM,
            "layer": "blocks.1",
            "model_digest": "sha256:" + "cd" * 32,
            "n_parameters": 1234,
        },
        "concepts": [
            {
                "id": "num:0",
                "label": "zero",
                "kind": "symbol",
                "embedding": "concept/num:0/embedding",
                "manifold": {
                    "directions": "concept/num:0/directions",
                    "variances": "concept/num:0/variances",
                    "spread": 0.25,
                    "support": 8,
                },
                "level": 1,
            },
            {
                "id": "num:1",
                "label": "one",
                "kind": "symbol",
                "embedding": "concept/num:1/embedding",
                "level": 1,
            },
            {
                "id": "number",
                "label": "a number",
                "kind": "category",
                "embedding": "concept/number/embedding",
                "level": 0,
            },
        ],
        "graph": {
            "edges": [
                {"source": "num:0", "target": "number", "relation": "is_a", "weight": 1.0},
                {"source": "num:1", "target": "number", "relation": "is_a", "weight": 1.0},
                {"source": "num:0", "target": "num:1", "relation": "precedes", "weight": 0.5},
                {"source": "num:1", "target": "num:0", "relation": "x-succ.of", "weight": 0.75},
            ]
        },
        "traces": [
            {
                "id": "t0",
                "input": [0, 5, 1],
                "answer": 1,
                "answer_label": "one",
                "steps": [
                    {"concept": "num:0", "similarity": 0.9, "position": 0},
                    {"concept": "num:1", "similarity": 0.875, "position": 2},
                    {"concept": "num:1", "similarity": -0.125},
                ],
                "states": "trace/t0/states",
            }
        ],
        "anchors": [
            {
                "id": "a0",
                "input": [0],
                "position": 0,
                "state": "anchor/a0/state",
                "concept": "num:0",
            }
        ],
        "provenance": {
            "generator": {"name": "m2kt-conformance", "version": SUITE_VERSION},
            "task": {"name": "modular", "options": {"p": 5, "ops": "+", "strict": True}},
            "parents": ["0" * 64],
            "task_inputs_used": 1,
            "concept_probes_used": 3,
            "parameters": {"layer": "blocks.1", "lr": 0.001, "nested": {"k": [1, 2.5, "x"]}},
            "seed": 7,
        },
        "safety": {
            "require_signature": True,
            "min_signers": 1,
            "protected_concepts": ["num:0"],
            "max_parameter_drift": 0.5,
            "max_output_divergence": 0.1,
            "max_capability_drop": 0.02,
        },
        "extensions": {"x-note": {"critical": False, "data": {"purpose": "conformance"}}},
    }


# --------------------------------------------------------------------------- packets


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Built:
    """A packet built by hand: body (data model), its bytes, the data section, the envelope."""

    body: Any
    body_bytes: bytes
    data: bytes
    signatures: bytes | None = None

    @property
    def packet_id(self) -> str:
        return sha(self.body_bytes)

    def encode(self, **kw: Any) -> bytes:
        return envelope(self.body_bytes, self.data, self.signatures, **kw)


def layout(tensors: dict[str, T]) -> tuple[list[dict[str, Any]], bytearray]:
    infos, offset = [], 0
    for name, t in tensors.items():
        offset = aligned(offset)
        info: dict[str, Any] = {
            "name": name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "offset": offset,
            "length": len(t.raw),
        }
        if t.scale is not None:
            info["scale"] = float(t.scale)
        infos.append(info)
        offset += len(t.raw)
    data = bytearray(aligned(offset))
    for info, t in zip(infos, tensors.values(), strict=True):
        data[info["offset"] : info["offset"] + len(t.raw)] = t.raw
    for info in infos:
        info["sha256"] = sha(bytes(data[info["offset"] : info["offset"] + info["length"]]))
    return infos, data


def build(
    fields: dict[str, Any],
    tensors: dict[str, T] | None = None,
    *,
    infos_hook: Callable[[list[dict[str, Any]], bytearray], Any] | None = None,
    redigest: bool = True,
    body_hook: Callable[[dict[str, Any]], Any] | None = None,
) -> Built:
    """Lay out tensors, fill the descriptors, apply hooks, encode the body with :mod:`rawcbor`.

    ``infos_hook(infos, data)`` may change descriptors and data (return a new bytearray to replace
    the data section); digests are then recomputed unless ``redigest`` is false. ``body_hook``
    maps the body (data model) to what is encoded (it may return rawcbor wrappers).
    """
    infos, data = layout(tensors or {})
    if infos_hook is not None:
        replaced = infos_hook(infos, data)
        if isinstance(replaced, bytearray):
            data = replaced
    if redigest:
        for info in infos:
            start, n = info["offset"], info["length"]
            if start + n <= len(data):
                info["sha256"] = sha(bytes(data[start : start + n]))
    body = {**copy.deepcopy(fields), "tensors": infos}
    encoded = body_hook(body) if body_hook is not None else body
    return Built(body, enc(encoded), bytes(data))


def pad_length(body_len: int, data_len: int) -> int:
    for n in range(128):
        start = (
            len(MAGIC)
            + 1
            + 4
            + len(rawcbor.head(2, n))
            + n
            + 5
            + len(rawcbor.head(2, body_len))
            + body_len
            + 5
            + len(rawcbor.head(2, data_len))
        )
        if start % ALIGN == 0:
            return n
    raise AssertionError("unreachable")


def envelope(
    body: bytes,
    data: bytes,
    signatures: bytes | None = None,
    *,
    pad: bytes | None = None,
    body_head: bytes | None = None,
) -> bytes:
    """The envelope bytes: 55799({"pad": zeros, "body": bstr, "data": bstr, ?"signatures"})."""
    if pad is None:
        pad = bytes(pad_length(len(body), len(data)))
    parts = [
        MAGIC,
        b"\xa4" if signatures is not None else b"\xa3",
        enc("pad"),
        enc(pad),
        enc("body"),
        body_head if body_head is not None else rawcbor.head(2, len(body)),
        body,
        enc("data"),
        enc(data),
    ]
    if signatures is not None:
        parts += [enc("signatures"), signatures]
    return b"".join(parts)


def json_form(b: Built) -> bytes:
    """The JSON form (sorted keys, no spaces) written independently of m2kt_ref.packet.codec."""
    doc: dict[str, Any] = {
        "m2kt_json": FORMAT_VERSION,
        "body": b.body,
        "tensor_data": {
            t["name"]: base64.b64encode(b.data[t["offset"] : t["offset"] + t["length"]]).decode()
            for t in b.body["tensors"]
        },
    }
    if b.signatures is not None:
        doc["signatures"] = base64.b64encode(b.signatures).decode()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- the suite


@dataclass
class Suite:
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


# --------------------------------------------------------------------------- body mutations


def mutate(fields: dict[str, Any], fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    out = copy.deepcopy(fields)
    fn(out)
    return out


def replace_tensor(tensors: dict[str, T], name: str, t: T) -> dict[str, T]:
    out = dict(tensors)
    out[name] = t
    return out


def reader_vectors(s: Suite) -> None:
    full = build(full_fields(), FULL_TENSORS)
    minimal = build(minimal_fields())
    full_raw, min_raw = full.encode(), minimal.encode()

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
    def sorted_pairs(d: dict[str, Any]) -> list[tuple[str, Any]]:
        return sorted(d.items(), key=lambda kv: enc(kv[0]))

    def body_variant(fn: Callable[[dict[str, Any]], Any], base: Built = minimal) -> bytes:
        return envelope(enc(fn(copy.deepcopy(base.body))), base.data)

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
            body_variant(fn),
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
            body_variant(fn),
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
            )
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
            }
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
        body_variant(lambda b: {**b, "teacher": {**b["teacher"], "name": b"teacher"}}),
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
            }
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
            lambda b: {**b, "provenance": {**b["provenance"], "parameters": {"u": Raw(b"\xf7")}}}
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

    # ---- tensor descriptors and layout
    def tensor_case(
        vid: str,
        desc: str,
        code: str,
        hook: Callable[..., Any],
        redigest: bool = True,
        tags: list[str] | None = None,
        spec: list[str] | None = None,
    ) -> None:
        s.invalid(
            vid,
            desc,
            build(full_fields(), FULL_TENSORS, infos_hook=hook, redigest=redigest).encode(),
            code,
            spec=spec or ["data"],
            tags=tags or ["tensor"],
            mutation=("full", "descriptor", desc),
        )

    tensor_case(
        "r-tensor-dtype-i8-no-scale",
        "An i8 tensor without a scale.",
        "TENSOR_DTYPE",
        lambda i, d: i[6].pop("scale"),
        spec=["dtypes"],
    )
    tensor_case(
        "r-tensor-dtype-f32-with-scale",
        "An f32 tensor with a scale.",
        "TENSOR_DTYPE",
        lambda i, d: i[0].update(scale=0.5),
        spec=["dtypes"],
    )

    def minus_128(i: list[dict[str, Any]], d: bytearray) -> None:
        d[i[6]["offset"]] = 0x80

    tensor_case(
        "r-tensor-dtype-i8-minus-128",
        "An i8 tensor holding -128, the reserved value (symmetric quantisation uses -127..127).",
        "TENSOR_DTYPE",
        minus_128,
        spec=["dtypes"],
    )
    tensor_case(
        "r-tensor-shape-length",
        "The last tensor (i8 [4]) declares length 5; the data section still covers it.",
        "TENSOR_SHAPE",
        lambda i, d: i[6].update(length=5),
        tags=["tensor", "shape"],
    )
    tensor_case(
        "r-tensor-shape-shape",
        "An f32 tensor of 16 bytes declares shape [2, 4] (32 bytes).",
        "TENSOR_SHAPE",
        lambda i, d: i[0].update(shape=[2, DIM]),
        tags=["tensor", "shape"],
    )

    def move(index: int, delta: int) -> Callable[..., Any]:
        def hook(i: list[dict[str, Any]], d: bytearray) -> bytearray:
            t = i[index]
            chunk = bytes(d[t["offset"] : t["offset"] + t["length"]])
            d[t["offset"] : t["offset"] + t["length"]] = bytes(t["length"])
            t["offset"] += delta
            need = aligned(t["offset"] + t["length"])
            if len(d) < need:
                d.extend(bytes(need - len(d)))
            d[t["offset"] : t["offset"] + t["length"]] = chunk
            return d

        return hook

    tensor_case(
        "r-tensor-layout-misaligned",
        "The second tensor at offset 96 instead of 64 (bytes moved, digest kept right).",
        "TENSOR_LAYOUT",
        move(1, 32),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-hole",
        "The last tensor at offset 448 instead of 384: a 64-byte hole.",
        "TENSOR_LAYOUT",
        move(6, 64),
        tags=["tensor", "layout"],
    )

    def overlap(i: list[dict[str, Any]], d: bytearray) -> None:
        i[4]["offset"] = i[3]["offset"]

    tensor_case(
        "r-tensor-layout-overlap",
        "Two tensors at the same offset.",
        "TENSOR_LAYOUT",
        overlap,
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-data-too-long",
        "The data section is 64 bytes longer than the descriptors need.",
        "TENSOR_LAYOUT",
        lambda i, d: d + bytearray(64),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-data-too-short",
        "The data section ends right after the last tensor (not padded to 64).",
        "TENSOR_LAYOUT",
        lambda i, d: d[: i[6]["offset"] + i[6]["length"]],
        tags=["tensor", "layout"],
    )

    def poke(at: Callable[[list[dict[str, Any]]], int]) -> Callable[..., Any]:
        def hook(i: list[dict[str, Any]], d: bytearray) -> None:
            d[at(i)] = 0x01

        return hook

    tensor_case(
        "r-tensor-layout-padding-between",
        "A non-zero byte in the padding between the first and second tensor.",
        "TENSOR_LAYOUT",
        poke(lambda i: i[0]["offset"] + i[0]["length"]),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-layout-padding-end",
        "A non-zero last byte of the data section (end padding).",
        "TENSOR_LAYOUT",
        poke(lambda i: aligned(i[6]["offset"] + i[6]["length"]) - 1),
        tags=["tensor", "layout"],
    )
    tensor_case(
        "r-tensor-digest-flipped-byte",
        "One bit of the first tensor's data flipped after hashing.",
        "TENSOR_DIGEST",
        lambda i, d: d.__setitem__(i[0]["offset"], d[i[0]["offset"]] ^ 0x01),
        redigest=False,
        tags=["tensor", "digest"],
        spec=["tensors", "packet_id"],
    )

    def swap_digest(i: list[dict[str, Any]], d: bytearray) -> None:
        i[0]["sha256"], i[3]["sha256"] = i[3]["sha256"], i[0]["sha256"]

    tensor_case(
        "r-tensor-digest-swapped",
        "The digests of two tensors swapped in the descriptors.",
        "TENSOR_DIGEST",
        swap_digest,
        redigest=False,
        tags=["tensor", "digest"],
        spec=["tensors", "packet_id"],
    )

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


def boundary_vectors(s: Suite) -> None:
    """Edges the spec states explicitly: depth and integer ranges at their bounds, scalar and
    empty tensors, the JSON form's own rules (§4.5)."""
    full = build(full_fields(), FULL_TENSORS)
    minimal = build(minimal_fields())

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


def data_offset(packet: bytes, b: Built) -> int:
    """Offset of the data payload in an unsigned packet."""
    return len(packet) - len(b.data)


def aligned_variant(b: Built, *, body_head: bytes) -> bytes:
    """The envelope with a custom body head and a pad recomputed so the data stays aligned."""
    for n in range(128):
        raw = envelope(b.body_bytes, b.data, b.signatures, pad=bytes(n), body_head=body_head)
        if (len(raw) - len(b.data)) % ALIGN == 0:
            return raw
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- producer


def producer_vectors(s: Suite) -> None:
    full = build(full_fields(), FULL_TENSORS)
    minimal = build(minimal_fields())
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

    def describe(fields: dict[str, Any], tensors: dict[str, T]) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- checks and output


def check_reference_canonical() -> None:
    """Our hand-written encoder and layout must agree with the reference's canonical encoder."""
    for fields, tensors in ((minimal_fields(), {}), (full_fields(), FULL_TENSORS)):
        b = build(fields, tensors)
        assert codec.canonical_cbor(b.body) == b.body_bytes, "rawcbor disagrees with codec"
        ref = codec.decode(b.encode())
        assert codec.encode(ref) == b.encode(), "envelope differs from the reference"


def check_vectors(vectors: list[dict[str, Any]]) -> list[str]:
    """Run every vector through the reference adapter and the independent implementation."""
    from m2kt_ref.conformance import adapter
    from m2kt_ref.conformance.protocol import judge

    sys.path.insert(0, str(HERE / "independent"))
    import m2kt_indep  # the second implementation (no m2kt_ref import)

    problems = []
    with TemporaryFiles() as files:
        for v in vectors:
            request = files.materialise(v["input"])
            result = adapter.handle(v["op"], request)
            problem = judge(v["expected"], result, v["op"])
            if problem:
                problems.append(f"{v['id']}: reference: {problem}")
            if v["op"] in m2kt_indep.OPERATIONS:
                result = m2kt_indep.handle(v["op"], request)
                problem = judge(v["expected"], result, v["op"])
                if problem:
                    problems.append(f"{v['id']}: independent: {problem}")
            if v["op"] == "verify" and v["expected"]["outcome"] == "valid":
                problem = pycose_check(v)
                if problem:
                    problems.append(f"{v['id']}: pycose: {problem}")
    return problems


def pycose_check(v: dict[str, Any]) -> str | None:
    """Every counted signer of a valid verify vector verifies under pycose (an independent COSE
    implementation), fed by the independent implementation's CBOR decoder."""
    from m2kt_indep import decode_cbor, decode_item, decode_json
    from pycose.keys import OKPKey
    from pycose.messages import SignMessage

    raw = base64.b64decode(v["input"]["b64"])
    limits = dict(__import__("m2kt_indep").DEFAULT_LIMITS)
    p = decode_json(raw, limits) if v["input"]["encoding"] == "json" else decode_cbor(raw, limits)
    item = decode_item(p.signatures, max_depth=32, tags=True)
    message = SignMessage.from_cose_obj(item.value, True)
    if message.payload.hex() != v["expected"]["packet_id"]:
        return "payload is not the packet id"
    verified = set()
    for signer in message.signers:
        x = decode_item(signer.phdr_encoded, max_depth=32, tags=False)[14][8][1][-2]
        signer.key = OKPKey(crv="ED25519", x=x)
        if not signer.verify_signature():
            return "a signature does not verify"
        verified.add(hashlib.sha256(x).hexdigest())
    if not set(v["expected"]["signers"]) <= verified:
        return "a counted signer is not among the verified ones"
    return None


class TemporaryFiles:
    """Materialise ``file`` inputs the way the harness does (see m2kt_ref.conformance.harness)."""

    def __enter__(self) -> TemporaryFiles:
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="m2kt-gen-")
        return self

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()

    def materialise(self, inp: dict[str, Any]) -> dict[str, Any]:
        from m2kt_ref.conformance.harness import materialise

        return materialise(inp, Path(self._dir.name))


def write(out: Path, vectors: list[dict[str, Any]]) -> None:
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    entries, keep = [], set()
    for v in vectors:
        name = f"vectors/{v['id']}.json"
        text = json.dumps(v, indent=1, ensure_ascii=False) + "\n"
        raw = text.encode("utf-8")
        (out / name).write_bytes(raw)
        keep.add(name)
        entries.append(
            {
                "id": v["id"],
                "file": name,
                "op": v["op"],
                "profiles": v["profiles"],
                "expect": v["expected"]["code"]
                if v["expected"]["outcome"] == "invalid"
                else "valid",
                "tags": v["tags"],
                "sha256": sha(raw),
            }
        )
    for stale in (out / "vectors").glob("*.json"):
        if f"vectors/{stale.name}" not in keep:
            stale.unlink()
    manifest = {
        "suite": "m2kt-conformance",
        "suite_version": SUITE_VERSION,
        "protocol": PROTOCOL_VERSION,
        "format_version": FORMAT_VERSION,
        "generator": "conformance/generate",
        "profiles": {
            "reader": {
                "description": "Decode and validate packets (both encodings); report the packet "
                "id and a content summary, or the first error code.",
                "ops": list(PROFILES["reader"]),
            },
            "verifier": {
                "description": "The reader, plus signatures checked against a trust store and "
                "a k-of-n policy.",
                "ops": list(PROFILES["verifier"]),
            },
            "producer": {
                "description": "Emit packets (from a description, or from the JSON form) that "
                "the reference accepts and that re-encode to identical bytes.",
                "ops": list(PROFILES["producer"]),
            },
        },
        "vectors": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def build_suite() -> list[dict[str, Any]]:
    check_reference_canonical()
    s = Suite()
    reader_vectors(s)
    boundary_vectors(s)
    import verifier_vectors

    verifier_vectors.add_vectors(s, sys.modules[__name__])
    producer_vectors(s)
    return s.vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="suite directory to write")
    parser.add_argument("--no-check", action="store_true", help="skip the cross-checks")
    args = parser.parse_args(argv)
    vectors = build_suite()
    if not args.no_check:
        problems = check_vectors(vectors)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"{len(problems)} disagreement(s); nothing written", file=sys.stderr)
            return 1
    write(args.out, vectors)
    print(f"wrote {len(vectors)} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
