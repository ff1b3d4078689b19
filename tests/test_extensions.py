"""Format 1.1: the registered extensions ``derivation`` and ``operators`` (spec §3.12).

Mirrors :mod:`m2kt_ref.packet.extensions` and the step-5 checks of :mod:`m2kt_ref.packet.rules`:
blocks built and read back, a 1.1 packet through both encodings, each rule refused with its code
and path, the extension schemas (``ext-*.schema.json``) in agreement with the models, and 1.0
packets unaffected.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import Mutation, examples, mutated_bodies, packets

import m2kt_ref
from m2kt_ref.errors import M2ktError
from m2kt_ref.packet import codec, schema
from m2kt_ref.packet import extensions as ext
from m2kt_ref.packet.model import REGISTERED_EXTENSIONS
from m2kt_ref.packet.rules import KNOWN_EXTENSIONS

SCHEMA_OF = {"derivation": "ext-derivation.schema.json", "operators": "ext-operators.schema.json"}
#: The mutations of tests/strategies.py that break a registered extension; only the first breaks
#: a rule the ``ext-*`` schemas state (JSON Schema counts 2.0 as an integer, the data model not).
EXTENSION_MUTATIONS = (
    "registered extension data breaks its schema",
    "registered extension integer written as a float",
    "derivation edges not one per graph edge",
    "operator entry names a missing concept",
)


def _fields(packet: codec.Packet) -> tuple[dict[str, Any], dict[str, m2kt_ref.EncodedTensor]]:
    """A packet's body fields and tensors, ready for :func:`m2kt_ref.assemble` again."""
    body = packet.body.to_data()
    del body["tensors"]
    tensors = {
        t.name: m2kt_ref.EncodedTensor(
            t.dtype, tuple(t.shape), packet.data[t.offset : t.offset + t.length], t.scale
        )
        for t in packet.body.tensors
    }
    return body, tensors


def _with_extensions(demo: codec.Packet) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo packet as a 1.1 writer makes it: both registered extensions, version 1.1."""
    fields, tensors = _fields(demo)
    n = len(fields["graph"]["edges"])
    fields["extensions"]["derivation"] = ext.derivation_block(
        [ext.DERIVATIONS[i % len(ext.DERIVATIONS)] for i in range(n)],
        trace_steps="teacher-readout",
        trace_selection=ext.TraceSelection("cover", "transition", 25, 12, 11),
    )
    fields["extensions"]["operators"] = ext.operators_block(
        [
            ext.OperatorEntry("num:1", "num:2", "num:3", 0.96875, (2, 5, 1), "teacher-probe"),
            {
                "operator": "num:0",
                "source": "num:4",
                "target": "num:4",
                "probability": 1.0,
                "input": [4, 5, 0],
                "derivation": "declared",
            },
        ]
    )
    fields["header"]["version"] = ext.format_version_for(fields["extensions"])
    return fields, tensors


@pytest.fixture(scope="module")
def v11(demo: codec.Packet) -> codec.Packet:
    return m2kt_ref.assemble(*_with_extensions(demo))


# --------------------------------------------------------------------------- the module


def test_registries_are_the_schemas() -> None:
    def consts(name: str, pointer: str) -> tuple[str, ...]:
        return tuple(b["const"] for b in schema.resolve_local(name, pointer)["anyOf"])

    for values, name, pointer in (
        (ext.DERIVATIONS, "ext-derivation.schema.json", "/$defs/derivation"),
        (ext.STEP_DECODINGS, "ext-derivation.schema.json", "/$defs/decoding"),
        (ext.SELECTION_METHODS, "ext-derivation.schema.json", "/$defs/method"),
        (ext.OPERATOR_DERIVATIONS, "ext-operators.schema.json", "/$defs/derivation"),
    ):
        assert values == consts(name, pointer), pointer
    assert set(ext.OPERATOR_DERIVATIONS) == set(ext.DERIVATIONS) - {"teacher-geometry"}
    assert KNOWN_EXTENSIONS == set(REGISTERED_EXTENSIONS) == set(SCHEMA_OF)
    assert ext.FORMAT_1_1 == "1.1"


def test_blocks_are_plain_json_and_satisfy_their_schemas() -> None:
    derivation = ext.derivation_block(
        ("teacher-geometry", "declared"),
        trace_steps="nearest-concept",
        trace_selection={"method": "random", "unit": "edge", "candidates": np.int64(9),
                         "exercised": 4, "covered": np.uint8(3)},
    )  # fmt: skip
    operators = ext.operators_block(
        [ext.OperatorEntry("a", "b", "c", np.float32(0.5), np.array([3, 0]), "teacher-trace")]
    )
    assert derivation == {
        "critical": False,
        "data": {
            "edges": ["teacher-geometry", "declared"],
            "trace_steps": "nearest-concept",
            "trace_selection": {
                "method": "random",
                "unit": "edge",
                "candidates": 9,
                "exercised": 4,
                "covered": 3,
            },
        },
    }
    entry = operators["data"]["entries"][0]
    assert entry == {
        "operator": "a",
        "source": "b",
        "target": "c",
        "probability": 0.5,
        "input": [3, 0],
        "derivation": "teacher-trace",
    }
    assert type(entry["probability"]) is float and all(type(t) is int for t in entry["input"])
    assert type(derivation["data"]["trace_selection"]["covered"]) is int
    for name, block in (("derivation", derivation), ("operators", operators)):
        assert schema.is_valid(block["data"], SCHEMA_OF[name])
    # an integer probability is written as a float
    one = ext.operators_block([{**entry, "probability": 1}])
    assert type(one["data"]["entries"][0]["probability"]) is float
    assert ext.derivation_block([], critical=True) == {"critical": True, "data": {"edges": []}}


@pytest.mark.parametrize(
    ("build", "code", "path"),
    [
        (lambda: ext.derivation_block(["declared", "x"]), "SCHEMA_VIOLATION", "edges/1"),
        (lambda: ext.derivation_block([], trace_steps="argmax"), "SCHEMA_VIOLATION", "trace_steps"),
        (
            lambda: ext.derivation_block(
                [], trace_selection=ext.TraceSelection("greedy", "edge", 1, 1, 1)
            ),
            "SCHEMA_VIOLATION",
            "trace_selection/method",
        ),
        (
            lambda: ext.derivation_block([], trace_selection={"method": "cover", "unit": "edge"}),
            "SCHEMA_VIOLATION",
            "trace_selection/candidates",
        ),
        (
            lambda: ext.operators_block([ext.OperatorEntry("a", "b", "c", 1.5, (1,), "declared")]),
            "SCHEMA_VIOLATION",
            "entries/0/probability",
        ),
        (
            lambda: ext.operators_block([ext.OperatorEntry("a", "b", "c", 0.5, (), "declared")]),
            "SCHEMA_VIOLATION",
            "entries/0/input",
        ),
        (
            lambda: ext.operators_block(
                [ext.OperatorEntry("a", "b", "c", float("nan"), (1,), "declared")]
            ),
            "NONFINITE_VALUE",
            "entries/0/probability",
        ),
        (
            lambda: ext.operators_block(
                [ext.OperatorEntry("a", "b", "c", 0.5, (1,), "teacher-geometry")]
            ),
            "SCHEMA_VIOLATION",
            "entries/0/derivation",
        ),
        (
            lambda: ext.operators_block([{"operator": "a", "source": "b", "target": "c"}]),
            "SCHEMA_VIOLATION",
            "entries/0/probability",
        ),
    ],
)
def test_blocks_refuse_bad_data_with_a_path(build: Callable[[], Any], code: str, path: str) -> None:
    with pytest.raises(M2ktError) as caught:
        build()
    name = "derivation" if "derivation_block" in build.__code__.co_names else "operators"
    assert (caught.value.code, caught.value.path) == (
        code,
        f"/body/extensions/{name}/data/{path}",
    )


def test_blocks_refuse_misuse() -> None:
    with pytest.raises(m2kt_ref.UsageError):
        ext.derivation_block("declared")
    with pytest.raises(m2kt_ref.UsageError):
        ext.operators_block([], critical=1)  # type: ignore[arg-type]


def test_format_version_for() -> None:
    assert ext.format_version_for(None) == ext.format_version_for({}) == "1.0"
    assert ext.format_version_for({"x-derivation": {"critical": False, "data": 1}}) == "1.0"
    assert ext.format_version_for({"operators": ext.operators_block([])}) == "1.1"


# --------------------------------------------------------------------------- a 1.1 packet


def test_round_trip_through_both_encodings(v11: codec.Packet) -> None:
    assert v11.body.header.version == "1.1"
    blob = m2kt_ref.encode(v11)
    again = m2kt_ref.decode(blob)
    assert again == v11 and m2kt_ref.encode(again) == blob
    from_json = m2kt_ref.decode_json(m2kt_ref.encode_json(v11))
    assert from_json.packet_id == v11.packet_id and m2kt_ref.encode(from_json) == blob
    derivation = m2kt_ref.read_derivation(again)
    assert derivation is not None
    assert len(derivation.edges) == len(again.body.graph.edges)
    assert derivation.trace_steps == "teacher-readout"
    assert derivation.trace_selection == ext.TraceSelection("cover", "transition", 25, 12, 11)
    operators = m2kt_ref.read_operators(again.body)
    assert operators[0] == ext.OperatorEntry(
        "num:1", "num:2", "num:3", 0.96875, (2, 5, 1), "teacher-probe"
    )
    assert operators[1].derivation == "declared" and operators[1].input == (4, 5, 0)
    # the three forms of a body the readers take agree
    data = again.body.to_data()
    assert m2kt_ref.read_derivation(data) == m2kt_ref.read_derivation(again.body) == derivation
    assert m2kt_ref.read_operators(data) == operators


def test_the_schema_accepts_the_1_1_packet_and_its_extension_data(v11: codec.Packet) -> None:
    doc = json.loads(codec.encode_json(v11))
    assert list(schema.iter_errors(doc)) == []
    for name, file in SCHEMA_OF.items():
        assert list(schema.iter_errors(doc["body"]["extensions"][name]["data"], file)) == []


def test_registered_extensions_may_be_critical(demo: codec.Packet) -> None:
    fields, tensors = _with_extensions(demo)
    for name in SCHEMA_OF:
        fields["extensions"][name]["critical"] = True
    packet = m2kt_ref.assemble(fields, tensors)
    assert m2kt_ref.read_derivation(packet) is not None
    # an unknown critical extension is still refused, registered-style name or not
    for name in ("acme.derivation", "x-operators"):
        unknown = copy.deepcopy(fields)
        unknown["extensions"][name] = {"critical": True, "data": {"edges": []}}
        with pytest.raises(M2ktError) as caught:
            m2kt_ref.assemble(unknown, tensors)
        assert caught.value.code == "CRITICAL_EXTENSION"


def test_integers_stay_integers_in_the_data(demo: codec.Packet, envelope: Callable) -> None:
    """Extension data is free-form for the encodings: an integer probability is kept as it was
    (valid, re-encoded identically); an integral float where an integer is due is refused."""
    fields, tensors = _with_extensions(demo)
    fields["extensions"]["operators"]["data"]["entries"][1]["probability"] = 1
    packet = m2kt_ref.assemble(fields, tensors)
    entry = packet.body.extensions["operators"].data["entries"][1]
    assert entry["probability"] == 1 and type(entry["probability"]) is int
    assert m2kt_ref.encode(m2kt_ref.decode(m2kt_ref.encode(packet))) == m2kt_ref.encode(packet)
    assert m2kt_ref.read_operators(packet)[1].probability == 1.0
    body = packet.body.to_data()
    body["extensions"]["derivation"]["data"]["trace_selection"]["covered"] = 11.0
    with pytest.raises(M2ktError) as caught:
        codec.decode(envelope(cbor2.dumps(body, canonical=True), packet.data))
    assert (caught.value.code, caught.value.path) == (
        "SCHEMA_VIOLATION",
        "/body/extensions/derivation/data/trace_selection/covered",
    )


Edit = Callable[[dict[str, Any]], Any]


def _derivation(f: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = f["extensions"]["derivation"]["data"]
    return data


def _entry(f: dict[str, Any], i: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = f["extensions"]["operators"]["data"]["entries"][i]
    return entry


DER, OPS = "/body/extensions/derivation/data", "/body/extensions/operators/data"
RULES: list[tuple[str, Edit, str, str]] = [
    ("edges short", lambda f: _derivation(f)["edges"].pop(), "SCHEMA_VIOLATION", DER + "/edges"),
    (
        "edges long",
        lambda f: _derivation(f)["edges"].append("declared"),
        "SCHEMA_VIOLATION",
        DER + "/edges",
    ),
    (
        "unknown derivation",
        lambda f: _derivation(f)["edges"].__setitem__(3, "guessed"),
        "SCHEMA_VIOLATION",
        DER + "/edges/3",
    ),
    (
        "unknown decoding",
        lambda f: _derivation(f).update(trace_steps="argmax"),
        "SCHEMA_VIOLATION",
        DER + "/trace_steps",
    ),
    (
        "unknown selection method",
        lambda f: _derivation(f)["trace_selection"].update(method="greedy"),
        "SCHEMA_VIOLATION",
        DER + "/trace_selection/method",
    ),
    (
        "unknown field",
        lambda f: _derivation(f).update(note="x"),
        "SCHEMA_VIOLATION",
        DER + "/note",
    ),
    (
        "null data",
        lambda f: f["extensions"]["derivation"].update(data=None),
        "SCHEMA_VIOLATION",
        DER,
    ),
    (
        "dangling operator",
        lambda f: _entry(f).update(operator="num:9"),
        "DANGLING_REFERENCE",
        OPS + "/entries/0/operator",
    ),
    (
        "dangling source",
        lambda f: _entry(f, 1).update(source="num:9"),
        "DANGLING_REFERENCE",
        OPS + "/entries/1/source",
    ),
    (
        "dangling target",
        lambda f: _entry(f).update(target="num:9"),
        "DANGLING_REFERENCE",
        OPS + "/entries/0/target",
    ),
    (
        "probability above 1",
        lambda f: _entry(f).update(probability=1.5),
        "SCHEMA_VIOLATION",
        OPS + "/entries/0/probability",
    ),
    (
        "probability NaN",
        lambda f: _entry(f).update(probability=float("nan")),
        "NONFINITE_VALUE",
        OPS + "/entries/0/probability",
    ),
    (
        "entry missing a field",
        lambda f: _entry(f).pop("derivation"),
        "SCHEMA_VIOLATION",
        OPS + "/entries/0/derivation",
    ),
    (
        "token out of range",
        lambda f: _entry(f).update(input=[0, 2**31]),
        "SCHEMA_VIOLATION",
        OPS + "/entries/0/input/1",
    ),
    (
        "schema before references",
        lambda f: (_entry(f).pop("input"), _entry(f).update(source="num:9")),
        "SCHEMA_VIOLATION",
        OPS + "/entries/0/input",
    ),
]


@pytest.mark.parametrize(("name", "edit", "code", "path"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_is_refused_with_its_code_and_path(
    demo: codec.Packet, name: str, edit: Edit, code: str, path: str
) -> None:
    fields, tensors = _with_extensions(demo)
    edit(fields)
    with pytest.raises(M2ktError) as caught:
        m2kt_ref.assemble(fields, tensors)
    assert (caught.value.code, caught.value.path) == (code, path), caught.value
    # the full list reports it too, and the readers refuse the data the same way
    body = {**fields, "tensors": m2kt_ref.assemble(*_fields(demo)).body.to_data()["tensors"]}
    assert (code, path) in [(e.code, e.path) for e in codec.iter_body_errors(body)]
    reader = m2kt_ref.read_operators if path.startswith(OPS) else m2kt_ref.read_derivation
    with pytest.raises(M2ktError) as caught:
        reader(body)
    assert caught.value.code == code


# --------------------------------------------------------------------------- 1.0 unaffected


def test_1_0_packets_read_as_before(demo: codec.Packet) -> None:
    assert demo.body.header.version == "1.0"
    assert m2kt_ref.read_derivation(demo) is None and m2kt_ref.read_operators(demo) == ()
    again = m2kt_ref.decode(m2kt_ref.encode(demo))
    assert m2kt_ref.encode(again) == m2kt_ref.encode(demo)
    # private names that look like the registered ones are not checked
    fields, tensors = _fields(demo)
    fields["extensions"]["x-derivation"] = {"critical": False, "data": {"edges": "anything"}}
    fields["extensions"]["derivations"] = {"critical": False, "data": None}
    m2kt_ref.assemble(fields, tensors)


def test_registered_rules_apply_whatever_the_version(demo: codec.Packet) -> None:
    fields, tensors = _with_extensions(demo)
    fields["header"]["version"] = "1.0"
    m2kt_ref.assemble(fields, tensors)
    _derivation(fields)["edges"].pop()
    with pytest.raises(M2ktError) as caught:
        m2kt_ref.assemble(fields, tensors)
    assert caught.value.code == "SCHEMA_VIOLATION"


# --------------------------------------------------------------------------- generated


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_generated_packets_read_back(packet: codec.Packet) -> None:
    derivation = m2kt_ref.read_derivation(packet)
    if derivation is not None:
        assert len(derivation.edges) == len(packet.body.graph.edges)
    for entry in m2kt_ref.read_operators(packet):
        assert 0 <= entry.probability <= 1
    assert m2kt_ref.decode(m2kt_ref.encode(packet)) == packet


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(mutated_bodies(names=EXTENSION_MUTATIONS))
def test_extension_schemas_agree_with_the_models(case: tuple[Mutation, dict[str, Any]]) -> None:
    """For a broken registered extension the models and the ``ext-*`` schemas agree: the schema
    rejects the data exactly when the break is a schema rule (counts and references are not)."""
    mutation, body = case
    assert list(schema.iter_errors(body, schema.BODY)) == []  # 1.0 readers accept it
    codes = [e.code for e in codec.iter_body_errors(body)]
    assert mutation.code in codes
    broken_schema = any(
        not schema.is_valid(body["extensions"][name]["data"], file)
        for name, file in SCHEMA_OF.items()
        if name in body.get("extensions", {})
    )
    assert broken_schema == (mutation.name == "registered extension data breaks its schema")
