"""Student-side ingestion (m2kt_ref.transfer.student.ingest): every task family into a student
of another shape, the trust gate, rollback on poisoned packets, determinism, the report and
its receipt.

Quick teachers (100 steps) and small packets keep the file fast on one thread; every asserted
number is produced by the run itself (before/after comparisons, bounds from the policy).
"""

from __future__ import annotations

import base64
import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from m2kt_ref.errors import (  # noqa: E402
    IngestError,
    IngestRefusedError,
    M2ktError,
    UsageError,
)
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.packet import tensors as tz  # noqa: E402
from m2kt_ref.packet.keys import SigningKey  # noqa: E402
from m2kt_ref.packet.receipt import (  # noqa: E402
    report_errors,
    sign_report,
    validate_report,
    verify_receipt,
)
from m2kt_ref.packet.trust import TrustedKey, TrustStore  # noqa: E402
from m2kt_ref.transfer.model_dir import state_dict_digest  # noqa: E402
from m2kt_ref.transfer.student.anchors import align_packet  # noqa: E402
from m2kt_ref.transfer.student.config import DEFAULT_BOUNDS, IngestConfig  # noqa: E402
from m2kt_ref.transfer.student.ingest import ingest  # noqa: E402
from m2kt_ref.transfer.student.safety import effective_policy  # noqa: E402
from m2kt_ref.transfer.student.view import packet_view  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teacher.generate import generate_from_model  # noqa: E402
from m2kt_ref.transfer.teachers import init_student, teacher_preset, train_teacher  # noqa: E402
from m2kt_ref.transfer.training import evaluate  # noqa: E402

SMALL = {
    "modular": {"p": 13, "ops": "+-"},
    "hierarchy": {"depth": 3, "branching": 3},
    "chain": {"n": 8, "functions": 2, "k": 3},
}
FAMILIES = sorted(SMALL)
#: Per task, the student's family: another one than the quick teacher preset's (the test
#: checks it), so layers, widths and the layer read differ.
STUDENTS = {"modular": "gru", "hierarchy": "mlp", "chain": "transformer"}
CREATED = "2026-01-01T00:00:00Z"
NOW = 1767225600  # CREATED as Unix seconds: key validity is checked at a fixed time
STEPS = 25


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey(bytes(range(32)))


@pytest.fixture(scope="module")
def trust(key) -> TrustStore:
    return TrustStore([TrustedKey(key.public_key, "teacher-operator")])


@pytest.fixture(scope="module")
def worlds(key):
    """Per family: the task, a quick teacher run and a signed packet from it."""
    torch.set_num_threads(1)
    out = {}
    for name, opts in SMALL.items():
        task = make_task(name, **opts)
        preset = teacher_preset(name, "quick")
        run = train_teacher(
            task,
            scale="quick",
            seed=0,
            progress=False,
            train_config=dataclasses.replace(preset.train, steps=100),
        )
        packet = generate_from_model(
            run.model, task, traces=6, created=CREATED, exclude=run.split.test, key=key
        ).packet
        out[name] = (task, run, packet)
    return out


def student_for(task, family: str, seed: int = 1):
    """A fresh student wider and deeper than the task's quick teacher, of another family."""
    preset = teacher_preset(family, "quick")
    width = preset.net["width"] + 16  # a multiple of 4 heads
    depth = preset.net["depth"] + 1
    model, _, _ = init_student(task, family=STUDENTS[family], width=width, depth=depth, seed=seed)
    return model


def rebuild(packet, mutate, key=None):
    """The packet with its body fields and float32 tensors changed by ``mutate`` (re-signed by
    ``key`` when given)."""
    fields = packet.body.to_data()
    fields.pop("tensors")
    tensors = {t.name: np.array(packet.tensor_f32(t.name)) for t in packet.body.tensors}
    mutate(fields, tensors)
    out = codec.assemble(fields, {k: tz.encode(v, "f32") for k, v in tensors.items()})
    if key is not None:
        from m2kt_ref.packet.signing import sign_packet

        out = sign_packet(out, key, signing_time=NOW)
    return out


def strip_volatile(report: dict) -> dict:
    """The report without wall times and creation time (what differs between equal runs)."""
    out = copy.deepcopy(report)
    out.pop("created")
    out.pop("timings")
    for k in ("wall_s", "steps_per_s"):
        out["training"].pop(k)
    for entry in out["training"]["history"]:
        entry.pop("wall_s")
    return out


# -- every family, another shape ------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_ingests_into_a_student_of_another_shape(family, worlds, trust):
    task, run, packet = worlds[family]
    model = student_for(task, family)
    digest0 = state_dict_digest(model)
    result = ingest(packet, model, task, IngestConfig(steps=STEPS), trust=trust, now=NOW)
    report = result.report
    validate_report(report)
    assert report["decision"] == "accepted", report["reasons"]
    assert report["trust"]["verified"] and report["trust"]["counted_signers"] == 1
    assert not report["trust"]["allow_unverified"]
    # another family, width and depth than the teacher
    net = report["student"]["architecture"]["net"]
    assert net["family"] != run.net_config.family
    assert report["alignment"]["student_dim"] != report["alignment"]["teacher_dim"]
    assert net["width"] != run.net_config.width and net["depth"] != run.net_config.depth
    # alignment metrics (fit and held out), the same keys for every method
    align = report["alignment"]
    assert align["method"] == "procrustes" and align["n_fit"] >= 2
    for phase in ("fit", "heldout_before", "heldout_after"):
        if align[phase] is not None:
            assert set(align[phase]) >= {"cosine", "top1_csls", "cka", "residual"}
    # the loss went down and the student moved toward the packet
    training = report["training"]
    assert training["final"]["loss"] < training["initial"]["loss"]
    assert {"geo_cos", "struct_edge", "reason_state", "reason_answer"} <= set(training["final"])
    before, after = report["verification"]["before"], report["verification"]["after"]
    assert after["concept_retrieval"]["top1_csls"] >= before["concept_retrieval"]["top1_csls"]
    assert after["traces"]["state_cosine"] > before["traces"]["state_cosine"]
    assert after["relations"]["overall"]["comparisons"] > 0
    assert set(after["relations"]["by_relation"]) <= {e.relation for e in packet.body.graph.edges}
    # data accounting: the trace problems are the only task rows that reached the student,
    # the anchors the only probes
    data = report["data"]
    assert data["task_inputs_used"] == len(packet.body.traces)
    assert data["task_inputs_by_role"] == {"traces": len(packet.body.traces), "protected": 0}
    assert data["concept_probes_used"] == len({tuple(a.input) for a in packet.body.anchors})
    assert data["other_inputs_used"] == 0
    # digests: before is the untouched student, after what the model now holds
    assert report["student"]["digest_before"] == digest0
    assert report["student"]["digest_after"] == state_dict_digest(model) != digest0
    assert result.model is model and result.accepted
    assert [h["step"] for h in result.history] == [*range(10, STEPS, 10), STEPS]


def test_align_packet_reports_every_method_and_a_curve(worlds):
    task, _, packet = worlds["hierarchy"]
    model = student_for(task, "hierarchy")
    before = state_dict_digest(model)
    cfg = IngestConfig(align_method="mlp", align_options={"steps": 30, "hidden": 16})
    out = align_packet(packet, model, methods=("procrustes", "ridge", "mlp"), config=cfg)
    assert set(out["methods"]) == {"procrustes", "ridge", "mlp"}
    keys = {"n", "cosine", "cosine_centred", "top1_nn", "top1_csls", "cka", "residual"}
    for m in out["methods"].values():
        assert set(m["heldout"]) == keys and set(m["fit"]) == keys
    for points in out["curve"].values():
        counts = [p["anchors"] for p in points]
        assert counts == sorted(counts) and counts[0] == 2
    assert out["n_fit"] + out["n_heldout"] == out["anchors"] == len(packet.body.anchors)
    assert state_dict_digest(model) == before  # alignment never trains the student


def test_ingest_with_each_alignment_method(worlds):
    task, _, packet = worlds["chain"]
    for method in ("ridge", "mlp"):
        cfg = IngestConfig(steps=5, align_method=method, align_options={"lam": 1e-2})
        if method == "mlp":
            cfg = dataclasses.replace(cfg, align_options={"steps": 20, "hidden": 8})
        report = ingest(packet, student_for(task, "chain"), task, cfg, allow_unverified=True).report
        validate_report(report)
        assert report["alignment"]["method"] == method


# -- the trust gate -------------------------------------------------------------------------


def test_unsigned_packet_is_refused_by_default(worlds, trust):
    task, _, packet = worlds["chain"]
    unsigned = packet.with_signatures(None)
    model = student_for(task, "chain")
    digest0 = state_dict_digest(model)
    with pytest.raises(IngestRefusedError) as info:
        ingest(unsigned, model, task, IngestConfig(steps=STEPS), trust=trust, now=NOW)
    exc = info.value
    assert exc.code == "INGEST_REFUSED" and isinstance(exc, IngestError)
    assert [e["code"] for e in exc.verification["errors"]] == ["UNSIGNED"]
    validate_report(exc.report)
    assert exc.report["decision"] == "refused" and "alignment" not in exc.report
    assert state_dict_digest(model) == digest0  # nothing was touched


def test_untrusted_signer_is_refused_and_opting_out_is_recorded(worlds):
    task, _, packet = worlds["chain"]
    stranger = TrustStore([TrustedKey(SigningKey(bytes(32)).public_key, "someone else")])
    for store in (None, stranger):
        with pytest.raises(IngestRefusedError) as info:
            ingest(packet, student_for(task, "chain"), task, trust=store, now=NOW)
        codes = [e["code"] for e in info.value.verification["errors"]]
        assert "POLICY_UNMET" in codes and "SIGNER_UNTRUSTED" in codes
    report = ingest(
        packet,
        student_for(task, "chain"),
        task,
        IngestConfig(steps=2),
        trust=stranger,
        allow_unverified=True,
        now=NOW,
    ).report
    assert report["trust"]["allow_unverified"] and not report["trust"]["verified"]
    assert report["decision"] in ("accepted", "rolled_back")
    validate_report(report)


def test_signature_policy_is_the_stricter_of_packet_and_caller(worlds, trust, key):
    task, _, packet = worlds["chain"]
    with pytest.raises(IngestRefusedError) as info:  # the caller asks for 2 signers
        ingest(
            packet,
            student_for(task, "chain"),
            task,
            IngestConfig(min_signers=2),
            trust=trust,
            now=NOW,
        )
    assert info.value.verification["min_signers"] == 2
    assert "POLICY_UNMET" in [e["code"] for e in info.value.verification["errors"]]

    def lax(fields, _tensors):
        fields["safety"]["require_signature"] = False

    lax_packet = rebuild(packet, lax)  # the packet waives signatures: the caller still wants one
    with pytest.raises(IngestRefusedError):
        ingest(lax_packet, student_for(task, "chain"), task, trust=trust, now=NOW)
    both_lax = ingest(
        lax_packet,
        student_for(task, "chain"),
        task,
        IngestConfig(steps=1, require_signature=False),
        trust=trust,
        now=NOW,
    ).report
    assert not both_lax["trust"]["signature_required"] and not both_lax["trust"]["verified"]


def test_corrupt_tensor_data_is_refused_even_when_unverified_is_allowed(worlds):
    task, _, packet = worlds["chain"]
    data = bytearray(packet.data)
    info = packet.body.tensors[0]
    data[info.offset] ^= 0xFF
    corrupt = codec.Packet(packet.body, packet.body_bytes, memoryview(bytes(data)), None)
    with pytest.raises(IngestRefusedError) as exc:
        ingest(corrupt, student_for(task, "chain"), task, allow_unverified=True)
    assert "TENSOR_DIGEST" in exc.value.message


def test_packet_for_another_task_is_incompatible(worlds):
    chain_task, _, _ = worlds["chain"]
    _, _, modular_packet = worlds["modular"]
    with pytest.raises(IngestError) as info:
        ingest(modular_packet, student_for(chain_task, "chain"), chain_task, allow_unverified=True)
    assert info.value.code == "INGEST_INCOMPATIBLE"


# -- safety: poisoned packets, rollback -----------------------------------------------------


def poisoned(packet, task, key):
    """Wrong answers on every trace, the protected concepts' embeddings permuted, every
    directed relation reversed, and a packet policy that tries to loosen every bound."""
    rng = np.random.default_rng(0)

    def mutate(fields, tensors):
        for t in fields["traces"]:
            t["answer"] = (t["answer"] + 1) % task.n_classes
            t.pop("answer_label", None)
        protected = [c for c in fields["concepts"] if c["kind"] != "cluster"][:6]
        embs = [tensors[c["embedding"]].copy() for c in protected]
        for c, j in zip(protected, rng.permutation(len(protected)), strict=True):
            tensors[c["embedding"]] = embs[j]
        for e in fields["graph"]["edges"]:
            if e["relation"] not in ("similar_to", "inverse_of"):
                e["source"], e["target"] = e["target"], e["source"]
        fields["safety"] = {
            "require_signature": True,
            "min_signers": 1,
            "protected_concepts": [c["id"] for c in protected],
            "max_parameter_drift": 100.0,
            "max_output_divergence": 100.0,
            "max_capability_drop": 1.0,
        }

    return rebuild(packet, mutate, key)


@pytest.mark.parametrize("family", FAMILIES)
def test_poisoned_packet_cannot_degrade_a_protected_capability(family, worlds, trust, key):
    task, run, packet = worlds[family]
    bad = poisoned(packet, task, key)  # signed by a trusted key: the gate lets it through
    capability = run.split.train
    steps = 40

    # without the safety terms and bounds, the poison does damage (the defence is needed)
    unsafe_cfg = IngestConfig(
        steps=steps,
        lambda_safe=0.0,
        max_parameter_drift=None,
        max_output_divergence=None,
        max_capability_drop=None,
        rollback=False,
    )
    victim = copy.deepcopy(run.model)
    unsafe = ingest(bad, victim, task, unsafe_cfg, trust=trust, protected=capability, now=NOW)
    validate_report(unsafe.report)
    drop = unsafe.report["safety"]["capability_drop"]
    assert drop > DEFAULT_BOUNDS["max_capability_drop"]
    assert unsafe.report["policy"]["max_capability_drop"]["source"] == "packet"
    assert unsafe.decision == "accepted"  # the packet's own bounds were lax enough

    # with the defaults, the packet cannot loosen the operator's bounds
    student = copy.deepcopy(run.model)
    digest0 = state_dict_digest(student)
    acc0 = evaluate(student, capability.inputs, capability.targets)
    result = ingest(
        bad, student, task, IngestConfig(steps=steps), trust=trust, protected=capability, now=NOW
    )
    report = result.report
    validate_report(report)
    policy = report["policy"]
    assert policy["max_capability_drop"] == {
        "value": DEFAULT_BOUNDS["max_capability_drop"],
        "source": "config",
    }
    assert report["safety"]["protected_concept_anchors"] > 0
    assert report["decision"] in ("accepted", "rolled_back")
    acc1 = evaluate(student, capability.inputs, capability.targets)
    assert acc1 >= acc0 - DEFAULT_BOUNDS["max_capability_drop"] - 1e-9
    if report["decision"] == "rolled_back":
        assert state_dict_digest(student) == digest0 == report["student"]["digest_after"]
        assert report["reasons"] and not all(c["passed"] for c in report["safety"]["checks"])
        with pytest.raises(IngestError) as info:
            result.raise_for_decision()
        assert info.value.code == "INGEST_ROLLED_BACK"
    else:
        assert all(c["passed"] for c in report["safety"]["checks"])


def test_rollback_restores_the_exact_weights_and_is_reported(worlds):
    task, run, packet = worlds["chain"]
    student = copy.deepcopy(run.model)
    state0 = {k: v.clone() for k, v in student.state_dict().items()}
    # a bound no ingestion can meet: any output change on the capability set fails
    cfg = IngestConfig(steps=5, max_output_divergence=0.0, lambda_safe=0.0)
    result = ingest(packet, student, task, cfg, allow_unverified=True, protected=run.split.train)
    assert result.decision == "rolled_back"
    assert all(torch.equal(state0[k], v) for k, v in student.state_dict().items())
    checks = {c["name"]: c for c in result.report["safety"]["checks"]}
    assert not checks["output_divergence"]["passed"] and checks["output_divergence"]["measured"]
    assert result.report["safety"]["output_divergence"] > 0.0
    kept = ingest(
        packet,
        copy.deepcopy(run.model),
        task,
        dataclasses.replace(cfg, rollback=False),
        allow_unverified=True,
        protected=run.split.train,
    )
    assert kept.decision == "kept_unsafe"
    kept.raise_for_decision()  # kept on purpose: no error


def test_hard_drift_bound_holds_every_step(worlds):
    task, _, packet = worlds["modular"]
    cfg = IngestConfig(steps=15, eval_every=1, lr=5e-2, safe_drift=0.0, max_parameter_drift=0.05)
    result = ingest(packet, student_for(task, "modular"), task, cfg, allow_unverified=True)
    ball = cfg.drift_ball * 0.05
    assert result.report["training"]["projections"] > 0
    assert all(h["drift"] <= ball + 1e-6 for h in result.history)
    assert result.report["safety"]["parameter_drift"] <= 0.05
    assert result.decision == "accepted"


# -- determinism, configuration, API --------------------------------------------------------


def test_deterministic_for_a_seed_on_cpu(worlds):
    task, _, packet = worlds["hierarchy"]
    cfg = IngestConfig(steps=12, seed=3, batch_concepts=8, unrelated_pairs=16)
    a, b = student_for(task, "hierarchy"), student_for(task, "hierarchy")
    ra = ingest(packet, a, task, cfg, allow_unverified=True).report
    rb = ingest(packet, b, task, cfg, allow_unverified=True).report
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert strip_volatile(ra) == strip_volatile(rb)
    rc = ingest(
        packet,
        student_for(task, "hierarchy"),
        task,
        dataclasses.replace(cfg, seed=4),
        allow_unverified=True,
    ).report
    assert rc["student"]["digest_after"] != ra["student"]["digest_after"]


def test_sections_and_weights_can_be_switched_off(worlds):
    task, _, packet = worlds["chain"]
    base = IngestConfig(steps=3, eval_every=1)
    cases = {
        "use_graph": ({"use_graph": False}, {"struct_edge", "struct_hierarchy"}),
        "use_traces": ({"use_traces": False}, {"reason_state", "reason_answer"}),
        "use_concepts": ({"use_concepts": False}, {"geo_cos", "geo_anchor"}),
        "lambda_safe": ({"lambda_safe": 0.0}, {"safe_drift"}),
        "lambda_geo": ({"lambda_geo": 0.0}, {"geo_dist"}),
    }
    for _name, (change, absent) in cases.items():
        cfg = dataclasses.replace(base, **change)
        r = ingest(packet, student_for(task, "chain"), task, cfg, allow_unverified=True)
        terms = set(r.report["training"]["final"])
        assert not (terms & absent), (change, terms)
        assert r.report["verification"]["after"]["relations"]["overall"]["comparisons"] > 0
        if change == {"use_traces": False}:
            assert r.report["data"]["task_inputs_by_role"]["traces"] == len(packet.body.traces)


def test_callback_sees_history_and_can_stop_training(worlds):
    task, run, packet = worlds["chain"]
    seen = []
    test = run.split.test

    def callback(step, info):
        seen.append((step, info["loss"], info["wall_s"]))
        # measuring on the test set must not count as ingestion data
        info["model"](torch.as_tensor(test.inputs))
        return step >= 6

    r = ingest(
        packet,
        student_for(task, "chain"),
        task,
        IngestConfig(steps=50, eval_every=3),
        allow_unverified=True,
        callback=callback,
    )
    assert [s for s, _, _ in seen] == [3, 6]
    assert r.report["training"]["stop_reason"] == "callback"
    assert r.report["training"]["steps"] == 6
    assert r.report["data"]["task_inputs_used"] == len(packet.body.traces)


def test_plateau_stops_early(worlds):
    task, _, packet = worlds["chain"]
    cfg = IngestConfig(steps=200, eval_every=2, patience=2, min_delta=0.5)
    r = ingest(packet, student_for(task, "chain"), task, cfg, allow_unverified=True).report
    assert r["training"]["stop_reason"] == "plateau" and r["training"]["steps"] < 200


def test_batches_and_task_drawn_capability_set(worlds):
    task, run, packet = worlds["hierarchy"]
    cfg = IngestConfig(
        steps=4, batch_concepts=5, batch_traces=2, batch_protected=7, protect_task_problems=30
    )
    r = ingest(packet, copy.deepcopy(run.model), task, cfg, allow_unverified=True).report
    validate_report(r)
    assert r["safety"]["capability_rows"] == 30
    assert r["safety"]["capability_before"] is not None
    traces = {tuple(t.input) for t in packet.body.traces}
    assert r["data"]["task_inputs_used"] == len(
        traces
        | {
            tuple(row)
            for row in task.problems()
            .inputs[
                np.sort(
                    np.random.Generator(
                        np.random.PCG64(np.random.SeedSequence([0, 0x9A0D]))
                    ).permutation(len(task.problems()))[:30]
                )
            ]
            .tolist()
        }
    )


def test_any_module_can_be_a_student(worlds):
    task, _, packet = worlds["modular"]

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(task.vocab_size, 12)
            self.mix = torch.nn.Linear(12, 12)
            self.out = torch.nn.Linear(12, task.n_classes)

        def forward(self, x):
            h = torch.tanh(self.mix(self.emb(x)))  # [B, L, 12]
            return self.out(h.mean(dim=1))

    torch.manual_seed(0)
    model = Tiny()
    with pytest.raises(UsageError):
        ingest(packet, model, None, IngestConfig(steps=1), allow_unverified=True)
    r = ingest(
        packet, model, None, IngestConfig(steps=5, student_layer="mix"), allow_unverified=True
    ).report
    validate_report(r)
    assert r["student"]["architecture"] == {"class": "Tiny"}
    assert r["data"]["task_known"] is False
    assert r["data"]["task_inputs_used"] == len(packet.body.traces)


def test_config_round_trip_and_settings():
    cfg = IngestConfig()
    assert IngestConfig.from_dict(cfg.to_dict()) == cfg
    new = cfg.with_settings(
        {
            "lambda_struct": "0",
            "use_graph": "false",
            "batch_concepts": "none",
            "max_output_divergence": "0.5",
            "align_options": '{"lam": 0.1}',
            "hierarchy_relations": "is_a",
            "student_layer": "blocks.0",
        }
    )
    assert new.lambda_struct == 0.0 and new.use_graph is False and new.batch_concepts is None
    assert new.max_output_divergence == 0.5 and new.align_options == {"lam": 0.1}
    assert new.hierarchy_relations == ("is_a",) and new.student_layer == "blocks.0"
    for bad in ({"nope": "1"}, {"steps": "many"}, {"use_graph": "perhaps"}):
        with pytest.raises(UsageError):
            cfg.with_settings(bad)
    for bad in (
        {"lr": 0.0},
        {"align_method": "magic"},
        {"lambda_geo": -1.0},
        {"drift_ball": 0.0},
        {"batch_traces": 1},
        {"max_parameter_drift": -0.1},
    ):
        with pytest.raises(UsageError):
            IngestConfig(**bad)
    with pytest.raises(UsageError):
        IngestConfig.from_dict({"unknown": 1})


def test_effective_policy_is_the_stricter(worlds):
    _, _, packet = worlds["chain"]

    def strict(fields, _tensors):
        fields["safety"]["max_parameter_drift"] = 0.01
        fields["safety"].pop("max_output_divergence")

    tight = rebuild(packet, strict)
    policy = effective_policy(tight, IngestConfig(max_output_divergence=None))
    assert policy["max_parameter_drift"] == {"value": 0.01, "source": "packet"}
    assert policy["max_output_divergence"] == {
        "value": DEFAULT_BOUNDS["max_output_divergence"],
        "source": "default",
    }
    assert effective_policy(tight, IngestConfig(max_capability_drop=0.001))[
        "max_capability_drop"
    ] == {"value": 0.001, "source": "config"}


def test_ignoring_the_packet_policy_is_explicit_and_recorded(worlds):
    task, _, packet = worlds["chain"]

    def strict(fields, _tensors):
        fields["safety"]["max_parameter_drift"] = 0.001

    tight = rebuild(packet, strict)
    bounded = ingest(
        tight, student_for(task, "chain"), task, IngestConfig(steps=5), allow_unverified=True
    ).report
    assert bounded["safety"]["parameter_drift"] <= 0.001 + 1e-9
    free_cfg = IngestConfig(
        steps=5, ignore_packet_policy=True, max_parameter_drift=None, lambda_safe=0.0
    )
    free = ingest(tight, student_for(task, "chain"), task, free_cfg, allow_unverified=True)
    report = free.report
    validate_report(report)
    assert report["policy"]["packet_policy_ignored"] is True
    assert report["policy"]["max_parameter_drift"] == {"value": None, "source": "none"}
    assert report["policy"]["max_capability_drop"]["source"] == "config"
    assert report["training"]["projections"] == 0 and report["training"]["drift_ball"] is None
    assert report["safety"]["parameter_drift"] > 0.001 and free.decision == "accepted"


def test_packet_view_clusters_average_their_members(worlds):
    _, _, packet = worlds["modular"]
    view = packet_view(packet)
    assert view.represented.all()
    clusters = [i for i, k in enumerate(view.concept_kinds) if k == "cluster"]
    assert clusters and not view.direct[clusters].any()
    for c in clusters:
        assert view.membership.row_sums()[c] == pytest.approx(1.0)


def test_bf16_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(UsageError):
        ingest(None, torch.nn.Linear(1, 1), None, IngestConfig(bf16=True))  # type: ignore[arg-type]


# -- the report and its receipt ---------------------------------------------------------------


@pytest.fixture(scope="module")
def accepted_report(worlds, trust):
    task, _, packet = worlds["chain"]
    return ingest(
        packet, student_for(task, "chain"), task, IngestConfig(steps=3), trust=trust, now=NOW
    ).report


def test_schema_rejects_broken_reports(accepted_report):
    assert report_errors(accepted_report) == []
    broken = copy.deepcopy(accepted_report)
    broken["decision"] = "maybe"
    del broken["data"]["task_inputs_used"]
    broken["extra"] = 1
    paths = {e.path for e in report_errors(broken)}
    assert {"/decision", "/data", ""} <= paths
    not_refused = copy.deepcopy(accepted_report)
    del not_refused["training"]
    assert report_errors(not_refused)  # only a refusal may omit the training sections


def test_receipt_signs_and_detects_tampering(accepted_report):
    operator = SigningKey(bytes([7]) * 32)
    signed = sign_report(accepted_report, operator, signing_time=NOW)
    validate_report(signed)
    store = TrustStore([TrustedKey(operator.public_key, "operator")])
    check = verify_receipt(signed, store)
    assert check.valid and check["name"] == "operator" and check["kid"] == operator.kid.hex()
    import json

    reread = json.loads(json.dumps(signed))  # the receipt survives a JSON round trip
    assert verify_receipt(reread).valid
    tampered = copy.deepcopy(signed)
    tampered["safety"]["capability_drop"] = 0.0
    tampered["decision"] = "accepted"
    tampered["student"]["digest_after"] = "sha256:" + "0" * 64
    assert [e["code"] for e in verify_receipt(tampered)["errors"]] == ["PAYLOAD_MISMATCH"]
    stranger = TrustStore([TrustedKey(SigningKey(bytes(32)).public_key, "x")])
    assert verify_receipt(signed, stranger)["errors"][0]["code"] == "SIGNER_UNTRUSTED"
    assert verify_receipt(accepted_report)["errors"][0]["code"] == "UNSIGNED"
    garbled = copy.deepcopy(signed)
    garbled["receipt"]["cose_sign1"] = base64.b64encode(b"\x01\x02").decode()
    assert verify_receipt(garbled)["errors"][0]["code"] == "SIGNATURE_MALFORMED"
    forged = copy.deepcopy(signed)
    raw = bytearray(base64.b64decode(signed["receipt"]["cose_sign1"]))
    raw[-5] ^= 1  # a bit of the Ed25519 signature
    forged["receipt"]["cose_sign1"] = base64.b64encode(bytes(raw)).decode()
    assert verify_receipt(forged)["errors"][0]["code"] == "SIGNATURE_INVALID"


def test_receipt_verifies_with_an_independent_cose_library(accepted_report):
    pytest.importorskip("pycose")
    import cbor2
    from pycose.keys import OKPKey
    from pycose.messages import Sign1Message

    operator = SigningKey(bytes([9]) * 32)
    signed = sign_report(accepted_report, operator, signing_time=NOW)
    value = cbor2.loads(base64.b64decode(signed["receipt"]["cose_sign1"]))
    assert value.tag == Sign1Message.cbor_tag
    # pycose 1.1 expects a list and a dict where cbor2 6 gives a tuple and a frozendict inside
    # a tag (see test_signing.py)
    protected, unprotected, payload, signature = value.value
    msg = Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)
    msg.key = OKPKey(crv="ED25519", x=operator.public_key.raw)
    assert msg.verify_signature()
    assert msg.payload.hex() == signed["receipt"]["payload"]
    msg.payload = bytes(32)
    assert not msg.verify_signature()


def test_m2kt_errors_carry_codes(worlds):
    # every ingestion error is an M2ktError with a registered code (for CLI lines)
    task, _, packet = worlds["chain"]
    with pytest.raises(M2ktError) as info:
        ingest(packet.with_signatures(None), student_for(task, "chain"), task)
    assert info.value.to_dict()["code"] == "INGEST_REFUSED"


# -- CUDA -----------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_matches_cpu(family, worlds):
    task, _, packet = worlds[family]
    cfg = IngestConfig(steps=10)
    cpu = ingest(packet, student_for(task, family), task, cfg, allow_unverified=True).report
    gpu = ingest(
        packet,
        student_for(task, family),
        task,
        dataclasses.replace(cfg, device="cuda"),
        allow_unverified=True,
    ).report
    validate_report(gpu)
    assert gpu["device"]["type"] == "cuda"
    assert gpu["decision"] == cpu["decision"]
    assert gpu["training"]["final"]["loss"] == pytest.approx(
        cpu["training"]["final"]["loss"], rel=1e-2, abs=1e-3
    )
    assert gpu["safety"]["parameter_drift"] == pytest.approx(
        cpu["safety"]["parameter_drift"], rel=1e-2, abs=1e-4
    )


@pytest.mark.cuda
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_bf16_runs(family, worlds):
    task, _, packet = worlds[family]
    cfg = IngestConfig(steps=10, device="cuda", bf16=True)
    r = ingest(packet, student_for(task, family), task, cfg, allow_unverified=True).report
    validate_report(r)
    assert r["device"]["bf16"] and r["training"]["finite"]
    assert r["training"]["final"]["loss"] < r["training"]["initial"]["loss"]
