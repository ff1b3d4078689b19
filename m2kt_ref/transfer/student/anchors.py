"""Fitting the Concept Alignment Layer on a packet's anchors.

The seeded split of anchors into fit and held-out rows is shared by :func:`align_packet` (the
alignment study, no training) and by ingestion, so the held-out figures of one are the
starting point of the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.receipt import json_safe
from m2kt_ref.transfer.student.align import (
    ALIGNERS,
    AlignmentMap,
    evaluate_alignment,
    fit_alignment,
)
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.readout import student_layer
from m2kt_ref.transfer.student.view import check_compatible, packet_view

__all__ = ["align_packet", "default_curve_counts", "heldout_metrics", "split_anchors"]


def split_anchors(n: int, config: IngestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of anchor rows into (fit, held out)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, 0xA11C])))
    perm = rng.permutation(n)
    n_hold = 0
    if config.holdout_fraction > 0:
        n_hold = max(config.min_holdout, round(n * config.holdout_fraction))
        if n - n_hold < 2:
            n_hold = 0
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def heldout_metrics(
    cal: AlignmentMap,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    hold_rows: np.ndarray,
    cfg: IngestConfig,
) -> dict[str, Any] | None:
    if len(hold_rows) < 2:
        return None
    return evaluate_alignment(cal, x_all[hold_rows], y_all[hold_rows], k=cfg.csls_k)


def default_curve_counts(pool: int) -> list[int]:
    """Anchor counts for the quality curve: powers of two from 2, and the whole pool."""
    counts, c = [], 2
    while c < pool:
        counts.append(c)
        c *= 2
    if pool >= 2:
        counts.append(pool)
    return counts


def align_packet(
    packet: Packet,
    student_model: nn.Module,
    *,
    methods: Sequence[str] = ("procrustes",),
    config: IngestConfig | None = None,
    curve_counts: Sequence[int] | None = None,
    curve_test_size: float = 0.2,
) -> dict[str, Any]:
    """Fit the alignment map(s) from a packet's anchors to a student, without training it.

    The student's states are read at ``config``'s student layer on every anchor input and
    position (:class:`~m2kt_ref.transfer.hooks.HiddenStateReader`); the anchors are split exactly as
    :func:`ingest` splits them (``holdout_fraction``, ``seed``), so the held-out metrics are
    those an ingestion with the same config starts from.

    Args:
        packet: a decoded packet.
        student_model: the student (not modified).
        methods: alignment methods to fit (keys of
            :data:`~m2kt_ref.transfer.student.align.ALIGNERS`).
        config: supplies ``student_layer``, ``holdout_fraction``, ``min_holdout``, ``seed``,
            ``csls_k``, ``align_options`` and ``device``.
        curve_counts: anchor counts of the quality curve (default
            :func:`default_curve_counts`); ``[]`` skips the curve.
        curve_test_size: held-out share of the curve's fixed test set.

    Returns:
        ``{"packet_id", "teacher_dim", "student_dim", "layer", "anchors", "n_fit",
        "n_heldout", "methods": {name: {"fit_info", "fit", "heldout"}}, "curve": {name:
        [{"anchors", ...metrics}]}}``.

    Raises:
        IngestError: ``INGEST_INCOMPATIBLE`` when the packet has fewer than 2 anchors, rows of
            mixed lengths, or tokens or a row length the student cannot take.
        UsageError: ``USAGE`` for a bad method, layer or alignment option, or
            (:class:`~m2kt_ref.errors.DeviceUnavailableError`) a device that does not exist.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
        >>> packet = mt.generate_from_model(teacher, task, traces=2, created=0).packet
        >>> student, _, _ = mt.init_student(task, family="mlp", width=12, depth=1, seed=1)
        >>> study = mt.align_packet(packet, student, methods=("procrustes", "ridge"))
        >>> study["teacher_dim"], study["student_dim"], study["n_fit"], study["n_heldout"]
        (16, 12, 8, 2)
        >>> sorted(study["methods"]), sorted(study["methods"]["ridge"])
        (['procrustes', 'ridge'], ['fit', 'fit_info', 'heldout'])
    """
    from m2kt_ref.transfer.device import resolve_device
    from m2kt_ref.transfer.hooks import HiddenStateReader
    from m2kt_ref.transfer.student.align import anchor_curve

    cfg = config or IngestConfig()
    for m in methods:
        if m not in ALIGNERS:
            raise UsageError(f"unknown alignment method {m!r}; known: {', '.join(ALIGNERS)}")
    view = packet_view(packet)
    check_compatible(view, packet, None, student_model)
    layer = student_layer(student_model, cfg)
    device = resolve_device(cfg.device)
    student_model.to(device)
    with HiddenStateReader(student_model, [layer], device=device) as reader:
        y = reader.read_at(view.anchor_inputs, view.anchor_positions.tolist(), layer).double()
    x = torch.from_numpy(view.anchor_states).double()
    fit_rows, hold_rows = split_anchors(len(view.anchor_ids), cfg)
    out: dict[str, Any] = {
        "packet_id": packet.packet_id,
        "teacher_dim": int(x.shape[1]),
        "student_dim": int(y.shape[1]),
        "layer": layer,
        "anchors": len(view.anchor_ids),
        "n_fit": len(fit_rows),
        "n_heldout": len(hold_rows),
        "methods": {},
        "curve": {},
    }
    n = len(view.anchor_ids)
    n_test = round(n * curve_test_size)
    pool = n - n_test
    counts = default_curve_counts(pool) if curve_counts is None else list(curve_counts)
    for m in methods:
        options = dict(cfg.align_options) if m == cfg.align_method else {}
        if m == "mlp":
            options.setdefault("seed", cfg.seed)
        cal = fit_alignment(m, x[fit_rows], y[fit_rows], **options)
        out["methods"][m] = {
            "fit_info": dict(cal.fit_info),
            "fit": evaluate_alignment(cal, x[fit_rows], y[fit_rows], k=cfg.csls_k),
            "heldout": heldout_metrics(cal, x, y, hold_rows, cfg),
        }
        if counts and n_test >= 2 and pool >= 2:
            opts = {k: v for k, v in options.items() if k != "seed"}
            out["curve"][m] = anchor_curve(
                m, x, y, counts, seed=cfg.seed, test_size=n_test, k=cfg.csls_k, **opts
            )
    return json_safe(out)
