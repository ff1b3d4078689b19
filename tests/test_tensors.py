"""Tensor encoding (spec §5): every dtype, little-endian bytes, zero-copy views, finiteness."""

from __future__ import annotations

import hashlib
import math
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import examples

from m2kt_ref.errors import M2ktError
from m2kt_ref.packet import tensors as tz

finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
arrays = hnp.arrays(
    np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), elements=finite32
)


def bf16_reference(x: float) -> int:
    """Round one float32 to bfloat16 bits, to nearest even, written from the definition."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    upper, lower = bits >> 16, bits & 0xFFFF
    if lower > 0x8000 or (lower == 0x8000 and upper & 1):
        upper += 1
    return upper & 0xFFFF


@pytest.mark.parametrize(
    ("dtype", "value", "stored"),
    [
        ("f32", 1.0, b"\x00\x00\x80\x3f"),
        ("f32", -2.5, b"\x00\x00\x20\xc0"),
        ("f16", 1.0, b"\x00\x3c"),
        ("f16", -2.0, b"\x00\xc0"),
        ("bf16", 1.0, b"\x80\x3f"),
        ("bf16", -2.0, b"\x00\xc0"),
        ("i8", 3.0, b"\x7f"),  # scale = 3/127, so 3.0 is stored as 127
        ("i8", -3.0, b"\x81"),
    ],
)
def test_little_endian_bytes(dtype, value, stored):
    encoded = tz.encode(np.array([value]), dtype)
    assert bytes(encoded.data) == stored
    assert encoded.shape == (1,)
    assert encoded.nbytes == tz.itemsize(dtype) == len(stored)
    assert (encoded.scale is not None) == (dtype == "i8")


@settings(max_examples=examples(100), deadline=None)
@given(arrays, st.sampled_from(["f32", "f16", "bf16", "i8"]))
def test_every_dtype_round_trips(values, dtype):
    if dtype == "f16":
        values = np.clip(values, -60000, 60000)
    if dtype == "bf16":
        values = np.clip(values, -3.38e38, 3.38e38)  # above, rounding reaches infinity
    encoded = tz.encode(values, dtype)
    assert encoded.nbytes == tz.expected_length(dtype, values.shape)
    buffer = memoryview(bytes(64) + bytes(encoded.data))
    stored = tz.view(buffer, dtype, values.shape, 64)
    assert stored.shape == values.shape
    whole = np.frombuffer(buffer, np.uint8)
    assert stored.ctypes.data == whole.ctypes.data + 64  # a view at the offset, not a copy
    assert np.shares_memory(stored, whole) or stored.size == 0
    assert tz.all_finite(stored, dtype)
    back = tz.to_float32(stored, dtype, encoded.scale)
    assert back.dtype == np.float32 and back.shape == values.shape
    flat, got = values.reshape(-1).astype(np.float64), back.reshape(-1).astype(np.float64)
    if dtype == "f32":
        assert np.array_equal(back, values)
    elif dtype == "f16":
        # round to nearest: half an ulp of f16 (10 explicit bits), or the subnormal step
        assert np.all(np.abs(got - flat) <= np.maximum(np.abs(flat) * 2.0**-11, 2.0**-25))
    elif dtype == "bf16":
        want = [bf16_reference(float(x)) for x in values.reshape(-1)]
        assert stored.reshape(-1).tolist() == want
    else:
        assert encoded.scale > 0
        assert int(np.abs(stored).max(initial=0)) <= 127
        assert np.all(np.abs(got - flat) <= encoded.scale / 2 * (1 + 1e-6) + 1e-30)


def test_bf16_rounds_to_nearest_even():
    cases = {
        1.0: 0x3F80,
        1.0 + 2.0**-8: 0x3F80,  # halfway, even stays
        1.0 + 3 * 2.0**-8: 0x3F82,  # halfway, odd rounds up
        1.0 + 2.0**-8 + 2.0**-20: 0x3F81,  # above halfway
        -0.0: 0x8000,
        3.3895314e38: 0x7F7F,  # the largest bf16
    }
    for value, bits in cases.items():
        assert bf16_reference(value) == bits, value
        assert int(tz.encode(np.array([value]), "bf16").data.cast("H")[0]) == bits, value


def test_i8_scale_and_zero():
    encoded = tz.encode(np.array([0.0, 0.0]), "i8")
    assert encoded.scale == 1.0 and bytes(encoded.data) == b"\x00\x00"
    encoded = tz.encode(np.array([-1.0, 0.5, 1.0]), "i8")
    assert encoded.scale == pytest.approx(1 / 127)
    assert -128 not in np.frombuffer(encoded.data, np.int8)
    with pytest.raises(M2ktError) as info:
        tz.to_float32(np.zeros(2, np.int8), "i8", None)
    assert info.value.code == "TENSOR_DTYPE"


@pytest.mark.parametrize("peak", [1e-45, 5e-44, 1e-40, 1e-38])
def test_i8_of_subnormal_values(peak):
    """Found by tools/fuzz.py: a peak below 127 x float32's smallest subnormal made the scale 0
    in float32 and every quantised value NaN or infinite (silently cast to int8)."""
    values = np.array([peak, -peak / 2, 0.0], dtype=np.float32)
    with np.errstate(all="raise"):
        encoded = tz.encode(values, "i8")
        back = tz.to_float32(np.frombuffer(encoded.data, np.int8), "i8", encoded.scale)
    assert np.float32(encoded.scale) > 0
    step = float(np.float32(encoded.scale))
    assert np.all(np.abs(back.astype(np.float64) - values.astype(np.float64)) <= step / 2 + 1e-300)
    assert back[0] > 0 and back[2] == 0


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "i8"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_encode_refuses_non_finite(dtype, bad):
    with pytest.raises(M2ktError) as info:
        tz.encode(np.array([1.0, bad]), dtype)
    assert info.value.code == "NONFINITE_VALUE"


def test_f16_and_bf16_overflow_and_unknown_dtype():
    for dtype, value in (("f16", 70000.0), ("bf16", 3.4028235e38)):
        with pytest.raises(M2ktError) as info:
            tz.encode(np.array([value]), dtype)
        assert info.value.code == "NONFINITE_VALUE"
    for bad in ("f64", "int8", ""):
        with pytest.raises(M2ktError) as info:
            tz.encode(np.zeros(2), bad)
        assert info.value.code == "TENSOR_DTYPE"
        with pytest.raises(M2ktError):
            tz.itemsize(bad)


@pytest.mark.parametrize(
    ("dtype", "stored", "finite"),
    [
        ("f32", np.array([1, np.nan], "<f4"), False),
        ("f32", np.array([-np.inf, 0], "<f4"), False),
        ("f32", np.array([3e38, -3e38], "<f4"), True),
        ("f16", np.array([np.inf], "<f2"), False),
        ("f16", np.array([65504], "<f2"), True),
        ("bf16", np.array([0x7F80], "<u2"), False),  # +inf
        ("bf16", np.array([0xFF80], "<u2"), False),  # -inf
        ("bf16", np.array([0x7FC1], "<u2"), False),  # NaN
        ("bf16", np.array([0x7F7F, 0xFF7F, 0x8000], "<u2"), True),
        ("i8", np.array([-127, 127], "i1"), True),
        ("f32", np.zeros(0, "<f4"), True),
    ],
)
def test_all_finite(dtype, stored, finite):
    assert tz.all_finite(stored, dtype) is finite


def test_alignment_helpers():
    assert [tz.aligned(n) for n in (0, 1, 63, 64, 65, 128)] == [0, 64, 64, 64, 128, 128]
    assert tz.expected_length("f32", [3, 4]) == 48
    assert tz.expected_length("bf16", []) == 2  # a scalar
    assert tz.expected_length("i8", [0, 7]) == 0


@pytest.mark.parametrize("workers", [None, 1, 2, 3])
def test_sha256_many_matches_hashlib(workers):
    sizes = [0, 5, 3 << 20, 1, 4 << 20, 2 << 20, 7 << 20, 100]
    buffers = [memoryview(os.urandom(n)) for n in sizes]
    want = [hashlib.sha256(b).hexdigest() for b in buffers]
    assert tz.sha256_many(buffers, workers) == want
    assert tz.sha256_many([], workers) == []
