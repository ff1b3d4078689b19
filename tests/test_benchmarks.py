"""The benchmark scripts of issue 14 run: each ``--quick`` mode, in this process (seconds).

The full runs (docs/performance.md) take minutes to hours; these smoke runs execute the same
set-up and operation functions on tiny inputs, so a script cannot rot between full runs.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

NUMPY_ONLY = ["scale_codec", "scale_validation"]
TORCH = ["scale_alignment", "scale_graph", "scale_ingestion"]


def run_quick(name: str, tmp_path: Path) -> dict:
    module = importlib.import_module(name)
    common = importlib.import_module("_common")
    out = tmp_path / f"{name}.json"
    try:
        assert module.main(["--quick", "--json", str(out)]) == 0
    finally:
        common.ISOLATE = True  # --quick turned it off for this process
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", NUMPY_ONLY + TORCH)
def test_scale_curve_quick(name, tmp_path, capsys):
    if name in TORCH:
        pytest.importorskip("torch")
    doc = run_quick(name, tmp_path)
    assert doc["rows"] and all(r["seconds"] > 0 and r["peak_added_bytes"] >= 0 for r in doc["rows"])
    assert set(doc["slopes"]) == {r["series"] for r in doc["rows"]}
    assert "| series |" in capsys.readouterr().out


def test_vs_safetensors_quick(capsys):
    pytest.importorskip("safetensors")
    module = importlib.import_module("vs_safetensors")
    common = importlib.import_module("_common")
    try:
        assert module.main(["--quick", "--no-torch"]) == 0
    finally:
        common.ISOLATE = True
    out = capsys.readouterr().out
    assert "safetensors save_file" in out and "m2kt assemble_to_file" in out


def test_a_point_in_a_child_process(monkeypatch):
    common = importlib.import_module("_common")
    monkeypatch.setattr(common, "ISOLATE", True)
    row = common.measure_point(_setup, _op, 1 << 22, max_repeats=2)
    assert row["repeats"] >= 1 and row["peak_added_bytes"] >= 1 << 22
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        common.measure_point(_setup, _fail, 1)


def test_loglog_slope():
    common = importlib.import_module("_common")
    assert common.loglog_slope([1, 10, 100], [2, 200, 20000]) == pytest.approx(2.0)


def _setup(n: int) -> int:
    return n


def _op(n: int) -> dict:
    import numpy as np

    np.ones(n, np.uint8)
    return {}


def _fail(n: int) -> dict:
    return {"x": 1 / (n - 1)}


def test_worst_case_quick(capsys):
    """benchmarks/worst_case.py (issue 13.2) on small inputs: inputs within the limits are read,
    one past the item limit is refused."""
    module = importlib.import_module("worst_case")
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| cbor maps, 1 past the limit |" in out and "| json keys" in out


def test_distributed_quick(tmp_path, capsys):
    """Plain, 1 rank, 2 ranks and 2 sharded ranks through torchrun on a tiny task (~20 s)."""
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():  # pragma: no cover
        pytest.skip("torch.distributed is not available")
    module = importlib.import_module("distributed")
    out = tmp_path / "distributed.json"
    assert module.main(["--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["ranks"] for r in doc["rows"]] == [1, 1, 2, 2]
    assert all(r["steps_per_s"] > 0 and r["decisions"] for r in doc["rows"])
    assert len(doc["rows"][2]["peak_rss_mib_per_rank"]) == 2
    assert 0 < doc["scaling_efficiency"] == doc["speedup_2_over_1"] / 2
    assert "scaling efficiency" in capsys.readouterr().out
