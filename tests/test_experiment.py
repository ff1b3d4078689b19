"""The transfer experiment at quick scale: it runs end to end through the CLI, its results
validate against schemas/results.schema.json, and every method's counted inputs equal the inputs
it actually used. No accuracy is asserted: at quick scale the figures mean nothing (1 thread)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")

from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.errors import UsageError, ValidationError  # noqa: E402
from m2kt_ref.experiments import ABLATIONS, kd_grid, kd_inputs_to_match  # noqa: E402
from m2kt_ref.experiments.presets import resolve_preset  # noqa: E402
from m2kt_ref.experiments.render import results_schema, validate_results  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402

OPTS = ["--opt", "p=5", "--opt", "k_curve=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    rc = main(
        ["experiment", "--scale", "quick", "--out", str(out), "--quiet", "--threads", "1", *OPTS]
    )
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_outputs_exist_and_validate(run):
    out, doc = run
    jsonschema.Draft202012Validator(results_schema()).validate(doc)
    validate_results(doc)
    assert (out / "report.md").read_text().startswith("# Transfer experiment: modular")
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "teacher-seed0" / "model.safetensors").is_file()
    assert doc["task"] == "modular" and doc["seeds"] == [0]
    # relative performance is the ratio of the two accuracies the run measured
    t = doc["teacher"]["accuracy"]
    if t:
        assert doc["relative_performance"] == pytest.approx(doc["m2kt"]["accuracy"] / t)
    students = doc["students"]
    families = {s["spec"]["family"] for s in students.values()}
    assert "transformer" in families and families - {"transformer"}
    for s in students.values():
        assert set(s["ablations"]) == set(ABLATIONS) - {"no_safe"}  # λ_safe is 0 by default
        assert [p["traces"] for p in s["k_curve"]] == [2, 4]
        assert 0 <= s["above_chance"] <= len(doc["seeds"])
    assert 0 < doc["teacher"]["chance_accuracy"] <= 1


def test_accounting_equals_inputs_actually_used(run):
    out, doc = run
    task = make_task("modular", p=5, ops="+")
    packet = codec.read_packet(out / "packet-seed0.m2kt")
    trace_rows = {np.array(t.input, dtype=np.int64).tobytes() for t in packet.body.traces}
    assert packet.body.provenance.task_inputs_used == len(trace_rows)
    seed = doc["per_seed"][0]
    assert seed["packet"]["signature_verified"] is True
    assert seed["packet"]["counted"]["task_inputs"] == len(trace_rows)
    split = task.split(0, None, None)  # quick preset: the task's default fractions
    pool = split.pool
    for s in seed["students"].values():
        # M2KT: the trace problems (teacher side) and the same rows again on the student side
        assert s["m2kt"]["inputs_used"] == len(trace_rows)
        assert s["m2kt"]["student_side"]["task_inputs"] == len(trace_rows)
        assert s["m2kt"]["concept_probes"] == seed["packet"]["counted"]["concept_probes"]
        # scratch: exactly M2KT's inputs (full batch at this size)
        assert s["scratch"]["inputs_used"] == s["m2kt"]["inputs_used"]
        # KD: each budget's transfer set, drawn from the pool's head
        for r in s["kd"]["runs"]:
            assert r["inputs_used"] == len({row.tobytes() for row in pool.inputs[: r["budget"]]})
        assert s["kd"]["runs"][-1]["budget"] == len(pool)


def test_results_violations_are_reported(run):
    _, doc = run
    bad = dict(doc)
    del bad["kd"]
    with pytest.raises(ValidationError) as exc:
        validate_results(bad)
    assert exc.value.code == "SCHEMA_VIOLATION"


def test_kd_grid_and_interpolation():
    g = kd_grid(1000, 7)
    assert g[0] == 4 and g[-1] == 1000 and g == sorted(set(g))
    curve = [
        {"inputs": 10, "accuracy": 0.2},
        {"inputs": 100, "accuracy": 0.6},
        {"inputs": 1000, "accuracy": 0.9},
    ]
    assert kd_inputs_to_match(curve, 0.1) == 10
    # halfway in accuracy between 100 and 1000 is halfway in log space: sqrt(1e5)
    assert kd_inputs_to_match(curve, 0.75) == pytest.approx(1e5**0.5)
    assert kd_inputs_to_match(curve, 0.95) is None


def test_no_data_reduction_without_transfer_above_chance():
    """A data reduction is computed only when M2KT beats the best constant answer."""
    from m2kt_ref.experiments.runner import chance_level, transfer_figures

    assert chance_level(np.array([0, 1, 1, 1])) == 0.75
    curve = [{"inputs": 4, "accuracy": 0.1}, {"inputs": 400, "accuracy": 0.9}]

    def entry(acc: float) -> dict:
        return {"m2kt": {"accuracy": acc, "inputs_used": 8}, "kd": {"curve": curve}}

    at_chance = transfer_figures(entry(0.12), 1.0, 100, 0.1)
    assert at_chance["m2kt_vs_chance"]["above_chance"] is False
    assert at_chance["kd_inputs_to_match"] is None and at_chance["data_reduction"] is None
    above = transfer_figures(entry(0.5), 1.0, 100, 0.1)
    assert above["m2kt_vs_chance"]["p_value"] < 0.05
    assert above["kd_inputs_to_match"] == pytest.approx(40.0)  # halfway in log space
    assert above["data_reduction"] == pytest.approx(0.8)
    assert above["relative_performance"] == 0.5


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError):
        resolve_preset("modular", "huge", {})
    with pytest.raises(UsageError):
        resolve_preset("modular", "quick", {"steps": "many"})
    preset, task_opts, recipe = resolve_preset(
        "modular", "quick", {"p": "11", "steps": "5", "lambda_geo": "0"}
    )
    assert preset.fit.steps == 5 and task_opts["p"] == "11" and recipe == {"lambda_geo": 0.0}


def test_reference_ingestion_counts_agree(run):
    """m2kt_ref.transfer.student.ingest keeps its own ledger: it must agree with the runner's."""
    _, doc = run
    for s in doc["per_seed"][0]["students"].values():
        m = s["m2kt"]
        assert m["ingest_accounting"]["task_inputs_used"] == m["student_side"]["task_inputs"]
        assert m["ingest_accounting"]["concept_probes_used"] == m["student_side"]["concept_probes"]


def test_merge_of_seeds(run, tmp_path):
    from m2kt_ref.experiments import merge_results

    out, doc = run
    merged = merge_results([out], tmp_path / "m")
    assert merged["seeds"] == doc["seeds"]
    assert merged["m2kt"]["accuracy"] == doc["m2kt"]["accuracy"]
    assert (tmp_path / "m" / "report.md").is_file()
    with pytest.raises(UsageError):
        merge_results([out, out], tmp_path / "m2")
    # another run of other seeds whose teacher training took another wall time merges
    other = json.loads(json.dumps(doc))
    other["teacher"]["wall_seconds"] = (other["teacher"]["wall_seconds"] or 0) + 7.0
    for r in other["per_seed"]:
        r["seed"] += 10
    (tmp_path / "other.json").write_text(json.dumps(other))
    merged = merge_results([out, tmp_path / "other.json"], tmp_path / "m3")
    assert merged["seeds"] == [*doc["seeds"], *(s + 10 for s in doc["seeds"])]
    other["teacher"]["accuracy"] = 0.5  # another teacher does not
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(UsageError):
        merge_results([out, tmp_path / "other.json"], tmp_path / "m4")


@pytest.mark.parametrize("task_name", ["modular", "hierarchy", "chain"])
@pytest.mark.parametrize("scale", ["quick", "default"])
def test_presets_pair_a_reshaped_transformer_with_another_family(task_name, scale):
    preset, task_opts, _ = resolve_preset(task_name, scale, {})
    make_task(task_name, **task_opts)  # the options are valid
    t = preset.teacher_net
    shapes = [(s.family, s.width, s.depth) for s in preset.students]
    assert any(f == t["family"] and w != t["width"] and d != t["depth"] for f, w, d in shapes)
    assert any(f != t["family"] for f, _, _ in shapes)
