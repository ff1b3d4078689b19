"""The JSON Schemas: valid, shipped, and in agreement with the models, the semantics and the spec.

Three descriptions of one structure must not drift apart: ``schemas/*.json`` (the source of
truth), the pydantic models plus the semantic checks (the fast path), and the field tables of
``spec/packet-1.1.md``. These tests hold them together on a generated corpus of valid and broken
packets. Rules a JSON Schema cannot state are listed in ``tests/strategies.py`` as mutations with
``in_schema=False``; for each, the schema must accept the broken body and the models must refuse
it with the named code.
"""

from __future__ import annotations

import base64
import copy
import importlib.resources
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
import spec_tables  # tools/, on the path through conftest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from strategies import MUTATIONS, Mutation, examples, mutated_bodies, packets

from m2kt_ref.errors import M2ktError
from m2kt_ref.packet import codec, model, schema
from m2kt_ref.packet import tensors as tz

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "packet-1.1.md"
#: The packet format's schema files (other shipped schemas, e.g. the conformance protocol's,
#: belong to other documents).
PACKET_SCHEMAS = {
    "common.schema.json",
    "header.schema.json",
    "teacher.schema.json",
    "concept.schema.json",
    "graph.schema.json",
    "trace.schema.json",
    "anchor.schema.json",
    "provenance.schema.json",
    "safety.schema.json",
    "tensor.schema.json",
    "extensions.schema.json",
    "body.schema.json",
    "packet.schema.json",
    "ext-derivation.schema.json",
    "ext-operators.schema.json",
}
CORPUS = settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def body_codes(body: Any) -> list[str]:
    """Codes of every problem the models and semantic checks find in a body."""
    return [e.code for e in codec.iter_body_errors(body)]


# --------------------------------------------------------------------------- the files


def test_schemas_are_valid_against_the_metaschema() -> None:
    for name, doc in schema.schema_documents().items():
        assert doc.get("$schema") == "https://json-schema.org/draft/2020-12/schema", name
        Draft202012Validator.check_schema(doc)


def test_packet_schemas_are_all_there_with_their_ids() -> None:
    docs = schema.schema_documents()
    assert docs.keys() >= PACKET_SCHEMAS
    for name in PACKET_SCHEMAS:
        assert docs[name]["$id"] == schema.BASE_URI + name
    ids = [doc["$id"] for doc in docs.values()]
    assert len(ids) == len(set(ids)), "two schema files share an $id"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_ref_resolves_offline() -> None:
    registry = schema.registry()
    for name in PACKET_SCHEMAS:
        resolver = registry.resolver(base_uri=schema.schema_uri(name))
        for ref in _refs(schema.schema_documents()[name]):
            assert resolver.lookup(ref).contents is not None, (name, ref)


def test_the_shipped_copy_is_the_repo_copy() -> None:
    shipped = {
        entry.name: entry.read_bytes()
        for entry in importlib.resources.files(schema.SCHEMA_PACKAGE).iterdir()
        if entry.name.endswith(".json")
    }
    repo = {p.name: p.read_bytes() for p in (ROOT / "schemas").glob("*.json")}
    assert shipped == repo
    link = ROOT / "m2kt_ref" / "schemas"
    assert link.is_symlink() and link.resolve() == (ROOT / "schemas").resolve()


def test_patterns_follow_ecma_262_end_of_input() -> None:
    # Python's "$" also matches before a final newline; ECMA-262's does not.
    assert schema._ecma_to_python("^[a-z$]+$") == r"^[a-z$]+\Z"
    assert schema._ecma_to_python(r"^a\$b$") == r"^a\$b\Z"
    label = {"$ref": schema.BASE_URI + "common.schema.json#/$defs/identifier"}
    check = schema._Validator(label, registry=schema.registry())
    assert check.is_valid("num:1")
    assert not check.is_valid("num:1\n")


def test_errors_carry_a_pointer_and_the_rule(demo: codec.Packet) -> None:
    doc = json.loads(codec.encode_json(demo))
    del doc["body"]["concepts"][0]["label"]
    name = demo.body.tensors[0].name
    doc["tensor_data"][name] = "not base64!"
    problems = list(schema.iter_errors(doc))
    assert [(p.code, p.path, p.rule) for p in problems] == [  # type: ignore[attr-defined]
        ("SCHEMA_VIOLATION", "/body/concepts/0", "required"),
        ("SCHEMA_VIOLATION", "/tensor_data/" + name.replace("/", "~1"), "pattern"),
    ]
    assert not schema.is_valid(doc)
    with pytest.raises(M2ktError) as caught:
        schema.validate(doc)
    assert caught.value.path == "/body/concepts/0"
    body_problem = next(schema.iter_errors(doc["body"], schema.BODY))
    assert body_problem.path == "/body/concepts/0"


# --------------------------------------------------------------------------- agreement: valid


@CORPUS
@given(packets())
def test_valid_packets_satisfy_schema_and_models(packet: codec.Packet) -> None:
    doc = json.loads(codec.encode_json(packet))
    assert list(schema.iter_errors(doc)) == []
    assert schema.is_valid(doc["body"], schema.BODY)
    assert codec.decode_json_data(doc) == packet
    assert codec.validate_body(doc["body"]) == packet.body


def test_demo_packet_satisfies_the_schema(demo: codec.Packet) -> None:
    schema.validate(json.loads(codec.encode_json(demo)))


# --------------------------------------------------------------------------- agreement: invalid


def check_mutation(mutation: Mutation, body: dict[str, Any]) -> None:
    codes = body_codes(body)
    schema_problems = list(schema.iter_errors(body, schema.BODY))
    if mutation.in_schema:
        assert schema_problems, f"{mutation.name}: the schema accepts the broken body"
    else:
        assert schema_problems == [], (
            f"{mutation.name}: listed as beyond the schema, but the schema rejects it: "
            f"{schema_problems[0].path}: {schema_problems[0]}"
        )
    assert mutation.code in codes, f"{mutation.name}: models report {codes}, not {mutation.code}"


@CORPUS
@given(mutated_bodies(in_schema=True))
def test_schema_rules_are_enforced_by_both(case: tuple[Mutation, dict[str, Any]]) -> None:
    check_mutation(*case)


@CORPUS
@given(mutated_bodies(in_schema=False))
def test_rules_beyond_the_schema_are_enforced_by_the_models(
    case: tuple[Mutation, dict[str, Any]],
) -> None:
    check_mutation(*case)


class _Draw:
    def __init__(self, data: st.DataObject) -> None:
        self.draw = data.draw


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name.replace(" ", "-"))
@settings(max_examples=examples(5), deadline=None)
@given(data=st.data())
def test_every_mutation_on_the_demo_packet(
    demo: codec.Packet, mutation: Mutation, data: st.DataObject
) -> None:
    """The demo packet fills every section, so every mutation applies to it."""
    body = copy.deepcopy(demo.body.to_data())
    assert mutation.apply(body, _Draw(data)) is not False, mutation.name
    check_mutation(mutation, body)


# --------------------------------------------------------------------------- the JSON form

JsonCase = tuple[str, Callable[[dict[str, Any], codec.Packet], None], bool, str]


def _set(path: str, value: Any) -> Callable[[dict[str, Any], codec.Packet], None]:
    def apply(doc: dict[str, Any], _: codec.Packet) -> None:
        *parents, last = path.split("/")
        for key in parents:
            doc = doc[key]
        if value is _DELETE:
            del doc[last]
        else:
            doc[last] = value

    return apply


_DELETE = object()


def _tensor_bytes(change: Callable[[bytes, tz.TensorInfo], bytes], *, rehash: bool = False):
    def apply(doc: dict[str, Any], packet: codec.Packet) -> None:
        info = next(t for t in packet.body.tensors if t.dtype == "f32")
        raw = change(base64.b64decode(doc["tensor_data"][info.name]), info)
        doc["tensor_data"][info.name] = base64.b64encode(raw).decode()
        if rehash:
            index = packet.body.tensors.index(info)
            doc["body"]["tensors"][index]["sha256"] = tz.sha256_hex(raw)

    return apply


def _first_tensor(fn: Callable[[dict[str, Any], str], None]):
    def apply(doc: dict[str, Any], packet: codec.Packet) -> None:
        fn(doc, packet.body.tensors[0].name)

    return apply


JSON_CASES: list[JsonCase] = [
    ("no m2kt_json", _set("m2kt_json", _DELETE), True, "NOT_A_PACKET"),
    ("no body", _set("body", _DELETE), True, "NOT_A_PACKET"),
    ("m2kt_json not text", _set("m2kt_json", 1), True, "SCHEMA_VIOLATION"),
    ("m2kt_json of major 2", _set("m2kt_json", "2.0"), True, "UNSUPPORTED_VERSION"),
    ("no tensor_data", _set("tensor_data", _DELETE), True, "SCHEMA_VIOLATION"),
    ("unknown member", _set("extra", {}), True, "SCHEMA_VIOLATION"),
    (
        "tensor bytes not base64",
        _first_tensor(lambda doc, name: doc["tensor_data"].__setitem__(name, "AAA")),
        True,
        "JSON_MALFORMED",
    ),
    (
        "base64 with a line break",
        _first_tensor(
            lambda doc, name: doc["tensor_data"].__setitem__(name, doc["tensor_data"][name] + "\n")
        ),
        True,
        "JSON_MALFORMED",
    ),
    ("signatures not base64", _set("signatures", "A"), True, "JSON_MALFORMED"),
    # beyond the schema: tensor names, lengths, digests and values are checked by the decoder
    (
        "tensor_data for an unknown tensor",
        _set("tensor_data/no-such-tensor", ""),
        False,
        "DANGLING_REFERENCE",
    ),
    (
        "tensor_data entry missing",
        _first_tensor(lambda doc, name: doc["tensor_data"].pop(name)),
        False,
        "DANGLING_REFERENCE",
    ),
    ("tensor bytes too short", _tensor_bytes(lambda raw, _: raw[:-4]), False, "TENSOR_SHAPE"),
    (
        "tensor bytes altered",
        _tensor_bytes(lambda raw, _: bytes([raw[0] ^ 1]) + raw[1:]),
        False,
        "TENSOR_DIGEST",
    ),
    (
        "NaN in a tensor, digest updated",
        _tensor_bytes(lambda raw, _: b"\x00\x00\xc0\x7f" + raw[4:], rehash=True),
        False,
        "NONFINITE_VALUE",
    ),
    ("signatures not one CBOR item", _set("signatures", "AAAA"), False, "TRAILING_BYTES"),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c[0].replace(" ", "-"))
def test_json_form_agreement(demo: codec.Packet, case: JsonCase) -> None:
    name, apply, in_schema, code = case
    doc = json.loads(codec.encode_json(demo))
    apply(doc, demo)
    assert schema.is_valid(doc) is not in_schema, name
    with pytest.raises(M2ktError) as caught:
        codec.decode_json_data(doc)
    assert caught.value.code == code, f"{name}: {caught.value.code}: {caught.value}"


# --------------------------------------------------------------------------- beyond JSON


def _forged(demo: codec.Packet, envelope: Callable[..., bytes], edit: Callable[[dict], None]):
    body = demo.body.to_data()
    edit(body)
    return envelope(cbor2.dumps(body, canonical=True), demo.data)


def _expect(buf: bytes, code: str) -> None:
    with pytest.raises(M2ktError) as caught:
        codec.decode(buf)
    assert caught.value.code == code, f"{caught.value.code}: {caught.value}"
    assert code in [p.code for p in codec.iter_packet_errors(buf)]


def test_cbor_rules_outside_the_json_data_model(
    demo: codec.Packet, envelope: Callable[..., bytes]
) -> None:
    """What the CBOR body can say but JSON cannot; the schema never sees it (spec §4.2)."""

    def int_weight(body: dict) -> None:
        body["graph"]["edges"][0]["weight"] = 1  # a number field must be a CBOR float

    def float_count(body: dict) -> None:
        body["teacher"]["latent_dim"] = float(body["teacher"]["latent_dim"])

    def tag(body: dict) -> None:
        body["provenance"]["parameters"]["when"] = cbor2.CBORTag(1, 0)

    def bignum(body: dict) -> None:
        body["provenance"]["parameters"]["big"] = 2**64  # cbor2 writes tag 2

    def byte_string(body: dict) -> None:
        body["provenance"]["parameters"]["raw"] = b"\x00"

    def undefined(body: dict) -> None:
        body["extensions"]["x-demo.note"]["data"] = cbor2.undefined

    _expect(_forged(demo, envelope, int_weight), "NON_CANONICAL")
    _expect(_forged(demo, envelope, float_count), "SCHEMA_VIOLATION")
    _expect(_forged(demo, envelope, tag), "NON_CANONICAL")
    _expect(_forged(demo, envelope, bignum), "NON_CANONICAL")
    _expect(_forged(demo, envelope, byte_string), "SCHEMA_VIOLATION")
    _expect(_forged(demo, envelope, undefined), "SCHEMA_VIOLATION")


def test_json_text_rules_outside_the_schema(demo: codec.Packet) -> None:
    """Lone surrogates and integers beyond 64 bits never reach the CBOR body."""
    doc = json.loads(codec.encode_json(demo))
    doc["body"]["extensions"]["x-demo.note"]["data"] = "\ud800"
    with pytest.raises(M2ktError) as caught:
        codec.decode_json(json.dumps(doc))
    assert caught.value.code == "JSON_MALFORMED"
    # a typed field (pattern, length) too: the text rule comes before the schema
    doc = json.loads(codec.encode_json(demo))
    doc["body"]["concepts"][0]["id"] = "c\udfff"
    with pytest.raises(M2ktError) as caught:
        codec.decode_json(json.dumps(doc))
    assert caught.value.code == "JSON_MALFORMED"
    doc = json.loads(codec.encode_json(demo))
    doc["body"]["header"]["title"] = None  # optional fields are omitted, never null
    assert not schema.is_valid(doc)
    with pytest.raises(M2ktError) as caught:
        codec.decode_json_data(doc)
    assert caught.value.code == "SCHEMA_VIOLATION"


def test_json_form_gets_the_cbor_depth_limit(demo: codec.Packet) -> None:
    """Body map, extensions, one extension, then data: 3 levels before the data's own."""

    def nested(levels: int) -> Any:
        value: Any = 0
        for _ in range(levels):
            value = [value]
        return value

    doc = json.loads(codec.encode_json(demo))
    doc["body"]["extensions"]["x-demo.note"]["data"] = nested(29)
    packet = codec.decode_json_data(doc)
    assert codec.decode(codec.encode(packet)) == packet
    doc["body"]["extensions"]["x-demo.note"]["data"] = nested(30)
    assert schema.is_valid(doc)  # depth is a limit (§8), not a schema rule
    with pytest.raises(M2ktError) as caught:
        codec.decode_json_data(doc)
    assert caught.value.code == "LIMIT_EXCEEDED"


def test_extension_data_may_be_null(demo: codec.Packet) -> None:
    doc = json.loads(codec.encode_json(demo))
    doc["body"]["extensions"]["x-demo.note"]["data"] = None
    assert schema.is_valid(doc)
    packet = codec.decode_json_data(doc)
    assert codec.decode(codec.encode(packet)) == packet


# --------------------------------------------------------------------------- models vs schemas

#: Schema object -> model class, for the field-by-field comparison.
MODEL_OF = {
    ("body.schema.json", ""): model.PacketBody,
    ("header.schema.json", ""): model.Header,
    ("teacher.schema.json", ""): model.Teacher,
    ("concept.schema.json", ""): model.Concept,
    ("concept.schema.json", "/$defs/manifold"): model.Manifold,
    ("graph.schema.json", ""): model.Graph,
    ("graph.schema.json", "/$defs/edge"): model.Edge,
    ("trace.schema.json", ""): model.Trace,
    ("trace.schema.json", "/$defs/step"): model.TraceStep,
    ("anchor.schema.json", ""): model.Anchor,
    ("provenance.schema.json", ""): model.Provenance,
    ("provenance.schema.json", "/$defs/generator"): model.Generator,
    ("provenance.schema.json", "/$defs/task"): model.TaskRef,
    ("safety.schema.json", ""): model.Safety,
    ("tensor.schema.json", ""): model.TensorInfo,
    ("extensions.schema.json", "/$defs/extension"): model.Extension,
    ("ext-derivation.schema.json", ""): model.DerivationData,
    ("ext-derivation.schema.json", "/$defs/selection"): model.TraceSelectionData,
    ("ext-operators.schema.json", ""): model.OperatorsData,
    ("ext-operators.schema.json", "/$defs/entry"): model.OperatorEntryData,
}

#: Where the models state a rule differently from the schema, and why that is fine.
MODEL_DIFFERENCES = {
    # the models accept any MAJOR.MINOR; other majors are refused first, as UNSUPPORTED_VERSION
    ("Header", "version"),
    # the models take any lowercase name; unregistered ones are refused as UNKNOWN_RELATION
    ("Edge", "relation"),
    # pydantic writes the union str | int | float | bool as anyOf; the schema as a type list
    ("TaskRef", "options"),
}

_FACTS = (
    "type",
    "const",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "maxLength",
    "minItems",
    "maxItems",
)


Deref = Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]


def _ours(resolver: Any) -> Deref:
    """Follow $refs in our schemas; nested nodes resolve against the document they are in."""

    def deref(node: dict[str, Any]) -> tuple[dict[str, Any], Deref]:
        here = resolver
        while "$ref" in node:
            resolved = here.lookup(node["$ref"])
            node, here = resolved.contents, resolved.resolver
        return node, _ours(here)

    return deref


def _theirs(root: dict[str, Any]) -> Deref:
    """Follow pydantic's local $refs."""

    def deref(node: dict[str, Any]) -> tuple[dict[str, Any], Deref]:
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node, deref

    return deref


def _facts(node: dict[str, Any], deref: Deref) -> Any:
    """The constraints of a node that both descriptions must state alike."""
    node, deref = deref(node)
    if "patternProperties" in node:  # pydantic's form of a map with constrained keys
        ((pattern, value),) = node["patternProperties"].items()
        node = {**node, "propertyNames": {"pattern": pattern}, "additionalProperties": value}
    if "properties" in node:
        return ("object", sorted(node["properties"]), sorted(node.get("required", ())))
    if node.get("anyOf") and all("const" in b for b in node["anyOf"]):
        # our closed sets carry a description per value; pydantic writes a Literal as an enum
        node = {"type": "string", "enum": [b["const"] for b in node["anyOf"]]}
    facts: dict[str, Any] = {k: node[k] for k in _FACTS if k in node}
    for key in ("items", "additionalProperties"):
        if node.get(key) is True or isinstance(node.get(key), dict):
            facts[key] = _facts({} if node[key] is True else node[key], deref)
    if "propertyNames" in node:
        names, _ = deref(node["propertyNames"])
        names = {k: v for k, v in names.items() if k != "type"}
        facts["propertyNames"] = _facts(names, deref)
    return facts


def test_models_and_schemas_state_the_same_fields_and_constraints() -> None:
    registry = schema.registry()
    mismatches = set()
    for (name, pointer), section in MODEL_OF.items():
        ours = schema.resolve_local(name, pointer)
        theirs = section.model_json_schema()
        mine_deref = _ours(registry.resolver(base_uri=schema.schema_uri(name)))
        assert set(section.model_fields) == set(ours["properties"]), section.__name__
        for field, info in section.model_fields.items():
            assert info.is_required() == (field in ours.get("required", ())), (section, field)
            mine = _facts(ours["properties"][field], mine_deref)
            pyd = _facts(theirs["properties"][field], _theirs(theirs))
            if mine != pyd:
                mismatches.add((section.__name__, field))
    assert mismatches == MODEL_DIFFERENCES


def test_registries_agree() -> None:
    relation = schema.resolve_local("graph.schema.json", "/$defs/relation")
    consts = {b["const"] for b in relation["anyOf"] if "const" in b}
    assert consts == model.RELATIONS
    dtypes = schema.resolve_local("tensor.schema.json", "/properties/dtype")["enum"]
    assert set(dtypes) == set(tz.STORAGE_DTYPES)
    integer = schema.resolve_local("common.schema.json", "/$defs/int")
    assert (integer["minimum"], integer["maximum"]) == (model.INT_MIN, model.INT_MAX)


# --------------------------------------------------------------------------- spec tables


def _object_schemas() -> set[str]:
    found = set()
    for name in PACKET_SCHEMAS:
        doc = schema.schema_documents()[name]
        if "properties" in doc:
            found.add(f"fields {name}")
        for key, node in doc.get("$defs", {}).items():
            if "properties" in node:
                found.add(f"fields {name}#/$defs/{key}")
    return found


def _table_rows(block: str) -> list[list[str]]:
    rows = []
    for line in block.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows[1:]  # drop the header row


def test_every_object_has_a_field_table_in_the_spec() -> None:
    blocks = spec_tables.generated_blocks(SPEC.read_text(encoding="utf-8"))
    tables = {key for key in blocks if key.startswith("fields ")}
    assert tables == _object_schemas()
    assert {"types", "relations", "example"} <= blocks.keys()


def test_spec_field_tables_agree_with_the_schemas() -> None:
    """Independent of the generator: parse the tables and compare names and required-ness."""
    blocks = spec_tables.generated_blocks(SPEC.read_text(encoding="utf-8"))
    for key, block in blocks.items():
        if not key.startswith("fields "):
            continue
        name, _, pointer = key.removeprefix("fields ").partition("#")
        node = schema.resolve_local(name, pointer)
        rows = _table_rows(block)
        assert [r[0].strip("`") for r in rows] == list(node["properties"]), key
        required = [r[0].strip("`") for r in rows if r[2] == "yes"]
        assert required == [f for f in node["properties"] if f in node.get("required", ())], key
        assert all(r[2] in ("yes", "no") for r in rows), key
    types = _table_rows(blocks["types"])
    assert [r[0].strip("`") for r in types] == list(
        schema.resolve_local("common.schema.json", "/$defs")
    )


def test_spec_generated_blocks_are_current() -> None:
    text = SPEC.read_text(encoding="utf-8")
    current = spec_tables.generated_blocks(text)
    fresh = spec_tables.generated_blocks(spec_tables.regenerate(text))
    stale = sorted(k for k in current if k != "example" and current[k] != fresh[k])
    assert not stale, f"spec/packet-1.1.md blocks {stale} are stale; run: {spec_tables.REGENERATE}"


def test_worked_example_is_what_the_demo_packet_encodes_to() -> None:
    """The hex and packet id of spec §12 come from running the code (numpy's seeded RNG)."""
    block = spec_tables.generated_blocks(SPEC.read_text(encoding="utf-8"))["example"]
    assert block == spec_tables.worked_example() + "\n", (
        f"the worked example differs from demo_packet() on this machine; run: "
        f"{spec_tables.REGENERATE} (if it differs only here, the demo's floats depend on the BLAS)"
    )


def test_spec_examples_satisfy_their_schemas() -> None:
    """Every ```json block after an ``<!-- example: FILE -->`` marker is valid for FILE."""
    text = SPEC.read_text(encoding="utf-8")
    examples = re.findall(r"<!-- example: (\S+) -->\n```json\n(.*?)```", text, re.S)
    assert len(examples) >= 9
    for name, body in examples:
        check = schema._Validator({"$ref": schema.schema_uri(name)}, registry=schema.registry())
        problems = [e.message for e in check.iter_errors(json.loads(body))]
        assert problems == [], (name, problems)
