"""Ingestion that a trusted but hostile packet cannot crash, blow up or stall (issue 13.3).

Each attack of the issue is a test here, on the packets of ``benchmarks/hostile.py``: an empty
``traces`` list; many concepts and anchors naming one shared tensor (once an ``n_concepts x
n_anchors`` float64 matrix: MemoryError at 20k x 20k); a long ``part_of`` chain (once ``n``
products of ``n x n`` matrices: 80 s at 800 concepts, over 400 s at 1,500); and the work budget
that refuses what would still be too big, with ``INGEST_BUDGET``, before building it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import hostile  # noqa: E402

import m2kt_ref.transfer as mt  # noqa: E402
from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.errors import IngestError  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.transfer.model_dir import state_dict_digest  # noqa: E402
from m2kt_ref.transfer.student.view import packet_view  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return hostile.base_packet()


def student(task):
    model, _, _ = mt.init_student(task, family="gru", width=16, depth=1, seed=1)
    return model


def run(task, packet, **config):
    return mt.ingest(
        packet, student(task), task, mt.IngestConfig(steps=2, **config), allow_unverified=True
    )


def test_a_packet_without_traces_is_ingested(base):
    task, packet = base
    empty = hostile.no_traces(packet)
    assert not empty.body.traces
    result = run(task, empty)
    assert result.report["verification"]["after"]["traces"]["steps"] == 0
    assert result.decision in ("accepted", "rolled_back")


def test_many_concepts_on_one_tensor_are_sparse(base):
    task, packet = base
    n = 8000
    wide = hostile.wide(packet, n)
    assert codec.encoded_size(wide) < 1_300_000
    view = packet_view(wide)
    n_c, n_a = len(view.concept_ids), len(view.anchor_ids)
    assert n_c >= n and n_a >= n
    # one entry per anchor (plus the clusters' shares), not n_c x n_a = 64e6
    assert view.membership.nnz < 2 * n_a
    start = time.perf_counter()
    result = run(task, wide)
    seconds = time.perf_counter() - start
    assert result.report["verification"]["after"]["concept_retrieval"]["candidates"] > n
    assert seconds < 120, seconds  # 6 s here; was 58 s and 2.5 GB (MemoryError at 20k)


def test_a_long_hierarchy_chain_is_closed_sparsely(base):
    task, packet = base
    chain = hostile.chain(packet, 1500)
    start = time.perf_counter()
    result = run(task, chain)
    seconds = time.perf_counter() - start
    assert result.report["verification"]["after"]["relations"]["by_relation"]["part_of"]
    assert seconds < 120, seconds  # 2.3 s here; was still running after 400 s


def test_the_work_budget_refuses_before_the_work(base):
    task, packet = base
    chain = hostile.chain(packet, 20_000)  # 2e8 closure pairs: 1.6 GB of keys
    model = student(task)
    before = state_dict_digest(model)
    start = time.perf_counter()
    with pytest.raises(IngestError) as exc:
        mt.ingest(chain, model, task, mt.IngestConfig(steps=2), allow_unverified=True)
    assert exc.value.code == "INGEST_BUDGET"
    assert "work_budget" in exc.value.message
    assert time.perf_counter() - start < 60
    assert state_dict_digest(model) == before  # nothing was ingested
    # a smaller budget refuses the wide packet too; None lifts the limit
    with pytest.raises(IngestError) as exc:
        run(task, hostile.wide(packet, 100), work_budget=50)
    assert exc.value.code == "INGEST_BUDGET"
    assert run(task, packet, work_budget=None).decision in ("accepted", "rolled_back")


def test_the_cli_reports_the_budget_code(base, tmp_path, capsys):
    _, packet = base
    codec.write_packet(hostile.chain(packet, 300), tmp_path / "chain.m2kt")
    args = ["init-student", "--task", "chain", "--family", "gru", "--width", "16", "--depth", "1"]
    for k, v in hostile.OPTIONS.items():
        args += ["--opt", f"{k}={v}"]
    assert main([*args, "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    status = main(
        ["ingest", str(tmp_path / "chain.m2kt"), "--student", str(tmp_path / "s"), "--out",
         str(tmp_path / "out"), "--allow-unverified", "--steps", "2", "--no-progress",
         "--set", "work_budget=10000"]
    )  # fmt: skip
    assert status == 1
    assert capsys.readouterr().err.startswith("INGEST_BUDGET: ")
