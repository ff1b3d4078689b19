"""Shared fixtures: the demo packet in both encodings, an envelope builder, the ``cuda`` marker."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from m2kt_ref.packet import codec
from m2kt_ref.packet.demo import demo_packet

ROOT = Path(__file__).resolve().parents[1]
# tools/ holds scripts the tests also check (the spec-table generator)
sys.path.insert(0, str(ROOT / "tools"))

# Property tests are derandomised under the default ``ci`` profile, so a run passes or fails the
# same way every time; ``HYPOTHESIS_PROFILE=fuzz`` (tools/fuzz.py) explores with fresh seeds.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("M2KT_FUZZ_EXAMPLES", "5000")),  # tools/fuzz.py --examples
    deadline=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``cuda`` when torch or a CUDA device is missing."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    if importlib.util.find_spec("torch") is None:
        reason = "torch is not installed"
    else:
        import torch

        reason = "" if torch.cuda.is_available() else "no CUDA device"
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def demo() -> codec.Packet:
    """The demo packet (every section, every dtype, an extension)."""
    return demo_packet()


@pytest.fixture(scope="session")
def demo_cbor(demo: codec.Packet) -> bytes:
    return codec.encode(demo)


@pytest.fixture(scope="session")
def demo_json(demo: codec.Packet) -> bytes:
    return codec.encode_json(demo)


def build_envelope(
    body: bytes, data: bytes | memoryview, signatures: bytes | None = None, pad: bytes | None = None
) -> bytes:
    """An envelope around arbitrary body bytes, written here rather than by the codec.

    ``pad`` defaults to the zeros that put the data payload at a multiple of 64.
    """

    def bstr(n: int) -> bytes:
        for info, width in ((None, 0), (24, 1), (25, 2), (26, 4), (27, 8)):
            if info is None and n < 24:
                return bytes([0x40 | n])
            if info is not None and n < 1 << (8 * width):
                return bytes([0x40 | info]) + n.to_bytes(width, "big")
        raise ValueError(n)

    def head(pad_bytes: bytes) -> bytes:
        return b"".join(
            (
                b"\xd9\xd9\xf7",  # tag 55799
                b"\xa4" if signatures is not None else b"\xa3",
                b"\x63pad",
                bstr(len(pad_bytes)),
                pad_bytes,
                b"\x64body",
                bstr(len(body)),
                body,
                b"\x64data",
                bstr(len(data)),
            )
        )

    if pad is None:
        pad = bytes(next(n for n in range(128) if len(head(bytes(n))) % 64 == 0))
    out = head(pad) + bytes(data)
    if signatures is not None:
        out += b"\x6asignatures" + signatures
    return out


@pytest.fixture(scope="session")
def envelope() -> Callable[..., bytes]:
    """The :func:`build_envelope` helper, for tests that forge packets byte by byte."""
    return build_envelope


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the conformance suite's mutant kill rate when tests/test_mutants.py measured it
    (so CI shows the count: conformance/mutate, spec/conformance.md §6.1)."""
    result = sys.modules.get("test_mutants") or sys.modules.get("tests.test_mutants")
    found = getattr(result, "RESULT", None)
    if found:
        count, killed = found["count"], found["killed"]
        terminalreporter.write_line(
            f"conformance mutants: {count}, killed: {killed}, kill rate: "
            f"{100.0 * killed / count:.1f} %"
        )
