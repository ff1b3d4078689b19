"""The transfer experiment end to end: teacher, signed packet, ingestion, baselines, ablations.

For each seed: train (or reuse) the teacher; generate a packet from it and sign it with an
ephemeral key, then verify the signature against a trust store holding only that key before
anything is ingested; ingest the packet into every student of the preset (a transformer of
another width and depth, and one of another family); train the same students with logit KD on
a log grid of input budgets and from scratch on exactly the task inputs M2KT used; run the
ablations (each loss term and each packet section removed) and the curve over the number of
traces K. Every student is evaluated on the teacher's held-out test split. Inputs are counted by
:class:`m2kt_ref.transfer.accounting.InputCounter` (spec/algorithms.md §5).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2kt_ref import __version__
from m2kt_ref.experiments.presets import (
    ExperimentPreset,
    RecipeConfig,
    StudentSpec,
    resolve_preset,
)
from m2kt_ref.transfer.accounting import InputCounter
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.distill import FitResult, logit_distill, train_on_labels
from m2kt_ref.transfer.model_dir import load_model_dir, save_model_dir
from m2kt_ref.transfer.nets import NetConfig, build_model
from m2kt_ref.transfer.tasks import Split, Task, make_task
from m2kt_ref.transfer.training import evaluate, train_model

__all__ = ["ABLATIONS", "kd_grid", "kd_inputs_to_match", "merge_results", "run_experiment"]

#: Ablations: name -> recipe changes (each loss term removed, each packet section ignored).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_geo": {"lambda_geo": 0.0},
    "no_struct": {"lambda_struct": 0.0},
    "no_reason": {"lambda_reason": 0.0},
    "no_embed_init": {"embed_init": False},
    "no_head_init": {"head_init": False},
    "no_safe": {"lambda_safe": 0.0},
    "no_concepts": {"use_concepts": False},
    "no_graph": {"use_graph": False},
    "no_traces": {"use_traces": False},
}


#: The students start untrained: there is no prior capability to protect, so the packet's
#: safety bounds are opened (a drift bound of 0.25 would pin a random student near its init).
EXPERIMENT_SAFETY: dict[str, Any] = {
    "max_parameter_drift": 1000.0,
    "max_output_divergence": 1000.0,
    "max_capability_drop": 1.0,
}


def kd_grid(pool: int, points: int) -> list[int]:
    """Input budgets on a log grid from 4 (a handful) to ``pool`` (the full transfer pool)."""
    lo = min(4, pool)
    if points <= 1 or pool <= lo:
        return [pool]
    vals = np.exp(np.linspace(math.log(lo), math.log(pool), points))
    return sorted({round(float(v)) for v in vals} | {pool})


def kd_inputs_to_match(curve: list[dict[str, float]], accuracy: float) -> float | None:
    """Inputs KD needs to reach ``accuracy``: the first crossing of the curve, interpolated
    linearly in accuracy against log(inputs) between the two grid points around it.

    Returns None when no point of the curve reaches ``accuracy`` ("not reached").
    """
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


#: One-sided significance level of "M2KT beats chance" (binomial test on the test set).
CHANCE_ALPHA = 0.05


def chance_level(targets: np.ndarray) -> float:
    """Accuracy of the best constant answer on the test set (its most frequent class)."""
    t = np.asarray(targets, dtype=np.int64)
    return float(np.bincount(t).max() / len(t)) if len(t) else 0.0


def transfer_figures(
    entry: dict[str, Any], teacher_acc: float, n_test: int, chance: float
) -> dict[str, Any]:
    """Set a student entry's comparison with KD from its M2KT accuracy and KD curve.

    ``kd_inputs_to_match`` and ``data_reduction`` are only defined when M2KT beats the best
    constant answer (one-sided binomial test at :data:`CHANCE_ALPHA` on the ``n_test`` test
    problems): at chance level the "match" is decided by the noise of KD students that are at
    chance too, and a reduction computed from it would be a number without evidence behind it.
    Recomputes from the stored values, so merging old runs applies the same rule.
    """
    from scipy.stats import binomtest

    acc = float(entry["m2kt"]["accuracy"])
    hits = round(acc * n_test)
    p_value = float(binomtest(hits, n_test, chance, alternative="greater").pvalue)
    above = p_value < CHANCE_ALPHA
    match = kd_inputs_to_match(entry["kd"]["curve"], acc) if above else None
    entry["m2kt_vs_chance"] = {"chance": chance, "p_value": p_value, "above_chance": above}
    entry["kd_inputs_to_match"] = match
    entry["data_reduction"] = None if match is None else 1.0 - entry["m2kt"]["inputs_used"] / match
    entry["relative_performance"] = acc / teacher_acc if teacher_acc else None
    return entry


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
        # the split decides which problems the teacher saw: a teacher cached for another split
        # may have trained on this run's test set
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


# --------------------------------------------------------------------------- packets


def _packet(
    teacher: torch.nn.Module, task: Task, split: Split, traces: int, seed: int, out: Path | None
) -> tuple[Any, set[bytes], set[bytes], dict[str, Any]]:
    """Generate, sign (ephemeral key) and verify a packet; return it with the rows it used."""
    from m2kt_ref.packet import codec
    from m2kt_ref.packet.keys import SigningKey
    from m2kt_ref.packet.signing import verify_packet
    from m2kt_ref.packet.trust import TrustedKey, TrustStore
    from m2kt_ref.transfer.teacher.generate import generate_from_model

    key = SigningKey.generate()
    with InputCounter(task, [teacher]) as counter:
        gen = generate_from_model(
            teacher,
            task,
            exclude=split.test,
            traces=traces,
            seed=seed,
            key=key,
            safety=EXPERIMENT_SAFETY,
            created=1_767_225_600,  # 2026-01-01: pinned, so the packet bytes are reproducible
            teacher_name=f"{task.name}-teacher",
        )
    packet = gen.packet
    trust = TrustStore([TrustedKey(key.public_key, "experiment (ephemeral)")])
    result = verify_packet(packet, trust)
    result.raise_for_errors()
    if out is not None:
        codec.write_packet(packet, out)
    tally = counter.tally()
    info = {
        "packet_id": packet.packet_id,
        "bytes": gen.stats["packet_bytes"],
        "traces": gen.stats["traces"],
        "trace_answers_correct": gen.stats["trace_answers_correct"],
        "concepts": gen.stats["concepts"],
        "edges": gen.stats["edges"],
        "anchors": gen.stats["anchors"],
        "signature_verified": result.valid,
        "provenance_task_inputs_used": gen.stats["task_inputs_used"],
        "provenance_concept_probes_used": gen.stats["concept_probes_used"],
        "counted": tally.to_dict(),
    }
    probe_rows = counter.rows - counter.task_rows
    info["_trust"] = trust
    return packet, counter.task_rows, probe_rows, info


# --------------------------------------------------------------------------- one seed


class _Ctx:
    def __init__(self, task: Task, split: Split, teacher: torch.nn.Module, device, target: float):
        self.task, self.split, self.teacher, self.device = task, split, teacher, device
        self.target = target
        self.test_x = split.test.inputs
        self.test_y = split.test.targets
        self.chance = chance_level(split.test.targets)
        self._targets = {
            r.tobytes(): int(t)
            for r, t in zip(task.problems().inputs, task.problems().targets, strict=True)
        }

    def student(self, spec: StudentSpec, seed: int) -> torch.nn.Module:
        cfg = NetConfig(
            family=spec.family,
            vocab_size=self.task.vocab_size,
            seq_len=self.task.seq_len,
            n_classes=self.task.n_classes,
            width=spec.width,
            depth=spec.depth,
            heads=spec.heads,
            seed=1000 + seed,
        )
        return build_model(cfg).to(self.device)

    def evaluator(self, model: torch.nn.Module, counter: InputCounter) -> Callable[[], float]:
        def ev() -> float:
            with counter.paused():
                return evaluate(model, self.test_x, self.test_y)

        return ev

    def labels_for(self, keys: set[bytes]) -> tuple[np.ndarray, np.ndarray]:
        rows = sorted(keys)
        x = np.array([np.frombuffer(k, dtype=np.int64) for k in rows], dtype=np.int64)
        y = np.array([self._targets[k] for k in rows], dtype=np.int64)
        return x.reshape(len(rows), -1), y


def _entry(res: FitResult, inputs: int, probes: int, **extra: Any) -> dict[str, Any]:
    return {
        "accuracy": res.accuracy,
        "inputs_used": inputs,
        "concept_probes": probes,
        "steps_to_90": res.steps_to_target,
        "wall_to_90_s": res.wall_to_target,
        "steps": res.steps,
        "wall_seconds": res.wall_seconds,
        "history": res.history,
        **extra,
    }


def _ingest_ref(
    ctx: _Ctx,
    student: torch.nn.Module,
    packet: Any,
    recipe: RecipeConfig,
    fit: Any,
    counter: InputCounter,
    trust: Any,
) -> tuple[FitResult, dict[str, Any]]:
    """M2KT through the reference ingestion (:func:`~m2kt_ref.transfer.ingest`), after the
    geometry writes."""
    from m2kt_ref.transfer.student.config import IngestConfig
    from m2kt_ref.transfer.student.ingest import ingest
    from m2kt_ref.transfer.student.warm_start import write_packet_geometry

    writes = write_packet_geometry(
        packet,
        student,
        ctx.task,
        embeddings=recipe.use_concepts and recipe.embed_init,
        head=recipe.use_concepts and recipe.head_init,
        embed_scale=recipe.embed_scale,
    )
    cfg = IngestConfig(
        steps=fit.steps,
        lr=fit.lr,
        weight_decay=fit.weight_decay,
        seed=fit.seed,
        eval_every=fit.eval_every,
        patience=0,
        device=str(ctx.device),
        use_concepts=recipe.use_concepts,
        use_graph=recipe.use_graph,
        use_traces=recipe.use_traces,
        lambda_geo=recipe.lambda_geo,
        lambda_struct=recipe.lambda_struct,
        lambda_reason=recipe.lambda_reason,
        reason_state=recipe.lambda_trace_states,
        lambda_safe=recipe.lambda_safe,
        rollback=False,
    )
    ev = ctx.evaluator(student, counter)
    history: list[dict[str, float]] = []
    eval_wall = 0.0
    hit: list[Any] = [None, None]

    def callback(step: int, info: dict[str, Any]) -> bool:
        nonlocal eval_wall
        t0 = time.perf_counter()
        acc = ev()
        wall = max(float(info["wall_s"]) - eval_wall, 0.0)
        eval_wall += time.perf_counter() - t0
        history.append(
            {
                "step": step,
                "wall_s": round(wall, 4),
                "accuracy": acc,
                "loss": float(info.get("loss", float("nan"))),
            }
        )
        if hit[0] is None and acc >= ctx.target:
            hit[0], hit[1] = step, round(wall, 4)
        return False

    result = ingest(packet, student, ctx.task, cfg, trust=trust, callback=callback)
    student.eval()
    final = ev()
    steps = history[-1]["step"] if history else 0
    res = FitResult(
        steps, history[-1]["wall_s"] if history else 0.0, final, hit[0], hit[1], history
    )
    rep = result.report
    report = {
        "terms": {
            **writes,
            "geo": recipe.use_concepts and recipe.lambda_geo > 0,
            "struct": recipe.use_concepts and recipe.use_graph and recipe.lambda_struct > 0,
            "reason": recipe.use_traces and recipe.lambda_reason > 0,
        },
        "decision": result.decision,
        "ingest_accounting": {
            k: rep["data"].get(k) for k in ("task_inputs_used", "concept_probes_used")
        }
        if isinstance(rep.get("data"), dict)
        else None,
    }
    return res, report


def _run_m2kt(
    ctx: _Ctx,
    spec: StudentSpec,
    seed: int,
    packet: Any,
    gen_rows: set[bytes],
    gen_probes: set[bytes],
    recipe: RecipeConfig,
    preset: ExperimentPreset,
    trust: Any = None,
) -> tuple[dict[str, Any], set[bytes]]:
    student = ctx.student(spec, seed)
    fit = replace(preset.fit, seed=seed)
    with InputCounter(ctx.task, [student]) as counter:
        res, report = _ingest_ref(ctx, student, packet, recipe, fit, counter, trust)
        used = gen_rows | counter.task_rows
        probes = gen_probes | (counter.rows - counter.task_rows)
        tally = counter.tally()
    entry = _entry(
        res,
        len(used),
        len(probes),
        student_side=tally.to_dict(),
        teacher_side_task_inputs=len(gen_rows),
        terms=report["terms"],
        decision=report.get("decision"),
        ingest_accounting=report.get("ingest_accounting"),
    )
    return entry, used


def _run_seed(
    task: Task,
    preset: ExperimentPreset,
    recipe: RecipeConfig,
    seed: int,
    teacher: torch.nn.Module,
    split: Split,
    teacher_acc: float,
    out: Path,
    device: torch.device,
    log: Callable,
) -> dict[str, Any]:
    target = 0.9 * teacher_acc
    ctx = _Ctx(task, split, teacher, device, target)
    packet, gen_rows, gen_probes, pinfo = _packet(
        teacher, task, split, preset.traces, seed, out / f"packet-seed{seed}.m2kt"
    )
    trust = pinfo.pop("_trust")
    log(
        f"seed {seed}: packet {pinfo['packet_id'][:12]} signed and verified, "
        f"{pinfo['counted']['task_inputs']} task inputs, "
        f"{pinfo['counted']['concept_probes']} probes"
    )
    k_packets: dict[int, tuple[Any, set[bytes], set[bytes], Any]] = {
        preset.traces: (packet, gen_rows, gen_probes, trust)
    }
    for k in preset.k_curve:
        if k not in k_packets:
            p, r, pr, inf = _packet(teacher, task, split, k, seed, None)
            k_packets[k] = (p, r, pr, inf["_trust"])
    pool = split.pool
    grid = kd_grid(len(pool), preset.kd_points)
    students: dict[str, Any] = {}
    for spec in preset.students:
        t0 = time.perf_counter()
        m2kt, used = _run_m2kt(ctx, spec, seed, packet, gen_rows, gen_probes, recipe, preset, trust)
        log(f"  {spec.name}: m2kt acc {m2kt['accuracy']:.3f} with {m2kt['inputs_used']} inputs")
        # scratch: same student, ground-truth labels, exactly M2KT's task inputs
        student = ctx.student(spec, seed)
        x, y = ctx.labels_for(used)
        with InputCounter(task, [student]) as c:
            res = train_on_labels(
                student,
                x,
                y,
                replace(preset.fit, seed=seed),
                evaluate=ctx.evaluator(student, c),
                target=target,
            )
            scratch = _entry(res, c.tally().task_inputs, c.tally().concept_probes)
        # logit KD on the grid
        curve = []
        kd_runs = []
        for n in grid:
            student = ctx.student(spec, seed)
            with InputCounter(task, [teacher, student]) as c:
                res = logit_distill(
                    student,
                    teacher,
                    pool.inputs[:n],
                    replace(preset.fit, seed=seed),
                    temperature=preset.kd_temperature,
                    evaluate=ctx.evaluator(student, c),
                    target=target,
                )
                tally = c.tally()
            curve.append({"inputs": tally.task_inputs, "accuracy": res.accuracy})
            kd_runs.append(_entry(res, tally.task_inputs, tally.concept_probes, budget=n))
        kd_full = kd_runs[-1]
        # ablations
        ablations: dict[str, Any] = {}
        if preset.ablations:
            for name, change in ABLATIONS.items():
                r2 = replace(recipe, **change)
                if r2 == recipe:
                    continue
                e, _ = _run_m2kt(ctx, spec, seed, packet, gen_rows, gen_probes, r2, preset, trust)
                e.pop("history")
                ablations[name] = e
        # K curve
        k_curve = []
        for k in sorted(set(preset.k_curve) | {preset.traces}):
            if k == preset.traces:
                e = m2kt
            else:
                p, r, pr, tr = k_packets[k]
                e, _ = _run_m2kt(ctx, spec, seed, p, r, pr, recipe, preset, tr)
            k_curve.append(
                {
                    "traces": k,
                    "inputs": e["inputs_used"],
                    "accuracy": e["accuracy"],
                    "steps_to_90": e["steps_to_90"],
                }
            )
        students[spec.name] = {
            "spec": spec.to_dict(),
            "m2kt": m2kt,
            "scratch": scratch,
            "kd": {"curve": curve, "runs": kd_runs, "full_pool": kd_full},
            "steps_to_90": {
                "m2kt": m2kt["steps_to_90"],
                "kd_full_pool": kd_full["steps_to_90"],
                "scratch": scratch["steps_to_90"],
            },
            "wall_to_90_s": {
                "m2kt": m2kt["wall_to_90_s"],
                "kd_full_pool": kd_full["wall_to_90_s"],
                "scratch": scratch["wall_to_90_s"],
            },
            "ablations": ablations,
            "k_curve": k_curve,
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }
        transfer_figures(students[spec.name], teacher_acc, len(split.test), ctx.chance)
        match = students[spec.name]["kd_inputs_to_match"]
        log(
            f"  {spec.name}: scratch {scratch['accuracy']:.3f}, KD full pool "
            f"{kd_full['accuracy']:.3f} ({kd_full['inputs_used']} inputs), KD to match: {match}"
            f" [{time.perf_counter() - t0:.0f}s]"
        )
    return {"seed": seed, "packet": pinfo, "kd_grid": grid, "students": students}


# --------------------------------------------------------------------------- aggregation


def _ms(values: list[Any]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals)) if len(vals) > 1 else 0.0


def _agg_student(runs: list[dict[str, Any]], teacher_acc: float) -> dict[str, Any]:
    def stat(get: Callable[[dict], Any]) -> dict[str, Any]:
        vals = [get(r) for r in runs]
        m, s = _ms(vals)
        return {"mean": m, "std": s, "values": vals}

    out: dict[str, Any] = {"spec": runs[0]["spec"]}
    for method in ("m2kt", "scratch"):
        out[method] = {
            "accuracy": stat(lambda r, m=method: r[m]["accuracy"]),
            "inputs_used": stat(lambda r, m=method: r[m]["inputs_used"]),
            "concept_probes": stat(lambda r, m=method: r[m]["concept_probes"]),
            "steps_to_90": stat(lambda r, m=method: r[m]["steps_to_90"]),
            "wall_to_90_s": stat(lambda r, m=method: r[m]["wall_to_90_s"]),
        }
    n_pts = len(runs[0]["kd"]["curve"])
    out["kd"] = {
        "curve": [
            {
                "inputs": runs[0]["kd"]["curve"][i]["inputs"],
                "accuracy": _ms([r["kd"]["curve"][i]["accuracy"] for r in runs])[0],
                "accuracy_std": _ms([r["kd"]["curve"][i]["accuracy"] for r in runs])[1],
                "steps_to_90": _ms([r["kd"]["runs"][i]["steps_to_90"] for r in runs])[0],
            }
            for i in range(n_pts)
        ],
        "full_pool": {
            "accuracy": stat(lambda r: r["kd"]["full_pool"]["accuracy"]),
            "inputs_used": stat(lambda r: r["kd"]["full_pool"]["inputs_used"]),
            "steps_to_90": stat(lambda r: r["kd"]["full_pool"]["steps_to_90"]),
            "wall_to_90_s": stat(lambda r: r["kd"]["full_pool"]["wall_to_90_s"]),
        },
    }
    matches = [r["kd_inputs_to_match"] for r in runs]
    out["kd_inputs_to_match"] = stat(lambda r: r["kd_inputs_to_match"])
    out["kd_reached"] = sum(m is not None for m in matches)
    out["above_chance"] = sum(bool(r["m2kt_vs_chance"]["above_chance"]) for r in runs)
    out["data_reduction"] = stat(lambda r: r["data_reduction"])
    out["relative_performance"] = stat(lambda r: r["relative_performance"])
    out["steps_to_90"] = {
        k: stat(lambda r, k=k: r["steps_to_90"][k]) for k in runs[0]["steps_to_90"]
    }
    out["ablations"] = {
        name: {
            "accuracy": stat(lambda r, n=name: r["ablations"][n]["accuracy"]),
            "inputs_used": stat(lambda r, n=name: r["ablations"][n]["inputs_used"]),
            "steps_to_90": stat(lambda r, n=name: r["ablations"][n]["steps_to_90"]),
        }
        for name in runs[0]["ablations"]
    }
    out["k_curve"] = [
        {
            "traces": runs[0]["k_curve"][i]["traces"],
            "inputs": _ms([r["k_curve"][i]["inputs"] for r in runs])[0],
            "accuracy": _ms([r["k_curve"][i]["accuracy"] for r in runs])[0],
            "accuracy_std": _ms([r["k_curve"][i]["accuracy"] for r in runs])[1],
        }
        for i in range(len(runs[0]["k_curve"]))
    ]
    return out


def _environment(device: torch.device) -> dict[str, Any]:
    return {
        "m2kt_ref": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def _summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Compute the per-student aggregates and the headline from ``doc["per_seed"]`` (a new run
    and a merge of runs share this)."""
    per_seed = doc["per_seed"]
    teacher_acc = doc["teacher"]["accuracy"]
    names = list(per_seed[0]["students"])
    students = {n: _agg_student([r["students"][n] for r in per_seed], teacher_acc) for n in names}
    primary = students[names[0]]
    doc["seeds"] = [r["seed"] for r in per_seed]
    doc["primary_student"] = names[0]
    doc["m2kt"].update(
        accuracy=primary["m2kt"]["accuracy"]["mean"],
        accuracy_std=primary["m2kt"]["accuracy"]["std"],
        inputs_used=primary["m2kt"]["inputs_used"]["mean"],
        concept_probes=primary["m2kt"]["concept_probes"]["mean"],
    )
    doc["relative_performance"] = primary["relative_performance"]["mean"]
    doc["relative_performance_std"] = primary["relative_performance"]["std"]
    doc["kd"]["curve"] = primary["kd"]["curve"]
    doc["kd_inputs_to_match"] = primary["kd_inputs_to_match"]["mean"]
    doc["kd_reached"] = primary["kd_reached"]
    doc["data_reduction"] = primary["data_reduction"]["mean"]
    doc["data_reduction_std"] = primary["data_reduction"]["std"]
    doc["scratch"] = {
        "accuracy": primary["scratch"]["accuracy"]["mean"],
        "accuracy_std": primary["scratch"]["accuracy"]["std"],
        "inputs_used": primary["scratch"]["inputs_used"]["mean"],
    }
    doc["steps_to_90"] = {k: v["mean"] for k, v in primary["steps_to_90"].items()}
    doc["ablations"] = {k: v["accuracy"]["mean"] for k, v in primary["ablations"].items()}
    doc["students"] = students
    return doc


def merge_results(
    paths: list[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> dict[str, Any]:
    """Merge ``results.json`` files of runs that differ only in their seeds into ``out``.

    Raises:
        UsageError: the runs differ in task, options, scale, teacher or settings, or repeat a
            seed.
    """
    from m2kt_ref.errors import UsageError
    from m2kt_ref.experiments.render import (
        validate_results,
        write_json,
        write_plot,
        write_report,
    )

    docs = []
    for p in paths:
        path = Path(p)
        path = path / "results.json" if path.is_dir() else path
        docs.append(json.loads(path.read_text()))
    if not docs:
        raise UsageError("nothing to merge")
    first = docs[0]
    same = ("task", "task_options", "scale", "teacher", "fit")

    def identity(doc: dict[str, Any], key: str) -> Any:
        # a cached teacher is the same teacher whatever its training took on this machine
        if key == "teacher":
            return {k: v for k, v in doc[key].items() if k != "wall_seconds"}
        return doc[key]

    for d in docs[1:]:
        for k in same:
            if identity(d, k) != identity(first, k):
                raise UsageError(f"runs differ in {k}; only seeds may differ")
    per_seed = [r for d in docs for r in d["per_seed"]]
    seeds = [r["seed"] for r in per_seed]
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds repeat across the runs: {seeds}")
    merged = json.loads(json.dumps(first))
    merged["per_seed"] = sorted(per_seed, key=lambda r: r["seed"])
    merged["wall_seconds"] = round(sum(d["wall_seconds"] for d in docs), 2)
    merged["merged_from"] = [str(p) for p in paths]
    _summarise(merged)
    validate_results(merged)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(merged, outdir / "results.json")
    write_report(merged, outdir / "report.md")
    write_plot(merged, outdir / "transfer.png")
    return merged


# --------------------------------------------------------------------------- entry point


def run_experiment(
    task_name: str = "modular",
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
    from m2kt_ref.experiments.render import (
        validate_results,
        write_json,
        write_plot,
        write_report,
    )

    say = log or (lambda _m: None)
    if threads is not None:
        torch.set_num_threads(int(threads))
    if seeds < 1:
        from m2kt_ref.errors import UsageError

        raise UsageError("--seeds must be >= 1")
    dev = resolve_device(device)
    preset, task_opts, recipe_over = resolve_preset(task_name, scale, dict(options or {}))
    task = make_task(task_name, **task_opts)
    recipe = replace(RecipeConfig(), **recipe_over)
    outdir = Path(out) if out is not None else Path("runs") / task_name
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    teacher, split, trecord = _teacher(task, preset, outdir, dev, say)
    teacher.eval()
    with torch.no_grad():
        teacher_acc = evaluate(teacher, split.test.inputs, split.test.targets)
    per_seed = []
    for s in range(seed, seed + seeds):
        per_seed.append(
            _run_seed(task, preset, recipe, s, teacher, split, teacher_acc, outdir, dev, say)
        )
        # a long run that is interrupted keeps the seeds it finished
        write_json({"per_seed": per_seed}, outdir / "per_seed.partial.json")
    results: dict[str, Any] = {
        "format": "m2kt.experiment-results",
        "version": 1,
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
        "m2kt": {"traces": preset.traces, "recipe": recipe.to_dict()},
        "kd": {"temperature": preset.kd_temperature},
        "fit": preset.fit.to_dict(),
        "accounting_rule": "spec/algorithms.md §5: distinct task problems through teacher "
        "(generation) or student (transfer), counted by forward pre-hooks; probes separate; "
        "test-set evaluation not counted",
        "per_seed": per_seed,
        "environment": _environment(dev),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    _summarise(results)  # seeds, aggregates per student, the primary student's headline
    validate_results(results)
    write_json(results, outdir / "results.json")
    write_report(results, outdir / "report.md")
    write_plot(results, outdir / "transfer.png")
    return results
