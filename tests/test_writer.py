"""assemble_to_file writes exactly what write_packet(assemble(...)) writes, atomically."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import examples, packets

import m2kt_ref
from m2kt_ref.errors import ValidationError
from m2kt_ref.packet import codec, writer
from m2kt_ref.packet import tensors as tz


def split(packet: codec.Packet) -> tuple[dict[str, Any], dict[str, tz.EncodedTensor]]:
    """A packet's body fields and its tensors, as assemble takes them."""
    fields = {k: v for k, v in packet.body.to_data().items() if k != "tensors"}
    tensors = {
        t.name: tz.EncodedTensor(
            t.dtype, tuple(t.shape), packet.data[t.offset : t.offset + t.length], t.scale
        )
        for t in packet.body.tensors
    }
    return fields, tensors


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(packets())
def test_same_bytes_as_the_in_memory_path(tmp_path_factory, packet):
    path = tmp_path_factory.mktemp("w") / "p.m2kt"
    fields, tensors = split(packet)
    written = writer.assemble_to_file(fields, tensors, path)
    assert path.read_bytes() == codec.encode(packet)
    assert written == packet and written.packet_id == packet.packet_id


@pytest.mark.parametrize("workers", [1, 3])
def test_many_tensors_hashed_on_a_pool(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(tz, "PARALLEL_MIN_BYTES", 0)
    fields, _ = split(m2kt_ref.demo_packet())
    rng = np.random.default_rng(0)
    extra = {
        f"x/{i}": m2kt_ref.encode_tensor(rng.standard_normal(1 + 7 * i), dtype)
        for i, dtype in zip(range(40), ["f32", "f16", "bf16", "i8"] * 10, strict=True)
    }
    _, tensors = split(m2kt_ref.demo_packet())
    tensors.update(extra)
    path = tmp_path / "p.m2kt"
    written = writer.assemble_to_file(fields, tensors, path, workers=workers)
    expected = codec.assemble(fields, tensors, workers=1)
    assert path.read_bytes() == codec.encode(expected)
    assert m2kt_ref.read_packet(path) == written == expected


def test_a_bad_body_writes_nothing(tmp_path):
    fields, tensors = split(m2kt_ref.demo_packet())
    path = tmp_path / "p.m2kt"
    path.write_bytes(b"old")
    del tensors[next(iter(tensors))]
    with pytest.raises(ValidationError):
        writer.assemble_to_file(fields, tensors, path)
    assert path.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupt_while_hashing_cleans_up(tmp_path, monkeypatch, workers):
    fields, tensors = split(m2kt_ref.demo_packet())
    monkeypatch.setattr(tz, "PARALLEL_MIN_BYTES", 0)

    def interrupted(data: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(tz, "sha256_hex", interrupted)
    path = tmp_path / "p.m2kt"
    with pytest.raises(KeyboardInterrupt):
        writer.assemble_to_file(fields, tensors, path, workers=workers)
    assert list(tmp_path.iterdir()) == []
