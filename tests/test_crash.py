"""Crash consistency (issue 13.6): ``m2kt`` killed with SIGKILL while it writes a packet, a key,
a student or a report leaves each path holding the old complete file or the new complete file,
never a torn one.

Each case runs the command once to completion (the old files), then again with other inputs,
stopped by tests/crash_child.py at a chosen point of one file's write (half of it written to the
temporary file; the temporary file complete but not renamed; the new file renamed into place) and
killed there. Then every file the command writes is compared: before the rename it must be the
old file byte for byte, after it the new one, complete (it loads). A last case kills the real
``m2kt`` executable at random moments of a packet write.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m2kt_ref.packet import codec
from m2kt_ref.packet.keys import load_public_key, load_signing_key

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the crash hooks read /proc/self/fd"
)

CHILD = Path(__file__).with_name("crash_child.py")
CREATED = "2026-01-01T00:00:00Z"
CHAIN = ["--task", "chain", "--opt", "n=8", "--opt", "functions=2", "--opt", "k=3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def m2kt(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "m2kt_ref.cli", *args], check=True, env=ENV, capture_output=True
    )


def killed_at(tmp: Path, name: str, point: str, *args: str) -> None:
    """Run ``m2kt ARGS`` until it stops at ``point`` of the write of ``name``; SIGKILL it."""
    mark = tmp / f"stopped-{name}-{point}"
    mark.unlink(missing_ok=True)
    env = {**ENV, "M2KT_CRASH_FILE": name, "M2KT_CRASH_POINT": point, "M2KT_CRASH_MARK": str(mark)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not mark.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"m2kt {args[0]} ended ({proc.returncode}) before {point} of {name}: "
                + proc.stderr.read().decode(errors="replace")[-2000:]
            )
        assert time.monotonic() < deadline, f"m2kt {args[0]} never reached {point} of {name}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


# --------------------------------------------------------------------------- packets


def assert_old_or_new(data: bytes, old: bytes, new: bytes, renamed: bool | None) -> None:
    """``data`` is the old packet, or a complete new one (``m2kt sign`` stamps the signing time,
    so a new packet is recognised by its length and by decoding and validating, not bytes)."""
    if renamed is None:
        renamed = data != old
    if not renamed:
        assert data == old
        return
    assert data != old and len(data) == len(new)
    codec.decode(data)  # complete: it decodes and validates


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crash_packets")
    m2kt("demo", "-o", str(root / "demo.m2kt"))
    m2kt("keygen", "-o", str(root / "a"))
    m2kt("keygen", "-o", str(root / "b"))
    m2kt("sign", str(root / "demo.m2kt"), "--key", str(root / "a.key"), "-o", str(root / "old"))
    m2kt("sign", str(root / "demo.m2kt"), "--key", str(root / "b.key"), "-o", str(root / "new"))
    return {"root": root}


@pytest.mark.parametrize("point", ["mid", "before-replace", "after-replace"])
def test_a_packet_is_old_or_new(packets: dict[str, Path], tmp_path: Path, point: str) -> None:
    root = packets["root"]
    old, new = (root / "old").read_bytes(), (root / "new").read_bytes()
    assert old != new
    target = tmp_path / "p.m2kt"
    target.write_bytes(old)
    killed_at(
        tmp_path, target.name, point,
        "sign", str(root / "demo.m2kt"), "--key", str(root / "b.key"), "-o", str(target),
    )  # fmt: skip
    assert_old_or_new(target.read_bytes(), old, new, point == "after-replace")


@pytest.mark.parametrize("name", ["k.key", "k.pub"])
@pytest.mark.parametrize("point", ["mid", "after-replace"])
def test_a_key_is_old_or_new(tmp_path: Path, name: str, point: str) -> None:
    stem = tmp_path / "k"
    m2kt("keygen", "-o", str(stem))
    files = [tmp_path / "k.key", tmp_path / "k.pub"]
    before = snapshot(files)
    killed_at(tmp_path, name, point, "keygen", "--force", "-o", str(stem))
    after = snapshot(files)
    target = tmp_path / name
    if point == "mid":
        assert after[target] == before[target]
    else:
        assert after[target] != before[target]  # a fresh key, in place
    for path in files:  # each file, whichever it is, is complete
        (load_signing_key if path.suffix == ".key" else load_public_key)(path)


# --------------------------------------------------------------------------- students, reports


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("crash_student")
    common = [*CHAIN, "--family", "gru", "--width", "16", "--depth", "1"]
    m2kt("init-student", *common, "--seed", "1", "--out", str(root / "old"))
    m2kt("init-student", *common, "--seed", "2", "--out", str(root / "new"))
    m2kt("generate", "--teacher", str(root / "new"), "-o", str(root / "p.m2kt"), "--traces", "4",
         "--created", CREATED)  # fmt: skip
    return {"root": root, "common": common}  # type: ignore[dict-item]


STUDENT_FILES = ("model.safetensors", "config.json", "record.json")


@pytest.mark.parametrize(
    ("name", "point"),
    [
        ("model.safetensors", "mid"),
        ("model.safetensors", "after-replace"),
        ("config.json", "mid"),
        ("record.json", "before-replace"),
        ("record.json", "after-replace"),
    ],
)
def test_a_student_is_old_or_new(student: dict, tmp_path: Path, name: str, point: str) -> None:
    from m2kt_ref.transfer.model_dir import load_model_dir

    root = student["root"]
    out = tmp_path / "student"
    shutil.copytree(root / "old", out)
    killed_at(tmp_path, name, point, "init-student", *student["common"], "--seed", "2", "--out",
              str(out))  # fmt: skip
    order = STUDENT_FILES.index(name) + (point == "after-replace")
    for i, f in enumerate(STUDENT_FILES):  # written in this order, each renamed into place
        want = root / ("new" if i < order else "old") / f
        assert (out / f).read_bytes() == want.read_bytes(), f
    load_model_dir(out)  # the files are complete and fit each other


@pytest.mark.parametrize("point", ["mid", "before-replace", "after-replace"])
def test_a_report_is_old_or_new(student: dict, tmp_path: Path, point: str) -> None:
    from m2kt_ref.packet.receipt import read_report, validate_report

    root = student["root"]
    out = tmp_path / "out"
    args = ["ingest", str(root / "p.m2kt"), "--student", str(root / "old"), "--out", str(out),
            "--allow-unverified", "--steps", "3", "--no-progress"]  # fmt: skip
    m2kt(*args, "--seed", "1")
    old = (out / "report.json").read_bytes()
    killed_at(tmp_path, "report.json", point, *args, "--seed", "2")
    text = (out / "report.json").read_bytes()
    if point == "after-replace":
        assert text != old and json.loads(text)["config"]["seed"] == 2
    else:
        assert text == old
    validate_report(read_report(out / "report.json"))


# --------------------------------------------------------------------------- the real executable


def test_the_m2kt_executable_killed_at_random_moments(packets: dict[str, Path], tmp_path: Path):
    """No hooks: ``m2kt sign`` killed after a random delay, ten times; the path always holds the
    old or the new packet."""
    exe = shutil.which("m2kt") or pytest.skip("the m2kt script is not installed")
    root = packets["root"]
    old, new = (root / "old").read_bytes(), (root / "new").read_bytes()
    target = tmp_path / "p.m2kt"
    rng = random.Random(13)
    for _ in range(10):
        target.write_bytes(old)
        proc = subprocess.Popen(
            [exe, "sign", str(root / "demo.m2kt"), "--key", str(root / "b.key"), "-o", str(target)],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = target.read_bytes()
        assert_old_or_new(data, old, new, None)
