"""Decoding limits (spec §8): each one is enforced, and before the memory it guards is allocated."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from data_items import data_items

from m2kt_ref.errors import M2ktError
from m2kt_ref.packet import codec
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits

MiB = 1 << 20


def refused(call: Callable[[], Any]) -> M2ktError:
    with pytest.raises(M2ktError) as info:
        call()
    return info.value


def peak_of(call: Callable[[], Any]) -> tuple[int, M2ktError]:
    """tracemalloc peak (bytes) while ``call`` fails, and the error it raised."""
    tracemalloc.start()
    try:
        error = refused(call)
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


def test_defaults_accept_the_demo(demo, demo_cbor):
    assert codec.encode(codec.decode(demo_cbor, DEFAULT_LIMITS)) == demo_cbor
    assert Limits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.to_dict()["max_depth"] == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_depth = 1  # type: ignore[misc]


def _counts(demo) -> dict[str, int]:
    body = demo.body
    return {
        "max_concepts": len(body.concepts),
        "max_edges": len(body.graph.edges),
        "max_traces": len(body.traces),
        "max_trace_steps": max(len(t.steps) for t in body.traces),
        "max_anchors": len(body.anchors),
        "max_tensors": len(body.tensors),
        "max_tensor_bytes": max(t.length for t in body.tensors),
        "max_body_bytes": len(demo.body_bytes),
        "max_packet_bytes": len(codec.encode(demo)),
        "max_depth": 5,  # containers in containers: body / traces / trace / steps / step
        "max_body_items": data_items(cbor2.loads(demo.body_bytes)),
    }


@pytest.mark.parametrize(
    "name",
    [
        "max_concepts",
        "max_edges",
        "max_traces",
        "max_trace_steps",
        "max_anchors",
        "max_tensors",
        "max_tensor_bytes",
        "max_body_bytes",
        "max_packet_bytes",
        "max_depth",
        "max_body_items",
    ],
)
def test_each_limit_is_enforced(demo, demo_cbor, demo_json, name):
    at_limit = _counts(demo)[name]
    exact = Limits(**{name: at_limit})
    assert codec.encode(codec.decode(demo_cbor, exact)) == demo_cbor  # the limit is inclusive
    tight = Limits(**{name: at_limit - 1})
    error = refused(lambda: codec.decode(demo_cbor, tight))
    assert error.code == "LIMIT_EXCEEDED", error
    assert [p.code for p in codec.iter_packet_errors(demo_cbor, tight)] == ["LIMIT_EXCEEDED"]
    if name not in ("max_body_bytes", "max_depth"):  # the JSON form has neither
        assert refused(lambda: codec.decode_json(demo_json, tight)).code == "LIMIT_EXCEEDED"
    if name == "max_body_items":  # the JSON form counts its body as the CBOR form does
        assert codec.decode_json(demo_json, exact) == demo


def test_signature_bytes(demo):
    signatures = codec.canonical_cbor([b"\x00" * 100])
    buf = codec.encode(demo.with_signatures(signatures))
    assert codec.decode(buf, Limits(max_signature_bytes=len(signatures))).signatures == signatures
    tight = Limits(max_signature_bytes=len(signatures) - 1)
    assert refused(lambda: codec.decode(buf, tight)).code == "LIMIT_EXCEEDED"
    text = codec.encode_json(demo.with_signatures(signatures))
    assert refused(lambda: codec.decode_json(text, tight)).code == "LIMIT_EXCEEDED"


def test_deep_nesting_in_the_body(demo, envelope):
    raw = cbor2.loads(demo.body_bytes)
    value: Any = 1
    for _ in range(DEFAULT_LIMITS.max_depth + 1):
        value = [value]
    raw["provenance"]["parameters"]["deep"] = value
    buf = envelope(cbor2.dumps(raw, canonical=True), demo.data)
    error = refused(lambda: codec.decode(buf))
    assert (error.code, error.path) == ("LIMIT_EXCEEDED", "/body")


def test_counts_are_checked_before_the_schema(demo, envelope):
    """Eleven junk concepts under a limit of ten: the count is refused, the junk never looked at."""
    raw = cbor2.loads(demo.body_bytes)
    raw["concepts"] = [{"junk": i} for i in range(11)]
    buf = envelope(cbor2.dumps(raw, canonical=True), demo.data)
    error = refused(lambda: codec.decode(buf, Limits(max_concepts=10)))
    assert (error.code, error.path) == ("LIMIT_EXCEEDED", "/body/concepts")
    assert refused(lambda: codec.decode(buf)).code == "SCHEMA_VIOLATION"


# --------------------------------------------------------------------------- before allocation


def _header(major: int, n: int) -> bytes:
    return bytes([major << 5 | 27]) + n.to_bytes(8, "big")


def test_huge_declared_body_is_refused_without_allocating():
    buf = b"\xd9\xd9\xf7\xa3\x63pad\x40\x64body" + _header(2, 1 << 62) + b"\x00" * 16
    peak, error = peak_of(lambda: codec.decode(buf))
    assert error.code == "LIMIT_EXCEEDED" and error.path == "/body"
    assert peak < MiB


def test_huge_declared_data_is_refused_without_allocating(demo):
    body = demo.body_bytes
    head = (
        b"\xd9\xd9\xf7\xa3\x63pad\x40\x64body"
        + bytes([0x59])
        + len(body).to_bytes(2, "big")
        + body
        + b"\x64data"
    )
    for declared in (1 << 40, (1 << 64) - 1):
        buf = head + _header(2, declared)
        peak, error = peak_of(lambda buf=buf: codec.decode(buf))
        assert error.code == "TRUNCATED"
        assert peak < MiB
        limits = Limits(max_packet_bytes=len(buf) - 1)
        assert refused(lambda buf=buf, limits=limits: codec.decode(buf, limits)).code == (
            "LIMIT_EXCEEDED"
        )


def test_huge_declared_tensor_is_refused_without_allocating(demo, envelope):
    raw = cbor2.loads(demo.body_bytes)
    last = raw["tensors"][-1]
    last["shape"] = [1 << 40]
    last["length"] = 1 << 40
    buf = envelope(cbor2.dumps(raw, canonical=True), demo.data)
    peak, error = peak_of(lambda: codec.decode(buf))
    assert error.code == "LIMIT_EXCEEDED" and error.path.startswith("/body/tensors/")
    assert peak < 4 * MiB


def test_json_form_checks_tensor_lengths_before_allocating(demo_json):
    """A JSON form may declare a 4 GiB tensor with no bytes behind it: refused, not allocated."""
    doc = json.loads(demo_json)
    body = copy.deepcopy(doc["body"])
    last = body["tensors"][-1]
    # an f32 anchor state cannot change width alone, so append a big tensor at the end
    big = {
        "name": "huge",
        "dtype": "f32",
        "shape": [1 << 30],
        "offset": codec.tz.aligned(last["offset"] + last["length"]),
        "length": 4 << 30,
        "sha256": "0" * 64,
    }
    body["tensors"].append(big)
    text = json.dumps({**doc, "body": body, "tensor_data": {**doc["tensor_data"], "huge": "AAAA"}})
    peak, error = peak_of(lambda: codec.decode_json(text))
    assert error.code == "TENSOR_SHAPE" and error.path == "/tensor_data/huge"
    assert peak < 8 * MiB
    # and with the bytes present, the per-tensor limit still applies
    small = {**big, "shape": [4], "length": 16}
    body["tensors"][-1] = small
    payload = base64.b64encode(bytes(16)).decode()
    text = json.dumps({**doc, "body": body, "tensor_data": {**doc["tensor_data"], "huge": payload}})
    assert refused(lambda: codec.decode_json(text, Limits(max_tensor_bytes=15))).code == (
        "LIMIT_EXCEEDED"
    )


# --------------------------------------------------------------------------- items before objects


def test_a_body_of_empty_maps_is_refused_before_one_is_built(demo, envelope):
    """200,000 one-byte empty maps under a limit of 10,000 items: refused with the body bytes as
    the only large allocation (decoding them would build 200,000 dicts, some 14 MB)."""
    raw = cbor2.loads(demo.body_bytes)
    raw["provenance"]["parameters"]["x"] = [{}] * 200_000
    buf = envelope(cbor2.dumps(raw, canonical=True), demo.data)
    limits = Limits(max_body_items=10_000)
    peak, error = peak_of(lambda: codec.decode(buf, limits))
    assert (error.code, error.path) == ("LIMIT_EXCEEDED", "/body")
    assert peak < 2 * len(buf)
    assert [e.code for e in codec.iter_packet_errors(buf, limits)] == ["LIMIT_EXCEEDED"]
    assert codec.decode(buf).body.provenance.parameters["x"] == [{}] * 200_000  # default: fits


def test_the_json_form_is_counted_before_it_is_parsed(demo):
    doc = json.loads(codec.encode_json(demo))
    doc["body"]["provenance"]["parameters"]["x"] = [{}] * 200_000
    text = json.dumps(doc).encode()
    limits = Limits(max_body_items=10_000)
    peak, error = peak_of(lambda: codec.decode_json(text, limits))
    assert (error.code, error.path) == ("LIMIT_EXCEEDED", "/body")
    assert peak < 2 * len(text)
    assert codec.decode_json(text).body.provenance.parameters["x"] == [{}] * 200_000


def test_items_beside_the_body_are_bounded_by_the_tensor_count(demo):
    """Beside the body: 2 × max_tensors + 8 items; one more is refused before the unknown
    member that holds them is looked at (else it would be SCHEMA_VIOLATION)."""
    doc = json.loads(codec.encode_json(demo))
    tensors = len(demo.body.tensors)
    beside = 1 + 2 + 1 + 2 + 2 * tensors  # top object, m2kt_json, body's name, tensor_data
    doc["x"] = [0] * (2 * tensors + 8 - beside - 2)  # its name and array, then numbers
    limits = Limits(max_tensors=tensors)
    at_bound = json.dumps(doc).encode()
    assert refused(lambda: codec.decode_json(at_bound, limits)).code == "SCHEMA_VIOLATION"
    doc["x"].append(0)
    over = json.dumps(doc).encode()
    assert refused(lambda: codec.decode_json(over, limits)).code == "LIMIT_EXCEEDED"
    doc["x"] = [{}] * 100_000  # within the default bound: parsed, then refused
    assert refused(lambda: codec.decode_json(json.dumps(doc).encode())).code == "SCHEMA_VIOLATION"


def test_maps_where_the_envelope_should_be_are_counted_before_they_are_explained():
    """The magic tag, then an array of 2,000,000 empty maps: not an envelope, and explaining why
    (a generic decode) would build every map; it is refused from the count instead."""
    buf = b"\xd9\xd9\xf7\x9a" + (2_000_000).to_bytes(4, "big") + b"\xa0" * 2_000_000
    peak, error = peak_of(lambda: codec.decode(buf))
    assert error.code == "LIMIT_EXCEEDED"
    assert peak < 2 * len(buf)


def test_hostile_report_files_are_refused_with_codes(tmp_path):
    """A report is someone else's file: deep, wide or huge ones get codes, never a traceback."""
    from m2kt_ref.packet import receipt

    deep, wide, huge = tmp_path / "deep.json", tmp_path / "wide.json", tmp_path / "huge.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    wide.write_text("[" + ",".join(["{}"] * (receipt.MAX_REPORT_ITEMS + 1)) + "]")
    with open(huge, "wb") as f:
        f.truncate(receipt.MAX_REPORT_BYTES + 1)
    assert refused(lambda: receipt.read_report(deep)).code == "USAGE"
    peak, error = peak_of(lambda: receipt.read_report(wide))
    assert error.code == "LIMIT_EXCEEDED" and peak < 2 * wide.stat().st_size
    assert refused(lambda: receipt.read_report(huge)).code == "LIMIT_EXCEEDED"
