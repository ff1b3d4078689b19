"""Semantic rules a JSON Schema cannot state (spec §6), checked on a schema-valid body.

They include the registered extensions of format 1.1 (spec §3.12): the body schema lets any
extension ``data`` through, so the data of a registered one is checked here, in step 5, against
its model (:data:`m2kt_ref.packet.model.REGISTERED_EXTENSIONS`), then its counts and references.

Each check yields every problem it finds, so ``m2kt validate`` can list them all; callers that
want the first one take ``next(iter_semantic_errors(...))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Set
from typing import Any

import pydantic

from m2kt_ref.errors import M2ktError, TensorError, ValidationError, VersionError
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.columns import layout_is_valid
from m2kt_ref.packet.model import (
    INT_MAX,
    INT_MIN,
    REGISTERED_EXTENSIONS,
    RELATIONS,
    DerivationData,
    OperatorsData,
    PacketBody,
    TensorInfo,
)

__all__ = [
    "KNOWN_EXTENSIONS",
    "iter_cycle_errors",
    "iter_extension_errors",
    "iter_layout_errors",
    "iter_reference_errors",
    "iter_registered_data_errors",
    "iter_registered_extension_errors",
    "iter_semantic_errors",
    "iter_tensor_data_errors",
]

#: Extensions this reader understands (those registered by format 1.1, spec §3.12); a critical
#: extension not listed here is refused.
KNOWN_EXTENSIONS: frozenset[str] = frozenset(REGISTERED_EXTENSIONS)


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    dup = []
    for i in ids:
        if i in seen:
            dup.append(i)
        seen.add(i)
    return dup


def iter_layout_errors(body: PacketBody) -> Iterator[M2ktError]:
    """Tensor descriptors: dtype/scale pairing, byte length vs shape, and the packed layout."""
    if layout_is_valid(body.tensors):  # the same rules in bulk; one by one only to report
        return
    end = 0
    for i, t in enumerate(body.tensors):
        path = f"/body/tensors/{i}"
        if (t.dtype == "i8") != (t.scale is not None):
            yield TensorError("TENSOR_DTYPE", f"{t.name}: scale is required for i8 only", path=path)
        want = tz.expected_length(t.dtype, t.shape)
        if t.length != want:
            yield TensorError(
                "TENSOR_SHAPE",
                f"{t.name}: length {t.length} but {t.dtype}{list(t.shape)} needs {want}",
                path=path,
            )
        if t.offset != tz.aligned(end):
            yield TensorError(
                "TENSOR_LAYOUT",
                f"{t.name}: offset {t.offset}, expected {tz.aligned(end)}",
                path=path + "/offset",
            )
        end = t.offset + t.length


def _shape_of(body: PacketBody) -> dict[str, list[int]]:
    return {t.name: t.shape for t in body.tensors}


def iter_reference_errors(body: PacketBody) -> Iterator[M2ktError]:
    """Ids unique, every reference resolves, and every tensor has the shape its user needs."""
    for what, ids in (
        ("concept", [c.id for c in body.concepts]),
        ("trace", [t.id for t in body.traces]),
        ("anchor", [a.id for a in body.anchors]),
        ("tensor", [t.name for t in body.tensors]),
    ):
        for dup in _duplicates(ids) if len(set(ids)) != len(ids) else ():
            yield ValidationError("DUPLICATE_ID", f"{what} id {dup!r} appears more than once")
    d = body.teacher.latent_dim
    shapes = _shape_of(body)
    concepts = {c.id for c in body.concepts}

    def tensor(name: str, want: list[int], path: str) -> Iterator[M2ktError]:
        got = shapes.get(name)
        if got is None:
            yield ValidationError("DANGLING_REFERENCE", f"no tensor named {name!r}", path=path)
        elif got != want:
            yield ValidationError(
                "DIMENSION_MISMATCH", f"tensor {name!r} has shape {got}, needs {want}", path=path
            )

    def concept(cid: str, path: str) -> Iterator[M2ktError]:
        if cid not in concepts:
            yield ValidationError("DANGLING_REFERENCE", f"no concept with id {cid!r}", path=path)

    # Each loop below is skipped when a set-level check shows it would find nothing (thousands
    # of concepts, anchors or edges cost milliseconds one by one); it runs to report.
    plain = [c.embedding for c in body.concepts if c.manifold is None]
    fine = len(plain) == len(body.concepts) and all(shapes.get(n) == [d] for n in plain)
    for i, c in enumerate(() if fine else body.concepts):
        yield from tensor(c.embedding, [d], f"/body/concepts/{i}/embedding")
        if c.manifold is not None:
            m = c.manifold
            directions = shapes.get(m.directions)
            k = directions[0] if directions else 0
            yield from tensor(m.directions, [k, d], f"/body/concepts/{i}/manifold/directions")
            yield from tensor(m.variances, [k], f"/body/concepts/{i}/manifold/variances")
    edges = body.graph.edges
    ends = {e.source for e in edges} | {e.target for e in edges}
    relations = {e.relation for e in edges}
    fine = ends <= concepts and all(r in RELATIONS or r.startswith("x-") for r in relations)
    for i, e in enumerate(() if fine else edges):
        if e.source not in concepts or e.target not in concepts:
            missing = e.source if e.source not in concepts else e.target
            yield ValidationError(
                "DANGLING_REFERENCE",
                f"edge names unknown concept {missing!r}",
                path=f"/body/graph/edges/{i}",
            )
        if e.relation not in RELATIONS and not e.relation.startswith("x-"):
            yield ValidationError(
                "UNKNOWN_RELATION",
                f"relation {e.relation!r} is not registered",
                path=f"/body/graph/edges/{i}/relation",
            )
    for i, t in enumerate(body.traces):
        for j, s in enumerate(t.steps):
            yield from concept(s.concept, f"/body/traces/{i}/steps/{j}/concept")
        if t.states is not None:
            yield from tensor(t.states, [len(t.steps), d], f"/body/traces/{i}/states")
    fine = (
        all(shapes.get(a.state) == [d] for a in body.anchors)
        and {a.concept for a in body.anchors if a.concept is not None} <= concepts
    )
    for i, a in enumerate(() if fine else body.anchors):
        yield from tensor(a.state, [d], f"/body/anchors/{i}/state")
        if a.concept is not None:
            yield from concept(a.concept, f"/body/anchors/{i}/concept")
    for i, cid in enumerate(body.safety.protected_concepts or []):
        yield from concept(cid, f"/body/safety/protected_concepts/{i}")


def iter_cycle_errors(body: PacketBody) -> Iterator[M2ktError]:
    """is_a edges must form a DAG (Kahn's algorithm; self-loops are cycles)."""
    children: dict[str, list[str]] = {}
    indegree: dict[str, int] = {}
    for e in body.graph.edges:
        if e.relation == "is_a":
            children.setdefault(e.source, []).append(e.target)
            indegree[e.target] = indegree.get(e.target, 0) + 1
            indegree.setdefault(e.source, 0)
    ready = [n for n, k in indegree.items() if k == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for nxt in children.get(node, ()):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if seen != len(indegree):
        stuck = sorted(n for n, k in indegree.items() if k > 0)[:5]
        yield ValidationError(
            "ISA_CYCLE", f"is_a edges form a cycle through {', '.join(stuck)}", path="/body/graph"
        )


#: Deepest nesting a free-form value may have below its own root.
_FREE_FORM_DEPTH = 32


def _json_model_problem(value: Any) -> tuple[str, str] | None:
    """Why ``value`` is outside the JSON data model, and where (a JSON Pointer relative to
    ``value``); None when it is inside.

    Free-form values can hold millions of items (up to ``max_body_items``), so the common
    answer, "inside", comes from a flat loop over exact types; only a value it cannot vouch for
    is walked again, recursively, for the first problem in document order and its path.
    """
    if _plainly_in_json_model(value):
        return None
    return _first_json_model_problem(value)


def _plainly_in_json_model(value: Any) -> bool:
    """True when every item of ``value`` is of an exact JSON type, in range and not too deep;
    False when one is not, or is of a type this loop leaves to the recursive walk (subclasses).

    Depth first with one iterator per open container, so its memory is the nesting depth, not
    the number of containers (a value can be millions of empty maps)."""
    if type(value) is not dict and type(value) is not list:
        return _plain_scalar(value)
    opened = _open(value, 0)
    if opened is None:
        return False
    stack: list[tuple[Any, int]] = [opened]
    while stack:
        children, depth = stack[-1]
        for child in children:
            ct = type(child)
            if ct is dict or ct is list:
                if child:
                    inner = _open(child, depth + 1)
                    if inner is None:
                        return False
                    stack.append(inner)
                    break
            elif not _plain_scalar(child):
                return False
        else:
            stack.pop()
    return True


def _open(container: Any, depth: int) -> tuple[Any, int] | None:
    """An iterator over a container's values at ``depth``, or None when its keys are not all
    text or its items would lie deeper than allowed."""
    if container and depth >= _FREE_FORM_DEPTH:
        return None
    if type(container) is dict:
        if not all(type(k) is str for k in container):
            return None
        return iter(container.values()), depth
    return iter(container), depth


def _plain_scalar(value: Any) -> bool:
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return INT_MIN <= value <= INT_MAX
    if t is float:
        return math.isfinite(value)
    return False


def _first_json_model_problem(value: Any, depth: int = 0) -> tuple[str, str] | None:
    """The recursive walk behind :func:`_json_model_problem`: the first problem in document
    order (arrays by index, maps in their order) and its path."""
    if depth > _FREE_FORM_DEPTH:
        return "nested too deeply", ""
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else ("integer outside [-2**63, 2**64 - 1]", "")
    if isinstance(value, float):
        return None if math.isfinite(value) else ("non-finite number", "")
    if isinstance(value, list):
        items: Iterator[tuple[str, Any]] = ((str(i), v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "map key that is not a text string", ""
        items = ((k.replace("~", "~0").replace("/", "~1"), v) for k, v in value.items())
    else:
        return f"value of type {type(value).__name__}", ""
    for key, item in items:
        found = _first_json_model_problem(item, depth + 1)
        if found:
            return found[0], f"/{key}{found[1]}"
    return None


def iter_extension_errors(body: PacketBody) -> Iterator[M2ktError]:
    """Unknown critical extensions are refused; all extension data stays in the JSON model."""
    for name, ext in (body.extensions or {}).items():
        path = f"/body/extensions/{name}"
        if ext.critical and name not in KNOWN_EXTENSIONS:
            yield VersionError(
                "CRITICAL_EXTENSION", f"critical extension {name!r} unknown", path=path
            )
        found = _json_model_problem(ext.data)
        if found:
            problem, where = found
            code = "NONFINITE_VALUE" if problem == "non-finite number" else "SCHEMA_VIOLATION"
            yield ValidationError(
                code, f"extension data holds a {problem}", path=f"{path}/data{where}"
            )
    found = _json_model_problem(body.provenance.parameters)
    if found:
        problem, where = found
        code = "NONFINITE_VALUE" if problem == "non-finite number" else "SCHEMA_VIOLATION"
        yield ValidationError(
            code, f"parameters hold a {problem}", path=f"/body/provenance/parameters{where}"
        )


def _model_errors(exc: pydantic.ValidationError, prefix: str) -> Iterator[M2ktError]:
    for err in exc.errors(include_url=False, include_input=False):
        path = prefix + "".join("/" + str(p) for p in err["loc"])
        code = "NONFINITE_VALUE" if err["type"] == "finite_number" else "SCHEMA_VIOLATION"
        yield ValidationError(code, err["msg"], path=path)


def iter_registered_data_errors(
    name: str, data: Any, *, n_edges: int | None = None, concepts: Set[str] | None = None
) -> Iterator[M2ktError]:
    """Problems of the ``data`` of the registered extension ``name`` (spec §3.12).

    The schema first (``SCHEMA_VIOLATION``, ``NONFINITE_VALUE``, with paths under
    ``/body/extensions/NAME/data``); on data that satisfies it, the number of edge derivations
    against ``n_edges`` and the concept ids of operator entries against ``concepts``, each when
    given.
    """
    prefix = f"/body/extensions/{name}/data"
    try:
        parsed = REGISTERED_EXTENSIONS[name].model_validate(data)
    except pydantic.ValidationError as exc:
        yield from _model_errors(exc, prefix)
        return
    if isinstance(parsed, DerivationData) and n_edges is not None and len(parsed.edges) != n_edges:
        yield ValidationError(
            "SCHEMA_VIOLATION",
            f"{len(parsed.edges)} edge derivations for {n_edges} graph edges",
            path=prefix + "/edges",
        )
    if isinstance(parsed, OperatorsData) and concepts is not None:
        for i, entry in enumerate(parsed.entries):
            for field in ("operator", "source", "target"):
                cid = getattr(entry, field)
                if cid not in concepts:
                    yield ValidationError(
                        "DANGLING_REFERENCE",
                        f"no concept with id {cid!r}",
                        path=f"{prefix}/entries/{i}/{field}",
                    )


def iter_registered_extension_errors(body: PacketBody) -> Iterator[M2ktError]:
    """The registered extensions of a body (spec §3.12): schema, edge count, concept references.

    Data outside the JSON data model is left to :func:`iter_extension_errors`, which reports it.
    """
    extensions = body.extensions or {}
    concepts = {c.id for c in body.concepts}
    for name in REGISTERED_EXTENSIONS:
        ext = extensions.get(name)
        if ext is None or _json_model_problem(ext.data):
            continue
        yield from iter_registered_data_errors(
            name, ext.data, n_edges=len(body.graph.edges), concepts=concepts
        )


def iter_semantic_errors(body: PacketBody) -> Iterator[M2ktError]:
    """All semantic problems of a schema-valid body (no tensor bytes needed)."""
    yield from iter_layout_errors(body)
    yield from iter_reference_errors(body)
    yield from iter_cycle_errors(body)
    yield from iter_extension_errors(body)
    yield from iter_registered_extension_errors(body)


def iter_tensor_data_errors(
    body: PacketBody, data: memoryview, *, digests: bool = True, workers: int | None = None
) -> Iterator[M2ktError]:
    """Check the data section against the descriptors: size, zero padding, digests, finiteness.

    Assumes the layout checks passed. Each tensor is hashed and then scanned while its bytes are
    still in cache; tensors are spread over a thread pool by size (:func:`tensors.map_by_size`).
    Problems come out in stages: layout, then digests, then values.
    """
    end = body.tensors[-1].offset + body.tensors[-1].length if body.tensors else 0
    if len(data) != tz.aligned(end):
        yield TensorError(
            "TENSOR_LAYOUT",
            f"data section holds {len(data)} bytes, descriptors need {tz.aligned(end)}",
            path="/data",
        )
        return
    cursor = 0
    for t in body.tensors:
        if any(data[cursor : t.offset]):
            yield TensorError("TENSOR_LAYOUT", f"non-zero padding before {t.name}", path="/data")
        cursor = t.offset + t.length
    if any(data[cursor:]):
        yield TensorError("TENSOR_LAYOUT", "non-zero padding at the end", path="/data")

    def scan(t: TensorInfo) -> tuple[str | None, bool, bool]:
        digest = tz.sha256_hex(data[t.offset : t.offset + t.length]) if digests else None
        stored = tz.view(data, t.dtype, tuple(t.shape), t.offset)
        reserved = t.dtype == "i8" and stored.size > 0 and int(stored.min()) == -128
        return digest, tz.all_finite(stored, t.dtype), reserved

    results = tz.map_by_size(scan, body.tensors, [t.length for t in body.tensors], workers)
    for i, (t, (got, _, _)) in enumerate(zip(body.tensors, results, strict=True)):
        if got is not None and got != t.sha256:
            yield TensorError(
                "TENSOR_DIGEST",
                f"{t.name}: bytes hash to {got[:16]}…",
                path=f"/body/tensors/{i}/sha256",
            )
    for i, (t, (_, finite, reserved)) in enumerate(zip(body.tensors, results, strict=True)):
        if not finite:
            yield ValidationError(
                "NONFINITE_VALUE", f"{t.name} holds NaN or infinity", path=f"/body/tensors/{i}"
            )
        if reserved:
            yield TensorError(
                "TENSOR_DTYPE", f"{t.name}: i8 value -128 is reserved", path=f"/body/tensors/{i}"
            )
