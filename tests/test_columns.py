"""The column checks agree with the general path: lengths with cbor2's canonical encoder, layout
verdicts with the per-descriptor rules."""

from __future__ import annotations

import struct

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import examples, packets

from m2kt_ref.packet import codec, columns, rules

FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=list(HealthCheck))
ARRAYS = {"tensors": columns.DESCRIPTOR, "concepts": columns.CONCEPT, "anchors": columns.ANCHOR}


def test_float_lengths_match_the_canonical_encoder():
    halves = np.frombuffer(struct.pack("<65536H", *range(65536)), np.float16).astype(np.float64)
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            halves[np.isfinite(halves)],
            rng.standard_normal(5000).astype(np.float32).astype(np.float64),
            rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000),
            [65504.0, 65520.0, 2.0**-24, 2.0**-25, 2.0**-149, 2.0**-150, 5e-324, 1.7e308],
        ]
    )
    got = columns.float_lengths(values)
    want = np.array([len(cbor2.dumps(float(v), canonical=True)) for v in values])
    assert np.array_equal(got, want)


@FAST
@given(packets())
def test_canonical_lengths_of_generated_bodies(packet):
    """Exact where given; None (the encoder decides) only for integers of 2**62 and more."""
    raw = cbor2.loads(packet.body_bytes)
    pairs = [(raw[key], spec) for key, spec in ARRAYS.items()]
    for items, spec in [*pairs, (raw["graph"]["edges"], columns.EDGE)]:
        got = columns.canonical_length(items, spec)
        if got is None:
            assert max(_ints(items)) >= 1 << 62
        else:
            assert got == len(codec.canonical_cbor(items))
    assert columns.layout_is_valid(packet.body.tensors)


def _ints(value: object) -> list[int]:
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return [value] if type(value) is int else []


def test_the_demo_body_is_checked_by_column(demo):
    """The fast path is taken (and so the forged-body tests in test_codec exercise it)."""
    raw, spans = codec._decode_body_entries(demo.body_bytes, codec.DEFAULT_LIMITS)
    assert spans is not None
    for key in (*ARRAYS, "graph"):
        start, end = spans[key]
        assert codec._column_checked_length(key, raw[key]) == end - start - 1 - len(key)
    assert codec._is_own_encoding(demo.body, raw, demo.body_bytes, spans)


@pytest.mark.parametrize(
    "record",
    [
        [{"name": "a", "dtype": "f32", "shape": [True], "length": 4, "offset": 0, "sha256": "0"}],
        [{"dtype": "f32", "name": "a", "shape": [1], "length": 4, "offset": 0, "sha256": "0"}],
        [{"name": "a", "dtype": "f32", "shape": [1], "length": 4.0, "offset": 0, "sha256": "0"}],
        [{"name": "a", "dtype": "i8", "scale": 1, "shape": [], "length": 1, "offset": 0}],
        [{"name": "a", "unknown": 1}],
        ["not a record"],
        {"not": "a list"},
    ],
)
def test_anything_outside_the_shortcut_is_left_to_the_encoder(record):
    assert columns.canonical_length(record, columns.DESCRIPTOR) is None


def test_layout_verdicts_agree_with_the_rules(demo):
    body = demo.body
    assert columns.layout_is_valid(body.tensors)
    first, second = body.tensors[0], body.tensors[1]
    for broken in (
        [first.model_copy(update={"offset": 64}), *body.tensors[1:]],
        [first, second.model_copy(update={"length": second.length + 1}), *body.tensors[2:]],
        [first.model_copy(update={"scale": 0.5}), *body.tensors[1:]],
    ):
        bad = body.model_copy(update={"tensors": broken})
        assert not columns.layout_is_valid(bad.tensors)
        assert list(rules.iter_layout_errors(bad))
