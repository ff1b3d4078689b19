"""What every vector is made from: the suite's constants, spec sections, tensors and base bodies.

Nothing here builds a packet (that is :mod:`packets`); these are the plain ingredients, so that a
change to the base bodies or the tensors shows up in one place. The tensors come from one seeded
generator, drawn at import in a fixed order: moving or adding a draw changes every vector that
holds the full packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SUITE_VERSION = "1.0"
FORMAT_VERSION = "1.0"
#: The version of packets that use a registered 1.1 extension (packet-1.1.md §3.12, §9).
FORMAT_1_1 = "1.1"
CREATED = "2026-01-01T00:00:00Z"
ALIGN = 64
MAGIC = b"\xd9\xd9\xf7"

#: Spec sections, by topic (spec/packet-1.1.md, spec/signing.md, spec/conformance.md).
SEC = {
    "model": "packet-1.1.md §3",
    "common": "packet-1.1.md §3.1",
    "header": "packet-1.1.md §3.2",
    "teacher": "packet-1.1.md §3.3",
    "concepts": "packet-1.1.md §3.4",
    "graph": "packet-1.1.md §3.5",
    "traces": "packet-1.1.md §3.6",
    "anchors": "packet-1.1.md §3.7",
    "provenance": "packet-1.1.md §3.8",
    "safety": "packet-1.1.md §3.9",
    "descriptors": "packet-1.1.md §3.10",
    "extensions": "packet-1.1.md §3.11",
    "registered": "packet-1.1.md §3.12",
    "envelope": "packet-1.1.md §4.1",
    "deterministic": "packet-1.1.md §4.2",
    "data": "packet-1.1.md §4.3",
    "packet_id": "packet-1.1.md §4.4",
    "json": "packet-1.1.md §4.5",
    "tensors": "packet-1.1.md §5",
    "dtypes": "packet-1.1.md §5.1",
    "length": "packet-1.1.md §5.2",
    "semantics": "packet-1.1.md §6",
    "limits": "packet-1.1.md §8",
    "versioning": "packet-1.1.md §9",
    "order": "packet-1.1.md §10",
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


def derivation_data() -> dict[str, Any]:
    """The ``derivation`` data of the full packet: every derivation once, one per edge (4)."""
    return {
        "edges": ["teacher-geometry", "declared", "teacher-probe", "teacher-trace"],
        "trace_steps": "teacher-readout",
        "trace_selection": {
            "method": "cover",
            "unit": "transition",
            "candidates": 25,
            "exercised": 2,
            "covered": 2,
        },
    }


def operators_data() -> dict[str, Any]:
    """The ``operators`` data of the full packet: each operator derivation once, probabilities
    at both ends of [0, 1] and inside."""
    return {
        "entries": [
            {
                "operator": "num:1",
                "source": "num:0",
                "target": "num:1",
                "probability": 0.875,
                "input": [0, 5, 1],
                "derivation": "teacher-probe",
            },
            {
                "operator": "num:1",
                "source": "num:1",
                "target": "num:0",
                "probability": 1.0,
                "input": [1, 5, 1],
                "derivation": "teacher-trace",
            },
            {
                "operator": "num:0",
                "source": "number",
                "target": "number",
                "probability": 0.0,
                "input": [2],
                "derivation": "declared",
            },
        ]
    }


def full_1_1_fields() -> dict[str, Any]:
    """The full body as a 1.1 writer makes it: version 1.1, both registered extensions added
    (not critical) beside the private one."""
    f = full_fields()
    f["header"]["version"] = FORMAT_1_1
    f["extensions"]["derivation"] = {"critical": False, "data": derivation_data()}
    f["extensions"]["operators"] = {"critical": False, "data": operators_data()}
    return f
