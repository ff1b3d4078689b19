"""Teacher-side generation: turn a trained model into a knowledge packet (spec/algorithms.md §1).

Three layers, from the bottom:

- *primitives* (numpy in, numpy out, no model, no packet) in
  :mod:`~m2kt_ref.transfer.teacher.geometry`, and the two that assemble their results here,
  :func:`abstraction_graph` and :func:`reconstruction_errors`;
- :func:`generate_from_model`: any ``nn.Module`` that maps token rows to logits, plus a
  :class:`~m2kt_ref.transfer.tasks.Task` and the name of the layer to read (works for models we
  did not write);
- :func:`generate_packet`: a model directory written by ``m2kt train-teacher`` (the layer, the
  weights digest and the teacher's test split come from the directory).

What the packet says it consumed is measured, not computed: a forward pre-hook records every
distinct input row that reaches the teacher, and the rows are then classified by membership in
the task's problem set and in its probe set (:class:`m2kt_ref.transfer.accounting.RowRecorder`).

Generation is deterministic on CPU for a fixed seed and ``created`` time (same thread count):
nothing here draws random numbers apart from the task's seeded choice of canonical problems, and
all post-processing runs in float64 numpy.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref import __version__
from m2kt_ref.errors import UsageError
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.codec import Packet, assemble, encoded_size
from m2kt_ref.packet.extensions import (
    FORMAT_1_1,
    STEP_DECODINGS,
    derivation_block,
    operators_block,
)
from m2kt_ref.transfer.accounting import RowRecorder
from m2kt_ref.transfer.distributed import DistContext, gather_chunks, local_chunks, union_rows
from m2kt_ref.transfer.hooks import HiddenStateReader
from m2kt_ref.transfer.model_dir import state_dict_digest
from m2kt_ref.transfer.nets import NetConfig
from m2kt_ref.transfer.tasks import DerivedEdge, OperatorFacts, ProblemSet, Relation, Task
from m2kt_ref.transfer.teacher.geometry import (
    Cluster,
    abstraction_clusters,
    concept_statistics,
    cosine_matrix,
    knn_similarity,
    nearest_concepts,
    relative_rms_error,
)
from m2kt_ref.transfer.teacher.readout import (
    ReadoutFn,
    class_concepts,
    net_readout,
    read_positions,
)
from m2kt_ref.transfer.teacher.selection import SELECTIONS, select_traces, transition_units

__all__ = [
    "DEFAULT_CLUSTER_LEVELS",
    "DEFAULT_COMPONENTS",
    "DEFAULT_KNN",
    "DEFAULT_SAFETY",
    "DEFAULT_TRACES",
    "DTYPES",
    "GENERATOR_NAME",
    "SYMMETRIC_RELATIONS",
    "GenerationResult",
    "abstraction_graph",
    "default_layer",
    "generate_from_model",
    "generate_packet",
    "reconstruction_errors",
    "resolve_created",
]

#: ``provenance.generator.name`` of packets written here: a stable producer name, not a module
#: path, so the bytes of a generated packet do not change when modules move.
GENERATOR_NAME = "m2kt_ref.generate"
#: Packet dtypes a generator may store tensors in.
DTYPES = ("f32", "f16", "bf16", "i8")
#: Traces chosen at random when no number is given (cover selection takes the cover itself).
DEFAULT_TRACES = 16
#: A decoded step below this readout probability does not count as exercising a transition.
DEFAULT_MIN_STEP_PROBABILITY = 0.5
DEFAULT_KNN = 3
DEFAULT_COMPONENTS = 4
DEFAULT_CLUSTER_LEVELS = 3
#: Recommended ingestion bounds (spec/algorithms.md §1.7); a student may be stricter.
DEFAULT_SAFETY: dict[str, Any] = {
    "require_signature": True,
    "min_signers": 1,
    "max_parameter_drift": 0.25,
    "max_output_divergence": 0.1,
    "max_capability_drop": 0.02,
}
#: Relations stored once per unordered pair (source = the concept listed first).
SYMMETRIC_RELATIONS = frozenset({"similar_to", "inverse_of"})

_CREATED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


# =========================================================================== primitives


# =========================================================================== instrumentation


# =========================================================================== created time


def resolve_created(created: str | int | _dt.datetime | None = None) -> tuple[str, int, bool]:
    """The packet's ``header.created`` time.

    Args:
        created: RFC 3339 UTC text ``YYYY-MM-DDTHH:MM:SSZ``, Unix seconds (int, or digits as
            text), an aware datetime, or None: then ``SOURCE_DATE_EPOCH`` when set, else now.

    Returns:
        ``(text, unix_seconds, pinned)``; ``pinned`` is False only when the clock was read.

    Raises:
        UsageError: ``USAGE`` for a malformed or out-of-range time.
    """
    pinned = True
    if created is None:
        env = os.environ.get("SOURCE_DATE_EPOCH")
        if env is not None and env.strip():
            created = env.strip()
        else:
            created, pinned = int(time.time()), False
    if isinstance(created, _dt.datetime):
        if created.tzinfo is None:
            raise UsageError("created: a datetime must carry a time zone")
        epoch = math.floor(created.timestamp())
    elif isinstance(created, bool):
        raise UsageError("created: expected a time, got a boolean")
    elif isinstance(created, int):
        epoch = created
    elif isinstance(created, str):
        text = created.strip()
        if text.isdigit():
            epoch = int(text)
        elif _CREATED_RE.fullmatch(text):
            try:
                moment = _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                raise UsageError(f"created: {created!r} is not a valid time") from None
            epoch = math.floor(moment.replace(tzinfo=_dt.timezone.utc).timestamp())
        else:
            raise UsageError(
                f"created: {created!r} is neither YYYY-MM-DDTHH:MM:SSZ nor Unix seconds"
            )
    else:
        raise UsageError(f"created: unsupported type {type(created).__name__}")
    if not 0 <= epoch <= _MAX_EPOCH:
        raise UsageError(f"created: {epoch} is outside 1970..9999")
    text = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text, epoch, pinned


# =========================================================================== generation


@dataclass
class GenerationResult:
    """A generated packet and what it took to build it.

    Returned by :func:`generate_from_model` and :func:`generate_packet`.

    Args:
        packet: the packet (signed when a key was given).
        stats: plain numbers and names: counts, sizes, inputs used, timings (seconds), the
            reconstruction errors, the trace answers the teacher got right.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
        >>> result = mt.generate_from_model(teacher, task, traces=2, created=0)
        >>> result.stats["packet_id"] == result.packet.packet_id
        True
        >>> result.stats["traces"], result.stats["anchors"], result.stats["signed"]
        (2, 10, False)
    """

    packet: Packet
    stats: dict[str, Any] = field(default_factory=dict)


def default_layer(net_config: Any) -> str:
    """The layer read by default: the output of a net's last block / hidden layer.

    That is the state the readout pools (``blocks.{depth-1}`` for a transformer,
    ``layers.{depth-1}`` for a GRU or an MLP); see spec/algorithms.md §1.1.
    """
    from m2kt_ref.transfer.nets import layer_names

    return layer_names(net_config)[-2]


def _pick_states(states: torch.Tensor, positions: Sequence[int], layer: str) -> np.ndarray:
    """``[N, d]`` states at one position per row (rows of a ``[N, d]`` output are used as is)."""
    if states.ndim == 2:
        return states.float().numpy()
    if states.ndim != 3:
        raise UsageError(
            f"layer {layer!r} outputs shape {list(states.shape)}; need [N, d] or [N, L, d]",
        )
    pos = torch.as_tensor(list(positions), dtype=torch.long)
    if len(pos) and (int(pos.max()) >= states.shape[1] or int(pos.min()) < 0):
        raise UsageError(f"a position is outside layer {layer!r}'s {states.shape[1]}")
    return states[torch.arange(len(states)), pos].float().numpy()


def abstraction_graph(
    ids: Sequence[str],
    embeddings: np.ndarray,
    knn: int,
    clusters: Sequence[Cluster],
    cluster_ids: Sequence[str],
    cluster_embeddings: Sequence[np.ndarray],
    *,
    probed: Sequence[DerivedEdge] = (),
    declared: Sequence[Relation] = (),
) -> dict[tuple[str, str, str], tuple[float, str]]:
    """The edges of spec/algorithms.md §1.3: ``{(source, target, relation): (weight, derivation)}``.

    In order: edges the teacher's answers on operator probes gave (``teacher-probe``), then
    ``similar_to`` between k nearest neighbours and ``part_of`` from each concept or cluster to
    the smallest cluster strictly containing it (``teacher-geometry``), then the relations the
    packet's author declares (``declared``, only when asked for). Symmetric relations put the
    concept listed first as the source; a repeated edge keeps the largest weight and the
    derivation it was first added with, so an edge the teacher derived never reads as declared.

    Raises:
        UsageError: ``USAGE`` for a weight outside [0, 1] or an unknown concept id.
    """
    order = {cid: i for i, cid in enumerate([*ids, *cluster_ids])}
    edges: dict[tuple[str, str, str], tuple[float, str]] = {}

    def add(source: str, target: str, relation: str, weight: float, derivation: str) -> None:
        if not 0.0 <= weight <= 1.0 or source not in order or target not in order:
            raise UsageError(
                f"edge {source} -{relation}-> {target} has weight {weight} outside [0, 1] or "
                "names an unknown concept",
            )
        if relation in SYMMETRIC_RELATIONS and order[target] < order[source]:
            source, target = target, source
        key = (source, target, relation)
        old = edges.get(key)
        edges[key] = (weight, derivation) if old is None else (max(old[0], weight), old[1])

    for e in probed:
        add(e.source, e.target, e.relation, float(e.weight), "teacher-probe")
    for i, j, w in knn_similarity(embeddings, knn):
        add(ids[i], ids[j], "similar_to", w, "teacher-geometry")
    sets = [frozenset(c.members) for c in clusters]

    def smallest(holders: list[int]) -> int:
        return min(holders, key=lambda j: (len(sets[j]), j))

    def closeness(a: np.ndarray, b: np.ndarray) -> float:
        return max(float(cosine_matrix(a[None], b[None])[0, 0]), 0.0)

    for i, cid in enumerate(ids):
        holders = [j for j, m in enumerate(sets) if i in m]
        if holders:
            j = smallest(holders)
            weight = closeness(embeddings[i], cluster_embeddings[j])
            add(cid, cluster_ids[j], "part_of", weight, "teacher-geometry")
    for a, members in enumerate(sets):
        holders = [j for j, m in enumerate(sets) if members < m]
        if holders:
            j = smallest(holders)
            w = closeness(cluster_embeddings[a], cluster_embeddings[j])
            add(cluster_ids[a], cluster_ids[j], "part_of", w, "teacher-geometry")
    for rel in declared:
        add(rel.source, rel.target, rel.relation, float(rel.weight), "declared")
    return edges


def reconstruction_errors(
    originals: Mapping[str, tuple[str, np.ndarray]], encoded: Mapping[str, tz.EncodedTensor]
) -> dict[str, float]:
    """Relative RMS error of each tensor group (spec/algorithms.md §1.8).

    Args:
        originals: tensor name -> (group, float32 values).
        encoded: tensor name -> the stored tensor.
    """
    groups: dict[str, list[str]] = {}
    for name, (group, _) in originals.items():
        groups.setdefault(group, []).append(name)
    out = {}
    for group, names in groups.items():
        restored = []
        for n in names:
            t = encoded[n]
            stored = np.frombuffer(t.data, dtype=tz.STORAGE_DTYPES[t.dtype])
            restored.append(tz.to_float32(stored, t.dtype, t.scale))
        out[group] = relative_rms_error([originals[n][1].reshape(-1) for n in names], restored)
    return out


def _device_of(model: nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    return "cpu"


def _check_options(
    traces: int | None, dtype: str, knn: int, components: int, cluster_levels: int
) -> None:
    if dtype not in DTYPES:
        raise UsageError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    for name, value in (
        ("traces", 0 if traces is None else traces),
        ("knn", knn),
        ("components", components),
        ("cluster_levels", cluster_levels),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"{name} must be an integer >= 0, got {value!r}")


def _cluster_label(members: Sequence[int], labels: Sequence[str]) -> str:
    shown = ", ".join(labels[i] for i in members[:4])
    more = ", …" if len(members) > 4 else ""
    return f"cluster of {len(members)}: {shown}{more}"[:1024]


def generate_from_model(
    model: nn.Module,
    task: Task,
    *,
    layer: str | None = None,
    readout: ReadoutFn | None = None,
    teacher_name: str = "teacher",
    architecture: str | None = None,
    model_digest: str | None = None,
    exclude: ProblemSet | None = None,
    candidates: ProblemSet | None = None,
    traces: int | None = None,
    trace_selection: str = "cover",
    step_decoding: str | None = None,
    min_step_probability: float = DEFAULT_MIN_STEP_PROBABILITY,
    operators: bool = False,
    declare: bool = False,
    dtype: str = "f32",
    knn: int = DEFAULT_KNN,
    components: int = DEFAULT_COMPONENTS,
    cluster_levels: int = DEFAULT_CLUSTER_LEVELS,
    seed: int = 0,
    created: str | int | _dt.datetime | None = None,
    protected: Iterable[str] = (),
    safety: Mapping[str, Any] | None = None,
    key: Any = None,
    title: str | None = None,
    extra_parameters: Mapping[str, Any] | None = None,
    batch_size: int = 1024,
    dist: DistContext | None = None,
) -> GenerationResult:
    """Build a knowledge packet from any token-rows -> logits module (spec/algorithms.md §1).

    Every fact in the packet comes from the teacher and says how (the ``derivation``
    extension): concept embeddings, manifolds and the similarity/cluster edges from its states
    on concept probes (``teacher-geometry``); trace steps from its own readout applied to its
    state after every token (``teacher-readout``); with ``operators``, operator entries or
    edges from its answers on operator probes (``teacher-probe``). The task's ground truth
    enters only with ``declare``, marked ``declared``.

    Args:
        model: the teacher; it stays on its device and is only run in eval mode, under
            ``torch.no_grad``.
        task: the task the teacher solves (concepts, probes, operator probes, vocabulary).
        layer: dotted name of the submodule whose output is the teacher's latent space; may be
            omitted for our nets (:func:`default_layer` of ``model.config``).
        readout: maps that layer's states to class logits, for teacher-readout decoding;
            derived for our nets (:func:`~m2kt_ref.transfer.teacher.readout.net_readout`).
        teacher_name: ``teacher.name``.
        architecture: ``teacher.architecture`` (default: ``model.config.family`` for our nets,
            else the module's class name).
        model_digest: ``sha256:<hex>`` of the weights file; default :func:`state_dict_digest`.
        exclude: problems never used as traces (pass the teacher's test split).
        candidates: problems traces are chosen from (default: every task problem not in
            ``exclude``); the teacher runs over all of them to decode their steps.
        traces: number of traces ``K``; None with ``cover`` takes exactly the cover, with
            ``declared`` every candidate.
        trace_selection: ``cover`` (the fewest candidates whose decoded steps exercise every
            transition the teacher makes on the candidates), ``random``, or ``declared`` (the
            candidates as given, in order: their author chose them, as in a prompt file).
        step_decoding: ``teacher-readout`` or ``nearest-concept`` (what 1.0 generators did);
            None: the teacher's readout when one is known (``readout`` given, or an m2kt net
            read at the layer that feeds its readout), else the nearest concept.
        min_step_probability: a decoded step below this readout probability is not counted as
            exercising a transition when selecting.
        operators: run the task's operator probes and add what they yield.
        declare: add the task's declared relations as ``declared`` edges (ground truth).
        dtype: storage dtype of every tensor (f32, f16, bf16, i8).
        knn: similarity neighbours per concept ``k``.
        components: principal directions per concept manifold ``R``.
        cluster_levels: hierarchical clustering cuts ``L``.
        seed: seeds the tie-breaking order of the cover and the random choice.
        created: see :func:`resolve_created`.
        protected: concept ids listed as ``safety.protected_concepts``.
        safety: overrides of :data:`DEFAULT_SAFETY` fields.
        key: a :class:`m2kt_ref.packet.keys.SigningKey` to sign with (signing time = ``created``).
        title: ``header.title`` (default names task, architecture and layer).
        extra_parameters: more entries for ``provenance.parameters`` (JSON values).
        batch_size: rows per forward pass.
        dist: run as one rank of a distributed generation (docs/scaling.md): every rank calls
            with the same arguments; the teacher's forward passes are shared out in whole
            ``batch_size`` chunks and gathered, the rest is computed on every rank from the
            gathered states, and the packet is the same, byte for byte, as one process makes
            with the same ``batch_size`` and thread count (the caller writes it on rank 0).

    Returns:
        a :class:`GenerationResult`.

    Raises:
        UsageError: ``USAGE`` for a bad option or ``created`` time, an unknown layer
            (:class:`~m2kt_ref.errors.UnknownLayerError`) or protected concept, a layer whose
            output is not ``[N, d]``/``[N, L, d]``, teacher-readout decoding of a layer that
            does not feed the readout, or a declared weight outside [0, 1].
        SignatureError: ``PROVENANCE_INCOMPLETE`` when signing a packet built from no task
            input.
        ValidationError: the assembled body breaks a packet rule (a task with bad ids).

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> result = mt.generate_from_model(
        ...     teacher, task, traces=4, dtype="f16", created="2026-01-01T00:00:00Z", key=key
        ... )
        >>> body = result.packet.body
        >>> body.header.version, body.teacher.layer, len(body.traces), len(body.anchors)
        ('1.1', 'layers.0', 4, 10)
        >>> result.stats["trace_selection"]["method"], result.stats["signed"]
        ('cover', True)
        >>> m2kt_ref.decode(m2kt_ref.encode(result.packet)) == result.packet
        True
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "lab")])
        >>> m2kt_ref.verify_packet(result.packet, trust).valid
        True
    """
    _check_options(traces, dtype, knn, components, cluster_levels)
    created_text, created_epoch, pinned = resolve_created(created)
    config = getattr(model, "config", None)
    if layer is None:
        if not isinstance(config, NetConfig):
            raise UsageError("layer is required for a model without a NetConfig")
        layer = default_layer(config)
    if architecture is None:
        family = getattr(config, "family", None)
        architecture = family if isinstance(family, str) else type(model).__name__
    if step_decoding is None:
        step_decoding = (
            "teacher-readout"
            if readout is not None or _reads_out(model, layer)
            else "nearest-concept"
        )
    if step_decoding not in STEP_DECODINGS[:2]:
        raise UsageError(
            f"step decoding {step_decoding!r} is not one of {', '.join(STEP_DECODINGS[:2])}"
        )
    if trace_selection not in SELECTIONS:
        raise UsageError(
            f"trace selection {trace_selection!r} is not one of {', '.join(SELECTIONS)}"
        )
    if not 0.0 <= min_step_probability <= 1.0:
        raise UsageError("min_step_probability must be in [0, 1]")
    if step_decoding == "teacher-readout" and readout is None:
        readout = net_readout(model, layer)
    digest = model_digest or state_dict_digest(model)
    timing: dict[str, float] = {}
    t_start = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timing[name] = round(now - clock, 4)
        clock = now

    specs = task.concepts()
    ids = [c.id for c in specs]
    labels = [c.label for c in specs]
    protected = list(dict.fromkeys(protected))
    pool = candidates if candidates is not None else _candidates(task, exclude)

    ledger = RowRecorder([model])
    try:
        with HiddenStateReader(model, [layer], batch_size=batch_size, shard=dist) as reader:
            # 1-2. concept probes -> per-probe states -> centroid and manifold
            probe_rows: list[tuple[int, ...]] = []
            probe_pos: list[int] = []
            owner: list[int] = []
            for i, spec in enumerate(specs):
                if not spec.probes:
                    raise UsageError(f"concept {spec.id} has no probes")
                for p in spec.probes:
                    probe_rows.append(tuple(int(t) for t in p.tokens))
                    probe_pos.append(int(p.position))
                    owner.append(i)
            probe_x = np.array(probe_rows, dtype=np.int64)
            probe_states = _pick_states(reader.read(probe_x)[layer], probe_pos, layer)
            lap("probes")
            owner_arr = np.array(owner)
            stats_per_concept = [
                concept_statistics(probe_states[owner_arr == i], components)
                for i in range(len(specs))
            ]
            emb = np.stack([s.embedding for s in stats_per_concept])

            # 4-5. decode every candidate's steps, choose the traces, read their states
            steps = _decode_steps(
                model, layer, readout, task, pool, emb, step_decoding, batch_size, dist
            )
            lap("decode")
            token_concept = _token_concepts(task, ids)
            unit_sets = [
                transition_units(
                    row,
                    st.concepts,
                    st.positions,
                    token_concept,
                    confident=st.confidence >= min_step_probability,
                )
                if st.named
                else frozenset()
                for row, st in zip(pool.inputs, steps, strict=True)
            ]
            eligible = [i for i, st in enumerate(steps) if st.named]
            k = traces if trace_selection != "random" or traces is not None else DEFAULT_TRACES
            choice = select_traces(trace_selection, [unit_sets[i] for i in eligible], k, seed)
            chosen = [eligible[i] for i in choice.indices]
            trace_x = pool.inputs[chosen] if chosen else np.zeros((0, task.seq_len), np.int64)
            trace_full = reader.read(trace_x)[layer] if chosen else None
            lap("traces")

            # 6. operator probes, answered by the teacher
            facts = OperatorFacts(entries=(), edges=())
            if operators:
                probes = task.operator_probes()
                if probes:
                    out = reader.read(
                        np.array([p.tokens for p in probes], dtype=np.int64), return_logits=True
                    )
                    top = torch.softmax(out["logits"].float(), dim=-1).max(dim=-1)
                    facts = task.operator_facts(probes, top.indices.tolist(), top.values.tolist())
                lap("operators")
    finally:
        ledger.close()
    ledger_rows, ledger_total = ledger.rows, ledger.rows_total
    if dist is not None:  # each rank fed its chunks: the run's inputs are the union
        ledger_rows, ledger_total = union_rows(dist, ledger_rows, ledger_total)

    d = int(probe_states.shape[1])
    class_rows = np.array([-1 if c is None else c for c in _class_rows(task)], dtype=np.int64)

    # 3. abstraction graph: probed edges, similarity, clusters, declared relations
    clusters, cut_sizes = abstraction_clusters(emb, cluster_levels)
    cluster_ids = [
        f"cluster:{c.level}.{sum(1 for o in clusters[:j] if o.level == c.level)}"
        for j, c in enumerate(clusters)
    ]
    cluster_emb = [emb[list(c.members)].mean(axis=0) for c in clusters]
    known = set(ids) | set(cluster_ids)
    for cid in protected:
        if cid not in known:
            raise UsageError(f"protected concept {cid!r} is not a concept of the packet")
    edges = abstraction_graph(
        ids,
        emb,
        knn,
        clusters,
        cluster_ids,
        cluster_emb,
        probed=facts.edges,
        declared=task.relations() if declare else (),
    )
    lap("graph")

    # assemble sections; tensors keep their float32 originals for the error report
    originals: dict[str, tuple[str, np.ndarray]] = {}

    def tensor(name: str, group: str, values: np.ndarray) -> str:
        originals[name] = (group, np.asarray(values, dtype=np.float32))
        return name

    concepts: list[dict[str, Any]] = []
    for spec, st in zip(specs, stats_per_concept, strict=True):
        entry: dict[str, Any] = {
            "id": spec.id,
            "label": spec.label,
            "kind": spec.kind,
            "embedding": tensor(f"concept/{spec.id}/embedding", "concept_embeddings", st.embedding),
        }
        if st.directions is not None and st.variances is not None:
            entry["manifold"] = {
                "directions": tensor(
                    f"concept/{spec.id}/directions", "manifold_directions", st.directions
                ),
                "variances": tensor(
                    f"concept/{spec.id}/variances", "manifold_variances", st.variances
                ),
                "spread": float(st.spread),
                "support": st.support,
            }
        if spec.level is not None:
            entry["level"] = int(spec.level)
        concepts.append(entry)
    for cid, c, centre in zip(cluster_ids, clusters, cluster_emb, strict=True):
        concepts.append(
            {
                "id": cid,
                "label": _cluster_label(c.members, labels),
                "kind": "cluster",
                "embedding": tensor(f"concept/{cid}/embedding", "concept_embeddings", centre),
                "level": c.level,
            }
        )

    trace_entries: list[dict[str, Any]] = []
    n_step_labels = 0
    for t, i in enumerate(chosen):
        st = steps[i]
        assert trace_full is not None
        row_states = trace_full[t : t + 1]
        positions = [int(p) for p in st.positions]
        if row_states.ndim == 3:
            states = _pick_states(
                row_states.expand(len(positions), *row_states.shape[1:]), positions, layer
            )
        else:
            states = _pick_states(row_states, [0], layer).repeat(len(positions), axis=0)
        # name each step from the very states the packet stores, so the packet is consistent
        # with itself whatever batch the selection scan decoded them in
        named = _name_states(states, emb, step_decoding, readout, class_rows)
        keep = [j for j, c in enumerate(named) if c >= 0]
        states = states[keep]
        n_step_labels += len(keep)
        answer = int(st.answer)
        entry = {
            "id": f"t{t}",
            "input": [int(v) for v in pool.inputs[i]],
            "answer": answer,
            "steps": [
                {
                    "concept": ids[named[j]],
                    "similarity": float(
                        np.clip(cosine_matrix(s[None], emb[named[j]][None])[0, 0], -1, 1)
                    ),
                    "position": positions[j],
                }
                for j, s in zip(keep, states, strict=True)
            ],
            "states": tensor(f"trace/t{t}/states", "trace_states", states),
        }
        if 0 <= answer < len(task.answer_labels):
            entry["answer_label"] = task.answer_labels[answer]
        trace_entries.append(entry)

    anchors: list[dict[str, Any]] = []
    seen_per_concept: dict[int, int] = {}
    for row, pos, i, state in zip(probe_rows, probe_pos, owner, probe_states, strict=True):
        j = seen_per_concept.get(i, 0)
        seen_per_concept[i] = j + 1
        aid = f"{ids[i]}/{j}"
        anchors.append(
            {
                "id": aid,
                "input": list(row),
                "position": pos,
                "state": tensor(f"anchor/{aid}/state", "anchor_states", state),
                "concept": ids[i],
            }
        )

    # 7. provenance: classify what reached the teacher's forward
    task_rows = task.problems().row_keys()
    probe_keys = {r.tobytes() for r in probe_x}
    task_inputs_used = len(ledger_rows & task_rows)
    concept_probes_used = len((ledger_rows & probe_keys) - task_rows)
    operator_probes_used = len(ledger_rows - task_rows - probe_keys)

    # 8. reduced precision
    encoded = {name: tz.encode(values, dtype) for name, (_, values) in originals.items()}
    errors = reconstruction_errors(originals, encoded) if dtype != "f32" else {}

    selection = {
        "method": choice.method,
        "unit": "transition",
        "candidates": choice.candidates,
        "exercised": choice.exercised,
        "covered": choice.covered,
    }
    parameters: dict[str, Any] = {
        "layer": layer,
        "traces": len(trace_entries),
        "trace_selection": trace_selection,
        "step_decoding": step_decoding,
        "min_step_probability": min_step_probability,
        "operators": operators,
        "declare": declare,
        "operator_probes_used": operator_probes_used,
        "knn": knn,
        "components": components,
        "cluster_levels": cluster_levels,
        "cluster_cuts": cut_sizes,
        "similarity": "cosine",
        "linkage": "average",
        "dtype": dtype,
        "excluded_rows": len(exclude) if exclude is not None else 0,
        "device": _device_of(model),
        "torch": torch.__version__,
    }
    if errors:
        parameters["reconstruction_error"] = errors
    if extra_parameters:
        parameters.update(extra_parameters)
    safety_fields: dict[str, Any] = {**DEFAULT_SAFETY, **(safety or {})}
    if protected:
        safety_fields["protected_concepts"] = protected
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    edge_items = list(edges.items())
    extensions = {
        "derivation": derivation_block(
            [derivation for (_, derivation) in (v for _, v in edge_items)],
            trace_steps=step_decoding,
            trace_selection=selection,
        )
    }
    if facts.entries:
        extensions["operators"] = operators_block(
            [
                {
                    "operator": e.operator,
                    "source": e.source,
                    "target": e.target,
                    "probability": min(max(e.probability, 0.0), 1.0),
                    "input": list(e.tokens),
                    "derivation": "teacher-probe",
                }
                for e in facts.entries
            ]
        )
    fields: dict[str, Any] = {
        "header": {
            "format": "m2kt",
            "version": FORMAT_1_1,
            "created": created_text,
            "title": title or f"{task.name} knowledge from a {architecture} teacher ({layer})",
        },
        "teacher": {
            "name": teacher_name,
            "architecture": architecture,
            "latent_dim": d,
            "layer": layer,
            "model_digest": digest,
            "n_parameters": n_params,
        },
        "concepts": concepts,
        "graph": {
            "edges": [
                {"source": s, "target": t, "relation": r, "weight": w}
                for (s, t, r), (w, _) in edge_items
            ]
        },
        "traces": trace_entries,
        "anchors": anchors,
        "provenance": {
            "generator": {"name": GENERATOR_NAME, "version": __version__},
            "task": {"name": task.name, "options": task.option_dict()},
            "parents": [],
            "task_inputs_used": task_inputs_used,
            "concept_probes_used": concept_probes_used,
            "parameters": parameters,
            "seed": seed,
        },
        "safety": safety_fields,
        "extensions": extensions,
    }
    lap("sections")
    if not pinned:
        # wall time is recorded only when `created` came from the clock: it would otherwise
        # make the bytes of a pinned (reproducible) run differ from run to run
        parameters["timing_s"] = dict(timing)
    packet = assemble(fields, encoded)
    lap("assemble")
    if key is not None:
        from m2kt_ref.packet.signing import sign_packet

        packet = sign_packet(packet, key, signing_time=created_epoch)
        lap("sign")
    timing["total"] = round(time.perf_counter() - t_start, 4)
    relations: dict[str, int] = {}
    derivations: dict[str, int] = {}
    for (_, _, r), (_, derivation) in edge_items:
        relations[r] = relations.get(r, 0) + 1
        derivations[derivation] = derivations.get(derivation, 0) + 1
    correct = int(np.sum([steps[i].answer == pool.targets[i] for i in chosen])) if chosen else 0
    stats = {
        "packet_id": packet.packet_id,
        "packet_bytes": encoded_size(packet),
        "body_bytes": len(packet.body_bytes),
        "created": created_text,
        "layer": layer,
        "latent_dim": d,
        "dtype": dtype,
        "concepts": len(specs),
        "clusters": len(clusters),
        "concepts_with_manifold": sum(s.directions is not None for s in stats_per_concept),
        "edges": len(edges),
        "edges_by_relation": dict(sorted(relations.items())),
        "edges_by_derivation": dict(sorted(derivations.items())),
        "traces": len(trace_entries),
        "trace_selection": selection,
        "trace_step_labels": n_step_labels,
        "trace_answers_correct": correct,
        "operator_entries": len(facts.entries),
        "operator_probes_used": operator_probes_used,
        "anchors": len(anchors),
        "tensors": len(encoded),
        "tensor_bytes": sum(t.nbytes for t in encoded.values()),
        "task_inputs_used": task_inputs_used,
        "concept_probes_used": concept_probes_used,
        "forward_rows_total": ledger_total,
        "reconstruction_error": errors,
        "signed": packet.signatures is not None,
        "timing_s": timing,
    }
    return GenerationResult(packet, stats)


@dataclass(frozen=True)
class _DecodedSteps:
    """One candidate's step positions and what its states name there."""

    positions: np.ndarray  # step positions (int64)
    concepts: np.ndarray  # concept row named at every position, -1 for none ([L] or [1])
    confidence: np.ndarray  # readout probability (or cosine) at every position
    answer: int  # the teacher's output class on the row

    @property
    def named(self) -> bool:
        return bool((self.concepts[self.positions] >= 0).any())


def _reads_out(model: nn.Module, layer: str) -> bool:
    """Whether ``layer`` of an m2kt net feeds its readout (so the teacher can decode it)."""
    config = getattr(model, "config", None)
    return isinstance(config, NetConfig) and layer == default_layer(config)


def _candidates(task: Task, exclude: ProblemSet | None) -> ProblemSet:
    problems = task.problems()
    if exclude is None:
        return problems
    banned = exclude.row_keys()
    rows = np.ascontiguousarray(problems.inputs, dtype=np.int64)
    keep = np.array([r.tobytes() not in banned for r in rows], dtype=bool)
    return problems.take(np.flatnonzero(keep))


def _token_concepts(task: Task, ids: Sequence[str]) -> dict[int, int]:
    """Concept row named by a token (its vocabulary string is the concept's label)."""
    index = {cid: i for i, cid in enumerate(ids)}
    vocab = {tok: i for i, tok in enumerate(task.vocab)}
    return {vocab[c.label]: index[c.id] for c in task.concepts() if c.label in vocab}


def _decode_steps(
    model: nn.Module,
    layer: str,
    readout: ReadoutFn | None,
    task: Task,
    pool: ProblemSet,
    emb: np.ndarray,
    step_decoding: str,
    batch_size: int,
    dist: DistContext | None = None,
) -> list[_DecodedSteps]:
    """What the teacher's state names at every step of every candidate."""
    rows = np.ascontiguousarray(pool.inputs, dtype=np.int64)
    if not len(rows):
        return []
    if step_decoding == "teacher-readout":
        assert readout is not None
        read = read_positions(model, layer, readout, rows, batch_size=batch_size, shard=dist)
        to_concept = np.array([-1 if c is None else i for i, c in enumerate(_class_rows(task))])
        concepts = to_concept[read.classes]
        confidence, answers = read.probabilities, read.answers
    else:
        concepts_l, confidence_l, answers_l = [], [], []
        with HiddenStateReader(model, [layer], batch_size=batch_size) as reader:
            for start, stop in local_chunks(len(rows), batch_size, dist):
                out = reader.read(rows[start:stop], return_logits=True)
                states = out[layer].float().numpy()
                if states.ndim == 2:
                    states = states[:, None, :]
                n, length, width = states.shape
                near, sim = nearest_concepts(states.reshape(-1, width), emb)
                concepts_l.append(near.reshape(n, length))
                confidence_l.append(sim.reshape(n, length))
                answers_l.append(out["logits"].argmax(dim=-1).numpy())
        if dist is not None:
            concepts_l, confidence_l, answers_l = (
                [gather_chunks(dist, len(rows), batch_size, [torch.from_numpy(a) for a in part])]
                for part in (concepts_l, confidence_l, answers_l)
            )
        concepts = np.concatenate(concepts_l).astype(np.int64)
        confidence = np.concatenate(confidence_l)
        answers = np.concatenate(answers_l)
    out = []
    for row, c, p, a in zip(rows, concepts, confidence, answers, strict=True):
        positions = np.array(task.step_positions(row, len(c)), dtype=np.int64)
        out.append(_DecodedSteps(positions, c, p, int(a)))
    return out


def _name_states(
    states: np.ndarray,
    emb: np.ndarray,
    step_decoding: str,
    readout: ReadoutFn | None,
    class_rows: np.ndarray,
) -> list[int]:
    """Concept row each state names (-1: its readout class names no concept)."""
    if step_decoding == "nearest-concept":
        return [int(j) for j in nearest_concepts(states, emb)[0]]
    assert readout is not None
    with torch.no_grad():
        classes = readout(torch.from_numpy(np.ascontiguousarray(states))).argmax(-1).numpy()
    return [int(class_rows[c]) for c in classes]


def _class_rows(task: Task) -> list[int | None]:
    """Concept row named by each answer class (None where no concept has its label)."""
    ids = [c.id for c in task.concepts()]
    index = {cid: i for i, cid in enumerate(ids)}
    return [None if cid is None else index[cid] for cid in class_concepts(task)]


def generate_packet(
    teacher: str | os.PathLike[str] | Any,
    *,
    traces: int | None = None,
    trace_selection: str = "cover",
    step_decoding: str | None = None,
    operators: bool = False,
    declare: bool = False,
    dtype: str = "f32",
    layer: str | None = None,
    knn: int = DEFAULT_KNN,
    components: int = DEFAULT_COMPONENTS,
    cluster_levels: int = DEFAULT_CLUSTER_LEVELS,
    seed: int = 0,
    created: str | int | _dt.datetime | None = None,
    protected: Iterable[str] = (),
    safety: Mapping[str, Any] | None = None,
    key: Any = None,
    name: str | None = None,
    device: Any = "cpu",
    batch_size: int = 1024,
    dist: DistContext | None = None,
) -> GenerationResult:
    """Build a knowledge packet from a teacher model directory (spec/algorithms.md §1).

    Args:
        teacher: a directory written by ``m2kt train-teacher`` (or
            :func:`~m2kt_ref.transfer.save_model_dir`) or an already loaded
            :class:`~m2kt_ref.transfer.ModelDir`.
        traces, trace_selection, step_decoding, operators, declare, dtype, layer, knn,
            components, cluster_levels, seed, created, protected, safety, key: see
            :func:`generate_from_model`; ``layer`` defaults to
            :func:`default_layer` of the directory's net config.
        name: ``teacher.name`` (default: the directory's name).
        device: where to load the model when ``teacher`` is a path (``cpu``, ``cuda``, ``auto``).
        batch_size, dist: see :func:`generate_from_model` (``dist``: one rank of a distributed
            generation; load the teacher on ``dist.device``).

    Returns:
        a :class:`GenerationResult`.

    Raises:
        ModelDirError: ``IO_ERROR`` when the directory is missing or unreadable.
        DeviceUnavailableError: ``USAGE`` when ``device`` does not exist here.
        UsageError, SignatureError, ValidationError: see :func:`generate_from_model`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> run = mt.train_teacher(task, scale="quick", train_config=mt.TrainConfig(steps=2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = run.save(Path(tmp) / "chain-teacher")
        ...     result = mt.generate_packet(path, traces=4, created=0)
        ...     digest = "sha256:" + mt.weights_digest(path)
        >>> teacher = result.packet.body.teacher
        >>> teacher.name, teacher.architecture, teacher.model_digest == digest
        ('chain-teacher', 'gru', True)
    """
    from m2kt_ref.transfer.model_dir import ModelDir, load_model_dir

    md = teacher if isinstance(teacher, ModelDir) else load_model_dir(teacher, device=device)
    task = md.task()
    exclude = md.split().test if md.split_config else None
    extra: dict[str, Any] = {"teacher_net": md.net_config.to_dict()}
    if isinstance(md.record.get("test_accuracy"), (int, float)):
        extra["teacher_test_accuracy"] = float(md.record["test_accuracy"])
    return generate_from_model(
        md.model,
        task,
        layer=layer or default_layer(md.net_config),
        teacher_name=name or Path(md.path).resolve().name or "teacher",
        architecture=md.net_config.family,
        model_digest="sha256:" + md.weights_digest,
        exclude=exclude,
        traces=traces,
        trace_selection=trace_selection,
        step_decoding=step_decoding,
        operators=operators,
        declare=declare,
        dtype=dtype,
        knn=knn,
        components=components,
        cluster_levels=cluster_levels,
        seed=seed,
        created=created,
        protected=protected,
        safety=safety,
        key=key,
        extra_parameters=extra,
        batch_size=batch_size,
        dist=dist,
    )
