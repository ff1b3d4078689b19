"""A small packet with every section filled, for ``m2kt demo``, the docs and the tests.

The numbers are made up (seeded noise around a circle, as a modular-arithmetic teacher would
produce); the packet exercises every section, every dtype and a non-critical extension.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from m2kt_ref import __version__
from m2kt_ref.errors import UsageError
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.codec import Packet, assemble

__all__ = ["DEMO_CREATED", "demo_packet"]

DEMO_CREATED = "2026-01-01T00:00:00Z"


def demo_packet(*, n: int = 5, dim: int = 8, seed: int = 0) -> Packet:
    """A deterministic packet about the numbers 0..n-1 and addition mod n.

    Every section is filled (concepts with manifolds, a graph, two traces, anchors, provenance,
    safety, a non-critical extension) and every dtype is used; the bytes are the same on every
    platform, which makes it the packet of the spec's worked example, the docs and the tests.

    Args:
        n: how many numbers (the modulus); at least 5, since the traces add 1 + 2 and 3 + 4.
        dim: the teacher's latent dimension.
        seed: seeds the (made-up) embeddings.

    Returns:
        An unsigned packet with ``n + 1`` concepts (the numbers and the category ``number``).

    Raises:
        UsageError: ``USAGE`` when ``n`` is below 5 or ``dim`` below 1.

    Example:
        >>> import m2kt_ref
        >>> packet = m2kt_ref.demo_packet()
        >>> packet.body.header.title, len(packet.body.concepts), len(packet.body.traces)
        ('demo: addition mod 5', 6, 2)
        >>> m2kt_ref.demo_packet() == packet            # deterministic
        True
        >>> m2kt_ref.demo_packet(n=7, dim=4).body.teacher.latent_dim
        4
    """
    if n < 5 or dim < 1:
        raise UsageError(f"demo_packet needs n >= 5 and dim >= 1, got n={n}, dim={dim}")
    # Integers over powers of two only: every value is exact, so the bytes (and the spec's worked
    # example and conformance vectors built from them) are the same on every platform and BLAS.
    rng = np.random.default_rng(seed)
    basis = rng.integers(-8, 9, size=(2, dim)).astype(np.float32) / 8
    centroids = (
        np.stack(
            [basis[0] * ((i * 4) % 9 - 4) / 4 + basis[1] * ((i * 7) % 9 - 4) / 4 for i in range(n)]
        )
        + rng.integers(-2, 3, size=(n, dim)).astype(np.float32) / 32
    )
    tensors: dict[str, tz.EncodedTensor] = {}
    concepts: list[dict[str, Any]] = []
    for i in range(n):
        tensors[f"concept/num:{i}/embedding"] = tz.encode(centroids[i], "f32")
        directions = np.eye(dim, dtype=np.float32)[[i % dim, (i + 1) % dim]]
        tensors[f"concept/num:{i}/directions"] = tz.encode(directions, "f16")
        tensors[f"concept/num:{i}/variances"] = tz.encode(np.array([0.02, 0.01]), "f32")
        concepts.append(
            {
                "id": f"num:{i}",
                "label": str(i),
                "kind": "symbol",
                "embedding": f"concept/num:{i}/embedding",
                "manifold": {
                    "directions": f"concept/num:{i}/directions",
                    "variances": f"concept/num:{i}/variances",
                    "spread": 0.17,
                    "support": 4,
                },
                "level": 1,
            }
        )
    tensors["concept/number/embedding"] = tz.encode(centroids.sum(axis=0) / 8, "bf16")
    concepts.append(
        {
            "id": "number",
            "label": "a number",
            "kind": "category",
            "embedding": "concept/number/embedding",
            "level": 0,
        }
    )
    edges = [
        {"source": f"num:{i}", "target": "number", "relation": "is_a", "weight": 1.0}
        for i in range(n)
    ]
    edges += [
        {
            "source": f"num:{i}",
            "target": f"num:{(i + 1) % n}",
            "relation": "precedes",
            "weight": 1.0,
        }
        for i in range(n)
    ]
    edges.append(
        {"source": "num:1", "target": f"num:{n - 1}", "relation": "inverse_of", "weight": 0.5}
    )
    traces = []
    for k, (a, b) in enumerate(((1, 2), (3, 4))):
        answer = (a + b) % n
        steps = [f"num:{a}", f"num:{b}", f"num:{answer}"]
        states = centroids[[a, b, answer]] + rng.integers(-1, 2, size=(3, dim)) / 64
        tensors[f"trace/t{k}/states"] = tz.encode(states, "bf16")
        traces.append(
            {
                "id": f"t{k}",
                "input": [a, n, b, n + 1],
                "answer": answer,
                "answer_label": str(answer),
                "steps": [
                    {"concept": c, "similarity": 0.9, "position": p}
                    for p, c in zip((0, 2, 3), steps, strict=True)
                ],
                "states": f"trace/t{k}/states",
            }
        )
    anchors = []
    for i in range(n):
        tensors[f"anchor/a{i}/state"] = tz.encode(centroids[i], "i8")
        anchors.append(
            {
                "id": f"a{i}",
                "input": [i],
                "position": 0,
                "state": f"anchor/a{i}/state",
                "concept": f"num:{i}",
            }
        )
    fields = {
        "header": {
            "format": "m2kt",
            "version": "1.0",
            "created": DEMO_CREATED,
            "title": f"demo: addition mod {n}",
        },
        "teacher": {
            "name": "demo-teacher",
            "architecture": "transformer",
            "latent_dim": dim,
            "layer": "final",
            "model_digest": "sha256:" + "0" * 64,
            "n_parameters": 1234,
        },
        "concepts": concepts,
        "graph": {"edges": edges},
        "traces": traces,
        "anchors": anchors,
        "provenance": {
            # a stable producer name (not a module path): the demo packet's bytes never change
            "generator": {"name": "m2kt_ref.demo", "version": __version__},
            "task": {"name": "modular", "options": {"p": n, "ops": "+"}},
            "parents": [],
            "task_inputs_used": len(traces),
            "concept_probes_used": n,
            "parameters": {"layer": "final", "traces": len(traces), "note": "synthetic"},
            "seed": seed,
        },
        "safety": {
            "require_signature": True,
            "min_signers": 1,
            "protected_concepts": ["num:0"],
            "max_parameter_drift": 0.5,
            "max_output_divergence": 0.1,
            "max_capability_drop": 0.02,
        },
        "extensions": {"x-demo.note": {"critical": False, "data": {"purpose": "illustration"}}},
    }
    return assemble(fields, tensors)
