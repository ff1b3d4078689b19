"""The transfer experiment end to end, with its controls in the same run (docs/results.md).

Per seed: generate a packet from the (cached) teacher, sign it with an ephemeral key and verify
it before anything reads it; answer the test from the packet alone (answer-key gate); train the
concept-state student on the packet, and each generic student by self-distillation from it;
train every student on the task rows behind the packet's facts with their true labels
(same-prior control) and with the teacher's labels (KD on M2KT's inputs); run KD on a log grid
of budgets drawn from the transfer pool; run the ablations. Every figure is measured on the
teacher's held-out test split; every count is a :class:`~m2kt_ref.transfer.accounting.
TransferAccount` (spec/algorithms.md §5).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2kt_ref.errors import UsageError
from m2kt_ref.experiments import methods as M
from m2kt_ref.experiments.answer_key import AnswerKeyReader
from m2kt_ref.experiments.floor import information_floor
from m2kt_ref.experiments.machine import environment
from m2kt_ref.experiments.presets import ExperimentPreset, StudentSpec, resolve_preset
from m2kt_ref.packet.keys import SigningKey
from m2kt_ref.packet.signing import verify_packet
from m2kt_ref.packet.trust import TrustedKey, TrustStore
from m2kt_ref.transfer.accounting import TransferAccount
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.model_dir import load_model_dir, save_model_dir
from m2kt_ref.transfer.nets import NetConfig, build_model
from m2kt_ref.transfer.student.concept_state import build_concept_student, fit_from_packet
from m2kt_ref.transfer.student.warm_start import write_packet_geometry
from m2kt_ref.transfer.tasks import ProblemSet, Split, Task, make_task
from m2kt_ref.transfer.teacher.generate import generate_from_model
from m2kt_ref.transfer.training import evaluate, train_model

__all__ = [
    "CHANCE_ALPHA",
    "chance_level",
    "inputs_to_reach",
    "kd_grid",
    "merge_results",
    "run_experiment",
]

RESULTS_FORMAT = "m2kt.experiment-results"
RESULTS_VERSION = 2
#: One-sided significance level of "beats the best constant answer" (binomial test).
CHANCE_ALPHA = 0.05
#: The students start untrained, so there is no prior capability for the safety bounds to keep.
EXPERIMENT_SAFETY: dict[str, Any] = {
    "max_parameter_drift": 1000.0,
    "max_output_divergence": 1000.0,
    "max_capability_drop": 1.0,
}
_CREATED = 1_767_225_600  # 2026-01-01, pinned: a seed's packet bytes are reproducible


def kd_grid(pool: int, points: int) -> list[int]:
    """Budgets on a log grid from 4 rows to the whole transfer pool."""
    lo = min(4, pool)
    if points <= 1 or pool <= lo:
        return [pool]
    vals = np.exp(np.linspace(math.log(lo), math.log(pool), points))
    return sorted({round(float(v)) for v in vals} | {pool})


def inputs_to_reach(curve: list[dict[str, float]], accuracy: float) -> float | None:
    """Rows a curve needs to reach ``accuracy``: its first crossing, interpolated linearly in
    accuracy against log(rows) between the two measured points around it; None if never."""
    pts = sorted(curve, key=lambda p: p["inputs"])
    for i, p in enumerate(pts):
        if p["accuracy"] >= accuracy:
            if i == 0:
                return float(p["inputs"])
            q = pts[i - 1]
            span = p["accuracy"] - q["accuracy"]
            frac = 1.0 if span <= 0 else (accuracy - q["accuracy"]) / span
            lx = math.log(q["inputs"]) + frac * (math.log(p["inputs"]) - math.log(q["inputs"]))
            return float(math.exp(lx))
    return None


def chance_level(targets: np.ndarray) -> float:
    """Accuracy of the best constant answer on the test set (its most frequent class)."""
    t = np.asarray(targets, dtype=np.int64)
    return float(np.bincount(t).max() / len(t)) if len(t) else 0.0


def _above_chance(accuracy: float, n_test: int, chance: float) -> tuple[bool, float]:
    from scipy.stats import binomtest

    p = float(binomtest(round(accuracy * n_test), n_test, chance, alternative="greater").pvalue)
    return p < CHANCE_ALPHA, p


# --------------------------------------------------------------------------- teacher


def _teacher(
    task: Task, preset: ExperimentPreset, out: Path, device: torch.device, log: Callable
) -> tuple[torch.nn.Module, Split, dict[str, Any]]:
    seed = preset.teacher_seed
    tdir = out / f"teacher-seed{seed}"
    split = task.split(seed, preset.train_fraction, preset.test_fraction)
    ps = task.problems()
    fingerprint = hashlib.sha256(
        "\n".join(task.vocab).encode() + ps.inputs.tobytes() + ps.targets.tobytes()
    ).hexdigest()
    want = {
        "task": task.name,
        "options": task.option_dict(),
        # the task's content, not only its options: a cache trained on another version of the
        # task's code is retrained rather than reused
        "task_fingerprint": fingerprint,
        "net": preset.teacher_net,
        "train": preset.teacher_train.to_dict(),
        # a teacher cached for another split may have trained on this run's test set
        "split": [preset.train_fraction, preset.test_fraction],
        "seed": seed,
    }
    if (tdir / "record.json").is_file():
        md = load_model_dir(tdir, device=device)
        if md.record.get("experiment_key") == want:
            log(f"teacher: reusing {tdir}")
            return md.model, split, md.record
    net = dict(preset.teacher_net)
    cfg = NetConfig(
        family=net.pop("family"),
        vocab_size=task.vocab_size,
        seq_len=task.seq_len,
        n_classes=task.n_classes,
        seed=seed,
        **net,
    )
    model = build_model(cfg)
    valid = split.reserve.head(2000) if len(split.reserve) else None
    tc = replace(preset.teacher_train, seed=seed)
    log(f"teacher: training {cfg.family} w{cfg.width} d{cfg.depth} on {len(split.train)} problems")
    res = train_model(model, split.train, tc, valid=valid, device=device, progress=False)
    acc = evaluate(model, split.test.inputs, split.test.targets)
    record = {
        "trained": True,
        "experiment_key": want,
        "test_accuracy": acc,
        "train_accuracy": res.train_accuracy,
        "valid_accuracy": res.monitor_accuracy,
        "steps": res.steps,
        "wall_seconds": round(res.wall_seconds, 3),
        "train_size": len(split.train),
        "test_size": len(split.test),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    save_model_dir(tdir, model, cfg, task, record, split=split, train_config=tc)
    log(f"teacher: test accuracy {acc:.4f} after {res.steps} steps ({res.wall_seconds:.0f}s)")
    return model, split, record


# --------------------------------------------------------------------------- one seed


class _Run:
    """What every method of one seed shares."""

    def __init__(
        self,
        task: Task,
        split: Split,
        teacher: torch.nn.Module,
        preset: ExperimentPreset,
        device: torch.device,
        seed: int,
        log: Callable[[str], None],
    ) -> None:
        self.task, self.split, self.teacher, self.preset = task, split, teacher, preset
        self.device, self.seed, self.log = device, seed, log
        self.test: ProblemSet = split.test
        self.chance = chance_level(self.test.targets)
        self.chance_class = int(np.bincount(self.test.targets).argmax())
        self.truth = {
            r.tobytes(): int(t)
            for r, t in zip(
                np.ascontiguousarray(task.problems().inputs, dtype=np.int64),
                task.problems().targets,
                strict=True,
            )
        }
        self.grid = kd_grid(len(split.pool), preset.kd_points)
        self.kd_rows = M.draw_rows(split.pool, len(split.pool), seed)

    def eval(self, model: torch.nn.Module) -> float:
        return evaluate(model, self.test.inputs, self.test.targets)

    def packet(self, **overrides: Any) -> tuple[Any, dict[str, Any]]:
        """Generate, sign (ephemeral key) and verify a packet; return it with what it holds."""
        options = {**self.preset.packet, **overrides}
        key = SigningKey.generate()
        gen = generate_from_model(
            self.teacher,
            self.task,
            exclude=self.split.test,
            seed=self.seed,
            key=key,
            safety=EXPERIMENT_SAFETY,
            created=_CREATED,
            teacher_name=f"{self.task.name}-teacher",
            **options,
        )
        trust = TrustStore([TrustedKey(key.public_key, "experiment (ephemeral)")])
        verify_packet(gen.packet, trust, now=_CREATED).raise_for_errors()
        reader = AnswerKeyReader(gen.packet, self.task, fallback=self.chance_class)
        s = gen.stats
        info = {
            "options": options,
            "packet_id": gen.packet.packet_id,
            "bytes": s["packet_bytes"],
            "signature_verified": True,
            "traces": s["traces"],
            "trace_selection": s["trace_selection"],
            "trace_step_labels": s["trace_step_labels"],
            "trace_answers_correct": s["trace_answers_correct"],
            "operator_entries": s["operator_entries"],
            "edges_by_derivation": s["edges_by_derivation"],
            "concepts": s["concepts"],
            "anchors": s["anchors"],
            "teacher_side_task_inputs": s["task_inputs_used"],
            "teacher_side_operator_probes": s["operator_probes_used"],
            "teacher_side_concept_probes": s["concept_probes_used"],
            "answer_key_accuracy": reader.accuracy(self.test.inputs, self.test.targets),
        }
        return gen.packet, info

    def truth_of(self, rows: np.ndarray) -> np.ndarray:
        return np.array([self.truth[r.tobytes()] for r in rows], dtype=np.int64)


def _concept(run: _Run, packet: Any, **fit_options: Any) -> tuple[dict[str, Any], Any]:
    """M2KT into the concept-state student: accuracy and what it read."""
    student = build_concept_student(run.task, seed=1000 + run.seed)
    fit = fit_from_packet(student, packet, run.task, steps=run.preset.concept_steps, **fit_options)
    account = TransferAccount(
        task_rows=fit.task_rows,
        trace_step_labels=fit.step_labels,
        operator_facts=fit.operator_facts,
        declared_facts=fit.declared_facts,
    )
    return {"accuracy": run.eval(student), "account": account.to_dict()}, (student, account)


def _concept_student(run: _Run, packet: Any) -> tuple[dict[str, Any], Any]:
    preset, task = run.preset, run.task
    m2kt, labeller = _concept(run, packet)
    entry: dict[str, Any] = {"m2kt": m2kt, "kd_curve": []}
    if not preset.concept_controls:
        return entry, labeller
    rows = M.control_rows(packet, task)
    make = lambda: build_concept_student(task, seed=1000 + run.seed)  # noqa: E731
    same = M.concept_rows_fit(make, rows, run.truth_of(rows), run.test, preset.concept_steps)
    kd_same = M.concept_rows_fit(
        make, rows, M.answers(run.teacher, rows), run.test, preset.concept_steps
    )
    for n in run.grid:
        x = run.kd_rows[:n]
        acc = M.concept_rows_fit(make, x, M.answers(run.teacher, x), run.test, preset.concept_steps)
        entry["kd_curve"].append({"inputs": n, "accuracy": acc})
    entry["same_prior"] = {"accuracy": same, "rows": len(rows), "labels": "ground truth"}
    entry["kd_same_inputs"] = {"accuracy": kd_same, "rows": len(rows), "labels": "teacher answers"}
    return entry, labeller


def _generic_student(
    run: _Run, spec: StudentSpec, packet: Any, labeller: Any | None
) -> dict[str, Any]:
    preset, task, budget = run.preset, run.task, run.preset.budget
    make = lambda: M.generic_student(task, spec, run.seed, run.device)  # noqa: E731
    temp = preset.kd_temperature
    entry: dict[str, Any] = {}
    if labeller is not None:
        cs, account = labeller
        pool = _non_test(task, run.split)
        count = (
            len(pool) if preset.synthetic_rows is None else min(preset.synthetic_rows, len(pool))
        )
        syn = M.draw_rows(pool, count, run.seed + 7)
        fit = M.label_fit(make, syn, M.answers(cs, syn), run.test, budget, run.seed, oracle=False)
        entry["m2kt"] = {
            **fit.to_dict(),
            "method": "self-distillation from the concept-state student (final accuracy of one "
            "run, first weight decay: no choice on the test set)",
            "account": account.with_synthetic(len(syn), _in_test(syn, run.test)).to_dict(),
        }
    rows = M.control_rows(packet, task)
    if len(rows):
        entry["same_prior"] = {
            **M.label_fit(make, rows, run.truth_of(rows), run.test, budget, run.seed).to_dict(),
            "rows": len(rows),
        }
        entry["kd_same_inputs"] = {
            **M.kd_fit(make, run.teacher, rows, run.test, budget, run.seed, temp).to_dict(),
            "rows": len(rows),
        }

    def kd(n: int, prepare: Callable[[torch.nn.Module], Any] | None = None) -> dict[str, Any]:
        x = run.kd_rows[:n]
        fit = M.kd_fit(make, run.teacher, x, run.test, budget, run.seed, temp, prepare)
        return {"inputs": n, **fit.to_dict()}

    entry["kd_curve"] = [kd(n) for n in run.grid]
    if preset.warm_start_kd:

        def warm(model: torch.nn.Module) -> None:
            write_packet_geometry(packet, model, task)

        entry["kd_warm_curve"] = [kd(n, warm) for n in run.grid]
    return entry


def _in_test(rows: np.ndarray, test: ProblemSet) -> int:
    """How many rows are test problems (counted, not assumed: synthetic rows are reported)."""
    keys = test.row_keys()
    return sum(r.tobytes() in keys for r in np.ascontiguousarray(rows, dtype=np.int64))


def _non_test(task: Task, split: Split) -> ProblemSet:
    """Every task problem that is not a test problem (what synthetic rows are drawn from)."""
    banned = split.test.row_keys()
    rows = np.ascontiguousarray(task.problems().inputs, dtype=np.int64)
    keep = np.array([r.tobytes() not in banned for r in rows], dtype=bool)
    return task.problems().take(np.flatnonzero(keep))


def _ablations(run: _Run, packet: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Concept-state student variants: what each packet content and choice is worth."""
    task = run.task
    out: dict[str, Any] = {}

    def record(name: str, pkt: Any, pinfo: dict[str, Any], **fit: Any) -> None:
        try:
            entry, _ = _concept(run, pkt, **fit)
        except UsageError as exc:  # the variant leaves the student nothing to learn from
            entry = {"accuracy": None, "account": None, "note": str(exc)}
        out[name] = {**entry, "answer_key_accuracy": pinfo["answer_key_accuracy"]}

    if task.name == "chain":
        k = max(int(info["traces"]), 1)
        rnd, rinfo = run.packet(trace_selection="random", traces=k)
        record("random_traces", rnd, rinfo)
        record("no_step_hints", packet, info, use_hints=False)
        near, ninfo = run.packet(step_decoding="nearest-concept")
        record("nearest_concept_steps", near, ninfo)
        ops, oinfo = run.packet(operators=True)
        record("operators_only", ops, oinfo, use_traces=False)
    elif task.name == "hierarchy":
        declared, dinfo = run.packet(operators=False, declare=True)
        record("declared_edges", declared, dinfo)
        geo, ginfo = run.packet(operators=False)
        record("geometry_only", geo, ginfo)
    return out


def _run_seed(
    task: Task,
    preset: ExperimentPreset,
    seed: int,
    teacher: torch.nn.Module,
    split: Split,
    device: torch.device,
    log: Callable[[str], None],
) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = _Run(task, split, teacher, preset, device, seed, log)
    packet, info = run.packet()
    log(
        f"seed {seed}: packet {info['packet_id'][:12]}… {info['traces']} traces, "
        f"answer-key reader {info['answer_key_accuracy']:.3f}"
    )
    students: dict[str, Any] = {}
    labeller = None
    for spec in preset.students:
        if spec.family == "concept":
            students[spec.name], labeller = _concept_student(run, packet)
        else:
            students[spec.name] = _generic_student(run, spec, packet, labeller)
        m2kt = students[spec.name].get("m2kt", {})
        log(f"seed {seed}: {spec.name}: M2KT {m2kt.get('accuracy', float('nan')):.3f}")
    has_concept = any(s.family == "concept" for s in preset.students)
    ablations = _ablations(run, packet, info) if preset.ablations and has_concept else {}
    log(f"seed {seed}: done in {time.perf_counter() - t0:.0f}s")
    return {
        "seed": seed,
        "packet": info,
        "kd_grid": run.grid,
        "students": students,
        "ablations": ablations,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


# --------------------------------------------------------------------------- aggregation


def _stat(values: list[Any]) -> dict[str, Any]:
    """Mean and *sample* standard deviation (ddof 1; 0 for one value) of the defined values."""
    vals = [float(v) for v in values if v is not None]
    mean = float(np.mean(vals)) if vals else None
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    return {"mean": mean, "std": std, "n": len(vals), "values": values}


def _student_figures(
    doc: dict[str, Any], name: str, runs: list[dict[str, Any]], packets: list[dict[str, Any]]
) -> dict[str, Any]:
    teacher = doc["teacher"]["accuracy"]
    target = doc["target_accuracy"]
    n_test, chance = doc["teacher"]["test_size"], doc["teacher"]["chance_accuracy"]
    floor = doc["information_floor"]["label_equivalents"]
    per_seed = []
    for r, pinfo in zip(runs, packets, strict=True):
        fig: dict[str, Any] = {}
        m = r.get("m2kt")
        if "kd_warm_curve" in r:  # modular: M2KT is KD after the geometry write
            warm = inputs_to_reach(r["kd_warm_curve"], target)
            cold = inputs_to_reach(r["kd_curve"], target)
            fig["warm_inputs_to_target"] = warm
            fig["kd_inputs_to_target"] = cold
            fig["data_reduction"] = None if warm is None or cold is None else 1 - warm / cold
            per_seed.append(fig)
            continue
        if m is None:
            per_seed.append(fig)
            continue
        acc = m["accuracy"]
        le = m["account"]["label_equivalents"]
        above, p = _above_chance(acc, n_test, chance)
        match = inputs_to_reach(r["kd_curve"], acc) if above else None
        fig.update(
            accuracy=acc,
            relative=acc / teacher if teacher else None,
            label_equivalents=le,
            floor_multiple=le / floor if floor else None,
            above_chance=above,
            chance_p_value=p,
            answer_key=pinfo["answer_key_accuracy"],
            packet_carried_answers=pinfo["answer_key_accuracy"] >= acc - 1.0 / n_test,
            same_prior=r.get("same_prior", {}).get("accuracy"),
            kd_same_inputs=r.get("kd_same_inputs", {}).get("accuracy"),
            kd_inputs_to_match=match,
            data_reduction=None if match is None else 1.0 - le / match,
            kd_inputs_to_target=inputs_to_reach(r["kd_curve"], target),
        )
        per_seed.append(fig)
    keys = sorted({k for f in per_seed for k in f})
    out = {k: _stat([f.get(k) for f in per_seed]) for k in keys}
    out["above_chance_seeds"] = sum(bool(f.get("above_chance")) for f in per_seed)
    out["kd_curve"] = _curve_stat([r["kd_curve"] for r in runs])
    if "kd_warm_curve" in runs[0]:
        out["kd_warm_curve"] = _curve_stat([r["kd_warm_curve"] for r in runs])
    if "m2kt" in runs[0]:
        accounts = [r["m2kt"]["account"] for r in runs]
        out["account"] = {k: _stat([a[k] for a in accounts]) for k in accounts[0]}
    return out


def _generic_kd_to_target(doc: dict[str, Any]) -> dict[str, Any]:
    """The fewest rows any *generic* student's KD needs for 90 % of the teacher (mean over seeds),
    and each M2KT student's label-equivalents as a fraction of it (where M2KT reaches 90 %)."""
    generic = {
        name: s["kd_inputs_to_target"]["mean"]
        for name, s in doc["students"].items()
        if doc["settings"]["students"][name]["family"] != "concept"
        and s.get("kd_inputs_to_target", {}).get("mean") is not None
    }
    best = min(generic.items(), key=lambda kv: kv[1]) if generic else None
    out: dict[str, Any] = {"student": best[0] if best else None, "rows": best[1] if best else None}
    fractions = {}
    for name, s in doc["students"].items():
        acc, le = s.get("accuracy", {}).get("mean"), s.get("label_equivalents", {}).get("mean")
        if best and acc is not None and le is not None and acc >= doc["target_accuracy"]:
            fractions[name] = le / best[1]
    out["label_equivalents_fraction"] = fractions
    return out


def _curve_stat(curves: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if not curves or not curves[0]:
        return []
    return [
        {"inputs": curves[0][i]["inputs"], **_stat([c[i]["accuracy"] for c in curves])}
        for i in range(len(curves[0]))
    ]


def _summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Per-student figures across seeds and the headline (a new run and a merge share this)."""
    per_seed = doc["per_seed"]
    packets = [r["packet"] for r in per_seed]
    doc["seeds"] = [r["seed"] for r in per_seed]
    names = list(per_seed[0]["students"])
    doc["students"] = {
        n: _student_figures(doc, n, [r["students"][n] for r in per_seed], packets) for n in names
    }
    doc["answer_key"] = _stat([p["answer_key_accuracy"] for p in packets])
    doc["generic_kd_to_target"] = _generic_kd_to_target(doc)
    names_ab = list(per_seed[0]["ablations"])
    doc["ablations"] = {
        n: {
            "accuracy": _stat([r["ablations"][n]["accuracy"] for r in per_seed]),
            "label_equivalents": _stat(
                [(r["ablations"][n]["account"] or {}).get("label_equivalents") for r in per_seed]
            ),
            "answer_key": _stat([r["ablations"][n]["answer_key_accuracy"] for r in per_seed]),
        }
        for n in names_ab
    }
    return doc


# --------------------------------------------------------------------------- merge and run


def merge_results(
    paths: list[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> dict[str, Any]:
    """Merge ``results.json`` files of runs that differ only in their seeds into ``out``.

    Raises:
        UsageError: the runs differ in task, options, scale, teacher or settings, or repeat a
            seed.
    """
    from m2kt_ref.experiments.render import write_outputs

    docs = []
    for p in paths:
        path = Path(p)
        path = path / "results.json" if path.is_dir() else path
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read results {path}: {exc}") from None
    if not docs:
        raise UsageError("nothing to merge")
    first = docs[0]

    def identity(doc: dict[str, Any], key: str) -> Any:
        # a cached teacher is the same teacher whatever its training took on this machine
        if key == "teacher":
            return {k: v for k, v in doc[key].items() if k != "wall_seconds"}
        return doc.get(key)

    for d in docs[1:]:
        for k in ("task", "task_options", "scale", "teacher", "settings"):
            if identity(d, k) != identity(first, k):
                raise UsageError(f"runs differ in {k}; only seeds may differ")
    per_seed = sorted((r for d in docs for r in d["per_seed"]), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in per_seed]
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds repeat across the runs: {seeds}")
    merged = json.loads(json.dumps(first))
    merged["per_seed"] = per_seed
    merged["wall_seconds"] = round(sum(d["wall_seconds"] for d in docs), 2)
    merged["merged_from"] = [str(p) for p in paths]
    merged["environments"] = [d["environment"] for d in docs]
    _summarise(merged)
    write_outputs(merged, Path(out))
    return merged


def run_experiment(
    task_name: str = "chain",
    *,
    options: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    seeds: int = 1,
    scale: str = "default",
    device: str = "cpu",
    threads: int | None = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the experiment and write ``results.json``, ``report.md`` and ``transfer.png``.

    Args:
        task_name: a registered task family.
        options: task options and experiment settings (``--opt`` pairs; see presets.py).
        out: output directory (default ``runs/<task>``); the teacher is cached there.
        seed: first transfer seed; ``seeds`` consecutive seeds are run.
        scale: ``quick`` (tests) or ``default``.
        device: ``cpu``, ``cuda`` or ``auto``.
        threads: torch intra-op threads (None leaves torch's default).
        log: progress callback (one line per call); silent when None.

    Returns:
        the results document (also written to ``out/results.json``).

    Raises:
        UsageError: bad task, option, scale or device.
    """
    from m2kt_ref.experiments.render import write_json, write_outputs

    say = log or (lambda _m: None)
    if threads is not None:
        torch.set_num_threads(int(threads))
    if seeds < 1:
        raise UsageError("--seeds must be >= 1")
    dev = resolve_device(device)
    preset, task_opts = resolve_preset(task_name, scale, dict(options or {}))
    task = make_task(task_name, **task_opts)
    outdir = Path(out) if out is not None else Path("runs") / task_name
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    teacher, split, trecord = _teacher(task, preset, outdir, dev, say)
    teacher.eval()
    teacher_acc = evaluate(teacher, split.test.inputs, split.test.targets)
    per_seed = []
    for s in range(seed, seed + seeds):
        per_seed.append(_run_seed(task, preset, s, teacher, split, dev, say))
        # a long run that is interrupted keeps the seeds it finished
        write_json({"per_seed": per_seed}, outdir / "per_seed.partial.json")
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "task": task_name,
        "task_options": task.option_dict(),
        "scale": scale,
        "teacher": {
            "accuracy": teacher_acc,
            "seed": preset.teacher_seed,
            "net": preset.teacher_net,
            "steps": trecord.get("steps"),
            "wall_seconds": trecord.get("wall_seconds"),
            "train_size": len(split.train),
            "test_size": len(split.test),
            "pool_size": len(split.pool),
            "chance_accuracy": chance_level(split.test.targets),
        },
        "target_accuracy": 0.9 * teacher_acc,
        "information_floor": information_floor(task),
        "settings": preset.to_dict(),
        "accounting_rule": "spec/algorithms.md §5: label-equivalents = task rows whose label "
        "reached the student + operator facts + declared facts; step hints, concept probes and "
        "synthetic rows beside; test-set evaluation not counted",
        "per_seed": per_seed,
        "environment": environment(dev),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    _summarise(results)
    write_outputs(results, outdir)
    return results
