"""Student-side ingestion of a knowledge packet (spec/algorithms.md §2–§4).

:func:`ingest` takes a decoded packet and any ``nn.Module`` mapping token rows ``[B, L]`` to
logits (the student, of any width and depth), and in order:

1. **trust gate**: verifies the packet's tensor digests and signatures against a trust store and
   a k-of-n policy (the stricter of the packet's ``safety`` and the caller's config) and refuses
   an unverified packet (:class:`IngestRefusedError`, ``INGEST_REFUSED``) unless the caller opts
   out with ``allow_unverified=True`` (recorded in the report);
2. snapshots the student (``theta_0``) and its outputs on a **protected set**: the anchors of the
   packet's ``safety.protected_concepts`` plus caller-supplied problems (a capability the
   student already has), whose accuracy it records;
3. reads the student's states on the anchors at the layer that corresponds to the teacher's,
   fits the **Concept Alignment Layer** (CAL, :mod:`m2kt_ref.align`) on a split of the anchors
   and maps every concept embedding and trace state into student space;
4. minimises the **composite loss** (:mod:`m2kt_ref.losses`) over the student's parameters with
   AdamW, with a hard bound on the parameter drift applied after every step and early stopping
   on a plateau;
5. **verifies** the result (:mod:`m2kt_ref.verify_ingest`) and rolls the student back to
   ``theta_0`` when a safety bound fails;
6. returns the student and the **ingestion report** (``schemas/ingestion-report.schema.json``).

Everything runs on CPU or CUDA (``IngestConfig.device``), optionally under bf16 autocast on CUDA.
On CPU, a run is deterministic for a seed and a thread count.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref import __version__
from m2kt_ref import losses as L
from m2kt_ref import verify_ingest as V
from m2kt_ref.accounting import RowRecorder
from m2kt_ref.align import ALIGNERS, AlignmentMap, evaluate_alignment, fit_alignment
from m2kt_ref.codec import Packet
from m2kt_ref.errors import IngestError, TensorError, UsageError
from m2kt_ref.report import REPORT_FORMAT, REPORT_VERSION, json_safe
from m2kt_ref.trust import TrustStore

__all__ = [
    "DECISIONS",
    "DEFAULT_BOUNDS",
    "IngestConfig",
    "IngestRefusedError",
    "IngestResult",
    "PacketView",
    "align_packet",
    "check_trust",
    "default_curve_counts",
    "effective_policy",
    "ingest",
    "packet_view",
    "student_layer",
]

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
_BOUNDS_TOL = 1e-6
_READ_BATCH = 1024


# =========================================================================== configuration


@dataclass(frozen=True)
class IngestConfig:
    """Every knob of an ingestion, with defaults that work (JSON-able; see docs/ingestion.md).

    Optimisation: ``steps`` (maximum), ``lr``, ``weight_decay`` (AdamW; 0 by default since the
    trust region already anchors the weights), ``betas``, ``grad_clip`` (None disables),
    ``seed`` (every random draw: anchor split, batches, negatives), ``eval_every`` (steps
    between history entries, plateau checks and callbacks), ``patience`` and ``min_delta``
    (stop once the loss has not improved by ``min_delta`` relative for ``patience`` checks;
    ``patience=0`` disables early stopping), ``min_steps``, ``device`` (cpu, cuda, cuda:N,
    auto), ``bf16`` (autocast on CUDA only), ``train_mode`` (run the student in train mode,
    e.g. with dropout; off by default so the outputs compared with ``theta_0`` are the same
    function).

    Alignment: ``align_method`` (procrustes, ridge, mlp), ``align_options`` (keyword options of
    the map), ``holdout_fraction`` / ``min_holdout`` (anchors kept out of the fit, for
    verification), ``csls_k``, ``student_layer`` (default: the student's last block / hidden
    layer, like the teacher's), ``center`` (geometry and relation metrics on centred states).

    Sections (ablations): ``use_concepts`` (L_geo), ``use_graph`` (L_struct), ``use_traces``
    (L_reason) turn a packet section off for training; verification still measures everything.

    Loss weights: ``lambda_geo``, ``lambda_struct``, ``lambda_reason``, ``lambda_safe`` and the
    weights inside each term (``geo_cos``, ``geo_dist``, ``geo_anchor``; ``struct_edge``,
    ``struct_hierarchy``, ``struct_unrelated``; ``reason_state``, ``reason_cosine``,
    ``reason_answer``; ``safe_drift``, ``safe_kl``), margins (``edge_cos_min``,
    ``edge_cos_max``, ``hierarchy_margin``, ``unrelated_margin``), ``hierarchy_relations``,
    ``unrelated_pairs`` (random unlinked pairs per step), ``relation_negatives`` (per edge, in
    verification). A zero weight skips the term's computation.

    Batches: ``batch_concepts``, ``batch_traces``, ``batch_protected`` (rows per step; None =
    all).

    Safety: ``max_parameter_drift``, ``max_output_divergence``, ``max_capability_drop`` (the
    operator's bounds, :data:`DEFAULT_BOUNDS` by default; the stricter of the packet's and the
    config's applies, so a packet can tighten a bound but never loosen it; None leaves the
    bound to the packet, or to :data:`DEFAULT_BOUNDS` when the packet has none),
    ``drift_ball`` (the hard bound projects the weights into a ball of ``drift_ball *
    max_parameter_drift``, a margin below the check), ``require_signature`` and ``min_signers``
    (combined with the packet's policy, the stricter wins), ``rollback`` (restore ``theta_0``
    when a check fails; False keeps the unsafe student, decision ``kept_unsafe``, for
    experiments), ``ignore_packet_policy`` (apply only the config's bounds, None meaning no bound
    and no projection: an explicit research override, recorded in the report's policy; it never
    touches the trust gate), ``protect_task_problems`` (draw that many task problems as protected
    capability set, seeded).
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

    def __post_init__(self) -> None:
        def bad(msg: str) -> UsageError:
            return UsageError("USAGE", f"ingest config: {msg}")

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
            raise UsageError("USAGE", f"unknown ingest config field(s): {', '.join(unknown)}")
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
                raise UsageError(
                    "USAGE", f"unknown ingest setting {key!r}; known: {', '.join(defaults)}"
                )
            updates[key] = _parse_setting(key, text, defaults[key])
        return dataclasses.replace(self, **updates)


def _parse_setting(key: str, text: str, current: Any) -> Any:
    import json

    raw = text.strip()
    if raw.lower() in ("none", "null"):
        return None
    try:
        if isinstance(current, bool):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(current, int) or key in ("batch_concepts", "batch_traces", "batch_protected"):
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
    raise UsageError("USAGE", f"ingest setting {key}={text!r} is not a valid value")


# =========================================================================== packet view


@dataclass
class PacketView:
    """The packet's content as arrays, indexed for ingestion (built by :func:`packet_view`).

    Concept rows follow the packet's concept order; ``membership[c]`` averages anchor states into
    concept ``c``'s state: a concept with anchors of its own averages them (``direct[c]``); one
    without (a cluster) averages its ``part_of``/``is_a`` children's states, recursively; a row
    of zeros means the student cannot represent that concept (``represented[c]`` False).
    """

    concept_ids: list[str]
    concept_kinds: list[str]
    embeddings: np.ndarray  # [n_c, d_T] float32
    anchor_ids: list[str]
    anchor_inputs: np.ndarray  # [n_a, L] int64
    anchor_positions: np.ndarray  # [n_a]
    anchor_states: np.ndarray  # [n_a, d_T]
    anchor_concept: np.ndarray  # [n_a], -1 when the anchor names no concept
    membership: np.ndarray  # [n_c, n_a] float32
    direct: np.ndarray  # [n_c] bool
    edge_source: np.ndarray  # [m] int64
    edge_target: np.ndarray
    edge_relation: list[str]
    edge_weight: np.ndarray  # [m] float32
    trace_ids: list[str]
    trace_inputs: np.ndarray  # [n_t, L]
    trace_answers: np.ndarray  # [n_t]
    step_trace: np.ndarray  # [s] trace row of each step
    step_position: np.ndarray  # [s]
    step_concept: np.ndarray  # [s] concept row
    step_states: np.ndarray  # [s, d_T] (zeros where a trace has no states)
    step_has_state: np.ndarray  # [s] bool
    seq_len: int

    @property
    def represented(self) -> np.ndarray:
        return self.membership.sum(axis=1) > 0


def _rows(inputs: Sequence[Sequence[int]], what: str) -> np.ndarray:
    lengths = {len(r) for r in inputs}
    if len(lengths) > 1:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"{what} input rows have different lengths {sorted(lengths)}"
        )
    if not inputs:
        return np.zeros((0, 0), dtype=np.int64)
    return np.asarray([list(r) for r in inputs], dtype=np.int64)


def packet_view(packet: Packet) -> PacketView:
    """Index a decoded packet's concepts, anchors, graph and traces as arrays.

    Raises:
        IngestError: ``INGEST_INCOMPATIBLE`` when input rows differ in length, or no anchor.
    """
    body = packet.body
    ids = [c.id for c in body.concepts]
    index = {cid: i for i, cid in enumerate(ids)}
    d_t = body.teacher.latent_dim
    emb = (
        np.stack([packet.tensor_f32(c.embedding).reshape(d_t) for c in body.concepts])
        if ids
        else np.zeros((0, d_t), np.float32)
    )
    anchors = body.anchors
    if len(anchors) < 2:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"the packet has {len(anchors)} anchor(s); alignment needs 2"
        )
    a_inputs = _rows([a.input for a in anchors], "anchor")
    t_inputs = _rows([t.input for t in body.traces], "trace")
    lengths = {a_inputs.shape[1]} | ({t_inputs.shape[1]} if len(body.traces) else set())
    if len(lengths) > 1:
        raise IngestError("INGEST_INCOMPATIBLE", "anchor and trace rows differ in length")
    a_states = np.stack([packet.tensor_f32(a.state).reshape(d_t) for a in anchors])
    a_concept = np.array(
        [index[a.concept] if a.concept is not None else -1 for a in anchors], dtype=np.int64
    )
    n_c, n_a = len(ids), len(anchors)
    membership = np.zeros((n_c, n_a), dtype=np.float64)
    for j, c in enumerate(a_concept):
        if c >= 0:
            membership[c, j] = 1.0
    direct = membership.sum(axis=1) > 0
    membership[direct] /= membership[direct].sum(axis=1, keepdims=True)
    edges = body.graph.edges
    children: dict[int, list[int]] = {}
    for e in edges:
        if e.relation in HIERARCHY_RELATIONS:
            children.setdefault(index[e.target], []).append(index[e.source])
    # A concept without anchors (a cluster) is the flat mean of its anchored descendants, as
    # the generator's cluster embedding is the mean of its members' (spec/algorithms.md §1.3).
    for c in np.flatnonzero(~direct):
        found = [d for d in _descendants(int(c), children) if direct[d]]
        if found:
            membership[c] = membership[found].mean(axis=0)
    steps_trace, steps_pos, steps_concept, steps_state, steps_has = [], [], [], [], []
    for t, tr in enumerate(body.traces):
        states = packet.tensor_f32(tr.states).reshape(len(tr.steps), d_t) if tr.states else None
        for j, st in enumerate(tr.steps):
            steps_trace.append(t)
            steps_pos.append(st.position if st.position is not None else a_inputs.shape[1] - 1)
            steps_concept.append(index[st.concept])
            steps_has.append(states is not None)
            steps_state.append(states[j] if states is not None else np.zeros(d_t, np.float32))
    return PacketView(
        concept_ids=ids,
        concept_kinds=[c.kind for c in body.concepts],
        embeddings=emb.astype(np.float32),
        anchor_ids=[a.id for a in anchors],
        anchor_inputs=a_inputs,
        anchor_positions=np.array([a.position for a in anchors], dtype=np.int64),
        anchor_states=a_states.astype(np.float32),
        anchor_concept=a_concept,
        membership=membership.astype(np.float32),
        direct=direct,
        edge_source=np.array([index[e.source] for e in edges], dtype=np.int64),
        edge_target=np.array([index[e.target] for e in edges], dtype=np.int64),
        edge_relation=[e.relation for e in edges],
        edge_weight=np.array([e.weight for e in edges], dtype=np.float32),
        trace_ids=[t.id for t in body.traces],
        trace_inputs=t_inputs.reshape(len(body.traces), -1),
        trace_answers=np.array([t.answer for t in body.traces], dtype=np.int64),
        step_trace=np.array(steps_trace, dtype=np.int64),
        step_position=np.array(steps_pos, dtype=np.int64),
        step_concept=np.array(steps_concept, dtype=np.int64),
        step_states=np.array(steps_state, dtype=np.float32).reshape(-1, d_t),
        step_has_state=np.array(steps_has, dtype=bool),
        seq_len=int(a_inputs.shape[1]),
    )


def _descendants(c: int, children: Mapping[int, list[int]]) -> list[int]:
    """Every concept below ``c`` along the hierarchy edges (each once, cycles tolerated)."""
    seen: set[int] = set()
    stack = list(children.get(c, ()))
    while stack:
        k = stack.pop()
        if k in seen or k == c:
            continue
        seen.add(k)
        stack.extend(children.get(k, ()))
    return sorted(seen)


# =========================================================================== trust and policy


class IngestRefusedError(IngestError):
    """The packet failed verification and the caller did not opt out (``INGEST_REFUSED``).

    Attributes:
        verification: the trust section of the report (signers, error codes).
        report: the ingestion report with decision ``refused`` (nothing was ingested).
    """

    def __init__(self, message: str, verification: dict[str, Any]) -> None:
        super().__init__("INGEST_REFUSED", message)
        self.verification = verification
        self.report: dict[str, Any] | None = None


def check_trust(
    packet: Packet,
    trust: TrustStore | None,
    config: IngestConfig,
    *,
    allow_unverified: bool = False,
    now: int | None = None,
) -> dict[str, Any]:
    """The trust gate: verify tensor digests and signatures; refuse unless verified or opted out.

    The signature policy is the stricter of the packet's ``safety`` and the config: a signature
    is required when either requires one; k is the larger ``min_signers``. Tensor data that
    does not match its digests is refused even with ``allow_unverified`` (that is corruption,
    not a trust question).

    Returns:
        the report's ``trust`` section.

    Raises:
        IngestRefusedError: ``INGEST_REFUSED``.
    """
    from m2kt_ref.signing import verify_packet

    safety = packet.body.safety
    required = bool(safety.require_signature or config.require_signature)
    k = max(int(config.min_signers), int(safety.min_signers))
    result = verify_packet(
        packet, trust if trust is not None else TrustStore(), min_signers=k, now=now
    )
    integrity = [e for e in result.errors if isinstance(e, TensorError)]
    info: dict[str, Any] = {
        "verified": result.valid,
        "signature_required": required,
        "allow_unverified": bool(allow_unverified),
        "min_signers": result.required,
        "counted_signers": result.counted,
        "trusted_keys": 0 if trust is None else len(trust),
        "signers": [{"kid": s.kid, "name": s.name, "counted": s.counted} for s in result.signers],
        "errors": [e.to_dict() for e in result.errors],
    }
    if integrity:
        first = integrity[0]
        raise IngestRefusedError(
            f"packet {result.packet_id} is corrupt: {first.code}: {first}", info
        )
    if not result.valid and required and not allow_unverified:
        problem = result.errors[0]
        raise IngestRefusedError(
            f"packet {result.packet_id} is not verified ({problem.code}: {problem}); pass trusted "
            "keys, or opt out explicitly (allow_unverified, --allow-unverified)",
            info,
        )
    return info


def effective_policy(packet: Packet, config: IngestConfig) -> dict[str, Any]:
    """The safety bounds that apply: per bound, the smaller of the packet's and the config's
    (either may be absent; both absent gives :data:`DEFAULT_BOUNDS`), with where it came from.

    With ``config.ignore_packet_policy`` (an explicit, recorded research override) only the
    config's bounds apply, and a bound the config leaves at None is no bound at all (``value``
    None, ``source`` ``none``).
    """
    safety = packet.body.safety
    ignore = bool(config.ignore_packet_policy)
    out: dict[str, Any] = {
        "protected_concepts": list(safety.protected_concepts or []),
        "packet_policy_ignored": ignore,
    }
    for name, default in DEFAULT_BOUNDS.items():
        from_packet = None if ignore else getattr(safety, name)
        from_config = getattr(config, name)
        candidates = [
            (v, s) for v, s in ((from_packet, "packet"), (from_config, "config")) if v is not None
        ]
        if candidates:
            value, source = min(candidates, key=lambda vs: vs[0])
            out[name] = {"value": float(value), "source": source}
        elif ignore:
            out[name] = {"value": None, "source": "none"}
        else:
            out[name] = {"value": float(default), "source": "default"}
    return out


# =========================================================================== model helpers


def student_layer(model: nn.Module, config: IngestConfig) -> str:
    """The student layer read as its latent space: ``config.student_layer`` or, for an m2kt net,
    its last block / hidden layer (the counterpart of the teacher's default layer).

    Raises:
        UsageError: ``USAGE`` when neither is available or the name does not resolve.
    """
    name = config.student_layer
    if name is None:
        from m2kt_ref.nets import NetConfig, layer_names

        cfg = getattr(model, "config", None)
        if not isinstance(cfg, NetConfig):
            raise UsageError(
                "USAGE", "student_layer is required for a model that is not an m2kt net"
            )
        name = layer_names(cfg)[-2]
    try:
        model.get_submodule(name)
    except AttributeError:
        raise UsageError("USAGE", f"student layer {name!r} does not exist") from None
    return name


def _first_tensor(output: Any) -> torch.Tensor:
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise UsageError("USAGE", f"the student layer returned {type(output).__name__}")
    return output


class _Capture:
    """Keeps the last output of one submodule (with its graph, for training)."""

    def __init__(self, module: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, _i: Any, output: Any) -> None:
        self.out = _first_tensor(output)

    def close(self) -> None:
        self._handle.remove()


def _at(states: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """States ``[k, d]`` of rows ``rows`` at ``positions`` (a ``[N, d]`` layer ignores them)."""
    if states.ndim == 2:
        return states[rows]
    if states.ndim != 3:
        raise UsageError("USAGE", f"the student layer outputs shape {list(states.shape)}")
    return states[rows, positions]


@dataclass
class _Readout:
    anchors: torch.Tensor  # [n_a, d_S]
    steps: torch.Tensor  # [s, d_S]
    trace_logits: torch.Tensor  # [n_t, C]
    protected_logits: torch.Tensor  # [n_p, C]


def _read_all(
    model: nn.Module,
    cap: _Capture,
    view: PacketView,
    protected: torch.Tensor,
    device: torch.device,
    autocast: bool,
) -> _Readout:
    """No-gradient pass over every anchor, trace and protected row (CPU float32 results)."""
    parts = [torch.from_numpy(view.anchor_inputs)]
    if len(view.trace_inputs):
        parts.append(torch.from_numpy(view.trace_inputs))
    parts.append(protected.cpu())
    rows = torch.cat(parts)
    states_out, logits_out = [], []
    with torch.no_grad():
        for i in range(0, len(rows), _READ_BATCH):
            x = rows[i : i + _READ_BATCH].to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = _first_tensor(model(x))
            assert cap.out is not None
            states_out.append(cap.out.float().cpu())
            logits_out.append(logits.float().cpu())
    states = torch.cat(states_out)
    logits = torch.cat(logits_out)
    n_a, n_t = len(view.anchor_inputs), len(view.trace_inputs)
    a_rows = torch.arange(n_a)
    anchors = _at(states[:n_a], a_rows, torch.from_numpy(view.anchor_positions))
    t_states = states[n_a : n_a + n_t]
    steps = (
        _at(t_states, torch.from_numpy(view.step_trace), torch.from_numpy(view.step_position))
        if len(view.step_trace)
        else anchors.new_zeros((0, anchors.shape[1]))
    )
    return _Readout(anchors, steps, logits[n_a : n_a + n_t], logits[n_a + n_t :])


# =========================================================================== result


@dataclass
class IngestResult:
    """What :func:`ingest` returns.

    Attributes:
        model: the student (the same object that was passed in, trained in place; restored to
            its pre-ingestion weights when the decision is ``rolled_back``).
        report: the ingestion report (JSON-able; ``schemas/ingestion-report.schema.json``).
        alignment: the fitted alignment map (teacher -> student space).
        history: one entry per ``eval_every`` steps: ``step``, ``wall_s``, ``loss`` and each
            term, ``drift`` (for steps-to-accuracy curves).
    """

    model: nn.Module
    report: dict[str, Any]
    alignment: AlignmentMap
    history: list[dict[str, Any]]

    @property
    def decision(self) -> str:
        return str(self.report["decision"])

    @property
    def accepted(self) -> bool:
        return self.decision == "accepted"

    def raise_for_decision(self) -> None:
        """Raise ``INGEST_ROLLED_BACK`` when a safety check failed and the student was restored
        (a ``kept_unsafe`` result was kept on purpose and does not raise)."""
        if self.decision == "rolled_back":
            reasons = "; ".join(self.report.get("reasons", [])) or "a safety check failed"
            raise IngestError("INGEST_ROLLED_BACK", f"ingestion rolled back: {reasons}")


#: ``callback(step, info) -> stop?``: ``info`` holds the history entry and the model.
Callback = Callable[[int, dict[str, Any]], Any]


# =========================================================================== ingestion


def _as_protected(protected: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if protected is None:
        return np.zeros((0, 0), np.int64), None
    inputs = getattr(protected, "inputs", None)
    if inputs is not None:
        targets = getattr(protected, "targets", None)
        return np.asarray(inputs, dtype=np.int64), (
            None if targets is None else np.asarray(targets, dtype=np.int64)
        )
    if isinstance(protected, tuple) and len(protected) == 2:
        return np.asarray(protected[0], dtype=np.int64), np.asarray(protected[1], np.int64)
    return np.asarray(protected, dtype=np.int64), None


def _check_compatible(view: PacketView, packet: Packet, task: Any, model: nn.Module) -> None:
    prov = packet.body.provenance.task
    vocab = None
    if task is not None:
        if prov.name != task.name or dict(prov.options) != dict(task.option_dict()):
            raise IngestError(
                "INGEST_INCOMPATIBLE",
                f"the packet is about task {prov.name} {dict(prov.options)}, the student's task "
                f"is {task.name} {task.option_dict()}",
            )
        vocab = task.vocab_size
        if view.seq_len != task.seq_len:
            raise IngestError(
                "INGEST_INCOMPATIBLE",
                f"packet rows have length {view.seq_len}, the task's {task.seq_len}",
            )
        if len(view.trace_answers) and int(view.trace_answers.max()) >= task.n_classes:
            raise IngestError("INGEST_INCOMPATIBLE", "a trace answer is not a class of the task")
    cfg = getattr(model, "config", None)
    vocab = vocab or getattr(cfg, "vocab_size", None)
    if vocab is not None:
        top = max(
            int(view.anchor_inputs.max()),
            int(view.trace_inputs.max()) if view.trace_inputs.size else 0,
        )
        if top >= vocab:
            raise IngestError(
                "INGEST_INCOMPATIBLE", f"token {top} is outside the student's vocabulary ({vocab})"
            )
    seq = getattr(cfg, "seq_len", None)
    if seq is not None and seq != view.seq_len:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"packet rows have length {view.seq_len}, the student's {seq}"
        )


def _split_anchors(n: int, config: IngestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of anchor rows into (fit, held out)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, 0xA11C])))
    perm = rng.permutation(n)
    n_hold = 0
    if config.holdout_fraction > 0:
        n_hold = max(config.min_holdout, round(n * config.holdout_fraction))
        if n - n_hold < 2:
            n_hold = 0
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _linked_matrix(n: int, src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
    linked = torch.zeros((n, n), dtype=torch.bool)
    if len(src):
        s, d = torch.from_numpy(src), torch.from_numpy(dst)
        linked[s, d] = True
        linked[d, s] = True
    return linked


def _ancestors(n: int, child: np.ndarray, parent: np.ndarray) -> torch.Tensor:
    """``anc[c, a]``: ``a`` is ``c`` or an ancestor of ``c`` along the hierarchy edges."""
    anc = torch.eye(n, dtype=torch.bool)
    if len(child):
        step = torch.zeros((n, n), dtype=torch.bool)
        step[torch.from_numpy(child), torch.from_numpy(parent)] = True
        for _ in range(n):
            grown = anc | ((anc.float() @ step.float()) > 0)
            if torch.equal(grown, anc):
                break
            anc = grown
    return anc


def _now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _packet_summary(packet: Packet) -> dict[str, Any]:
    body = packet.body
    t = body.teacher
    return {
        "id": packet.packet_id,
        "title": body.header.title,
        "created": body.header.created,
        "task": {"name": body.provenance.task.name, "options": dict(body.provenance.task.options)},
        "teacher": {
            "name": t.name,
            "architecture": t.architecture,
            "latent_dim": t.latent_dim,
            "layer": t.layer,
            "model_digest": t.model_digest,
        },
        "counts": {
            "concepts": len(body.concepts),
            "edges": len(body.graph.edges),
            "traces": len(body.traces),
            "anchors": len(body.anchors),
            "steps": sum(len(t.steps) for t in body.traces),
        },
        "provenance": {
            "task_inputs_used": body.provenance.task_inputs_used,
            "concept_probes_used": body.provenance.concept_probes_used,
        },
        "signed": packet.signatures is not None,
    }


def _environment(device: torch.device, bf16: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": device.type,
        "name": str(device),
        "threads": torch.get_num_threads(),
        "bf16": bool(bf16),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "m2kt": __version__,
    }
    if device.type == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name(device)
    return out


def ingest(
    packet: Packet,
    student_model: nn.Module,
    task: Any = None,
    config: IngestConfig | None = None,
    *,
    trust: TrustStore | None = None,
    allow_unverified: bool = False,
    progress: bool = False,
    protected: Any = None,
    callback: Callback | None = None,
    now: int | None = None,
) -> IngestResult:
    """Ingest ``packet`` into ``student_model`` (spec/algorithms.md §3) and verify it (§4).

    Args:
        packet: a decoded packet (``codec.decode`` / ``codec.read_packet``).
        student_model: any module mapping ``int64 [B, L]`` token rows to logits ``[B, C]``;
            trained in place (moved to ``config.device``).
        task: the student's :class:`~m2kt_ref.tasks.Task`; checked against the packet's
            ``provenance.task``, used to classify the rows that reach the student (data
            accounting) and to draw ``config.protect_task_problems``. May be None for a model
            without a task; then trace rows count as task inputs.
        config: an :class:`IngestConfig` (defaults when None).
        trust: the trusted keys; None trusts nobody.
        allow_unverified: ingest a packet that fails signature verification (recorded).
        progress: show a tqdm bar on stderr.
        protected: a capability the student must keep: an object with ``inputs`` ``[N, L]`` and
            ``targets`` ``[N]`` (a task ``ProblemSet``), a pair ``(inputs, targets)``, or inputs
            alone (output divergence only).
        callback: called every ``eval_every`` steps as ``callback(step, info)``; ``info`` is the
            history entry plus ``"model"``; a truthy return stops training (``stop_reason``
            ``callback``), e.g. once a target accuracy is reached.
        now: verification time (Unix seconds) for key validity windows; the clock when None.

    Returns:
        an :class:`IngestResult`; ``report["decision"]`` is ``accepted``, ``rolled_back`` or
        ``kept_unsafe`` (with ``config.rollback=False``).

    Raises:
        IngestRefusedError: ``INGEST_REFUSED`` (trust gate); ``exc.report`` is the report.
        IngestError: ``INGEST_INCOMPATIBLE`` when the packet does not fit the student.
        UsageError: ``USAGE`` for a bad config, layer or device (e.g. bf16 without CUDA).
    """
    from m2kt_ref.generate import state_dict_digest
    from m2kt_ref.training import resolve_device

    cfg = config or IngestConfig()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    clock = t_start

    def lap(name: str) -> None:
        nonlocal clock
        t = time.perf_counter()
        timings[name] = round(t - clock, 4)
        clock = t

    device = resolve_device(cfg.device)
    if cfg.bf16 and device.type != "cuda":
        raise UsageError("USAGE", "bf16 autocast needs a CUDA device (device=cuda)")
    layer = student_layer(student_model, cfg)
    student_model.to(device)
    digest_before = state_dict_digest(student_model)
    policy = effective_policy(packet, cfg)
    base_report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created": _now_text(),
        "packet": None,
        "student": {
            "architecture": _architecture(student_model),
            "layer": layer,
            "n_parameters": sum(p.numel() for p in student_model.parameters()),
            "digest_method": "sha256 of the state dict serialised as safetensors with metadata "
            '{"format": "pt"} (equals the sha256 of model.safetensors written by m2kt)',
            "digest_before": digest_before,
            "digest_after": digest_before,
        },
        "config": cfg.to_dict(),
        "policy": policy,
        "device": _environment(device, cfg.bf16),
    }

    # 1. trust gate -------------------------------------------------------------------------
    base_report["packet"] = _packet_summary(packet)
    try:
        trust_info = check_trust(packet, trust, cfg, allow_unverified=allow_unverified, now=now)
    except IngestRefusedError as exc:
        lap("trust")
        timings["total"] = round(time.perf_counter() - t_start, 4)
        exc.report = json_safe(
            {
                **base_report,
                "trust": exc.verification,
                "decision": "refused",
                "reasons": [exc.message],
                "timings": timings,
            }
        )
        raise
    lap("trust")
    view = packet_view(packet)
    _check_compatible(view, packet, task, student_model)

    # 2. snapshot, protected set ------------------------------------------------------------
    params: list[torch.Tensor] = [p for p in student_model.parameters() if p.requires_grad]
    if not params:
        raise UsageError("USAGE", "the student has no trainable parameters")
    state0 = {k: v.detach().clone() for k, v in student_model.state_dict().items()}
    theta0 = [p.detach().clone() for p in params]
    theta0_norm_sq = torch.stack([(p.double() ** 2).sum() for p in theta0]).sum().float()
    protected_inputs, protected_targets = _as_protected(protected)
    if protected_inputs.size and protected_inputs.shape[1] != view.seq_len:
        raise UsageError("USAGE", "protected inputs have another row length than the packet")
    if cfg.protect_task_problems > 0:
        if task is None:
            raise UsageError("USAGE", "protect_task_problems needs the student's task")
        ps = task.problems()
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0x9A0D])))
        pick = np.sort(rng.permutation(len(ps))[: cfg.protect_task_problems])
        extra_x, extra_y = ps.inputs[pick], ps.targets[pick]
        if protected_inputs.size:
            protected_targets = (
                np.concatenate([protected_targets, extra_y])
                if protected_targets is not None
                else None
            )
            protected_inputs = np.concatenate([protected_inputs, extra_x])
        else:
            protected_inputs, protected_targets = extra_x, extra_y
    n_caller = len(protected_inputs)
    protected_ids = set(policy["protected_concepts"])
    index = {cid: i for i, cid in enumerate(view.concept_ids)}
    prot_cols = sorted(
        {
            int(j)
            for cid in protected_ids
            if cid in index
            for j in np.flatnonzero(view.membership[index[cid]])
        }
    )
    anchor_prot = view.anchor_inputs[prot_cols] if prot_cols else np.zeros((0, view.seq_len))
    kl_inputs = np.concatenate(
        [protected_inputs.reshape(-1, view.seq_len), anchor_prot.reshape(-1, view.seq_len)]
    ).astype(np.int64)
    kl_x = torch.from_numpy(kl_inputs)
    cap_y = torch.from_numpy(protected_targets) if protected_targets is not None else None

    ledger = RowRecorder([student_model])
    cap = _Capture(student_model.get_submodule(layer))
    was_training = student_model.training
    autocast = bool(cfg.bf16)
    try:
        student_model.eval()
        before = _read_all(student_model, cap, view, kl_x, device, autocast)
        logits0 = before.protected_logits
        lap("snapshot")

        # 3. alignment ----------------------------------------------------------------------
        fit_rows, hold_rows = _split_anchors(len(view.anchor_ids), cfg)
        x_all = torch.from_numpy(view.anchor_states).double()
        y_all = before.anchors.double()
        options = dict(cfg.align_options)
        if cfg.align_method == "mlp":
            options.setdefault("seed", cfg.seed)
        cal = fit_alignment(cfg.align_method, x_all[fit_rows], y_all[fit_rows], **options)
        e_all = torch.from_numpy(view.embeddings).double()
        y_hat = cal(e_all).float()  # [n_c, d_S]
        step_targets = cal(torch.from_numpy(view.step_states).double()).float()
        anchor_mapped = cal(x_all).float()
        alignment = {
            "method": cfg.align_method,
            "options": options,
            "teacher_dim": int(view.embeddings.shape[1]),
            "student_dim": int(y_all.shape[1]),
            "n_fit": len(fit_rows),
            "n_heldout": len(hold_rows),
            "fit_info": dict(cal.fit_info),
            "fit": evaluate_alignment(cal, x_all[fit_rows], y_all[fit_rows], k=cfg.csls_k),
            "heldout_before": _heldout_metrics(cal, x_all, y_all, hold_rows, cfg),
        }
        lap("align")

        # static structures for the loss and the metrics ------------------------------------
        rep = np.flatnonzero(view.represented)
        verify_static = _VerifyStatic.build(
            view, rep, y_hat, hold_rows, anchor_mapped, step_targets, cfg
        )
        metrics_before = verify_static.measure(before, y_hat, step_targets, view, cfg)
        lap("verify_before")

        # 4. composite loss ----------------------------------------------------------------
        loop = _TrainLoop(
            student_model,
            cap,
            view,
            rep,
            y_hat,
            step_targets,
            kl_x,
            logits0,
            params,
            theta0,
            theta0_norm_sq,
            policy,
            device,
            cfg,
        )
        training = loop.run(progress=progress, callback=callback, ledger=ledger)
        lap("train")

        # 5. verification ----------------------------------------------------------------
        student_model.eval()
        after = _read_all(student_model, cap, view, kl_x, device, autocast)
        metrics_after = verify_static.measure(after, y_hat, step_targets, view, cfg)
        alignment["heldout_after"] = _heldout_metrics(
            cal, x_all, after.anchors.double(), hold_rows, cfg
        )
        drift = V.relative_drift(params, theta0)
        divergence = V.mean_kl(logits0, after.protected_logits)
        cap_before = cap_after = None
        if cap_y is not None and n_caller:
            cap_before = V.accuracy(logits0[:n_caller], cap_y)
            cap_after = V.accuracy(after.protected_logits[:n_caller], cap_y)
        checks = _safety_checks(policy, drift, divergence, cap_before, cap_after, training)
        failed = [c for c in checks if not c["passed"]]
        if failed and cfg.rollback:
            student_model.load_state_dict(state0)
            decision = "rolled_back"
        elif failed:
            decision = "kept_unsafe"
        else:
            decision = "accepted"
        lap("verify_after")
    except BaseException:
        # an error (or an interrupt) midway must not leave a half-ingested student behind
        student_model.load_state_dict(state0)
        raise
    finally:
        cap.close()
        ledger.close()
        student_model.train(was_training)
    digest_after = state_dict_digest(student_model)
    data = _data_accounting(ledger.rows, ledger.rows_total, view, task, protected_inputs, kl_x)
    timings["total"] = round(time.perf_counter() - t_start, 4)
    reasons = [c["message"] for c in failed]
    report = {
        **base_report,
        "student": {
            **base_report["student"],
            "latent_dim": int(y_all.shape[1]),
            "digest_after": digest_after,
        },
        "trust": trust_info,
        "alignment": alignment,
        "training": dict(training),
        "verification": {
            "teacher": verify_static.teacher_reference,
            "before": metrics_before,
            "after": metrics_after,
        },
        "safety": {
            "parameter_drift": drift,
            "output_divergence": divergence,
            "protected_rows": len(kl_inputs),
            "protected_concept_anchors": len(prot_cols),
            "capability_rows": int(n_caller) if cap_y is not None else 0,
            "capability_before": cap_before,
            "capability_after": cap_after,
            "capability_drop": None
            if cap_before is None or cap_after is None
            else cap_before - cap_after,
            "checks": checks,
        },
        "data": data,
        "decision": decision,
        "reasons": reasons,
        "timings": timings,
    }
    report = json_safe(report)
    return IngestResult(student_model, report, cal, list(training["history"]))


def _architecture(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    to_dict = getattr(cfg, "to_dict", None)
    out: dict[str, Any] = {"class": type(model).__name__}
    if callable(to_dict):
        out["net"] = to_dict()
    return out


def _heldout_metrics(
    cal: AlignmentMap,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    hold_rows: np.ndarray,
    cfg: IngestConfig,
) -> dict[str, Any] | None:
    if len(hold_rows) < 2:
        return None
    return evaluate_alignment(cal, x_all[hold_rows], y_all[hold_rows], k=cfg.csls_k)


def _safety_checks(
    policy: Mapping[str, Any],
    drift: float,
    divergence: float | None,
    cap_before: float | None,
    cap_after: float | None,
    training: Mapping[str, Any],
) -> list[dict[str, Any]]:
    def check(name: str, value: float | None, bound: str) -> dict[str, Any]:
        raw = policy[bound]["value"]
        if raw is None:
            return {
                "name": name,
                "value": value,
                "limit": None,
                "passed": True,
                "measured": value is not None,
                "message": f"{name} has no bound (packet policy ignored by the caller)",
            }
        limit = float(raw)
        if value is None:
            return {
                "name": name,
                "value": None,
                "limit": limit,
                "passed": True,
                "measured": False,
                "message": f"{name} not measured (no protected rows)",
            }
        ok = math.isfinite(value) and value <= limit + _BOUNDS_TOL
        return {
            "name": name,
            "value": value,
            "limit": limit,
            "passed": bool(ok),
            "measured": True,
            "message": f"{name} {value:.4g} {'<=' if ok else '>'} {limit:.4g}",
        }

    drop = None if cap_before is None or cap_after is None else cap_before - cap_after
    out = [
        check("parameter_drift", drift, "max_parameter_drift"),
        check("output_divergence", divergence, "max_output_divergence"),
        check("capability_drop", drop, "max_capability_drop"),
    ]
    finite = bool(training.get("finite", True))
    out.append(
        {
            "name": "finite_loss",
            "value": None,
            "limit": None,
            "passed": finite,
            "measured": True,
            "message": "the loss stayed finite" if finite else "the loss became NaN or infinite",
        }
    )
    return out


def _data_accounting(
    rows: set[bytes],
    rows_total: int,
    view: PacketView,
    task: Any,
    protected_inputs: np.ndarray,
    kl_x: torch.Tensor,
) -> dict[str, Any]:
    """Classify the distinct rows the forward pre-hook saw (spec/algorithms.md §3.8, §5)."""

    def keys(a: np.ndarray) -> set[bytes]:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.int64))
        return {r.tobytes() for r in a.reshape(len(a), -1)} if a.size else set()

    trace_keys = keys(view.trace_inputs)
    protected_keys = keys(protected_inputs)
    if task is not None:
        task_rows = task.problems().row_keys()
        probe_rows = keys(view.anchor_inputs)
        for spec in task.concepts():
            probe_rows |= keys(spec.probe_arrays()[0])
    else:
        task_rows = trace_keys | protected_keys
        probe_rows = keys(view.anchor_inputs)
    used_task = rows & task_rows
    return {
        "method": "forward pre-hook on the student recording every distinct input row "
        "(trust gate to verification)",
        "task_inputs_used": len(used_task),
        "concept_probes_used": len((rows & probe_rows) - task_rows),
        "other_inputs_used": len(rows - task_rows - probe_rows),
        "task_inputs_by_role": {
            "traces": len(used_task & trace_keys),
            "protected": len((used_task & protected_keys) - trace_keys),
        },
        "rows_total": int(rows_total),
        "distinct_rows": len(rows),
        "task_known": task is not None,
    }


# =========================================================================== verification


@dataclass
class _VerifyStatic:
    """What the before/after measurements share: index sets, sampled negatives, references."""

    rep: torch.Tensor  # represented concept rows
    direct: torch.Tensor  # concept rows with their own anchors
    membership: torch.Tensor  # [n_rep, n_a]
    edge_src: torch.Tensor  # local (rep) indices
    edge_dst: torch.Tensor
    edge_rel: list[str]
    negatives: torch.Tensor
    hold_rows: np.ndarray
    hold_truth: torch.Tensor  # index into direct of each held-out anchor's concept
    hold_queries: torch.Tensor  # CAL(teacher state) of held-out anchors with a concept
    teacher_reference: dict[str, Any]

    @classmethod
    def build(
        cls,
        view: PacketView,
        rep: np.ndarray,
        y_hat: torch.Tensor,
        hold_rows: np.ndarray,
        anchor_mapped: torch.Tensor,
        step_targets: torch.Tensor,
        cfg: IngestConfig,
    ) -> _VerifyStatic:
        local = -np.ones(len(view.concept_ids), dtype=np.int64)
        local[rep] = np.arange(len(rep))
        keep = (local[view.edge_source] >= 0) & (local[view.edge_target] >= 0)
        src = torch.from_numpy(local[view.edge_source[keep]])
        dst = torch.from_numpy(local[view.edge_target[keep]])
        rel = [r for r, k in zip(view.edge_relation, keep, strict=True) if k]
        linked = _linked_matrix(len(rep), src.numpy(), dst.numpy())
        gen = torch.Generator().manual_seed(cfg.seed + 0x5EED)
        negatives = V.sample_non_edges(src, dst, linked, cfg.relation_negatives, gen)
        direct = np.flatnonzero(view.direct)
        direct_pos = -np.ones(len(view.concept_ids), dtype=np.int64)
        direct_pos[direct] = np.arange(len(direct))
        hold_with = [j for j in hold_rows if view.anchor_concept[j] >= 0]
        truth = torch.from_numpy(direct_pos[view.anchor_concept[hold_with]])
        emb_rep = torch.from_numpy(view.embeddings[rep])
        has = torch.from_numpy(view.step_has_state)
        steps = torch.from_numpy(view.step_concept)[has]
        cand = torch.from_numpy(direct)
        teacher = {
            # the teacher's own graph under the same metric: the ceiling for the student
            "relations": V.relation_agreement(emb_rep, src, dst, rel, negatives, center=cfg.center),
            # the packet's step concepts recomputed from its step states (1.0 for a packet
            # written by the reference generator) and after mapping both sides with the CAL:
            # what a student reproducing the mapped states exactly would score
            "trace_steps": V.trace_agreement(
                torch.from_numpy(view.step_states)[has],
                steps,
                torch.from_numpy(view.embeddings),
                cand,
            )["agreement"],
            "trace_steps_mapped": V.trace_agreement(step_targets[has], steps, y_hat, cand)[
                "agreement"
            ],
        }
        out = cls(
            rep=torch.from_numpy(rep),
            direct=torch.from_numpy(direct),
            membership=torch.from_numpy(view.membership[rep]),
            edge_src=src,
            edge_dst=dst,
            edge_rel=rel,
            negatives=negatives,
            hold_rows=hold_rows,
            hold_truth=truth,
            hold_queries=anchor_mapped[hold_with] if hold_with else anchor_mapped[:0],
            teacher_reference=teacher,
        )
        return out

    def measure(
        self,
        read: _Readout,
        y_hat: torch.Tensor,
        step_targets: torch.Tensor,
        view: PacketView,
        cfg: IngestConfig,
    ) -> dict[str, Any]:
        z = self.membership @ read.anchors  # [n_rep, d_S]
        z_direct = torch.from_numpy(view.membership[self.direct.numpy()]) @ read.anchors
        y_rep = y_hat[self.rep]
        concept = V.concept_retrieval(y_rep, z, torch.arange(len(self.rep)), k=cfg.csls_k)
        heldout = V.concept_retrieval(self.hold_queries, z_direct, self.hold_truth, k=cfg.csls_k)
        steps = torch.from_numpy(view.step_concept)
        trace = V.trace_agreement(read.steps, steps, y_hat, self.direct)
        answers = torch.from_numpy(view.trace_answers)
        return {
            "concept_retrieval": concept,
            "heldout_concept_retrieval": heldout,
            "relations": V.relation_agreement(
                z, self.edge_src, self.edge_dst, self.edge_rel, self.negatives, center=cfg.center
            ),
            "traces": {
                "steps": trace["steps"],
                "step_agreement": trace["agreement"],
                "answers": len(answers),
                "answer_agreement": V.answer_agreement(read.trace_logits, answers),
                "state_cosine": _mean_cos(read.steps, step_targets, view.step_has_state),
            },
        }


def _mean_cos(a: torch.Tensor, b: torch.Tensor, mask: np.ndarray) -> float | None:
    m = torch.from_numpy(mask)
    if not bool(m.any()):
        return None
    return float(torch.nn.functional.cosine_similarity(a[m].double(), b[m].double(), dim=1).mean())


# =========================================================================== training loop


class _TrainLoop:
    """The optimisation of spec/algorithms.md §3.6–§3.7 (bookkeeping stays in :func:`ingest`)."""

    def __init__(
        self,
        model: nn.Module,
        cap: _Capture,
        view: PacketView,
        rep: np.ndarray,
        y_hat: torch.Tensor,
        step_targets: torch.Tensor,
        kl_x: torch.Tensor,
        logits0: torch.Tensor,
        params: list[torch.Tensor],
        theta0: list[torch.Tensor],
        theta0_norm_sq: torch.Tensor,
        policy: Mapping[str, Any],
        device: torch.device,
        cfg: IngestConfig,
    ) -> None:
        self.model, self.cap, self.cfg, self.device = model, cap, cfg, device
        self.params, self.theta0 = params, theta0
        self.theta0_norm_sq = theta0_norm_sq.to(device)
        self.theta0_norm = float(theta0_norm_sq) ** 0.5
        bound = policy["max_parameter_drift"]["value"]
        # no bound (packet policy ignored, none configured): nothing to project into
        self.ball = math.inf if bound is None else cfg.drift_ball * float(bound)
        dev = device
        self.n_rep = len(rep)
        self.anchor_x = torch.from_numpy(view.anchor_inputs).to(dev)
        self.anchor_pos = torch.from_numpy(view.anchor_positions).to(dev)
        self.member = torch.from_numpy(view.membership[rep]).to(dev)  # [n_rep, n_a]
        self.e = torch.from_numpy(view.embeddings[rep]).to(dev)
        self.y_hat = y_hat[torch.from_numpy(rep)].to(dev)
        t = self.y_hat
        self.target_scale = (
            ((t - t.mean(0, keepdim=True)) ** 2).sum(1).mean() if len(t) > 1 else (t * t).sum()
        ).clamp_min(1e-12)
        local = -np.ones(len(view.concept_ids), dtype=np.int64)
        local[rep] = np.arange(len(rep))
        keep = (local[view.edge_source] >= 0) & (local[view.edge_target] >= 0)
        src, dst = local[view.edge_source[keep]], local[view.edge_target[keep]]
        rels = [r for r, k in zip(view.edge_relation, keep, strict=True) if k]
        self.edge_src = torch.from_numpy(src).to(dev)
        self.edge_dst = torch.from_numpy(dst).to(dev)
        self.edge_w = torch.from_numpy(view.edge_weight[keep]).to(dev)
        hier = np.array([r in cfg.hierarchy_relations for r in rels], dtype=bool)
        self.h_child = torch.from_numpy(src[hier]).to(dev)
        self.h_parent = torch.from_numpy(dst[hier]).to(dev)
        self.ancestors = _ancestors(len(rep), src[hier], dst[hier]).to(dev)
        self.linked = _linked_matrix(len(rep), src, dst)
        self.linked.fill_diagonal_(True)
        self.linked = self.linked.to(dev)
        self.trace_x = torch.from_numpy(view.trace_inputs).to(dev)
        self.trace_y = torch.from_numpy(view.trace_answers).to(dev)
        self.step_trace = torch.from_numpy(view.step_trace).to(dev)
        self.step_pos = torch.from_numpy(view.step_position).to(dev)
        self.step_has = torch.from_numpy(view.step_has_state).to(dev)
        self.step_targets = step_targets.to(dev)
        self.kl_x = kl_x.to(dev)
        self.logits0 = logits0.to(dev)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.use_geo = cfg.use_concepts and cfg.lambda_geo > 0 and self.n_rep > 0
        self.use_struct = cfg.use_graph and cfg.lambda_struct > 0 and self.n_rep > 1
        self.use_reason = cfg.use_traces and cfg.lambda_reason > 0 and len(view.trace_ids) > 0
        self.use_kl = cfg.lambda_safe > 0 and cfg.safe_kl > 0 and len(kl_x) > 0
        self.use_drift = cfg.lambda_safe > 0 and cfg.safe_drift > 0
        # the full-batch case, computed once
        self.full_cols = torch.nonzero(self.member.sum(0) > 0).flatten()
        self.full_member = self.member[:, self.full_cols]

    # -- sampling -----------------------------------------------------------------------------
    def _subset(self, n: int, size: int | None) -> torch.Tensor | None:
        """None (all rows) or a sorted random subset of ``size`` rows."""
        if size is None or n <= size:
            return None
        return torch.randperm(n, generator=self.gen)[:size].sort().values

    def _sample_negatives(self, child: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One random non-ancestor per triplet; returns (negatives, valid mask)."""
        r = torch.randint(0, n, (len(child),), generator=self.gen).to(self.device)
        valid = ~self.anc_local[child, r]
        return r, valid

    def _sample_unrelated(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.unrelated_pairs
        a = torch.randint(0, n, (k,), generator=self.gen).to(self.device)
        b = torch.randint(0, n, (k,), generator=self.gen).to(self.device)
        valid = ~self.linked_local[a, b]
        return a[valid], b[valid]

    # -- one step -----------------------------------------------------------------------------
    def _loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        dev = self.device
        parts_x: list[torch.Tensor] = []
        concept_idx = self._subset(self.n_rep, cfg.batch_concepts)
        need_concepts = self.use_geo or self.use_struct
        cols = None
        if need_concepts:
            if concept_idx is None:
                member, cols = self.full_member, self.full_cols
            else:
                member = self.member[concept_idx.to(dev)]
                cols = torch.nonzero(member.sum(0) > 0).flatten()
                member = member[:, cols]
            parts_x.append(self.anchor_x[cols])
        trace_idx = None
        if self.use_reason:
            trace_idx = self._subset(len(self.trace_x), cfg.batch_traces)
            parts_x.append(self.trace_x if trace_idx is None else self.trace_x[trace_idx.to(dev)])
        prot_idx = None
        if self.use_kl:
            prot_idx = self._subset(len(self.kl_x), cfg.batch_protected)
            parts_x.append(self.kl_x if prot_idx is None else self.kl_x[prot_idx.to(dev)])
        terms: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=dev)
        if parts_x:
            x = torch.cat(parts_x)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = _first_tensor(self.model(x))
            assert self.cap.out is not None
            states = self.cap.out.float()
            logits = logits.float()
            offset = 0
            if need_concepts:
                assert cols is not None
                n = len(cols)
                a = _at(states[:n], torch.arange(n, device=dev), self.anchor_pos[cols])
                z = member @ a
                offset = n
                sel = (
                    torch.arange(self.n_rep, device=dev)
                    if concept_idx is None
                    else concept_idx.to(dev)
                )
                zg = L.centred(z) if cfg.center and len(z) > 1 else z
                if self.use_geo:
                    geo = self._geo(z, sel)
                    terms.update(geo)
                    total = total + cfg.lambda_geo * (
                        cfg.geo_cos * geo["geo_cos"]
                        + cfg.geo_dist * geo["geo_dist"]
                        + cfg.geo_anchor * geo["geo_anchor"]
                    )
                if self.use_struct:
                    st = self._struct(zg, sel)
                    terms.update(st)
                    total = total + cfg.lambda_struct * (
                        cfg.struct_edge * st["struct_edge"]
                        + cfg.struct_hierarchy * st["struct_hierarchy"]
                        + cfg.struct_unrelated * st["struct_unrelated"]
                    )
            if self.use_reason:
                n_t = len(self.trace_x) if trace_idx is None else len(trace_idx)
                t_states = states[offset : offset + n_t]
                t_logits = logits[offset : offset + n_t]
                offset += n_t
                rs = self._reason(t_states, t_logits, trace_idx)
                terms.update(rs)
                total = total + cfg.lambda_reason * (
                    rs["reason_state"] + cfg.reason_answer * rs["reason_answer"]
                )
            if self.use_kl:
                ref = self.logits0 if prot_idx is None else self.logits0[prot_idx.to(dev)]
                kl = L.output_kl(ref, logits[offset:])
                terms["safe_kl"] = kl
                total = total + cfg.lambda_safe * cfg.safe_kl * kl
        if self.use_drift:
            drift_sq = L.relative_drift_sq(self.params, self.theta0, self.theta0_norm_sq)
            terms["safe_drift"] = drift_sq
            total = total + cfg.lambda_safe * cfg.safe_drift * drift_sq
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _geo(self, z: torch.Tensor, sel: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        e, y = self.e[sel], self.y_hat[sel]
        zero = z.sum() * 0.0
        return {
            "geo_cos": L.cosine_geometry_loss(z, e, center=cfg.center) if cfg.geo_cos else zero,
            "geo_dist": L.distance_geometry_loss(z, e) if cfg.geo_dist else zero,
            "geo_anchor": L.anchoring_loss(z, y) if cfg.geo_anchor else zero,
        }

    def _struct(self, zg: torch.Tensor, sel: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, dev = self.cfg, self.device
        n = len(sel)
        local = torch.full((self.n_rep,), -1, dtype=torch.long, device=dev)
        local[sel] = torch.arange(n, device=dev)
        zero = zg.sum() * 0.0
        out = {"struct_edge": zero, "struct_hierarchy": zero, "struct_unrelated": zero}
        if cfg.struct_edge and len(self.edge_src):
            s, t = local[self.edge_src], local[self.edge_dst]
            ok = (s >= 0) & (t >= 0)
            out["struct_edge"] = L.edge_pull_loss(
                zg,
                s[ok],
                t[ok],
                self.edge_w[ok],
                cos_min=cfg.edge_cos_min,
                cos_max=cfg.edge_cos_max,
            )
        if n == self.n_rep:  # the full batch: sel is the identity
            self.anc_local, self.linked_local = self.ancestors, self.linked
        else:
            self.anc_local = self.ancestors[sel][:, sel]
            self.linked_local = self.linked[sel][:, sel]
        if cfg.struct_hierarchy and len(self.h_child):
            c, p = local[self.h_child], local[self.h_parent]
            ok = (c >= 0) & (p >= 0)
            c, p = c[ok], p[ok]
            neg, valid = self._sample_negatives(c, n)
            out["struct_hierarchy"] = L.hierarchy_triplet_loss(
                zg, c[valid], p[valid], neg[valid], margin=cfg.hierarchy_margin
            )
        if cfg.struct_unrelated and cfg.unrelated_pairs > 0:
            a, b = self._sample_unrelated(n)
            out["struct_unrelated"] = L.unrelated_margin_loss(zg, a, b, margin=cfg.unrelated_margin)
        return out

    def _reason(
        self, t_states: torch.Tensor, t_logits: torch.Tensor, trace_idx: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        cfg, dev = self.cfg, self.device
        if trace_idx is None:
            step_mask = self.step_has
            rows = self.step_trace
        else:
            local = torch.full((len(self.trace_x),), -1, dtype=torch.long, device=dev)
            local[trace_idx.to(dev)] = torch.arange(len(trace_idx), device=dev)
            rows = local[self.step_trace]
            step_mask = self.step_has & (rows >= 0)
        answers = self.trace_y if trace_idx is None else self.trace_y[trace_idx.to(dev)]
        zero = t_logits.sum() * 0.0
        state_loss = zero
        if (cfg.reason_state or cfg.reason_cosine) and bool(step_mask.any()):
            s = _at(t_states, rows[step_mask], self.step_pos[step_mask])
            state_loss = L.trace_state_loss(
                s,
                self.step_targets[step_mask],
                self.target_scale,
                mse_weight=cfg.reason_state,
                cosine_weight=cfg.reason_cosine,
            )
        return {
            "reason_state": state_loss,
            "reason_answer": L.answer_loss(t_logits, answers) if cfg.reason_answer else zero,
        }

    # -- the hard bound -----------------------------------------------------------------------
    @torch.no_grad()
    def _project(self) -> tuple[float, bool]:
        """Scale ``theta - theta_0`` back into the drift ball; returns (drift, projected)."""
        sq = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.params, self.theta0, strict=True))
        drift = float(sq) ** 0.5 / max(self.theta0_norm, 1e-30)
        if drift > self.ball > 0 or (self.ball == 0 and drift > 0):
            factor = self.ball / drift if drift > 0 else 0.0
            for p, p0 in zip(self.params, self.theta0, strict=True):
                p.copy_(p0 + (p - p0) * factor)
            return self.ball, True
        return drift, False

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self, *, progress: bool, callback: Callback | None, ledger: RowRecorder
    ) -> dict[str, Any]:
        import contextlib

        from tqdm.auto import tqdm

        # cuDNN's RNN kernels refuse backward in eval mode; the native ones do not.
        rnn = any(isinstance(m, nn.RNNBase) for m in self.model.modules())
        no_cudnn = self.device.type == "cuda" and rnn and not self.cfg.train_mode
        with torch.backends.cudnn.flags(enabled=False) if no_cudnn else contextlib.nullcontext():
            return self._run(progress, callback, ledger, tqdm)

    def _run(
        self, progress: bool, callback: Callback | None, ledger: RowRecorder, tqdm: Any
    ) -> dict[str, Any]:
        cfg = self.cfg
        opt = torch.optim.AdamW(
            self.params,
            lr=cfg.lr,
            betas=(float(cfg.betas[0]), float(cfg.betas[1])),
            weight_decay=cfg.weight_decay,
        )
        self.model.train(cfg.train_mode)
        history: list[dict[str, Any]] = []
        first: dict[str, float] | None = None
        last: dict[str, float] = {}
        best = math.inf
        stale = 0
        projections = 0
        stop_reason = "steps"
        finite = True
        step = 0
        drift = 0.0
        start = time.perf_counter()
        bar = tqdm(total=cfg.steps, desc="ingest", disable=not progress, leave=False)
        try:
            for step in range(1, cfg.steps + 1):
                loss, terms = self._loss()
                value = float(loss.detach())
                if not math.isfinite(value):
                    finite = False
                    stop_reason = "nonfinite"
                    break
                opt.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                    if cfg.grad_clip is not None:
                        nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                    opt.step()
                drift, projected = self._project()
                projections += projected
                last = {"loss": value, **terms}
                if first is None:
                    first = dict(last)
                bar.update(1)
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    entry = {
                        "step": step,
                        "wall_s": round(time.perf_counter() - start, 4),
                        **last,
                        "drift": drift,
                    }
                    history.append(entry)
                    bar.set_postfix(loss=f"{value:.4g}", drift=f"{drift:.3f}")
                    if callback is not None:
                        try:
                            with ledger.paused():
                                stop = callback(step, {**entry, "model": self.model})
                        finally:
                            self.model.train(cfg.train_mode)
                        if stop:
                            stop_reason = "callback"
                            break
                    threshold = best - cfg.min_delta * abs(best) if math.isfinite(best) else best
                    if value < threshold:
                        best, stale = value, 0
                    else:
                        stale += 1
                        if cfg.patience and stale >= cfg.patience and step >= cfg.min_steps:
                            stop_reason = "plateau"
                            break
        finally:
            bar.close()
            self.model.eval()
        wall = time.perf_counter() - start
        return {
            "steps": step if finite else step - 1,
            "stop_reason": stop_reason,
            "finite": finite,
            "wall_s": round(wall, 4),
            "steps_per_s": (step / wall) if wall > 0 and step else None,
            "initial": first or {},
            "final": last,
            "best_loss": best if math.isfinite(best) else None,
            "projections": int(projections),
            "drift_ball": self.ball if math.isfinite(self.ball) else None,
            "history": history,
        }


# =========================================================================== alignment study


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
    position (:class:`~m2kt_ref.adapter.HiddenStateReader`); the anchors are split exactly as
    :func:`ingest` splits them (``holdout_fraction``, ``seed``), so the held-out metrics are
    those an ingestion with the same config starts from.

    Args:
        packet: a decoded packet.
        student_model: the student (not modified).
        methods: alignment methods to fit (keys of :data:`m2kt_ref.align.ALIGNERS`).
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
        IngestError: ``INGEST_INCOMPATIBLE``; UsageError: ``USAGE`` for a bad method or layer.
    """
    from m2kt_ref.adapter import HiddenStateReader
    from m2kt_ref.align import anchor_curve
    from m2kt_ref.training import resolve_device

    cfg = config or IngestConfig()
    for m in methods:
        if m not in ALIGNERS:
            raise UsageError(
                "USAGE", f"unknown alignment method {m!r}; known: {', '.join(ALIGNERS)}"
            )
    view = packet_view(packet)
    _check_compatible(view, packet, None, student_model)
    layer = student_layer(student_model, cfg)
    device = resolve_device(cfg.device)
    student_model.to(device)
    with HiddenStateReader(student_model, [layer], device=device) as reader:
        y = reader.read_at(view.anchor_inputs, view.anchor_positions.tolist(), layer).double()
    x = torch.from_numpy(view.anchor_states).double()
    fit_rows, hold_rows = _split_anchors(len(view.anchor_ids), cfg)
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
            "heldout": _heldout_metrics(cal, x, y, hold_rows, cfg),
        }
        if counts and n_test >= 2 and pool >= 2:
            opts = {k: v for k, v in options.items() if k != "seed"}
            out["curve"][m] = anchor_curve(
                m, x, y, counts, seed=cfg.seed, test_size=n_test, k=cfg.csls_k, **opts
            )
    return json_safe(out)
