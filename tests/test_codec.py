"""The codec: round trips in both encodings, zero-copy layout, and hostile bytes.

Hostile input of any kind must end in an ``M2ktError`` whose code is in the registry, never in
another exception; inputs that a mutation leaves valid must still re-encode to the same bytes.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from typing import Any

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import examples, json_scalars, json_values, packets

from m2kt_ref.errors import REGISTRY, M2ktError, UsageError
from m2kt_ref.packet import codec
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits

FAST = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def assert_coded(exc: BaseException) -> None:
    assert isinstance(exc, M2ktError), f"{type(exc).__name__}: {exc}"
    assert exc.code in REGISTRY


def decode_outcome(buf: bytes, limits: Limits = DEFAULT_LIMITS) -> codec.Packet | M2ktError:
    """Decode, and check iter_packet_errors agrees: both fail with coded errors, or neither."""
    problems = list(codec.iter_packet_errors(buf, limits))
    for p in problems:
        assert_coded(p)
    try:
        packet = codec.decode(buf, limits)
    except Exception as exc:
        assert_coded(exc)
        assert problems, f"decode raised {exc.code} but iter_packet_errors found nothing"
        return exc
    assert not problems, [p.code for p in problems]
    assert codec.encode(packet) == bytes(buf)  # anything accepted is canonical
    return packet


def expect_code(buf: bytes, code: str, limits: Limits = DEFAULT_LIMITS) -> M2ktError:
    outcome = decode_outcome(buf, limits)
    assert isinstance(outcome, M2ktError), "decoded without error"
    assert outcome.code == code, f"{outcome.code}: {outcome}"
    return outcome


# --------------------------------------------------------------------------- round trips


def test_demo_round_trip_cbor(demo, demo_cbor):
    again = codec.decode(demo_cbor)
    assert codec.encode(again) == demo_cbor
    assert again == demo
    assert again.packet_id == demo.packet_id
    assert b"".join(bytes(c) for c in codec.encode_chunks(again)) == demo_cbor


def test_demo_round_trip_json(demo, demo_cbor, demo_json):
    from_json = codec.decode_json(demo_json)
    assert codec.encode(from_json) == demo_cbor
    assert codec.encode_json(from_json) == demo_json
    assert codec.encode_json(codec.decode(demo_cbor)) == demo_json
    assert json.loads(demo_json) == codec.to_json_data(demo)
    assert codec.encode(codec.decode_json_data(codec.to_json_data(demo))) == demo_cbor


@pytest.mark.parametrize("encoding", ["cbor", "json"])
def test_files_round_trip(tmp_path, demo, demo_cbor, encoding):
    path = tmp_path / f"p.{encoding}"
    codec.write_packet(demo, path, encoding=encoding)
    assert codec.encode(codec.read_packet(path)) == demo_cbor
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_write_packet_refuses_unknown_encoding(tmp_path, demo):
    with pytest.raises(UsageError) as info:
        codec.write_packet(demo, tmp_path / "x", encoding="yaml")
    assert info.value.code == "USAGE"


def test_envelope_is_deterministic_cbor(demo, demo_cbor):
    """A generic decoder reads the envelope, and canonical re-encoding gives the same bytes."""
    signatures = codec.canonical_cbor([b"\x01", {}, []])
    for packet in (demo, demo.with_signatures(signatures)):
        buf = codec.encode(packet)
        assert buf[:3] == b"\xd9\xd9\xf7"  # tag 55799 (self-described CBOR)
        envelope = cbor2.loads(buf[3:])
        assert list(envelope) == [
            "pad",
            "body",
            "data",
            *(["signatures"] * bool(packet.signatures)),
        ]
        assert envelope["body"] == packet.body_bytes
        assert cbor2.loads(envelope["body"]) == packet.body.to_data()
        assert b"\xd9\xd9\xf7" + cbor2.dumps(dict(envelope), canonical=True) == buf
    signed = codec.decode(codec.encode(demo.with_signatures(signatures)))
    assert signed.signatures == signatures
    assert signed.packet_id == demo.packet_id
    assert codec.encode(codec.decode_json(codec.encode_json(signed))) == codec.encode(signed)


@FAST
@given(packets())
def test_generated_packets_round_trip(packet):
    buf = codec.encode(packet)
    again = codec.decode(buf)
    assert codec.encode(again) == buf
    assert again.body == packet.body
    for t in packet.body.tensors:
        assert again.tensor(t.name).tobytes() == packet.tensor(t.name).tobytes()
    text = codec.encode_json(packet)
    from_json = codec.decode_json(text)
    assert codec.encode(from_json) == buf
    assert codec.encode_json(from_json) == text
    assert list(codec.iter_packet_errors(buf)) == []


# --------------------------------------------------------------------------- zero copy, layout


def _payload_offsets(packet: codec.Packet, buf_array: np.ndarray) -> dict[str, int]:
    base = buf_array.ctypes.data
    return {t.name: packet.tensor(t.name).ctypes.data - base for t in packet.body.tensors}


def test_decode_is_zero_copy_and_aligned(demo_cbor):
    buf = bytes(demo_cbor)
    whole = np.frombuffer(buf, np.uint8)
    packet = codec.decode(buf)
    data_start = np.frombuffer(packet.data, np.uint8).ctypes.data - whole.ctypes.data
    assert data_start % tz.ALIGNMENT == 0
    assert data_start == len(buf) - len(packet.data)  # unsigned: the payload ends the file
    for name, where in _payload_offsets(packet, whole).items():
        array = packet.tensor(name)
        assert np.shares_memory(array, whole)
        assert not array.flags.writeable
        assert where % tz.ALIGNMENT == 0
        assert where == data_start + packet.tensor_info(name).offset


def test_read_packet_maps_the_file(tmp_path, demo):
    path = tmp_path / "p.m2kt"
    codec.write_packet(demo, path)
    packet = codec.read_packet(path)
    mapped = np.frombuffer(packet.data.obj, np.uint8)  # the mmap behind the data view
    assert len(mapped) == path.stat().st_size
    for name, where in _payload_offsets(packet, mapped).items():
        assert np.shares_memory(packet.tensor(name), mapped)
        assert where % tz.ALIGNMENT == 0


def test_decode_without_verification_still_checks_the_data_size(demo, envelope):
    short = envelope(demo.body_bytes, bytes(demo.data)[:-64])
    with pytest.raises(M2ktError) as info:
        codec.decode(short, verify_tensors=False)
    assert info.value.code == "TENSOR_LAYOUT"
    corrupt = bytearray(codec.encode(demo))
    first = demo.body.tensors[0]
    corrupt[len(corrupt) - len(demo.data) + first.offset] ^= 0x01  # only a digest can see it
    packet = codec.decode(bytes(corrupt), verify_tensors=False)
    assert packet.packet_id == demo.packet_id
    expect_code(bytes(corrupt), "TENSOR_DIGEST")


# --------------------------------------------------------------------------- hostile bytes


def test_truncation_at_every_offset(demo_cbor):
    for end in range(len(demo_cbor)):
        with pytest.raises(M2ktError) as info:
            codec.decode(demo_cbor[:end])
        assert info.value.code in {"TRUNCATED", "NOT_A_PACKET"} or end < 4, end
        if end % 97 == 0:
            assert [p.code for p in codec.iter_packet_errors(demo_cbor[:end])] == [info.value.code]


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    assert isinstance(decode_outcome(data), M2ktError)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_the_magic(data):
    for prefix in (b"\xd9\xd9\xf7", b"\xd9\xd9\xf7\xa3\x63pad"):
        assert isinstance(decode_outcome(prefix + data), M2ktError)


@settings(max_examples=examples(200), deadline=None)
@given(st.data())
def test_byte_flips(demo_cbor, data):
    buf = bytearray(demo_cbor)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    assume(bytes(buf) != demo_cbor)
    decode_outcome(bytes(buf))  # either coded, or a (re-encodable) valid packet


@FAST
@given(st.data())
def test_insertions_and_deletions(demo_cbor, data):
    at = data.draw(st.integers(0, len(demo_cbor) - 1))
    if data.draw(st.booleans()):
        buf = demo_cbor[:at] + data.draw(st.binary(min_size=1, max_size=9)) + demo_cbor[at:]
    else:
        buf = demo_cbor[:at] + demo_cbor[at + data.draw(st.integers(1, 9)) :]
    assert isinstance(decode_outcome(buf), M2ktError)


cbor_values = st.recursive(
    st.one_of(
        json_scalars,
        st.floats(),  # NaN and infinities included
        st.integers(-(2**70), 2**70),
        st.binary(max_size=4),
        st.sampled_from([cbor2.undefined, cbor2.CBORSimpleValue(99), cbor2.CBORTag(99, 1)]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=examples(300), deadline=None)
@given(st.data())
def test_body_mutations(demo, envelope, data):
    """Any value anywhere in a canonically encoded body: coded error or a valid packet."""
    raw = cbor2.loads(demo.body_bytes)
    path = data.draw(st.sampled_from(_paths(raw)[1:]))
    mutated = copy.deepcopy(raw)
    target = mutated
    for key in path[:-1]:
        target = target[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete" and isinstance(target, dict):
        del target[path[-1]]
    elif action == "add" and isinstance(target, dict):
        target[data.draw(st.text(max_size=6) | st.integers(0, 3))] = data.draw(cbor_values)
    else:
        target[path[-1]] = data.draw(cbor_values)
    try:
        body = cbor2.dumps(mutated, canonical=True)
    except Exception:
        assume(False)
    decode_outcome(envelope(body, demo.data))


# Forged encodings, each with the code it must produce. Built from the demo's body bytes.


def _forge(demo: codec.Packet) -> dict[str, tuple[bytes, bytes]]:
    """name -> (body bytes, data bytes) of forged packets."""
    body, data = demo.body_bytes, bytes(demo.data)
    raw = cbor2.loads(body)
    teacher = cbor2.dumps(raw["teacher"], canonical=True)

    def with_raw(edit) -> bytes:
        value = copy.deepcopy(raw)
        edit(value)
        return cbor2.dumps(value, canonical=True)

    def indefinite_map(d: dict) -> bytes:
        items = sorted(
            (cbor2.dumps(k, canonical=True), cbor2.dumps(v, canonical=True)) for k, v in d.items()
        )
        return b"\xbf" + b"".join(k + v for k, v in items) + b"\xff"

    assert b"jlatent_dim\x08" in body and b"fweight\xf9\x3c\x00" in body
    assert b"dkindfsymbol" in body

    def reordered(record: dict) -> bytes:
        """The record with its entries in reverse order (the same length as canonical)."""
        entries = [
            cbor2.dumps(k, canonical=True) + cbor2.dumps(v, canonical=True)
            for k, v in record.items()
        ]
        return bytes([0xA0 + len(record)]) + b"".join(sorted(entries, reverse=True))

    def swap_first(record: dict) -> bytes:
        canonical = cbor2.dumps(record, canonical=True)
        assert canonical in body
        return body.replace(canonical, reordered(record), 1)

    for literal in (
        b"foffset\x00",
        b"eshape\x81",
        b"fsha256\x78\x40",
        b"gsupport\x04",
        b"einput\x81\x00",
    ):
        assert literal in body, literal
    forged = {
        # the arrays of records (tensor descriptors, concepts, anchors, edges) are checked by
        # column (m2kt_ref.packet.columns): each way to leave their canonical form
        "descriptor: non-minimal int": (body.replace(b"foffset\x00", b"foffset\x18\x00", 1), data),
        "descriptor: non-minimal array length": (
            body.replace(b"eshape\x81", b"eshape\x98\x01", 1),
            data,
        ),
        "descriptor: non-minimal text length": (
            body.replace(b"fsha256\x78\x40", b"fsha256\x79\x00\x40", 1),
            data,
        ),
        "descriptor: keys out of order": (swap_first(raw["tensors"][0]), data),
        "descriptor: int scale": (
            with_raw(lambda r: next(t for t in r["tensors"] if "scale" in t).update(scale=1)),
            data,
        ),
        "concept: keys out of order": (swap_first(raw["concepts"][0]), data),
        "manifold: non-minimal int": (body.replace(b"gsupport\x04", b"gsupport\x18\x04", 1), data),
        "anchor: non-minimal token": (
            body.replace(b"einput\x81\x00", b"einput\x81\x18\x00", 1),
            data,
        ),
        "anchor: keys out of order": (swap_first(raw["anchors"][0]), data),
        "edge: keys out of order": (swap_first(raw["graph"]["edges"][0]), data),
        "unsorted keys": (cbor2.dumps(dict(reversed(raw.items()))), data),
        "non-minimal int": (body.replace(b"jlatent_dim\x08", b"jlatent_dim\x18\x08"), data),
        "non-minimal length": (
            body.replace(b"dkindfsymbol", b"dkind\x78\x06symbol"),
            data,
        ),
        "non-shortest float": (
            body.replace(b"fweight\xf9\x3c\x00", b"fweight\xfa\x3f\x80\x00\x00"),
            data,
        ),
        "int where a float belongs": (body.replace(b"fweight\xf9\x3c\x00", b"fweight\x01"), data),
        "indefinite map": (indefinite_map(raw), data),
        "indefinite text": (body.replace(b"dkindfsymbol", b"dkind\x7f\x66symbol\xff", 1), data),
        "duplicate key": (
            body.replace(teacher, bytes([teacher[0] + 1]) + teacher[1:] + b"dnameax"),
            data,
        ),
        "nan in body": (with_raw(lambda r: r["safety"].update(max_parameter_drift=math.nan)), data),
        "inf in parameters": (
            with_raw(lambda r: r["provenance"]["parameters"].update(x=-math.inf)),
            data,
        ),
        "bytes in parameters": (
            with_raw(lambda r: r["provenance"]["parameters"].update(x=b"\x00")),
            data,
        ),
        "version 2": (with_raw(lambda r: r["header"].update(version="2.0")), data),
        "critical extension": (
            with_raw(lambda r: r["extensions"]["x-demo.note"].update(critical=True)),
            data,
        ),
        "deep nesting": (
            with_raw(lambda r: r["provenance"]["parameters"].update(x=_nested(40))),
            data,
        ),
        "body not a map": (cbor2.dumps([1, 2]), data),
        "body with trailing bytes": (body + b"\x00", data),
        "body malformed": (body[:-1] + b"\xfc", data),
        "short data": (body, data[:-64]),
        "long data": (body, data + bytes(64)),
        "non-zero padding in data": (body, data[:-1] + b"\x01"),
    }
    return forged


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


FORGED_CODES = {
    "unsorted keys": "NON_CANONICAL",
    "descriptor: non-minimal int": "NON_CANONICAL",
    "descriptor: non-minimal array length": "NON_CANONICAL",
    "descriptor: non-minimal text length": "NON_CANONICAL",
    "descriptor: keys out of order": "NON_CANONICAL",
    "descriptor: int scale": "NON_CANONICAL",
    "concept: keys out of order": "NON_CANONICAL",
    "manifold: non-minimal int": "NON_CANONICAL",
    "anchor: non-minimal token": "NON_CANONICAL",
    "anchor: keys out of order": "NON_CANONICAL",
    "edge: keys out of order": "NON_CANONICAL",
    "non-minimal int": "NON_CANONICAL",
    "non-minimal length": "NON_CANONICAL",
    "non-shortest float": "NON_CANONICAL",
    "int where a float belongs": "NON_CANONICAL",
    "indefinite map": "INDEFINITE_LENGTH",
    "indefinite text": "INDEFINITE_LENGTH",
    "duplicate key": "DUPLICATE_KEY",
    "nan in body": "NONFINITE_VALUE",
    "inf in parameters": "NONFINITE_VALUE",
    "bytes in parameters": "SCHEMA_VIOLATION",
    "version 2": "UNSUPPORTED_VERSION",
    "critical extension": "CRITICAL_EXTENSION",
    "deep nesting": "LIMIT_EXCEEDED",
    "body not a map": "SCHEMA_VIOLATION",
    "body with trailing bytes": "TRAILING_BYTES",
    "body malformed": "CBOR_MALFORMED",
    "short data": "TENSOR_LAYOUT",
    "long data": "TENSOR_LAYOUT",
    "non-zero padding in data": "TENSOR_LAYOUT",
}


@pytest.mark.parametrize("name", sorted(FORGED_CODES))
def test_forged_body(demo, envelope, name):
    body, data = _forge(demo)[name]
    expect_code(envelope(body, data), FORGED_CODES[name])


def _tensor_with(demo: codec.Packet, dtype: str, stored: bytes) -> tuple[bytes, bytes]:
    """Body and data where the first tensor of ``dtype`` starts with ``stored``, digest updated."""
    raw = cbor2.loads(demo.body_bytes)
    data = bytearray(demo.data)
    info = next(t for t in raw["tensors"] if t["dtype"] == dtype)
    data[info["offset"] : info["offset"] + len(stored)] = stored
    info["sha256"] = tz.sha256_hex(bytes(data[info["offset"] : info["offset"] + info["length"]]))
    return cbor2.dumps(raw, canonical=True), bytes(data)


@pytest.mark.parametrize(
    ("dtype", "stored", "code"),
    [
        ("f32", struct.pack("<f", math.nan), "NONFINITE_VALUE"),
        ("f32", struct.pack("<f", -math.inf), "NONFINITE_VALUE"),
        ("f16", np.array([np.inf], "<f2").tobytes(), "NONFINITE_VALUE"),
        ("f16", np.array([np.nan], "<f2").tobytes(), "NONFINITE_VALUE"),
        ("bf16", b"\x80\x7f", "NONFINITE_VALUE"),  # +inf
        ("bf16", b"\xc1\xff", "NONFINITE_VALUE"),  # a NaN
        ("i8", b"\x80", "TENSOR_DTYPE"),  # -128 is reserved
    ],
)
def test_forged_tensor_values(demo, envelope, dtype, stored, code):
    expect_code(envelope(*_tensor_with(demo, dtype, stored)), code)


def test_envelope_problems(demo, demo_cbor, envelope):
    body, data = demo.body_bytes, bytes(demo.data)
    good_pad = len(envelope(body, data)) - len(demo_cbor)  # zero: sanity of the helper
    assert good_pad == 0
    pad_len = next(n for n in range(128) if envelope(body, data, pad=bytes(n)) == demo_cbor)
    expect_code(demo_cbor + b"\x00", "TRAILING_BYTES")
    expect_code(envelope(body, data, pad=b"\x01" + bytes(pad_len - 1)), "BAD_PADDING")
    expect_code(envelope(body, data, pad=bytes(pad_len + 64)), "BAD_PADDING")
    expect_code(b"", "TRUNCATED")
    expect_code(b"\xd9\xd9", "TRUNCATED")
    expect_code(b"\x01", "NOT_A_PACKET")
    expect_code(b"{}", "NOT_A_PACKET")
    expect_code(cbor2.dumps(cbor2.CBORTag(55799, {"a": 1})), "NOT_A_PACKET")
    expect_code(cbor2.dumps({"pad": b"", "body": body, "data": data}), "NOT_A_PACKET")
    # right entries in the wrong order: well-formed CBOR but not the deterministic envelope
    reordered = cbor2.CBORTag(55799, {"body": body, "pad": bytes(pad_len), "data": data})
    expect_code(b"\xd9\xd9\xf7" + cbor2.dumps(reordered.value), "NON_CANONICAL")
    # non-minimal length of the body byte string (0x59 + 2 bytes -> 0x5a + 4 bytes)
    head = demo_cbor.index(b"\x64body") + 5
    assert demo_cbor[head] == 0x59
    longer = demo_cbor[:head] + b"\x5a\x00\x00" + demo_cbor[head + 1 :]
    expect_code(longer, "NON_CANONICAL")
    expect_code(b"\xd9\xd9\xf7\xbf\xff", "INDEFINITE_LENGTH")
    expect_code(b"\xd9\xd9\xf7\xa2\x61a\x01\x61a\x02", "DUPLICATE_KEY")
    expect_code(b"\xd9\xd9\xf7\x1c", "CBOR_MALFORMED")
    expect_code(b"\xd9\xd9\xf7" + b"\x81" * 100 + b"\x00", "LIMIT_EXCEEDED")


@pytest.mark.parametrize(
    ("signatures", "code"),
    [
        (b"\xff", "CBOR_MALFORMED"),
        (b"\x80\x80", "TRAILING_BYTES"),
        (b"\x9f\xff", "INDEFINITE_LENGTH"),
        (b"", "TRUNCATED"),
    ],
)
def test_bad_signatures_item(demo, envelope, signatures, code):
    expect_code(envelope(demo.body_bytes, demo.data, signatures=signatures), code)


def test_iter_packet_errors_lists_every_problem(demo, envelope):
    raw = cbor2.loads(demo.body_bytes)
    raw["graph"]["edges"][0]["target"] = "nowhere"
    raw["graph"]["edges"][1]["relation"] = "unheard_of"
    raw["anchors"][1]["concept"] = "nobody"
    buf = envelope(cbor2.dumps(raw, canonical=True), demo.data)
    codes = [p.code for p in codec.iter_packet_errors(buf)]
    assert sorted(codes) == ["DANGLING_REFERENCE", "DANGLING_REFERENCE", "UNKNOWN_RELATION"]
    paths = {p.path for p in codec.iter_packet_errors(buf)}
    assert "/body/graph/edges/0" in paths and "/body/anchors/1/concept" in paths
    expect_code(buf, codes[0])


# --------------------------------------------------------------------------- the JSON form


def _json_doc(demo_json: bytes) -> dict[str, Any]:
    return json.loads(demo_json)


def _json_code(text: bytes | str, code: str) -> None:
    with pytest.raises(M2ktError) as info:
        codec.decode_json(text)
    assert info.value.code == code, f"{info.value.code}: {info.value}"


def test_json_form_problems(demo_json):
    doc = _json_doc(demo_json)
    name = next(iter(doc["tensor_data"]))
    _json_code(b"{", "JSON_MALFORMED")
    _json_code(b"\xff\xfe", "JSON_MALFORMED")
    _json_code(demo_json.replace(b'"spread":0.17', b'"spread":NaN', 1), "JSON_MALFORMED")
    _json_code(demo_json.replace(b'"spread":0.17', b'"spread":1e400', 1), "NONFINITE_VALUE")
    _json_code(b'{"a":1,"a":2}', "DUPLICATE_KEY")
    _json_code(b"[]", "NOT_A_PACKET")
    _json_code(b'{"body":{}}', "NOT_A_PACKET")
    _json_code(json.dumps({**doc, "extra": 1}), "SCHEMA_VIOLATION")
    _json_code(json.dumps({**doc, "tensor_data": []}), "SCHEMA_VIOLATION")
    for value, code in (
        ("!!", "JSON_MALFORMED"),
        (7, "SCHEMA_VIOLATION"),
        ("AAAA", "TENSOR_SHAPE"),
    ):
        _json_code(json.dumps({**doc, "tensor_data": {**doc["tensor_data"], name: value}}), code)
    missing = {k: v for k, v in doc["tensor_data"].items() if k != name}
    _json_code(json.dumps({**doc, "tensor_data": missing}), "DANGLING_REFERENCE")
    _json_code(
        json.dumps({**doc, "tensor_data": {**doc["tensor_data"], "ghost": ""}}),
        "DANGLING_REFERENCE",
    )
    _json_code(json.dumps({**doc, "signatures": "/w=="}), "CBOR_MALFORMED")
    _json_code(b"[" * 100000, "JSON_MALFORMED")


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_json_form_arbitrary_text(text):
    with pytest.raises(M2ktError) as info:
        codec.decode_json(text)
    assert_coded(info.value)


@settings(max_examples=examples(200), deadline=None)
@given(st.data())
def test_json_form_mutations(demo_json, data):
    doc = _json_doc(demo_json)
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(json_values | st.floats())
    text = json.dumps(doc)  # NaN/Infinity become JSON's non-standard constants: refused
    try:
        packet = codec.decode_json(text)
    except Exception as exc:
        assert_coded(exc)
        return
    assert codec.decode(codec.encode(packet)) == packet


@pytest.mark.parametrize("workers", [1, 2])
def test_tensor_data_problems_in_big_packets(demo, envelope, workers):
    """Over 8 MiB the checks run on a thread pool; problems still come out in order."""
    rows = np.arange(3 * (1 << 20), dtype=np.float32).reshape(3, -1) / (1 << 20)
    packet = codec.assemble(
        _big_fields(demo.body.to_data(), rows.shape[1]),
        {f"e{i}": tz.encode(rows[i]) for i in range(3)},
    )
    assert codec.decode(codec.encode(packet), workers=workers) == packet
    data = bytearray(packet.data)
    data[packet.tensor_info("e2").offset] ^= 1  # digest of e2 broken
    raw = cbor2.loads(packet.body_bytes)
    bad = raw["tensors"][0]
    data[bad["offset"] : bad["offset"] + 4] = struct.pack("<f", math.nan)  # e0 holds a NaN
    bad["sha256"] = tz.sha256_hex(bytes(data[bad["offset"] : bad["offset"] + bad["length"]]))
    buf = envelope(cbor2.dumps(raw, canonical=True), data)
    problems = list(codec.iter_packet_errors(buf))
    assert [(p.code, p.path) for p in problems] == [
        ("TENSOR_DIGEST", "/body/tensors/2/sha256"),
        ("NONFINITE_VALUE", "/body/tensors/0"),
    ]
    with pytest.raises(M2ktError) as info:
        codec.decode(buf, workers=workers)
    assert info.value.code == "TENSOR_DIGEST"


def _big_fields(fields: dict[str, Any], d: int) -> dict[str, Any]:
    """The demo's header and provenance with three concepts of width ``d`` and nothing else."""
    del fields["tensors"]
    fields["teacher"]["latent_dim"] = d
    fields["concepts"] = [
        {"id": f"c{i}", "label": str(i), "kind": "symbol", "embedding": f"e{i}"} for i in range(3)
    ]
    fields["graph"] = {"edges": []}
    fields["traces"], fields["anchors"] = [], []
    fields["safety"] = {"require_signature": False, "min_signers": 1}
    fields.pop("extensions", None)
    return fields


def test_encode_into_a_callers_buffer(demo, demo_cbor):
    size = codec.encoded_size(demo)
    assert size == len(demo_cbor)
    buf = np.full(size + 5, 7, np.uint8)
    assert codec.encode_into(demo, buf) == size
    assert bytes(buf[:size]) == demo_cbor and (buf[size:] == 7).all()
    with pytest.raises(UsageError):
        codec.encode_into(demo, bytearray(size - 1))
    with pytest.raises(UsageError):
        codec.encode_into(demo, bytes(size))
