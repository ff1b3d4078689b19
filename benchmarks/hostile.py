"""Hostile but valid packets for ingestion (issue 13.3), shared by the tests and benchmarks.

Each is a packet that the reader accepts (every count within the default limits) and a trusted
signer could sign, built on a small real packet of the ``chain`` task so that a student of that
task can ingest it:

* :func:`wide`: ``n`` extra concepts and ``n`` extra anchors, one per concept, all naming one
  shared tensor (a few bytes per concept: the packet grows by ~160 bytes per concept), the shape
  that once made ingestion allocate an ``n_concepts x n_anchors`` matrix;
* :func:`chain`: ``n`` extra concepts in one ``part_of`` chain above an anchored concept, the
  shape that once made the hierarchy closure multiply ``n x n`` matrices up to ``n`` times;
* :func:`no_traces`: the packet with an empty ``traces`` list.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OPTIONS = {"n": 8, "functions": 2, "k": 3}


def base_packet(seed: int = 0) -> tuple[Any, Any]:
    """(task, packet): an untrained ``gru`` teacher's packet of the chain task, 4 traces."""
    import m2kt_ref.transfer as mt

    task = mt.make_task("chain", **OPTIONS)
    teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1, seed=seed)
    return task, mt.generate_from_model(teacher, task, traces=4, created=0).packet


def _rebuild(packet: Any, change: Any) -> Any:
    from m2kt_ref.packet import codec
    from m2kt_ref.packet import tensors as tz

    fields = packet.body.to_data()
    fields.pop("tensors")
    fields.pop("extensions", None)  # the derivation extension counts the edges
    tensors = {t.name: np.array(packet.tensor_f32(t.name)) for t in packet.body.tensors}
    change(fields, tensors)
    return codec.assemble(fields, {k: tz.encode(v, "f32") for k, v in tensors.items()})


def wide(packet: Any, n: int) -> Any:
    """``n`` more concepts and ``n`` more anchors (one each), all naming one tensor."""

    def change(fields: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        first = fields["anchors"][0]
        shared = first["state"]
        for i in range(n):
            fields["concepts"].append(
                {"id": f"w:{i}", "label": f"w{i}", "kind": "symbol", "embedding": shared}
            )
            fields["anchors"].append(
                {
                    "id": f"w:{i}/a",
                    "input": first["input"],
                    "position": first["position"],
                    "state": shared,
                    "concept": f"w:{i}",
                }
            )

    return _rebuild(packet, change)


def chain(packet: Any, n: int, relation: str = "part_of") -> Any:
    """``n`` more concepts, ``h:0 part_of h:1 part_of ... h:n-1``, above an anchored one."""

    def change(fields: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        first = fields["anchors"][0]
        shared = first["state"]
        for i in range(n):
            fields["concepts"].append(
                {"id": f"h:{i}", "label": f"h{i}", "kind": "cluster", "embedding": shared}
            )
        edges = fields["graph"]["edges"]
        edges.append(
            {"source": first["concept"], "target": "h:0", "relation": relation, "weight": 1.0}
        )
        for i in range(n - 1):
            edges.append(
                {"source": f"h:{i}", "target": f"h:{i + 1}", "relation": relation, "weight": 1.0}
            )

    return _rebuild(packet, change)


def no_traces(packet: Any) -> Any:
    """The packet with ``traces`` empty (and the trace tensors gone)."""

    def change(fields: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        for t in fields["traces"]:
            if t.get("states"):
                tensors.pop(t["states"], None)
        fields["traces"] = []

    return _rebuild(packet, change)
