"""The transfer experiment at quick scale: it runs end to end through the CLI for every family,
its results validate against schemas/results.schema.json, every figure is derived from the
per-seed measurements it summarises, and the gates are computed as documented. Accuracies are
not asserted: at quick scale they mean nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.errors import UsageError, ValidationError  # noqa: E402
from m2kt_ref.experiments import kd_grid, merge_results  # noqa: E402
from m2kt_ref.experiments.floor import information_floor  # noqa: E402
from m2kt_ref.experiments.presets import resolve_preset  # noqa: E402
from m2kt_ref.experiments.render import (  # noqa: E402
    depth_curve_table,
    headline_table,
    validate_results,
)
from m2kt_ref.experiments.runner import chance_level, inputs_to_reach  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402

FAMILIES = ("chain", "hierarchy", "modular")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for family in FAMILIES:
        path = tmp_path_factory.mktemp(family)
        argv = ["experiment", "--task", family, "--scale", "quick", "--out", str(path)]
        assert main([*argv, "--quiet", "--threads", "1"]) == 0
        out[family] = (path, json.loads((path / "results.json").read_text()))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_exist_and_validate(runs, family):
    out, doc = runs[family]
    validate_results(doc)
    assert (out / "report.md").read_text().startswith(f"### Transfer experiment: {family}")
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["task"] == family and doc["seeds"] == [0]
    assert doc["information_floor"] == information_floor(make_task(family, **doc["task_options"]))
    env = doc["environment"]
    assert env["cpu_model"] and isinstance(env["cpu_flags"], list) and env["threads"] == 1
    packet = doc["per_seed"][0]["packet"]
    assert packet["signature_verified"] is True
    assert 0.0 <= packet["answer_key_accuracy"] <= 1.0


@pytest.mark.parametrize("family", ("chain", "hierarchy"))
def test_every_m2kt_figure_carries_its_controls(runs, family):
    _, doc = runs[family]
    seed = doc["per_seed"][0]
    teacher = doc["teacher"]["accuracy"]
    floor = doc["information_floor"]["label_equivalents"]
    for name, s in doc["students"].items():
        raw = seed["students"][name]
        m = raw["m2kt"]
        assert s["accuracy"]["values"] == [m["accuracy"]]
        le = m["account"]["label_equivalents"]
        acc = m["account"]
        assert le == acc["task_rows"] + acc["operator_facts"] + acc["declared_facts"]
        assert s["label_equivalents"]["values"] == [le]
        assert s["floor_multiple"]["values"] == [pytest.approx(le / floor)]
        if teacher:
            assert s["relative"]["values"] == [pytest.approx(m["accuracy"] / teacher)]
        assert s["answer_key"]["values"] == [seed["packet"]["answer_key_accuracy"]]
        assert s["same_prior"]["values"] == [raw["same_prior"]["accuracy"]]
        assert s["kd_same_inputs"]["values"] == [raw["kd_same_inputs"]["accuracy"]]
        # a reduction exists only above chance, and is measured against this student's KD curve
        (reduction,) = s["data_reduction"]["values"]
        if not s["above_chance_seeds"]:
            assert reduction is None
        elif reduction is not None:
            match = inputs_to_reach(raw["kd_curve"], m["accuracy"])
            assert reduction == pytest.approx(1 - le / match)
        assert [p["inputs"] for p in raw["kd_curve"]] == seed["kd_grid"]
    concept = seed["students"]["concept-state"]["m2kt"]["account"]
    generic = next(n for n in seed["students"] if n != "concept-state")
    syn = seed["students"][generic]["m2kt"]["account"]
    # self-distillation adds synthetic rows, never label-equivalents
    assert syn["label_equivalents"] == concept["label_equivalents"]
    assert syn["synthetic_rows"] > 0 and syn["synthetic_in_test"] == 0


def test_modular_measures_the_geometry_against_cold_kd(runs):
    _, doc = runs["modular"]
    raw = doc["per_seed"][0]["students"]["mlp-w16-d1"]
    assert [p["inputs"] for p in raw["kd_warm_curve"]] == [p["inputs"] for p in raw["kd_curve"]]
    s = doc["students"]["mlp-w16-d1"]
    warm, cold = s["warm_inputs_to_target"]["values"][0], s["kd_inputs_to_target"]["values"][0]
    target = doc["target_accuracy"]
    assert warm == inputs_to_reach(raw["kd_warm_curve"], target)
    assert cold == inputs_to_reach(raw["kd_curve"], target)


def test_ablations_are_recorded_with_their_reader(runs):
    _, doc = runs["chain"]
    assert set(doc["ablations"]) == {
        "random_traces",
        "no_step_hints",
        "nearest_concept_steps",
        "operators_only",
    }
    _, doc = runs["hierarchy"]
    ab = doc["per_seed"][0]["ablations"]
    assert set(ab) == {"declared_edges", "geometry_only"}
    # a packet that carries declared answers trips the answer-key gate
    assert ab["declared_edges"]["answer_key_accuracy"] == pytest.approx(1.0)
    assert ab["declared_edges"]["account"]["declared_facts"] > 0
    # geometry gives the taxonomy student nothing to learn from: recorded, not faked
    assert ab["geometry_only"]["accuracy"] is None and ab["geometry_only"]["note"]


def test_merge_of_seeds_and_the_cross_run_tables(runs, tmp_path):
    out, doc = runs["chain"]
    other = tmp_path / "seed1"
    argv = ["experiment", "--task", "chain", "--scale", "quick", "--out", str(other)]
    assert main([*argv, "--seed", "1", "--quiet"]) == 0
    merged = merge_results([out, other], tmp_path / "merged")
    assert merged["seeds"] == [0, 1]
    validate_results(merged)
    values = merged["students"]["concept-state"]["accuracy"]["values"]
    assert len(values) == 2 and merged["students"]["concept-state"]["accuracy"]["std"] == (
        pytest.approx(float(np.std(values, ddof=1)))
    )
    with pytest.raises(UsageError, match="seeds repeat"):
        merge_results([out, out], tmp_path / "bad")
    table = headline_table([doc, runs["hierarchy"][1], runs["modular"][1]])
    assert table.count("\n| chain |") == len(doc["students"]) and "sample standard" in table
    assert "| hierarchy |" in table and "geometry + KD" in table
    curve = depth_curve_table([runs["hierarchy"][1]], "concept-state")
    assert "| 2 |" in curve
    assert main(["experiment", "--summary", str(out)]) == 0


def test_grid_interpolation_and_chance():
    assert kd_grid(1000, 4) == [4, 25, 159, 1000]
    assert kd_grid(3, 6) == [3]
    curve = [{"inputs": 10, "accuracy": 0.2}, {"inputs": 1000, "accuracy": 0.8}]
    assert inputs_to_reach(curve, 0.5) == pytest.approx(100.0)  # halfway in log space
    assert inputs_to_reach(curve, 0.1) == 10.0
    assert inputs_to_reach(curve, 0.9) is None
    assert chance_level(np.array([0, 1, 1, 1])) == 0.75


def test_bad_settings_are_usage_errors():
    with pytest.raises(UsageError):
        resolve_preset("chain", "huge", {})
    with pytest.raises(UsageError):
        resolve_preset("chain", "quick", {"steps": "many"})
    preset, opts = resolve_preset("chain", "quick", {"n": "5", "steps": "7", "operators": "yes"})
    assert preset.budget.steps == 7 and opts["n"] == "5" and preset.packet["operators"] is True


def test_results_schema_rejects_a_fabricated_reduction(runs):
    _, doc = runs["chain"]
    bad = json.loads(json.dumps(doc))
    bad["per_seed"][0]["packet"]["signature_verified"] = False
    with pytest.raises(ValidationError):
        validate_results(bad)


def test_students_and_concept_controls_settings(tmp_path):
    preset, _ = resolve_preset("hierarchy", "quick", {"students": "concept-state"})
    assert [s.name for s in preset.students] == ["concept-state"]
    with pytest.raises(UsageError, match="known"):
        resolve_preset("hierarchy", "quick", {"students": "nobody"})
    argv = ["experiment", "--task", "hierarchy", "--scale", "quick", "--out", str(tmp_path)]
    opts = ["--opt", "concept_controls=false", "--opt", "ablations=false", "--quiet"]
    assert main([*argv, *opts]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    raw = doc["per_seed"][0]["students"]["concept-state"]
    assert raw["kd_curve"] == [] and "same_prior" not in raw  # not run, and not faked
    assert doc["ablations"] == {}
