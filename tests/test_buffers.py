"""join_bytes gives what b"".join gives, on huge pages where it can."""

from __future__ import annotations

import numpy as np
import pytest

from m2kt_ref.packet import buffers


@pytest.mark.parametrize("threshold", [0, buffers.HUGE_PAGE_MIN_BYTES])
def test_join_bytes_equals_join(monkeypatch, threshold):
    monkeypatch.setattr(buffers, "HUGE_PAGE_MIN_BYTES", threshold)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (5 << 20) + 3, dtype=np.uint8)
    for chunks in ([], [b""], [b"a", b"", memoryview(b"bc")], [b"head", memoryview(big), b"t"]):
        got = buffers.join_bytes(chunks)
        assert type(got) is bytes and got == b"".join(chunks)


def test_join_bytes_without_the_bindings(monkeypatch):
    monkeypatch.setattr(buffers, "_BINDINGS", None)
    assert buffers.join_bytes([b"x" * (5 << 20), b"y"]) == b"x" * (5 << 20) + b"y"


def test_copy_into():
    out = bytearray(10)
    assert buffers.copy_into([b"ab", memoryview(b"cde")], memoryview(out)) == 5
    assert out == b"abcde" + bytes(5)
