"""Safe defaults for a trained student (issue 13.4).

With no protected problems, only parameter drift used to be checked: a trusted packet of wrong
answers on the student's own problems was accepted and took a trained student's accuracy down
(0.988 to 0.000 in the issue; here 0.66 to 0.35), and an honest packet of a weaker teacher did
the same. The self-agreement check compares the student's answers before and after ingestion on
rows that need no labels (the packet's trace problems and probes, the task's inputs) and rolls
the student back when it is known to be trained and more than ``max_self_disagreement`` of its
answers changed; ``m2kt ingest`` knows it from the model directory's record.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

import m2kt_ref.transfer as mt  # noqa: E402
from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.packet import tensors as tz  # noqa: E402
from m2kt_ref.packet.receipt import read_report  # noqa: E402
from m2kt_ref.transfer.teachers import teacher_preset, train_teacher  # noqa: E402

OPTS = {"n": 8, "functions": 2, "k": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    task = mt.make_task("chain", **OPTS)
    preset = teacher_preset("chain", "quick")

    def trained(seed, steps):
        cfg = dataclasses.replace(preset.train, steps=steps)
        return train_teacher(task, scale="quick", seed=seed, progress=False, train_config=cfg)

    run = trained(0, 800)
    packet = mt.generate_from_model(run.model, task, traces=16, created=0).packet
    fields = packet.body.to_data()
    fields.pop("tensors")
    n_classes = int(task.problems().targets.max()) + 1
    for t in fields["traces"]:  # wrong answers on the student's own problems
        t["answer"] = (t["answer"] + 1) % n_classes
    tensors = {t.name: tz.encode(np.array(packet.tensor_f32(t.name)), "f32")
               for t in packet.body.tensors}  # fmt: skip
    wrong = codec.assemble(fields, tensors)
    weaker = trained(5, 200).model
    honest = mt.generate_from_model(weaker, task, traces=16, created=0).packet
    return {"task": task, "run": run, "wrong": wrong, "honest": honest}


def accuracy(model, task) -> float:
    ps = task.problems()
    return float(mt.evaluate(model, ps.inputs, ps.targets))


@pytest.mark.parametrize("packet", ["wrong", "honest"])
def test_a_trained_student_is_rolled_back_when_its_answers_change(world, packet):
    task = world["task"]
    model = copy.deepcopy(world["run"].model)
    before = accuracy(model, task)
    config = mt.IngestConfig(steps=300, student_trained=True)
    result = mt.ingest(world[packet], model, task, config, allow_unverified=True)
    assert result.decision == "rolled_back"
    check = {c["name"]: c for c in result.report["safety"]["checks"]}["self_agreement"]
    assert not check["passed"] and check["measured"] and check["limit"] == 0.05
    assert check["value"] > 0.05 and "without labels" in check["message"]
    sa = result.report["safety"]["self_agreement"]
    assert sa["enforced"] and sa["rows"] == sum(sa["sources"].values()) > 100
    assert set(sa["sources"]) == {"trace_problems", "probes", "task_inputs"}
    # the other checks passed: drift alone could not see it; no protected problems were given
    others = [c for c in result.report["safety"]["checks"] if c["name"] != "self_agreement"]
    assert all(c["passed"] for c in others)
    assert {c["name"]: c["measured"] for c in others}["capability_drop"] is False
    assert accuracy(model, task) == before  # restored


def test_without_knowing_the_student_is_trained_it_is_measured_and_reported(world):
    task = world["task"]
    model = copy.deepcopy(world["run"].model)
    before = accuracy(model, task)
    result = mt.ingest(
        world["wrong"], model, task, mt.IngestConfig(steps=300), allow_unverified=True
    )
    # the attack of the issue, still possible when the caller says nothing: it is on record
    assert result.decision == "accepted" and accuracy(model, task) < before - 0.1
    check = {c["name"]: c for c in result.report["safety"]["checks"]}["self_agreement"]
    assert check["passed"] and check["limit"] is None and "not enforced" in check["message"]
    assert result.report["safety"]["self_agreement"]["agreement"] < 0.9


def test_m2kt_ingest_protects_a_trained_student_by_default(world, tmp_path):
    teacher = world["run"].save(tmp_path / "trained")
    codec.write_packet(world["wrong"], tmp_path / "wrong.m2kt")
    args = ["ingest", str(tmp_path / "wrong.m2kt"), "--student", str(teacher), "--out"]
    args += [str(tmp_path / "out"), "--allow-unverified", "--steps", "300", "--no-progress"]
    assert main(args) == 3  # rolled back
    report = read_report(tmp_path / "out" / "report.json")
    assert report["decision"] == "rolled_back" and report["config"]["student_trained"] is True
    assert report["safety"]["self_agreement"]["enforced"]
    # an explicit override is recorded, and then only measures
    out2 = str(tmp_path / "out2")
    assert main([*args[:5], out2, *args[6:], "--set", "student_trained=false"]) == 0
    assert read_report(tmp_path / "out2" / "report.json")["config"]["student_trained"] is False
