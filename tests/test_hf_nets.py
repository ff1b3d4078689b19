"""``gpt2``, ``llama`` and ``bert`` as m2kt net families: built from a NetConfig, saved as model
directories, read by the generator with their own readout, ingested, and accepted by the
experiment runner as teacher and student families (without any change to the runner)."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import m2kt_ref  # noqa: E402
import m2kt_ref.transfer as mt  # noqa: E402
from m2kt_ref.experiments import presets  # noqa: E402
from m2kt_ref.experiments.presets import StudentSpec  # noqa: E402


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_a_transformers_family_is_an_m2kt_net(family, tmp_path):
    task = mt.make_task("chain", n=8, functions=2, k=3)
    model, config, record = mt.init_student(task, family=family, width=16, depth=2, heads=2)
    again, _, _ = mt.init_student(task, family=family, width=16, depth=2, heads=2)
    assert mt.state_dict_digest(model) == mt.state_dict_digest(again)  # seeded
    rows = task.problems().inputs
    assert tuple(model(torch.from_numpy(rows[:3].copy())).shape) == (3, task.n_classes)
    path = mt.save_model_dir(tmp_path / family, model, config, task, record)
    loaded = mt.load_model_dir(path)
    assert mt.state_dict_digest(loaded.model) == mt.state_dict_digest(model)
    result = mt.generate_from_model(loaded.model, task, traces=3, created=0)
    body = result.packet.body
    assert body.teacher.layer == "blocks.1" and body.teacher.architecture == family
    assert m2kt_ref.read_derivation(result.packet).trace_steps == "teacher-readout"
    student, _, _ = mt.init_student(task, family="mlp", width=12, depth=1, seed=1)
    ingested = mt.ingest(
        result.packet, student, task, mt.IngestConfig(steps=3), allow_unverified=True
    )
    assert ingested.decision == "accepted"


def test_the_experiment_runner_takes_them_as_teacher_and_student(tmp_path, monkeypatch):
    quick = presets.PRESETS[("chain", "quick")]
    preset = dataclasses.replace(
        quick,
        teacher_net={"family": "gpt2", "width": 16, "depth": 1, "heads": 2},
        students=(StudentSpec("llama-w8-d1", "llama", 8, 1, heads=2),),
        ablations=False,
    )
    monkeypatch.setitem(presets.PRESETS, ("chain", "quick"), preset)
    from m2kt_ref.experiments import run_experiment

    doc = run_experiment("chain", scale="quick", out=tmp_path, seeds=1)
    assert doc["teacher"]["net"]["family"] == "gpt2"
    assert doc["settings"]["students"]["llama-w8-d1"]["family"] == "llama"
    assert (tmp_path / "results.json").is_file()
