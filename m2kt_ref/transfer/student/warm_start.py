"""Writing a packet's concept geometry straight into a student's weights, before ingestion.

An initialisation step, not training: the teacher's concept embeddings are centred, projected on
their ``d_S`` leading principal axes (zero-padded when ``d_T < d_S``) and written, at the
student's own weight scale, into the token-embedding rows of the concepts' tokens and into the
head rows of answer classes named like a concept. No input runs through the student, so it costs
no task input. It needs to know which token and which class name a concept (the task's
vocabulary), and a student with ``embed`` and ``head`` submodules (the m2kt nets).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.packet.codec import Packet
from m2kt_ref.transfer.tasks import Task

__all__ = ["write_packet_geometry"]


def _principal_coords(embeddings: np.ndarray, width: int) -> np.ndarray:
    """Centred embeddings on their ``width`` leading principal axes, scaled to unit RMS norm."""
    x = embeddings.astype(np.float64) - embeddings.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    k = min(width, vt.shape[0])
    coords = np.zeros((len(x), width))
    coords[:, :k] = x @ vt[:k].T
    rms = np.sqrt(np.mean(np.sum(coords**2, 1))) or 1.0
    return coords / rms


def _write_rows(weight: torch.Tensor, rows: list[int], coords: np.ndarray, scale: float) -> None:
    target = float(weight.detach().norm(dim=1).mean()) * scale
    with torch.no_grad():
        for row, point in zip(rows, coords, strict=True):
            weight[row] = torch.as_tensor(point * target, dtype=weight.dtype, device=weight.device)


def write_packet_geometry(
    packet: Packet,
    student: nn.Module,
    task: Task,
    *,
    embeddings: bool = True,
    head: bool = True,
    embed_scale: float = 1.0,
) -> dict[str, Any]:
    """Write the packet's task-concept geometry into ``student``'s embeddings and head.

    Args:
        packet: a decoded packet; only its concepts that are concepts of ``task`` are used.
        student: an m2kt net (``embed`` and ``head`` submodules), changed in place.
        task: names each concept's token (its first probe) and each answer class.
        embeddings: write the token-embedding rows.
        head: write the head rows of answer classes whose label is a concept's label.
        embed_scale: multiple of the student's mean embedding-row norm for the written rows.

    Returns:
        ``{"embed_init": bool, "head_init": number of head rows written}``.
    """
    specs = task.concept_index()
    concepts = [c for c in packet.body.concepts if c.id in specs]
    out: dict[str, Any] = {"embed_init": False, "head_init": 0}
    if not concepts:
        return out
    emb = np.stack([packet.tensor_f32(c.embedding) for c in concepts])
    if embeddings:
        weight = student.get_submodule("embed").weight
        tokens = [
            int(specs[c.id].probes[0].tokens[specs[c.id].probes[0].position]) for c in concepts
        ]
        _write_rows(weight, tokens, _principal_coords(emb, weight.shape[1]), embed_scale)
        out["embed_init"] = True
    if head:
        weight = student.get_submodule("head").weight
        by_label = {c.label: i for i, c in enumerate(concepts)}
        pairs = [
            (cls, by_label[lab]) for cls, lab in enumerate(task.answer_labels) if lab in by_label
        ]
        if pairs:
            coords = _principal_coords(emb, weight.shape[1])
            _write_rows(weight, [cls for cls, _ in pairs], coords[[i for _, i in pairs]], 1.0)
        out["head_init"] = len(pairs)
    return out
