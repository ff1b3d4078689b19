"""The format half imports and runs without torch (checked in a process where torch is hidden),
and the transfer half without the ``hf`` extra (``transformers`` and ``tokenizers`` hidden)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORMAT_MODULES = (
    "m2kt_ref.errors",
    "m2kt_ref.packet.tensors",
    "m2kt_ref.packet.model",
    "m2kt_ref.packet.codec",
    "m2kt_ref.packet.limits",
    "m2kt_ref.packet.rules",
    "m2kt_ref.packet.demo",
    "m2kt_ref.cli",
)

PROGRAM = textwrap.dedent(
    """
    import importlib, importlib.abc, io, sys
    from contextlib import redirect_stdout

    class HideTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers", "tokenizers"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
            return None

    sys.meta_path.insert(0, HideTorch())
    for name in sys.argv[2:]:
        importlib.import_module(name)
    from m2kt_ref.cli import main

    packet = sys.argv[1]
    assert main(["demo", "-o", packet]) == 0
    assert main(["validate", packet]) == 0
    assert main(["inspect", packet]) == 0
    help_text = io.StringIO()
    try:
        with redirect_stdout(help_text):
            main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    assert "validate" in help_text.getvalue()
    assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
    print("OK without torch")
    """
)


def test_format_half_and_cli_run_without_torch(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "p.m2kt"), *FORMAT_MODULES],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK without torch")


def test_the_finder_really_hides_torch(tmp_path):
    """The same program fails when asked to import torch, so the check above is not vacuous."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "p.m2kt"), "torch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0 and "(hidden)" in result.stderr


HF_PROGRAM = textwrap.dedent(
    """
    import importlib.abc, sys

    class HideHF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("transformers", "tokenizers"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
            return None

    sys.meta_path.insert(0, HideHF())
    import torch
    torch.set_num_threads(1)
    import m2kt_ref.transfer as mt
    from m2kt_ref.cli import main

    task = mt.make_task("chain", n=8, functions=2, k=3)
    teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
    packet = mt.generate_from_model(teacher, task, traces=2, created=0).packet
    assert len(packet.body.traces) == 2
    code = main(["generate", "--teacher", "hf:" + sys.argv[1], "--concepts", "c.json",
                 "-o", sys.argv[1] + "/p.m2kt"])
    assert code == 1, code
    assert not [m for m in sys.modules if m.split(".")[0] in ("transformers", "tokenizers")]
    print("OK without transformers")
    """
)


def test_transfer_half_runs_without_the_hf_extra(tmp_path):
    """Without ``transformers`` the built-in teachers still work, and an ``hf:`` teacher is one
    coded line naming the extra, not a traceback."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", HF_PROGRAM, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK without transformers")
    assert "USAGE: Hugging Face models need the hf extra" in result.stderr
    assert "Traceback" not in result.stderr
