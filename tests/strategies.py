"""Hypothesis strategies for knowledge packets, and mutators that break them.

Valid packets are built the way a producer builds them: body fields as the models describe them
plus numpy tensors, put together by :func:`m2kt_ref.packet.codec.assemble` (which lays out the data
section, hashes the tensors and validates the result). They cover every dtype, optional fields
present and absent, free-form JSON values, private relations and extensions, and the registered
extensions of format 1.1 (``derivation``, ``operators``, built with
:mod:`m2kt_ref.packet.extensions`).

Mutators take the JSON data model of a valid body and break exactly one rule. Each one says
whether the JSON Schema can express the rule it breaks (``in_schema``) and which error code the
models and semantic checks must report (``code``); ``tests/test_schema.py`` checks both.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from m2kt_ref.packet import codec
from m2kt_ref.packet import extensions as ext
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.model import INT_MAX, INT_MIN, REGISTERED_EXTENSIONS, RELATIONS

DTYPES = ("f32", "f16", "bf16", "i8")

# --------------------------------------------------------------------------- value strategies

identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/+*=<>-]{0,11}", fullmatch=True)
kinds = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
labels = st.text(max_size=16)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
unit = st.floats(0, 1)
non_negative = st.floats(min_value=0, allow_infinity=False)
ints = st.integers(INT_MIN, INT_MAX)
timestamps = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31)
).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S") + ("" if t.microsecond % 2 else ".5") + "Z")
#: Names of extensions a reader does not know (the registered names are drawn on purpose only).
extension_names = st.from_regex(
    r"[a-z][a-z0-9_.-]{0,10}|x-[A-Za-z0-9_.-]{1,10}", fullmatch=True
).filter(lambda name: name not in REGISTERED_EXTENSIONS)
private_relations = st.from_regex(r"x-[A-Za-z0-9_.-]{1,10}", fullmatch=True)
map_keys = st.text(max_size=10)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(map_keys, inner, max_size=3),
    max_leaves=8,
)
scalars = st.one_of(st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False), labels)


def examples(ci: int) -> int:
    """A property test's example count: ``ci`` under the CI profile, the ``fuzz`` profile's
    count (``M2KT_FUZZ_EXAMPLES``, tools/fuzz.py) when that one is loaded."""
    import os

    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
        return max(ci, int(os.environ.get("M2KT_FUZZ_EXAMPLES", "5000")))
    return ci


def _optional(draw: st.DrawFn, target: dict[str, Any], key: str, strategy: Any) -> None:
    """Set ``target[key]`` from ``strategy`` half of the time (optional fields are omitted)."""
    if draw(st.booleans()):
        target[key] = draw(strategy)


def unique_ids(draw: st.DrawFn, n: int) -> list[str]:
    """``n`` distinct identifiers: random stems made unique by a ``.index`` suffix."""
    return [f"{draw(identifiers)}.{i}" for i in range(n)]


@st.composite
def encoded_tensors(draw: st.DrawFn, shape: tuple[int, ...]) -> tz.EncodedTensor:
    """A tensor of the given shape in any dtype, values small enough for every dtype."""
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1000, 1000, width=32)))
    return tz.encode(values, dtype)


# --------------------------------------------------------------------------- packets


@st.composite
def packet_fields(
    draw: st.DrawFn, *, max_concepts: int = 4, max_dim: int = 5
) -> tuple[dict[str, Any], dict[str, tz.EncodedTensor]]:
    """Body fields (all but ``tensors``) and the named tensors they reference."""
    d = draw(st.integers(1, max_dim))
    n = draw(st.integers(0, max_concepts))
    ids = unique_ids(draw, n)
    tensors: dict[str, tz.EncodedTensor] = {}

    def tensor(shape: tuple[int, ...]) -> str:
        name = f"t{len(tensors)}/" + draw(identifiers)
        tensors[name] = draw(encoded_tensors(shape))
        return name

    concepts = []
    for cid in ids:
        concept: dict[str, Any] = {
            "id": cid,
            "label": draw(labels),
            "kind": draw(kinds),
            "embedding": tensor((d,)),
        }
        if draw(st.booleans()):
            k = draw(st.integers(0, 2))
            concept["manifold"] = {
                "directions": tensor((k, d)),
                "variances": tensor((k,)),
                "spread": draw(non_negative),
                "support": draw(st.integers(1, INT_MAX)),
            }
        _optional(draw, concept, "level", st.integers(0, INT_MAX))
        concepts.append(concept)

    edges = []
    relations = st.sampled_from(sorted(RELATIONS)) | private_relations
    for _ in range(draw(st.integers(0, 6)) if n else 0):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        relation = draw(relations)
        if relation == "is_a":  # is_a only from a later concept to an earlier one: a DAG
            if a == b:
                continue
            a, b = max(a, b), min(a, b)
        edges.append(
            {"source": ids[a], "target": ids[b], "relation": relation, "weight": draw(unit)}
        )

    traces = []
    trace_ids = unique_ids(draw, draw(st.integers(0, 2))) if n else []
    for tid in trace_ids:
        steps = []
        for _ in range(draw(st.integers(1, 3))):
            step: dict[str, Any] = {"concept": draw(st.sampled_from(ids))}
            _optional(draw, step, "similarity", st.floats(-1, 1))
            _optional(draw, step, "position", st.integers(0, INT_MAX))
            steps.append(step)
        trace: dict[str, Any] = {
            "id": tid,
            "input": draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=5)),
            "answer": draw(st.integers(0, INT_MAX)),
            "steps": steps,
        }
        _optional(draw, trace, "answer_label", labels)
        if draw(st.booleans()):
            trace["states"] = tensor((len(steps), d))
        traces.append(trace)

    anchors = []
    for aid in unique_ids(draw, draw(st.integers(0, 3))):
        anchor: dict[str, Any] = {
            "id": aid,
            "input": draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=3)),
            "position": draw(st.integers(0, 9)),
            "state": tensor((d,)),
        }
        if ids:
            _optional(draw, anchor, "concept", st.sampled_from(ids))
        anchors.append(anchor)

    header: dict[str, Any] = {
        "format": "m2kt",
        "version": "1." + str(draw(st.integers(0, 9999))),
        "created": draw(timestamps),
    }
    _optional(draw, header, "title", labels)
    teacher: dict[str, Any] = {
        "name": draw(labels),
        "architecture": draw(labels),
        "latent_dim": d,
        "layer": draw(labels),
        "model_digest": "sha256:" + draw(hex64),
    }
    _optional(draw, teacher, "n_parameters", st.integers(0, INT_MAX))
    provenance: dict[str, Any] = {
        "generator": {"name": draw(labels), "version": draw(labels)},
        "task": {
            "name": draw(labels),
            "options": draw(st.dictionaries(map_keys, scalars, max_size=3)),
        },
        "parents": draw(st.lists(hex64, max_size=2)),
        "task_inputs_used": draw(st.integers(0, INT_MAX)),
        "concept_probes_used": draw(st.integers(0, INT_MAX)),
        "parameters": draw(st.dictionaries(map_keys, json_values, max_size=3)),
    }
    _optional(draw, provenance, "seed", ints)
    safety: dict[str, Any] = {
        "require_signature": draw(st.booleans()),
        "min_signers": draw(st.integers(1, INT_MAX)),
    }
    if ids:
        _optional(draw, safety, "protected_concepts", st.lists(st.sampled_from(ids), max_size=2))
    _optional(draw, safety, "max_parameter_drift", non_negative)
    _optional(draw, safety, "max_output_divergence", non_negative)
    _optional(draw, safety, "max_capability_drop", unit)
    fields: dict[str, Any] = {
        "header": header,
        "teacher": teacher,
        "concepts": concepts,
        "graph": {"edges": edges},
        "traces": traces,
        "anchors": anchors,
        "provenance": provenance,
        "safety": safety,
    }
    if draw(st.booleans()):
        fields["extensions"] = draw(
            st.dictionaries(
                extension_names,
                st.fixed_dictionaries({"critical": st.just(False), "data": json_values}),
                max_size=2,
            )
        )
    if draw(st.booleans()):
        fields.setdefault("extensions", {}).update(
            draw(registered_extensions([c["id"] for c in concepts], len(edges)))
        )
    # descriptor order is the producer's choice: shuffle it
    order = draw(st.permutations(list(tensors)))
    return fields, {name: tensors[name] for name in order}


@st.composite
def trace_selections(draw: st.DrawFn) -> ext.TraceSelection:
    """A ``derivation.trace_selection``: covered <= exercised, as a selection among candidates."""
    exercised = draw(st.integers(0, 2**40))
    return ext.TraceSelection(
        method=draw(st.sampled_from(ext.SELECTION_METHODS)),
        unit=draw(st.sampled_from(["transition", "edge", "concept"]) | labels),
        candidates=draw(st.integers(0, INT_MAX)),
        exercised=exercised,
        covered=draw(st.integers(0, exercised)),
    )


@st.composite
def operator_entries(draw: st.DrawFn, ids: list[str]) -> ext.OperatorEntry:
    """One ``operators`` entry over the concepts ``ids`` (non-empty)."""
    return ext.OperatorEntry(
        operator=draw(st.sampled_from(ids)),
        source=draw(st.sampled_from(ids)),
        target=draw(st.sampled_from(ids)),
        probability=draw(unit),
        input=tuple(draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=4))),
        derivation=draw(st.sampled_from(ext.OPERATOR_DERIVATIONS)),
    )


@st.composite
def registered_extensions(draw: st.DrawFn, ids: list[str], n_edges: int) -> dict[str, Any]:
    """The registered extensions of format 1.1 for a body with these concepts and edge count:
    ``derivation`` (one derivation per edge, optional fields half of the time), ``operators``
    (when there are concepts), either or both, critical or not."""
    out: dict[str, Any] = {}
    if draw(st.booleans()) or not ids:
        out["derivation"] = ext.derivation_block(
            draw(st.lists(st.sampled_from(ext.DERIVATIONS), min_size=n_edges, max_size=n_edges)),
            trace_steps=draw(st.none() | st.sampled_from(ext.STEP_DECODINGS)),
            trace_selection=draw(st.none() | trace_selections()),
            critical=draw(st.booleans()),
        )
    if ids:
        out["operators"] = ext.operators_block(
            draw(st.lists(operator_entries(ids), max_size=3)), critical=draw(st.booleans())
        )
    return out


@st.composite
def packets(draw: st.DrawFn, **kwargs: Any) -> codec.Packet:
    """A valid packet (see :func:`packet_fields` for the knobs)."""
    fields, tensors = draw(packet_fields(**kwargs))
    return codec.assemble(fields, tensors, workers=1)


def bodies(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """The JSON data model of valid bodies."""
    return packets(**kwargs).map(lambda p: p.body.to_data())


# --------------------------------------------------------------------------- mutators


@dataclass(frozen=True)
class Mutation:
    """One way to break a valid body.

    ``in_schema``: the JSON Schema rejects the result. ``code``: the code the models and semantic
    checks must report (among all problems they find). ``apply`` mutates the body in place with
    the hypothesis ``data`` object at hand, or returns False when the body has nothing to break.
    """

    name: str
    in_schema: bool
    code: str
    apply: Callable[[dict[str, Any], Any], bool | None]

    def __repr__(self) -> str:
        return f"Mutation({self.name})"


MUTATIONS: list[Mutation] = []


def mutation(name: str, *, in_schema: bool, code: str = "SCHEMA_VIOLATION") -> Callable[..., Any]:
    def register(fn: Callable[[dict[str, Any], Any], bool | None]) -> Callable[..., Any]:
        MUTATIONS.append(Mutation(name, in_schema, code, fn))
        return fn

    return register


def _objects(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object of the body that has a fixed set of fields (not free-form maps)."""
    out = [body, body["header"], body["teacher"], body["graph"], body["provenance"]]
    out += [body["provenance"]["generator"], body["provenance"]["task"], body["safety"]]
    for c in body["concepts"]:
        out.append(c)
        if "manifold" in c:
            out.append(c["manifold"])
    out += body["graph"]["edges"] + body["anchors"] + body["tensors"]
    for t in body["traces"]:
        out += [t, *t["steps"]]
    out += list(body.get("extensions", {}).values())
    return out


def _required_slots(body: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(object, field) for every required field of every object of the body."""
    prov = body["provenance"]
    out = [(body, k) for k in body if k != "extensions"]
    out += [(body["header"], k) for k in ("format", "version", "created")]
    out += [
        (body["teacher"], k)
        for k in ("name", "architecture", "latent_dim", "layer", "model_digest")
    ]
    out += [(body["graph"], "edges"), (body["safety"], "require_signature")]
    out += [(body["safety"], "min_signers"), (prov["generator"], "name")]
    out += [(prov["generator"], "version"), (prov["task"], "name"), (prov["task"], "options")]
    out += [
        (prov, k)
        for k in ("generator", "task", "parents", "task_inputs_used", "concept_probes_used")
    ]
    out.append((prov, "parameters"))
    for c in body["concepts"]:
        out += [(c, k) for k in ("id", "label", "kind", "embedding")]
        if "manifold" in c:
            out += [(c["manifold"], k) for k in ("directions", "variances", "spread", "support")]
    for e in body["graph"]["edges"]:
        out += [(e, k) for k in ("source", "target", "relation", "weight")]
    for t in body["traces"]:
        out += [(t, k) for k in ("id", "input", "answer", "steps")]
        out += [(s, "concept") for s in t["steps"]]
    for a in body["anchors"]:
        out += [(a, k) for k in ("id", "input", "position", "state")]
    for t in body["tensors"]:
        out += [(t, k) for k in ("name", "dtype", "shape", "offset", "length", "sha256")]
    for x in body.get("extensions", {}).values():
        out += [(x, "critical"), (x, "data")]
    return out


@mutation("drop a required field", in_schema=True)
def _drop_required(body: dict[str, Any], data: Any) -> bool:
    obj, field = data.draw(st.sampled_from(_required_slots(body)))
    del obj[field]
    return True


@mutation("add an unknown field", in_schema=True)
def _add_unknown(body: dict[str, Any], data: Any) -> bool:
    obj = data.draw(st.sampled_from(_objects(body)))
    obj[data.draw(st.sampled_from(["unknown", "Label", "x-private", "note"]))] = data.draw(
        json_values
    )
    return True


_OPTIONAL = {
    "header": ["title"],
    "teacher": ["n_parameters"],
    "safety": ["protected_concepts", "max_parameter_drift", "max_output_divergence"],
    "provenance": ["seed"],
}


@mutation("null in an optional field", in_schema=True)
def _null_optional(body: dict[str, Any], data: Any) -> bool:
    choices = [(body[section], f) for section, fields in _OPTIONAL.items() for f in fields]
    choices += [(c, f) for c in body["concepts"] for f in ("manifold", "level")]
    choices += [(t, f) for t in body["traces"] for f in ("answer_label", "states")]
    choices += [(s, f) for t in body["traces"] for s in t["steps"] for f in ("similarity",)]
    choices += [(a, "concept") for a in body["anchors"]]
    choices += [(t, "scale") for t in body["tensors"] if t["dtype"] == "i8"]
    choices.append((body, "extensions"))
    obj, field = data.draw(st.sampled_from(choices))
    obj[field] = None
    return True


def _typed_slots(body: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """(object, field, JSON type) of scalar fields with a fixed type."""
    slots = [
        (body["header"], "created", "string"),
        (body["teacher"], "latent_dim", "integer"),
        (body["teacher"], "name", "string"),
        (body["safety"], "require_signature", "boolean"),
        (body["safety"], "min_signers", "integer"),
        (body["provenance"], "task_inputs_used", "integer"),
    ]
    slots += [(c, "label", "string") for c in body["concepts"]]
    slots += [(c["manifold"], "spread", "number") for c in body["concepts"] if "manifold" in c]
    slots += [(e, "weight", "number") for e in body["graph"]["edges"]]
    slots += [(t, "offset", "integer") for t in body["tensors"]]
    slots += [(t, "answer", "integer") for t in body["traces"]]
    slots += [(x, "critical", "boolean") for x in body.get("extensions", {}).values()]
    return slots


_WRONG = {
    "string": st.one_of(st.integers(), st.booleans(), st.just([]), st.just({})),
    # no integral float: 1.0 is an integer in the JSON data model (found by tools/fuzz.py)
    "integer": st.one_of(
        st.text(max_size=3),
        st.booleans(),
        st.just([1]),
        st.floats(0.5, 9.5).filter(lambda f: not f.is_integer()),
    ),
    "number": st.one_of(st.text(max_size=3), st.booleans(), st.just([0.5]), st.just({})),
    "boolean": st.one_of(st.integers(0, 1), st.sampled_from(["true", "false"]), st.just(None)),
}


@mutation("value of the wrong JSON type", in_schema=True)
def _wrong_type(body: dict[str, Any], data: Any) -> bool:
    obj, field, kind = data.draw(st.sampled_from(_typed_slots(body)))
    obj[field] = data.draw(_WRONG[kind])
    return True


@mutation("number out of range", in_schema=True)
def _out_of_range(body: dict[str, Any], data: Any) -> bool:
    choices: list[tuple[dict[str, Any], str, Any]] = [
        (body["teacher"], "latent_dim", st.sampled_from([0, -1, (1 << 20) + 1])),
        (body["safety"], "min_signers", st.sampled_from([0, -3, INT_MAX + 1])),
        (body["safety"], "max_capability_drop", st.sampled_from([1.5, -0.25])),
        (body["safety"], "max_parameter_drift", st.just(-1.0)),
        (body["provenance"], "task_inputs_used", st.sampled_from([-1, INT_MAX + 1, 2**70])),
        (body["provenance"], "seed", st.sampled_from([INT_MIN - 1, INT_MAX + 1])),
    ]
    choices += [(e, "weight", st.sampled_from([1.0001, -0.5, 2.0])) for e in body["graph"]["edges"]]
    choices += [(t, "length", st.just(-64)) for t in body["tensors"]]
    choices += [(t, "scale", st.sampled_from([0.0, -1.0])) for t in body["tensors"] if "scale" in t]
    for t in body["traces"]:
        choices.append((t["steps"][0], "similarity", st.sampled_from([1.5, -2.0])))
        choices.append((t, "input", st.just([2**31])))
    obj, field, values = data.draw(st.sampled_from(choices))
    obj[field] = data.draw(values)
    return True


@mutation("text that breaks a pattern", in_schema=True)
def _bad_pattern(body: dict[str, Any], data: Any) -> bool:
    bad_ids = st.sampled_from(["", "-lead", "with space", "a" * 129, "tab\t", "trail\n"])
    choices: list[tuple[dict[str, Any], str, Any]] = [
        (body["header"], "created", st.sampled_from(["2026-01-01", "2026-01-01T00:00:00+01:00"])),
        (body["header"], "version", st.sampled_from(["1", "1.0.0", "1.00", "1.", "1.0\n"])),
        (body["teacher"], "model_digest", st.sampled_from(["0" * 64, "sha256:" + "A" * 64])),
    ]
    choices += [(c, "id", bad_ids) for c in body["concepts"]]
    choices += [(c, "kind", st.sampled_from(["Symbol", "1st", ""])) for c in body["concepts"]]
    choices += [(c, "embedding", st.just("/abs")) for c in body["concepts"]]
    choices += [(a, "id", bad_ids) for a in body["anchors"]]
    choices += [(t, "sha256", st.just("F" * 64)) for t in body["tensors"]]
    choices += [
        (e, "relation", st.sampled_from(["Is-A", "x-", "x-a b"])) for e in body["graph"]["edges"]
    ]
    obj, field, values = data.draw(st.sampled_from(choices))
    obj[field] = data.draw(values)
    return True


@mutation("too long or too many", in_schema=True)
def _too_long(body: dict[str, Any], data: Any) -> bool:
    choices: list[tuple[dict[str, Any], str, Any]] = [
        (body["teacher"], "name", "x" * 1025),
        (body["provenance"]["parameters"], "k" * 65, 1),
        (body["provenance"]["task"]["options"], "o" * 65, 1),
    ]
    choices += [(t, "shape", [1] * 9) for t in body["tensors"]]
    choices += [(t, "input", []) for t in body["traces"]]
    choices += [(t, "input", [0] * 4097) for t in body["anchors"]]
    choices += [(t, "steps", []) for t in body["traces"]]
    obj, field, value = data.draw(st.sampled_from(choices))
    obj[field] = value
    return True


@mutation("unknown dtype", in_schema=True)
def _unknown_dtype(body: dict[str, Any], data: Any) -> bool:
    if not body["tensors"]:
        return False
    data.draw(st.sampled_from(body["tensors"]))["dtype"] = data.draw(
        st.sampled_from(["f64", "int8", "F32", ""])
    )
    return True


@mutation("scale on a tensor that is not i8", in_schema=True, code="TENSOR_DTYPE")
def _scale_not_i8(body: dict[str, Any], data: Any) -> bool:
    floats = [t for t in body["tensors"] if t["dtype"] != "i8"]
    if not floats:
        return False
    data.draw(st.sampled_from(floats))["scale"] = 0.5
    return True


@mutation("i8 tensor without scale", in_schema=True, code="TENSOR_DTYPE")
def _i8_without_scale(body: dict[str, Any], data: Any) -> bool:
    quantised = [t for t in body["tensors"] if t["dtype"] == "i8"]
    if not quantised:
        return False
    del data.draw(st.sampled_from(quantised))["scale"]
    return True


@mutation("unregistered relation", in_schema=True, code="UNKNOWN_RELATION")
def _unregistered_relation(body: dict[str, Any], data: Any) -> bool:
    if not body["graph"]["edges"]:
        return False
    edge = data.draw(st.sampled_from(body["graph"]["edges"]))
    edge["relation"] = data.draw(st.sampled_from(["causes", "is_an", "part"]))
    return True


@mutation("another major version", in_schema=True, code="UNSUPPORTED_VERSION")
def _major_version(body: dict[str, Any], data: Any) -> bool:
    body["header"]["version"] = data.draw(st.sampled_from(["0.9", "2.0", "10.1"]))
    return True


@mutation("another format", in_schema=True, code="UNSUPPORTED_VERSION")
def _other_format(body: dict[str, Any], data: Any) -> bool:
    body["header"]["format"] = data.draw(st.sampled_from(["M2KT", "m2kt2", ""]))
    return True


@mutation("bad extension name or options value", in_schema=True)
def _bad_free_form(body: dict[str, Any], data: Any) -> bool:
    which = data.draw(st.integers(0, 2))
    if which == 0:
        body.setdefault("extensions", {})["Bad Name"] = {"critical": False, "data": 1}
    elif which == 1:
        body["provenance"]["task"]["options"]["o"] = data.draw(st.sampled_from([None, [1], {}]))
    else:
        body["provenance"]["parents"].append("not-a-packet-id")
    return True


# Rules the JSON Schema cannot express: the schema accepts the result, the models refuse it.


@mutation("duplicate id", in_schema=False, code="DUPLICATE_ID")
def _duplicate_id(body: dict[str, Any], data: Any) -> bool:
    lists = [body[k] for k in ("concepts", "traces", "anchors") if len(body[k]) >= 2]
    if not lists:
        return False
    items = data.draw(st.sampled_from(lists))
    items[1]["id"] = items[0]["id"]
    return True


@mutation("reference to a missing concept", in_schema=False, code="DANGLING_REFERENCE")
def _dangling_concept(body: dict[str, Any], data: Any) -> bool:
    ids = {c["id"] for c in body["concepts"]}
    missing = "missing:"
    while missing in ids:
        missing += "x"
    slots: list[tuple[dict[str, Any], str]] = []
    slots += [(e, k) for e in body["graph"]["edges"] for k in ("source", "target")]
    slots += [(s, "concept") for t in body["traces"] for s in t["steps"]]
    slots += [(a, "concept") for a in body["anchors"]]
    if not slots:
        body["safety"]["protected_concepts"] = [missing]
        return True
    obj, field = data.draw(st.sampled_from(slots))
    obj[field] = missing
    return True


@mutation("reference to a missing tensor", in_schema=False, code="DANGLING_REFERENCE")
def _dangling_tensor(body: dict[str, Any], data: Any) -> bool:
    slots = [(c, "embedding") for c in body["concepts"]] + [(a, "state") for a in body["anchors"]]
    slots += [(t, "states") for t in body["traces"]]
    if not slots:
        return False
    obj, field = data.draw(st.sampled_from(slots))
    obj[field] = "no/such/tensor"
    return True


@mutation("latent dimension disagrees with the tensors", in_schema=False, code="DIMENSION_MISMATCH")
def _latent_dim(body: dict[str, Any], data: Any) -> bool:
    if not (body["concepts"] or body["anchors"]):
        return False
    body["teacher"]["latent_dim"] += data.draw(st.integers(1, 3))
    return True


@mutation("trace states do not match its steps", in_schema=False, code="DIMENSION_MISMATCH")
def _trace_states(body: dict[str, Any], data: Any) -> bool:
    with_states = [t for t in body["traces"] if "states" in t]
    if not with_states:
        return False
    trace = data.draw(st.sampled_from(with_states))
    trace["steps"].append(copy.deepcopy(trace["steps"][0]))
    return True


@mutation("manifold directions of the wrong rank", in_schema=False, code="DIMENSION_MISMATCH")
def _manifold_rank(body: dict[str, Any], data: Any) -> bool:
    with_manifold = [c for c in body["concepts"] if "manifold" in c]
    if not with_manifold:
        return False
    concept = data.draw(st.sampled_from(with_manifold))
    concept["manifold"]["directions"] = concept["embedding"]
    return True


@mutation("is_a cycle", in_schema=False, code="ISA_CYCLE")
def _isa_cycle(body: dict[str, Any], data: Any) -> bool:
    if not body["concepts"]:
        return False
    edges = body["graph"]["edges"]
    isa = [e for e in edges if e["relation"] == "is_a"]
    if isa and data.draw(st.booleans()):
        e = data.draw(st.sampled_from(isa))
        back = {"source": e["target"], "target": e["source"], "relation": "is_a", "weight": 1.0}
    else:
        cid = data.draw(st.sampled_from(body["concepts"]))["id"]
        back = {"source": cid, "target": cid, "relation": "is_a", "weight": 0.5}
    edges.insert(data.draw(st.integers(0, len(edges))), back)
    return True


@mutation("tensor offset off the packed layout", in_schema=False, code="TENSOR_LAYOUT")
def _offset(body: dict[str, Any], data: Any) -> bool:
    if not body["tensors"]:
        return False
    data.draw(st.sampled_from(body["tensors"]))["offset"] += data.draw(st.sampled_from([1, 64]))
    return True


@mutation("tensor length disagrees with dtype and shape", in_schema=False, code="TENSOR_SHAPE")
def _length(body: dict[str, Any], data: Any) -> bool:
    if not body["tensors"]:
        return False
    data.draw(st.sampled_from(body["tensors"]))["length"] += data.draw(st.integers(1, 3))
    return True


@mutation("unknown critical extension", in_schema=False, code="CRITICAL_EXTENSION")
def _critical(body: dict[str, Any], data: Any) -> bool:
    name = data.draw(extension_names)
    body.setdefault("extensions", {})[name] = {"critical": True, "data": data.draw(json_values)}
    return True


# The registered extensions' data is free-form to the body schema (1.0 readers accept anything
# there); a 1.1 reader checks it in step 5 against its own schema, then counts and references.


def _registered(body: dict[str, Any], data: Any) -> dict[str, Any]:
    """The body's registered extensions, adding valid ones when it has none."""
    extensions = body.setdefault("extensions", {})
    if not set(extensions) & set(REGISTERED_EXTENSIONS):
        ids = [c["id"] for c in body["concepts"]]
        extensions.update(data.draw(registered_extensions(ids, len(body["graph"]["edges"]))))
    return extensions


@mutation("registered extension data breaks its schema", in_schema=False)
def _registered_schema(body: dict[str, Any], data: Any) -> bool:
    extensions = _registered(body, data)
    breaks: list[Callable[[], None]] = []
    if "derivation" in extensions:
        d = extensions["derivation"]["data"]
        breaks += [
            lambda: d["edges"].__setitem__(slice(0, 1), ["teacher-guess"]),
            lambda: d.update(trace_steps="argmax"),
            lambda: d.update(trace_selection={"method": "greedy", "unit": "edge"}),
            lambda: d.update(note=1),
            lambda: d.pop("edges"),
            lambda: extensions["derivation"].update(data=None),
        ]
    if "operators" in extensions and extensions["operators"]["data"]["entries"]:
        e = extensions["operators"]["data"]["entries"][0]
        breaks += [
            lambda: e.update(probability=1.5),
            lambda: e.update(probability=-0.5),
            lambda: e.pop(data.draw(st.sampled_from(sorted(e)))),
            lambda: e.update(input=[]),
            lambda: e.update(input=[2**31]),
            lambda: e.update(derivation="teacher-geometry"),
            lambda: e.update(operator="-bad id"),
        ]
    if "operators" in extensions:
        breaks.append(lambda: extensions["operators"].update(data={"entries": {}}))
    data.draw(st.sampled_from(breaks))()
    return True


@mutation("registered extension integer written as a float", in_schema=False)
def _registered_integral_float(body: dict[str, Any], data: Any) -> bool:
    # as in the body, JSON Schema counts 3.0 as an integer; the data model does not
    selection = {"method": "cover", "unit": "edge", "candidates": 3, "exercised": 2, "covered": 2}
    selection[data.draw(st.sampled_from(["candidates", "exercised", "covered"]))] = 2.0
    body.setdefault("extensions", {})["derivation"] = {
        "critical": False,
        "data": {"edges": ["declared"] * len(body["graph"]["edges"]), "trace_selection": selection},
    }
    return True


@mutation("derivation edges not one per graph edge", in_schema=False)
def _derivation_count(body: dict[str, Any], data: Any) -> bool:
    n = len(body["graph"]["edges"])
    wrong = data.draw(st.integers(0, n + 3).filter(lambda k: k != n))
    body.setdefault("extensions", {})["derivation"] = ext.derivation_block(["declared"] * wrong)
    return True


@mutation("operator entry names a missing concept", in_schema=False, code="DANGLING_REFERENCE")
def _operator_dangling(body: dict[str, Any], data: Any) -> bool:
    ids = [c["id"] for c in body["concepts"]] or ["missing:"]
    missing = "missing:" + "x" * max(len(i) for i in ids)
    entry = data.draw(operator_entries(ids)).__dict__ | {
        data.draw(st.sampled_from(["operator", "source", "target"])): missing
    }
    body.setdefault("extensions", {})["operators"] = {
        "critical": data.draw(st.booleans()),
        "data": {"entries": [{**entry, "input": list(entry["input"])}]},
    }
    return True


@mutation("free-form integer beyond 64 bits", in_schema=False)
def _big_free_int(body: dict[str, Any], data: Any) -> bool:
    # JSON Schema's "integer" is mathematical (1e300 is one), so it cannot bound integers in
    # free-form data without also refusing large floats.
    value = data.draw(st.sampled_from([INT_MAX + 1, INT_MIN - 1, 10**30]))
    if data.draw(st.booleans()):
        body["provenance"]["parameters"]["big"] = [value]
    else:
        body["provenance"]["task"]["options"]["big"] = value
    return True


@mutation("integer field written as a float", in_schema=False)
def _integral_float(body: dict[str, Any], data: Any) -> bool:
    # JSON Schema counts 8.0 as an integer; the data model does not (CBOR int vs float).
    slots = [
        (obj, field)
        for obj, field, kind in _typed_slots(body)
        if kind == "integer" and abs(obj[field]) < 2**53  # exactly representable as a float
    ]
    obj, field = data.draw(st.sampled_from(slots))
    obj[field] = float(obj[field])
    return True


def mutated_bodies(
    *, in_schema: bool | None = None, names: Collection[str] | None = None, **kwargs: Any
) -> st.SearchStrategy[tuple[Mutation, dict[str, Any]]]:
    """(mutation, broken body) pairs; ``in_schema`` picks one family of mutations, ``names``
    some mutations by name."""
    chosen = [
        m
        for m in MUTATIONS
        if (in_schema is None or m.in_schema == in_schema) and (names is None or m.name in names)
    ]

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Mutation, dict[str, Any]]:
        body = draw(bodies(**kwargs))
        m = draw(st.sampled_from(chosen))
        broken = copy.deepcopy(body)
        assume(m.apply(broken, _Drawer(draw)) is not False)
        return m, broken

    return build()


class _Drawer:
    """Lets mutators call ``data.draw`` inside a composite strategy."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
