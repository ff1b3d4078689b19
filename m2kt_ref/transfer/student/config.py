"""Every knob of an ingestion, in one JSON-able, validated dataclass (spec/algorithms.md §3).

Kept apart from the ingestion itself so the CLI, the experiments and a report reader can build,
print and parse a config without running anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.student.align import (
    ALIGNERS,
)

__all__ = ["DECISIONS", "DEFAULT_BOUNDS", "HIERARCHY_RELATIONS", "IngestConfig"]

#: Safety bounds used when neither the packet nor the caller sets one (spec/algorithms.md §1.7).
DEFAULT_BOUNDS: dict[str, float] = {
    "max_parameter_drift": 0.25,
    "max_output_divergence": 0.1,
    "max_capability_drop": 0.02,
}


#: Outcomes of an ingestion.
DECISIONS = ("accepted", "rolled_back", "refused", "kept_unsafe")


#: Relations whose edges order a hierarchy (child -> parent) for the triplet term.
HIERARCHY_RELATIONS = ("is_a", "part_of")


@dataclass(frozen=True)
class IngestConfig:
    """Every knob of an ingestion, with defaults that work (JSON-able; see docs/ingestion.md).

    Build one with keywords, from a dict (:meth:`from_dict`, the inverse of :meth:`to_dict`) or
    from ``KEY=VALUE`` text (:meth:`with_settings`); every value is checked on construction.

    Args:
        steps: maximum optimiser steps.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay (0 by default: the trust region already anchors the
            weights).
        betas: AdamW betas.
        grad_clip: gradient norm clip; None disables it.
        seed: every random draw: anchor split, batches, negatives.
        eval_every: steps between history entries, plateau checks and callbacks.
        patience: stop once the loss has not improved by ``min_delta`` (relative) for this
            many checks; 0 disables early stopping.
        min_delta: relative improvement that resets the patience count.
        min_steps: steps run before early stopping may stop.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        bf16: bf16 autocast (CUDA only).
        train_mode: run the student in train mode (e.g. with dropout); off by default so the
            outputs compared with ``theta_0`` are the same function.
        align_method: the alignment map: ``procrustes``, ``ridge`` or ``mlp``.
        align_options: keyword options of the map (see :func:`fit_alignment`).
        holdout_fraction: share of anchors kept out of the fit, for verification.
        min_holdout: fewest held-out anchors when any are held out.
        csls_k: CSLS neighbourhood size of the retrieval metrics.
        student_layer: the student layer read as its latent space (default: its last block
            or hidden layer, like the teacher's).
        center: compute geometry and relation metrics on centred states.
        use_concepts: train on the concepts section (L_geo); for ablations, as are the next
            two. Verification still measures everything.
        use_graph: train on the graph section (L_struct).
        use_traces: train on the traces section (L_reason).
        lambda_geo: weight of the geometry term.
        lambda_struct: weight of the structure term.
        lambda_reason: weight of the reasoning term.
        lambda_safe: weight of the safety term.
        geo_cos: weight, inside the geometry term, of the angles among concepts (student
            states against teacher embeddings); like every weight here, 0 skips its part.
        geo_dist: weight of the (scale-free) distances among concepts.
        geo_anchor: weight of the pull of each concept state to its mapped teacher
            embedding.
        struct_edge: weight of the edge part of the structure term.
        struct_hierarchy: weight of the hierarchy (triplet) part of the structure term.
        struct_unrelated: weight of the unrelated-pairs part of the structure term.
        edge_cos_min: target cosine of an edge of weight 0 (linked concepts are pulled to at
            least ``edge_cos_min + weight * (edge_cos_max - edge_cos_min)``).
        edge_cos_max: target cosine of an edge of weight 1.
        hierarchy_margin: triplet margin of the hierarchy part.
        hierarchy_relations: relations whose edges order a hierarchy (child -> parent).
        unrelated_margin: cosine above which unlinked pairs are pushed apart.
        unrelated_pairs: random unlinked pairs per step.
        relation_negatives: sampled non-edges per edge, in verification.
        reason_state: weight, inside the reasoning term, of the squared error between the
            student's states at trace steps and the mapped teacher states.
        reason_cosine: weight of their cosine error.
        reason_answer: weight of the cross-entropy against the teacher's trace answers.
        safe_drift: weight of the parameter-drift part of the safety term.
        safe_kl: weight of the output-divergence (KL) part of the safety term.
        batch_concepts: concepts per step (None = all).
        batch_traces: traces per step (None = all).
        batch_protected: protected rows per step (None = all).
        max_parameter_drift: the operator's bound on relative parameter drift. For this and
            the next two bounds the stricter of the packet's and the config's applies, so a
            packet can tighten a bound but never loosen it; None leaves the bound to the
            packet, or to :data:`DEFAULT_BOUNDS` when the packet has none.
        max_output_divergence: the operator's bound on the mean KL on the protected set.
        max_capability_drop: the operator's bound on the accuracy drop on ``protected``.
        drift_ball: the hard bound projects the weights into a ball of ``drift_ball *
            max_parameter_drift``, a margin below the check.
        require_signature: require a verified signature; combined with the packet's policy,
            the stricter wins.
        min_signers: k of the k-of-n signer policy; combined likewise.
        rollback: restore ``theta_0`` when a safety check fails; False keeps the unsafe
            student (decision ``kept_unsafe``), for experiments.
        ignore_packet_policy: apply only the config's bounds, None meaning no bound and no
            projection: an explicit research override, recorded in the report's policy; it
            never touches the trust gate.
        protect_task_problems: draw that many task problems (seeded) as a protected
            capability set.
        self_check_rows: rows of the self-agreement check (spec/algorithms.md §4): the
            student's answers before and after ingestion are compared, without labels, on the
            packet's trace problems and probes and on as many of the task's inputs (labels
            unused), a seeded sample of at most this many of each.
        max_self_disagreement: the largest fraction of those answers ingestion may change in a
            student that is already trained (``student_trained``); beyond it the student is
            rolled back. None: measured, never enforced.
        student_trained: whether the student is already trained. True enforces
            ``max_self_disagreement`` (``m2kt ingest`` sets it from the model directory's
            record); False or None (unknown) only measure and report the agreement.
        work_budget: the index entries ingestion may build from the packet's graph
            (concept-anchor membership, hierarchy closure, adjacency: 8 to 16 bytes each);
            past it ingestion is refused with ``INGEST_BUDGET`` before they are built. None:
            no limit.

    Raises:
        UsageError: ``USAGE`` for a value out of range (an unknown ``align_method``, a
            negative weight or bound, a non-finite float, ``min_signers`` below 1...).

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> config = mt.IngestConfig(steps=50, align_method="ridge", use_graph=False)
        >>> mt.IngestConfig.from_dict(config.to_dict()) == config
        True
        >>> config.with_settings({"lambda_geo": "0.5", "use_traces": "false"}).use_traces
        False
        >>> try:
        ...     mt.IngestConfig(align_method="cca")
        ... except m2kt_ref.UsageError as exc:
        ...     print(exc.code, exc)
        USAGE ingest config: align_method must be one of procrustes, ridge, mlp
    """

    steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float | None = 1.0
    seed: int = 0
    eval_every: int = 10
    patience: int = 5
    min_delta: float = 1e-3
    min_steps: int = 0
    device: str = "cpu"
    bf16: bool = False
    train_mode: bool = False
    align_method: str = "procrustes"
    align_options: Mapping[str, Any] = field(default_factory=dict)
    holdout_fraction: float = 0.2
    min_holdout: int = 2
    csls_k: int = 10
    student_layer: str | None = None
    center: bool = True
    use_concepts: bool = True
    use_graph: bool = True
    use_traces: bool = True
    lambda_geo: float = 1.0
    lambda_struct: float = 0.5
    lambda_reason: float = 1.0
    lambda_safe: float = 1.0
    geo_cos: float = 1.0
    geo_dist: float = 1.0
    geo_anchor: float = 1.0
    struct_edge: float = 1.0
    struct_hierarchy: float = 1.0
    struct_unrelated: float = 1.0
    edge_cos_min: float = 0.0
    edge_cos_max: float = 0.6
    hierarchy_margin: float = 0.1
    hierarchy_relations: tuple[str, ...] = HIERARCHY_RELATIONS
    unrelated_margin: float = 0.3
    unrelated_pairs: int = 64
    relation_negatives: int = 10
    reason_state: float = 1.0
    reason_cosine: float = 0.0
    reason_answer: float = 1.0
    safe_drift: float = 10.0
    safe_kl: float = 1.0
    batch_concepts: int | None = 256
    batch_traces: int | None = 64
    batch_protected: int | None = 256
    max_parameter_drift: float | None = DEFAULT_BOUNDS["max_parameter_drift"]
    max_output_divergence: float | None = DEFAULT_BOUNDS["max_output_divergence"]
    max_capability_drop: float | None = DEFAULT_BOUNDS["max_capability_drop"]
    drift_ball: float = 0.9
    require_signature: bool = True
    min_signers: int = 1
    rollback: bool = True
    ignore_packet_policy: bool = False
    protect_task_problems: int = 0
    work_budget: int | None = 1 << 25
    self_check_rows: int = 256
    max_self_disagreement: float | None = 0.05
    student_trained: bool | None = None

    def __post_init__(self) -> None:
        def bad(msg: str) -> UsageError:
            return UsageError(f"ingest config: {msg}")

        if self.align_method not in ALIGNERS:
            raise bad(f"align_method must be one of {', '.join(ALIGNERS)}")
        if int(self.steps) < 0 or int(self.eval_every) < 1 or int(self.patience) < 0:
            raise bad("steps >= 0, eval_every >= 1 and patience >= 0 are required")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.min_delta >= 0):
            raise bad("lr > 0, weight_decay >= 0 and min_delta >= 0 are required")
        if not 0.0 <= self.holdout_fraction < 1.0 or self.min_holdout < 2:
            raise bad("holdout_fraction must be in [0, 1) and min_holdout >= 2")
        if not 0.0 < self.drift_ball <= 1.0:
            raise bad("drift_ball must be in (0, 1]")
        if self.min_signers < 1:
            raise bad("min_signers must be >= 1")
        for name in ("batch_concepts", "batch_traces", "batch_protected"):
            value = getattr(self, name)
            if value is not None and int(value) < 2:
                raise bad(f"{name} must be None or >= 2")
        if self.work_budget is not None and int(self.work_budget) < 1:
            raise bad("work_budget must be None or >= 1")
        if int(self.self_check_rows) < 0:
            raise bad("self_check_rows must be >= 0")
        if self.max_self_disagreement is not None and not 0 <= self.max_self_disagreement <= 1:
            raise bad("max_self_disagreement must be None or in [0, 1]")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f"{f.name} must be finite")
            if (f.name.startswith(("lambda_", "geo_", "struct_", "reason_", "safe_"))) and (
                value < 0
            ):
                raise bad(f"{f.name} must be >= 0")
        for name in ("max_parameter_drift", "max_output_divergence", "max_capability_drop"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise bad(f"{name} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what the report records)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["hierarchy_relations"] = list(self.hierarchy_relations)
        d["align_options"] = dict(self.align_options)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ``USAGE`` error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown ingest config field(s): {', '.join(unknown)}")
        d = dict(data)
        for key in ("betas", "hierarchy_relations"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def with_settings(self, pairs: Mapping[str, str]) -> IngestConfig:
        """A copy with fields set from text (``{"lambda_geo": "0", "use_graph": "false"}``),
        each parsed to the field's type (for ``m2kt ingest --set KEY=VALUE``).

        Raises:
            UsageError: ``USAGE`` for an unknown field or a value of the wrong type.
        """
        defaults = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        updates: dict[str, Any] = {}
        for key, text in pairs.items():
            if key not in defaults:
                raise UsageError(f"unknown ingest setting {key!r}; known: {', '.join(defaults)}")
            updates[key] = _parse_setting(key, text, defaults[key])
        return dataclasses.replace(self, **updates)


def _parse_setting(key: str, text: str, current: Any) -> Any:
    import json

    raw = text.strip()
    if raw.lower() in ("none", "null"):
        return None
    try:
        if isinstance(current, bool) or key == "student_trained":
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(current, int) or key in (
            "batch_concepts",
            "batch_traces",
            "batch_protected",
            "work_budget",
        ):
            return int(raw)
        if isinstance(current, float) or key.startswith("max_"):
            return float(raw)
        if isinstance(current, str) or current is None:
            return raw
        if isinstance(current, tuple):
            if key == "hierarchy_relations":
                return tuple(x for x in raw.split(",") if x)
            return tuple(float(x) for x in raw.split(","))
        if isinstance(current, Mapping):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(raw)
            return value
    except ValueError:
        pass
    raise UsageError(f"ingest setting {key}={text!r} is not a valid value")
