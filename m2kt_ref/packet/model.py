"""The packet's data model (spec §3) as pydantic v2 models.

The JSON Schemas in ``schemas/`` are the single source of truth for structure; these models
mirror them so that Python code gets typed objects and fast validation, and the tests check that
the models and the schemas accept and reject the same generated corpus. Semantic rules that a
schema cannot say (references resolve, is_a is acyclic, tensor shapes fit) live in
:mod:`m2kt_ref.packet.rules`.

Optional fields are omitted, never null, and no field has a default: what was decoded is exactly
what is re-encoded, which keeps decode -> encode byte-identical. An optional field is typed as its
value type with :data:`OMITTED` (``None``) as the value read when it is absent: pydantic does not
validate defaults, so omission is accepted while an explicit ``null`` is refused, as the schema
says.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "OMITTED",
    "REGISTERED_EXTENSIONS",
    "RELATIONS",
    "Anchor",
    "Concept",
    "Count",
    "DerivationData",
    "DerivationKind",
    "Digest",
    "Edge",
    "Extension",
    "Generator",
    "Graph",
    "Header",
    "Identifier",
    "Int",
    "Label",
    "Manifold",
    "NonNegative",
    "OperatorDerivation",
    "OperatorEntryData",
    "OperatorsData",
    "PacketBody",
    "PacketId",
    "Positive",
    "Provenance",
    "Safety",
    "Scalar",
    "SelectionMethod",
    "StepDecoding",
    "TaskRef",
    "Teacher",
    "TensorInfo",
    "TensorName",
    "Token",
    "Tokens",
    "Trace",
    "TraceSelectionData",
    "TraceStep",
    "Unit",
]

#: Relations every reader understands (spec §3.5); others must start with ``x-``.
RELATIONS = frozenset(
    {"is_a", "part_of", "implies", "similar_to", "precedes", "inverse_of", "composes_to"}
)

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/+*=<>-]{0,127}$")]
TensorName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/+*=<>-]{0,255}$")]
Label = Annotated[str, Field(max_length=1024)]
PacketId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
#: Every integer in a body fits a signed or an unsigned 64-bit integer (spec §4.2): CBOR encodes
#: it without a bignum tag and every reader can hold it.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
Int = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]
Count = Annotated[int, Field(ge=0, le=INT_MAX)]
Positive = Annotated[int, Field(ge=1, le=INT_MAX)]
NonNegative = Annotated[float, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
Token = Annotated[int, Field(ge=0, le=2**31 - 1)]
Tokens = Annotated[list[Token], Field(min_length=1, max_length=4096)]


def _float_only(value: Any) -> Any:
    # strict float still takes ints; an int that failed Int must not become a float silently
    if isinstance(value, int):
        raise ValueError("integer outside [-2**63, 2**64 - 1]")
    return value


Scalar = str | Int | Annotated[float, BeforeValidator(_float_only)] | bool

#: Value of an optional field that is absent (see the module docstring).
OMITTED: Any = None


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )


class Header(_Section):
    """Format identification; ``version`` is ``MAJOR.MINOR`` and readers accept major 1 only."""

    format: Literal["m2kt"]
    version: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$")]
    created: Annotated[
        str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")
    ]
    title: Label = OMITTED


class Teacher(_Section):
    """The model whose knowledge the packet carries, and where its latent space was read."""

    name: Label
    architecture: Label
    latent_dim: Annotated[int, Field(ge=1, le=1 << 20)]
    layer: Label
    model_digest: Digest
    n_parameters: Count = OMITTED


class Manifold(_Section):
    """Local shape of a concept manifold: principal directions (k x d), their variances (k)."""

    directions: TensorName
    variances: TensorName
    spread: NonNegative
    support: Positive


class Concept(_Section):
    """One concept: an embedding in teacher space and, optionally, the manifold around it."""

    id: Identifier
    label: Label
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    embedding: TensorName
    manifold: Manifold = OMITTED
    level: Count = OMITTED


class Edge(_Section):
    """A typed, weighted relation ``source -relation-> target`` between two concepts."""

    source: Identifier
    target: Identifier
    relation: Annotated[str, Field(pattern=r"^([a-z][a-z_]{0,63}|x-[A-Za-z0-9_.-]{1,64})$")]
    weight: Unit


class Graph(_Section):
    """The abstraction graph; its is_a edges form a DAG."""

    edges: list[Edge]


class TraceStep(_Section):
    """One step of a reasoning trace: the concept nearest to the teacher's state at that step."""

    concept: Identifier
    similarity: Annotated[float, Field(ge=-1, le=1)] = OMITTED
    position: Count = OMITTED


class Trace(_Section):
    """The teacher's path through concept space on one canonical problem, and its answer."""

    id: Identifier
    input: Tokens
    answer: Count
    answer_label: Label = OMITTED
    steps: Annotated[list[TraceStep], Field(min_length=1)]
    states: TensorName = OMITTED


class Anchor(_Section):
    """An input both models can run, with the teacher's state on it: a point for alignment."""

    id: Identifier
    input: Tokens
    position: Count
    state: TensorName
    concept: Identifier = OMITTED


class Generator(_Section):
    name: Label
    version: Label


class TaskRef(_Section):
    name: Label
    options: dict[Annotated[str, Field(max_length=64)], Scalar]


class Provenance(_Section):
    """Where the packet came from: generator, task, parents and the task inputs it consumed."""

    generator: Generator
    task: TaskRef
    parents: list[PacketId]
    task_inputs_used: Count
    concept_probes_used: Count
    parameters: dict[Annotated[str, Field(max_length=64)], Any]
    seed: Int = OMITTED


class Safety(_Section):
    """The producer's recommended ingestion policy; a student may be stricter, never laxer."""

    require_signature: bool
    min_signers: Positive
    protected_concepts: list[Identifier] = OMITTED
    max_parameter_drift: NonNegative = OMITTED
    max_output_divergence: NonNegative = OMITTED
    max_capability_drop: Unit = OMITTED


class Extension(_Section):
    critical: bool
    data: Any


class TensorInfo(_Section):
    """Where a tensor's bytes sit in the data section and what they must hash to."""

    name: TensorName
    dtype: Literal["f32", "f16", "bf16", "i8"]
    shape: Annotated[list[Count], Field(max_length=8)]
    offset: Count
    length: Count
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    scale: Annotated[float, Field(gt=0)] = OMITTED


class PacketBody(_Section):
    """The signed, hashed part of a packet: everything but the tensor bytes and signatures."""

    header: Header
    teacher: Teacher
    concepts: list[Concept]
    graph: Graph
    traces: list[Trace]
    anchors: list[Anchor]
    provenance: Provenance
    safety: Safety
    tensors: list[TensorInfo]
    extensions: dict[
        Annotated[str, Field(pattern=r"^([a-z][a-z0-9_.-]{0,63}|x-[A-Za-z0-9_.-]{1,64})$")],
        Extension,
    ] = OMITTED

    def to_data(
        self, *, share_free_form: bool = False, exclude: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The body in the JSON data model (what both encodings carry), optional fields omitted.

        ``exclude_unset`` rather than ``exclude_none``: an extension's ``data`` may be null.

        Args:
            share_free_form: put the model's own ``provenance.parameters`` object in the result
                instead of a deep copy (pydantic copies every object of an ``Any`` value, which
                doubled the memory of a body made mostly of free-form items, issue 13.2). Do
                not modify the result then.
            exclude: top-level entries to leave out.
        """
        skip: dict[str, Any] = dict.fromkeys(exclude, True)
        share = share_free_form and "provenance" not in exclude
        if share:
            skip["provenance"] = {"parameters": True}
        data = self.model_dump(mode="python", exclude_unset=True, exclude=skip or None)
        if share:
            data["provenance"]["parameters"] = self.provenance.parameters
        return data


# --------------------------------------------------------------------------- registered extensions
# The ``data`` of the extensions registered by format 1.1 (spec §3.12). The body keeps each
# extension's data as the free-form value it decoded (so re-encoding is byte-identical); these
# models check it in validation step 5 (:mod:`m2kt_ref.packet.rules`) and are not kept.

#: Where a fact of the packet came from (``ext-derivation.schema.json#/$defs/derivation``).
DerivationKind = Literal["teacher-geometry", "teacher-probe", "teacher-trace", "declared"]
#: How a trace step's concept was decoded (``ext-derivation.schema.json#/$defs/decoding``).
StepDecoding = Literal["teacher-readout", "nearest-concept", "declared"]
#: How the traces were chosen (``ext-derivation.schema.json#/$defs/method``).
SelectionMethod = Literal["cover", "random", "declared"]
#: Where an operator fact came from (``ext-operators.schema.json#/$defs/derivation``).
OperatorDerivation = Literal["teacher-probe", "teacher-trace", "declared"]


class TraceSelectionData(_Section):
    """How the traces were chosen: method, unit of coverage, and the coverage counts."""

    method: SelectionMethod
    unit: Label
    candidates: Count
    exercised: Count
    covered: Count


class DerivationData(_Section):
    """The data of the extension ``derivation``: one derivation per graph edge, and the traces'."""

    edges: list[DerivationKind]
    trace_steps: StepDecoding = OMITTED
    trace_selection: TraceSelectionData = OMITTED


class OperatorEntryData(_Section):
    """One operator fact: applying ``operator`` to ``source`` gives ``target``."""

    operator: Identifier
    source: Identifier
    target: Identifier
    probability: Unit
    input: Tokens
    derivation: OperatorDerivation


class OperatorsData(_Section):
    """The data of the extension ``operators``."""

    entries: list[OperatorEntryData]


#: Extension name -> model of its ``data``, for the extensions this version registers.
REGISTERED_EXTENSIONS: dict[str, type[BaseModel]] = {
    "derivation": DerivationData,
    "operators": OperatorsData,
}
