"""The extensions registered by packet format 1.1 (spec §3.12): ``derivation`` and ``operators``.

Format 1.1 adds no body field (a minor version must not, spec §9): it registers two extension
names. ``derivation`` says where each graph edge came from (the teacher's geometry, its answer on
an operator probe, one of its traces, or the packet's author), how the trace steps were decoded
and how the traces were chosen; ``operators`` lists what the teacher answers when one concept is
applied to another. A 1.0 reader ignores both (they are not critical); a 1.1 reader checks them in
validation step 5 (:func:`m2kt_ref.packet.rules.iter_registered_extension_errors`).

This module builds the blocks a writer puts in the body's ``extensions`` map
(:func:`derivation_block`, :func:`operators_block`) and reads them back as frozen dataclasses
(:func:`read_derivation`, :func:`read_operators`). A writer that uses them writes
``header.version`` :data:`FORMAT_1_1` (:func:`format_version_for`).
"""

from __future__ import annotations

import dataclasses
import numbers
import operator as _operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from m2kt_ref.errors import M2ktError, UsageError
from m2kt_ref.packet.model import (
    REGISTERED_EXTENSIONS,
    DerivationData,
    DerivationKind,
    OperatorDerivation,
    OperatorsData,
    PacketBody,
    SelectionMethod,
    StepDecoding,
)
from m2kt_ref.packet.rules import iter_registered_data_errors

__all__ = [
    "DERIVATION",
    "DERIVATIONS",
    "FORMAT_1_0",
    "FORMAT_1_1",
    "OPERATORS",
    "OPERATOR_DERIVATIONS",
    "SELECTION_METHODS",
    "STEP_DECODINGS",
    "Derivation",
    "OperatorEntry",
    "TraceSelection",
    "derivation_block",
    "format_version_for",
    "operators_block",
    "read_derivation",
    "read_operators",
]

#: The format version of packets that use no registered extension.
FORMAT_1_0 = "1.0"
#: The format version a writer puts in ``header.version`` when it uses a 1.1 extension.
FORMAT_1_1 = "1.1"
#: The registered extension names.
DERIVATION = "derivation"
OPERATORS = "operators"

#: Where a fact came from: ``teacher-geometry`` (the teacher's concept states, no output label),
#: ``teacher-probe`` (its output on an operator probe), ``teacher-trace`` (one of its traces),
#: ``declared`` (asserted by the packet's author, not by the teacher).
DERIVATIONS: tuple[str, ...] = get_args(DerivationKind)
#: How a trace step's concept was decoded: ``teacher-readout`` (the teacher's output layer on its
#: state), ``nearest-concept`` (nearest embedding by cosine, as 1.0 generators did), ``declared``.
STEP_DECODINGS: tuple[str, ...] = get_args(StepDecoding)
#: How the traces were chosen: ``cover`` (a set cover), ``random``, ``declared``.
SELECTION_METHODS: tuple[str, ...] = get_args(SelectionMethod)
#: The derivations an operator entry may have (a teacher's answer, or the author's).
OPERATOR_DERIVATIONS: tuple[str, ...] = get_args(OperatorDerivation)


@dataclass(frozen=True)
class TraceSelection:
    """How the traces of a packet were chosen (``derivation.trace_selection``).

    Args:
        method: one of :data:`SELECTION_METHODS`.
        unit: what a unit of coverage is, e.g. ``"transition"``, ``"edge"``, ``"concept"``.
        candidates: number of problems the selection chose from.
        exercised: distinct units the teacher's decoded steps exercise over the candidates.
        covered: distinct units the chosen traces exercise.

    Example:
        >>> from m2kt_ref import TraceSelection
        >>> s = TraceSelection("cover", "transition", candidates=25, exercised=20, covered=20)
        >>> s.covered / s.exercised
        1.0
    """

    method: str
    unit: str
    candidates: int
    exercised: int
    covered: int


@dataclass(frozen=True)
class Derivation:
    """The extension ``derivation`` of a packet, read by :func:`read_derivation`.

    Args:
        edges: one of :data:`DERIVATIONS` per graph edge, in the order of ``graph.edges``.
        trace_steps: how every trace step's concept was decoded (one of
            :data:`STEP_DECODINGS`), or None when the packet does not say.
        trace_selection: how the traces were chosen, or None when the packet does not say.

    Example:
        >>> from m2kt_ref import Derivation
        >>> d = Derivation(edges=("teacher-probe", "declared"), trace_steps="teacher-readout")
        >>> d.edges.count("declared")
        1
    """

    edges: tuple[str, ...]
    trace_steps: str | None = None
    trace_selection: TraceSelection | None = None


@dataclass(frozen=True)
class OperatorEntry:
    """One entry of the extension ``operators``: applying ``operator`` to ``source`` gives
    ``target``, as the teacher answered on the probe ``input``.

    Args:
        operator: id of the concept that acts as the operator.
        source: id of the concept it is applied to.
        target: id of the concept it gives (the teacher's top decoded answer).
        probability: the teacher's probability of that answer, in [0, 1].
        input: the probe, as the teacher's input tokens.
        derivation: one of :data:`OPERATOR_DERIVATIONS`.

    Example:
        >>> from m2kt_ref import OperatorEntry
        >>> e = OperatorEntry("op:+1", "num:2", "num:3", 0.97, (7, 2), "teacher-probe")
        >>> (e.operator, e.source, e.target)
        ('op:+1', 'num:2', 'num:3')
    """

    operator: str
    source: str
    target: str
    probability: float
    input: tuple[int, ...]
    derivation: str


# --------------------------------------------------------------------------- writing


def _integer(value: Any) -> Any:
    """numpy and torch integers as Python ints; anything else unchanged, for the model to judge."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return _operator.index(value)
    return value


def _real(value: Any) -> Any:
    """Real numbers (numpy's included) as Python floats: a number field is written as a float."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _tokens(value: Any) -> Any:
    if hasattr(value, "tolist"):  # a numpy array or a torch tensor
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_integer(v) for v in value]
    return value


def _checked(name: str, data: dict[str, Any], critical: bool) -> dict[str, Any]:
    if not isinstance(critical, bool):
        raise UsageError(f"critical must be a bool, not {type(critical).__name__}")
    for problem in iter_registered_data_errors(name, data):
        raise problem
    return {"critical": critical, "data": data}


def derivation_block(
    edges: Iterable[str],
    *,
    trace_steps: str | None = None,
    trace_selection: TraceSelection | Mapping[str, Any] | None = None,
    critical: bool = False,
) -> dict[str, Any]:
    """The ``derivation`` extension block for a body's ``extensions`` map, validated.

    Args:
        edges: one of :data:`DERIVATIONS` per graph edge, in the order of ``graph.edges``. That
            the count equals the number of edges is checked when the body is assembled.
        trace_steps: how every trace step's concept was decoded (one of :data:`STEP_DECODINGS`);
            omitted when None.
        trace_selection: how the traces were chosen, as a :class:`TraceSelection` or a mapping
            with the same fields; omitted when None.
        critical: mark the extension critical (a 1.0 reader then refuses the packet with
            ``CRITICAL_EXTENSION``); by default it is not.

    Returns:
        ``{"critical": critical, "data": {...}}``, to store as ``extensions["derivation"]``.

    Raises:
        ValidationError: ``SCHEMA_VIOLATION`` with the path of the offending value (e.g.
            ``/body/extensions/derivation/data/edges/1`` for an unknown derivation).
        UsageError: ``critical`` is not a bool.

    Example:
        >>> import m2kt_ref
        >>> block = m2kt_ref.derivation_block(
        ...     ["teacher-probe", "teacher-geometry"], trace_steps="teacher-readout")
        >>> block
        {'critical': False,
         'data': {'edges': ['teacher-probe', 'teacher-geometry'], 'trace_steps': 'teacher-readout'}}
        >>> try:
        ...     m2kt_ref.derivation_block(["guessed"])
        ... except m2kt_ref.ValidationError as exc:
        ...     print(exc.code, exc.path)
        SCHEMA_VIOLATION /body/extensions/derivation/data/edges/0
    """
    if isinstance(edges, str):
        raise UsageError("edges is a sequence of derivations, one per graph edge, not a text")
    data: dict[str, Any] = {"edges": list(edges)}
    if trace_steps is not None:
        data["trace_steps"] = trace_steps
    if trace_selection is not None:
        selection = (
            dataclasses.asdict(trace_selection)
            if isinstance(trace_selection, TraceSelection)
            else dict(trace_selection)
        )
        for key in ("candidates", "exercised", "covered"):
            if key in selection:
                selection[key] = _integer(selection[key])
        data["trace_selection"] = selection
    return _checked(DERIVATION, data, critical)


def operators_block(
    entries: Iterable[OperatorEntry | Mapping[str, Any]], *, critical: bool = False
) -> dict[str, Any]:
    """The ``operators`` extension block for a body's ``extensions`` map, validated.

    Probabilities are written as floats and token ids as integers whatever their Python type
    (numpy and torch scalars and arrays included).

    Args:
        entries: :class:`OperatorEntry` objects, or mappings with the same fields. That their
            concept ids exist is checked when the body is assembled (``DANGLING_REFERENCE``).
        critical: mark the extension critical; by default it is not.

    Returns:
        ``{"critical": critical, "data": {"entries": [...]}}``, to store as
        ``extensions["operators"]``.

    Raises:
        ValidationError: ``SCHEMA_VIOLATION`` with the path of the offending value (e.g.
            ``/body/extensions/operators/data/entries/0/probability`` for 1.5), or
            ``NONFINITE_VALUE`` for a NaN probability.
        UsageError: ``critical`` is not a bool.

    Example:
        >>> import m2kt_ref
        >>> entry = m2kt_ref.OperatorEntry("op:+1", "num:2", "num:3", 1, (7, 2), "teacher-probe")
        >>> m2kt_ref.operators_block([entry])["data"]["entries"][0]["probability"]
        1.0
    """
    rows = []
    for entry in entries:
        row = dataclasses.asdict(entry) if isinstance(entry, OperatorEntry) else dict(entry)
        if "probability" in row:
            row["probability"] = _real(row["probability"])
        if "input" in row:
            row["input"] = _tokens(row["input"])
        rows.append(row)
    return _checked(OPERATORS, {"entries": rows}, critical)


def format_version_for(extensions: Mapping[str, Any] | None) -> str:
    """The ``header.version`` a writer uses for a body with these extensions.

    Args:
        extensions: the body's ``extensions`` map, or None.

    Returns:
        :data:`FORMAT_1_1` when the map holds an extension registered by 1.1, else
        :data:`FORMAT_1_0` (whose packets 1.0 readers read exactly as before).

    Example:
        >>> from m2kt_ref.packet.extensions import derivation_block, format_version_for
        >>> format_version_for({"derivation": derivation_block([])})
        '1.1'
        >>> format_version_for({"x-note": {"critical": False, "data": None}})
        '1.0'
    """
    used = set(extensions or {}) & set(REGISTERED_EXTENSIONS)
    return FORMAT_1_1 if used else FORMAT_1_0


# --------------------------------------------------------------------------- reading


def _extension_data(body: Any, name: str) -> tuple[bool, Any]:
    """(present, data) of extension ``name``, after checking it as a 1.1 reader does."""
    if not isinstance(body, (PacketBody, Mapping)) and isinstance(
        getattr(body, "body", None), PacketBody
    ):
        body = body.body  # a Packet
    if isinstance(body, PacketBody):
        ext = (body.extensions or {}).get(name)
        if ext is None:
            return False, None
        n_edges: int | None = len(body.graph.edges)
        concepts: set[str] | None = {c.id for c in body.concepts}
        data = ext.data
    elif isinstance(body, Mapping):
        extensions = body.get("extensions") or {}
        if not isinstance(extensions, Mapping):
            raise UsageError("the body's extensions is not a map")
        ext = extensions.get(name)
        if ext is None:
            return False, None
        if not isinstance(ext, Mapping) or "data" not in ext:
            raise UsageError(f"extensions[{name!r}] is not an extension block")
        graph = body.get("graph")
        edges = graph.get("edges") if isinstance(graph, Mapping) else None
        n_edges = len(edges) if isinstance(edges, list) else None
        listed = body.get("concepts")
        concepts = (
            {c["id"] for c in listed if isinstance(c, Mapping) and "id" in c}
            if isinstance(listed, list)
            else None
        )
        data = ext["data"]
    else:
        raise UsageError(f"expected a packet body, got {type(body).__name__}")
    problems: list[M2ktError] = list(
        iter_registered_data_errors(name, data, n_edges=n_edges, concepts=concepts)
    )
    if problems:
        raise problems[0]
    return True, data


def read_derivation(body: Any) -> Derivation | None:
    """The ``derivation`` extension of a packet body, or None when it has none.

    Args:
        body: a :class:`~m2kt_ref.PacketBody` (``packet.body``), a :class:`~m2kt_ref.Packet`,
            or a body in the JSON data model (a mapping; the edge count is checked when it holds
            ``graph``).

    Returns:
        The :class:`Derivation`, its lists as tuples; None when the body has no such extension.

    Raises:
        ValidationError: ``SCHEMA_VIOLATION`` when the data breaks the extension's schema or
            has not one derivation per graph edge.
        UsageError: ``body`` is not a packet body.

    Example:
        >>> import m2kt_ref
        >>> m2kt_ref.read_derivation(m2kt_ref.demo_packet()) is None   # a 1.0 packet
        True
        >>> body = {"graph": {"edges": [{"source": "a", "target": "b", "relation": "is_a",
        ...                              "weight": 1.0}]},
        ...         "extensions": {"derivation": m2kt_ref.derivation_block(["declared"])}}
        >>> m2kt_ref.read_derivation(body)
        Derivation(edges=('declared',), trace_steps=None, trace_selection=None)
    """
    present, data = _extension_data(body, DERIVATION)
    if not present:
        return None
    parsed = DerivationData.model_validate(data)
    selection = parsed.trace_selection
    return Derivation(
        edges=tuple(parsed.edges),
        trace_steps=parsed.trace_steps,
        trace_selection=None
        if selection is None
        else TraceSelection(
            method=selection.method,
            unit=selection.unit,
            candidates=selection.candidates,
            exercised=selection.exercised,
            covered=selection.covered,
        ),
    )


def read_operators(body: Any) -> tuple[OperatorEntry, ...]:
    """The entries of the ``operators`` extension of a packet body (empty when it has none).

    Args:
        body: a :class:`~m2kt_ref.PacketBody`, a :class:`~m2kt_ref.Packet`, or a body in the
            JSON data model (a mapping; concept ids are checked when it holds ``concepts``).

    Returns:
        The :class:`OperatorEntry` objects, in the packet's order; probabilities as floats.

    Raises:
        ValidationError: ``SCHEMA_VIOLATION`` when the data breaks the extension's schema,
            ``DANGLING_REFERENCE`` when an entry names a concept the body does not have.
        UsageError: ``body`` is not a packet body.

    Example:
        >>> import m2kt_ref
        >>> entry = {"operator": "op", "source": "a", "target": "b", "probability": 0.5,
        ...          "input": [3, 0], "derivation": "teacher-probe"}
        >>> body = {"extensions": {"operators": m2kt_ref.operators_block([entry])}}
        >>> m2kt_ref.read_operators(body)[0].input
        (3, 0)
        >>> m2kt_ref.read_operators(m2kt_ref.demo_packet())
        ()
    """
    present, data = _extension_data(body, OPERATORS)
    if not present:
        return ()
    parsed = OperatorsData.model_validate(data)
    return tuple(
        OperatorEntry(
            operator=e.operator,
            source=e.source,
            target=e.target,
            probability=float(e.probability),
            input=tuple(e.input),
            derivation=e.derivation,
        )
        for e in parsed.entries
    )
