"""Benchmark: ingestion steps per second, against plain training of the same student.

For each device and thread count it builds, once, a default-scale-ish packet (a task at its
default options, read from an untrained teacher of the default preset's shape: throughput does
not depend on what the teacher knows) and a student of another width and depth, then measures,
interleaved over ``--rounds`` rounds (median):

- **ingest**: :func:`m2kt_ref.transfer.ingest` for ``--steps`` optimiser steps (early
  stopping off), with a protected capability set of ``--protected`` task problems; the rate
  is the one the training loop itself reports (``training.steps_per_s``: the loop only, not
  the alignment fit or the verification passes, which are timed separately in the report's
  ``timings``);
- **peer**: the same student trained with AdamW on cross-entropy for the same number of steps on
  a batch of task problems of the same size as one ingestion step's batch (anchor rows + trace
  rows + protected rows): the raw forward + backward + update rate of that network at that batch
  size, measured in the same process under the same load.

The ratio ingest / peer says how much the composite loss costs over plain training (hooks,
gathering states at positions, the pairwise geometry, the sampled structure terms, the drift
term over all parameters and the projection after every step). CUDA rows are added when a GPU
is present (and ``--bf16`` adds bf16 autocast rows there).

Two more modes measure quality rather than speed (the figures in docs/ingestion.md); each trains
a quick-scale teacher per task family at the task's default options (seed 0), generates a signed
packet (16 traces, pinned time) and ingests it with the default :class:`IngestConfig`:

- ``--quality``: into a fresh student of another family, width and depth; prints the report's
  alignment, structural, reasoning and safety metrics, before -> after, with the teacher's
  ceiling, and the student's test accuracy;
- ``--defence``: a poisoned packet (wrong answers on every trace, the first six concepts'
  embeddings permuted among themselves and listed as protected, every directed relation
  reversed, a safety section that tries to loosen every bound), signed by a trusted key, into
  the teacher itself with its training split as protected capability: once without the safety
  terms and bounds (the damage the poison does) and once with the defaults.

Usage (the figures in docs/performance.md, ## Ingestion, and docs/ingestion.md)::

    python benchmarks/ingest.py                       # CPU 1 and 2 threads (+ CUDA if present)
    python benchmarks/ingest.py --quick               # smoke run
    python benchmarks/ingest.py --task hierarchy --threads 1 --json out.json
    python benchmarks/ingest.py --quality             # metrics per family, one thread
    python benchmarks/ingest.py --defence             # poisoned packets per family
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2kt_ref.transfer.nets import build_model
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.ingest import ingest
from m2kt_ref.transfer.tasks import make_task
from m2kt_ref.transfer.teacher.generate import generate_from_model
from m2kt_ref.transfer.teachers import init_student, teacher_preset

CREATED = "2026-01-01T00:00:00Z"
#: student shape per task: another width and depth than the default teacher preset
STUDENTS = {
    "modular": ("transformer", 96, 2),
    "hierarchy": ("gru", 96, 2),
    "chain": ("transformer", 96, 2),
}


def build(task_name: str, options: dict[str, Any], traces: int) -> tuple[Any, Any]:
    task = make_task(task_name, **options)
    preset = teacher_preset(task_name, "default")
    teacher = build_model(preset.net_config(task, seed=0))
    packet = generate_from_model(teacher, task, traces=traces, created=CREATED).packet
    return task, packet


def peer_rate(student: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Steps per second of AdamW + cross-entropy on one fixed batch (after 3 warm-up steps)."""
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    student.eval()  # ingestion runs the student in eval mode too (no dropout either way)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(student(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def measure(
    task: Any,
    packet: Any,
    *,
    device: str,
    threads: int,
    steps: int,
    rounds: int,
    protected: int,
    bf16: bool,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    family, width, depth = STUDENTS[task.name]
    problems = task.problems()
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(problems), generator=g)[:protected].numpy()
    capability = problems.take(pick)
    config = IngestConfig(
        steps=steps, patience=0, device=device, bf16=bf16, eval_every=max(steps, 1)
    )
    batch_rows = (
        len(packet.body.anchors)
        + len(packet.body.traces)
        + min(protected, config.batch_protected or protected)
    )
    x_all = torch.as_tensor(problems.inputs.copy())
    y_all = torch.as_tensor(problems.targets.copy())
    idx = torch.randint(0, len(problems), (batch_rows,), generator=g)
    x, y = x_all[idx].to(device), y_all[idx].to(device)
    ingest_rates, peer_rates, walls = [], [], []
    report: dict[str, Any] = {}
    # one untimed ingestion absorbs lazy imports (the optimiser pulls in torch._dynamo)
    warm, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1)
    ingest(
        packet,
        warm,
        task,
        IngestConfig(steps=2, device=device, bf16=bf16),
        allow_unverified=True,
        protected=capability,
    )
    for r in range(rounds):
        student, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1 + r)
        student.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            peer_rates.append(peer_rate(student, x, y, steps))
        student, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1 + r)
        t = time.perf_counter()
        result = ingest(packet, student, task, config, allow_unverified=True, protected=capability)
        walls.append(time.perf_counter() - t)
        report = result.report
        ingest_rates.append(report["training"]["steps_per_s"])
    ing, peer = statistics.median(ingest_rates), statistics.median(peer_rates)
    return {
        "task": task.name,
        "device": device,
        "threads": threads,
        "bf16": bf16,
        "student": f"{family} {width}x{depth}",
        "parameters": report["student"]["n_parameters"],
        "teacher_dim": report["alignment"]["teacher_dim"],
        "concepts": report["packet"]["counts"]["concepts"],
        "anchors": report["packet"]["counts"]["anchors"],
        "traces": report["packet"]["counts"]["traces"],
        "edges": report["packet"]["counts"]["edges"],
        "batch_rows": batch_rows,
        "steps": steps,
        "rounds": rounds,
        "ingest_steps_per_s": ing,
        "peer_steps_per_s": peer,
        "ratio": ing / peer,
        "ingest_call_wall_s": statistics.median(walls),
        "phase_s": {k: v for k, v in report["timings"].items() if k != "train"},
    }


# -- quality and defence modes ------------------------------------------------------------------

#: another family, width and depth than each quick teacher preset (transformer 32x1 for modular
#: and hierarchy, gru 32x1 for chain)
QUALITY_STUDENTS = {
    "modular": ("gru", 48, 2),
    "hierarchy": ("mlp", 64, 2),
    "chain": ("transformer", 48, 2),
}


def _teacher_and_packet(name: str, key: Any) -> tuple[Any, Any, Any]:
    from m2kt_ref.transfer.teachers import train_teacher

    task = make_task(name)
    run = train_teacher(task, scale="quick", seed=0, progress=False)
    packet = generate_from_model(
        run.model, task, traces=16, created=CREATED, exclude=run.split.test, key=key
    ).packet
    return task, run, packet


def _pair(report: dict[str, Any], path: tuple[str, ...]) -> str:
    def get(d: Any) -> Any:
        for k in path:
            d = d[k]
        return d

    v = report["verification"]
    b, a = get(v["before"]), get(v["after"])
    return f"{b:.2f} -> {a:.2f}" if b is not None and a is not None else "-"


def quality(families: list[str], steps: int | None) -> list[dict[str, Any]]:
    from m2kt_ref.packet.keys import SigningKey
    from m2kt_ref.packet.trust import TrustedKey, TrustStore
    from m2kt_ref.transfer.training import evaluate

    key = SigningKey(bytes(range(32)))
    trust = TrustStore([TrustedKey(key.public_key, "teacher-operator")])
    rows = []
    for name in families:
        task, run, packet = _teacher_and_packet(name, key)
        family, width, depth = QUALITY_STUDENTS[name]
        student, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1)
        test = run.split.test
        acc0 = evaluate(student, test.inputs, test.targets)
        cfg = IngestConfig() if steps is None else IngestConfig(steps=steps)
        report = ingest(packet, student, task, cfg, trust=trust, now=1767225600).report
        acc1 = evaluate(student, test.inputs, test.targets)
        v, al = report["verification"], report["alignment"]
        row = {
            "family": name,
            "options": task.option_dict(),
            "teacher": f"{run.net_config.family} {run.net_config.width}x{run.net_config.depth}",
            "teacher_test_accuracy": run.record["test_accuracy"],
            "student": f"{family} {width}x{depth}",
            "packet": report["packet"]["counts"],
            "heldout_alignment": al["heldout_before"],
            "concept_csls": _pair(report, ("concept_retrieval", "top1_csls")),
            "heldout_concept_csls": _pair(report, ("heldout_concept_retrieval", "top1_csls")),
            "relations": _pair(report, ("relations", "overall", "agreement")),
            "relations_teacher": v["teacher"]["relations"]["overall"]["agreement"],
            "relations_by_type": {
                k: f"{v['before']['relations']['by_relation'][k]['agreement']:.2f} -> "
                f"{x['agreement']:.2f} (teacher "
                f"{v['teacher']['relations']['by_relation'][k]['agreement']:.2f})"
                for k, x in v["after"]["relations"]["by_relation"].items()
            },
            "trace_steps": _pair(report, ("traces", "step_agreement")),
            "trace_steps_ceiling": v["teacher"]["trace_steps_mapped"],
            "trace_answers": _pair(report, ("traces", "answer_agreement")),
            "trace_state_cosine": _pair(report, ("traces", "state_cosine")),
            "drift": report["safety"]["parameter_drift"],
            "decision": report["decision"],
            "steps": report["training"]["steps"],
            "stop_reason": report["training"]["stop_reason"],
            "train_s": report["training"]["wall_s"],
            "task_inputs_used": report["data"]["task_inputs_used"],
            "concept_probes_used": report["data"]["concept_probes_used"],
            "student_test_accuracy": f"{acc0:.3f} -> {acc1:.3f}",
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _poison(packet: Any, task: Any, key: Any) -> Any:
    import numpy as np

    from m2kt_ref.packet import codec
    from m2kt_ref.packet import tensors as tz
    from m2kt_ref.packet.signing import sign_packet

    fields = packet.body.to_data()
    fields.pop("tensors")
    tensors = {t.name: np.array(packet.tensor_f32(t.name)) for t in packet.body.tensors}
    for t in fields["traces"]:
        t["answer"] = (t["answer"] + 1) % task.n_classes
        t.pop("answer_label", None)
    protected = [c for c in fields["concepts"] if c["kind"] != "cluster"][:6]
    embs = [tensors[c["embedding"]].copy() for c in protected]
    perm = np.random.default_rng(0).permutation(len(protected))
    for c, j in zip(protected, perm, strict=True):
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
    bad = codec.assemble(fields, {k: tz.encode(v, "f32") for k, v in tensors.items()})
    return sign_packet(bad, key, signing_time=1767225600)


def defence(families: list[str], steps: int | None) -> list[dict[str, Any]]:
    import copy

    from m2kt_ref.packet.keys import SigningKey
    from m2kt_ref.packet.trust import TrustedKey, TrustStore
    from m2kt_ref.transfer.training import evaluate

    key = SigningKey(bytes(range(32)))
    trust = TrustStore([TrustedKey(key.public_key, "teacher-operator")])
    rows = []
    for name in families:
        task, run, packet = _teacher_and_packet(name, key)
        bad = _poison(packet, task, key)
        capability = run.split.train
        base = IngestConfig() if steps is None else IngestConfig(steps=steps)
        unsafe_cfg = dataclasses.replace(
            base,
            lambda_safe=0.0,
            max_parameter_drift=None,
            max_output_divergence=None,
            max_capability_drop=None,
            rollback=False,
        )
        row: dict[str, Any] = {"family": name, "capability_rows": len(capability)}
        for label, cfg in (("unsafe", unsafe_cfg), ("default", base)):
            model = copy.deepcopy(run.model)
            r = ingest(bad, model, task, cfg, trust=trust, protected=capability, now=1767225600)
            s = r.report["safety"]
            row[label] = {
                "decision": r.decision,
                "reasons": r.report["reasons"],
                "capability_before": s["capability_before"],
                "capability_after_ingestion": s["capability_after"],
                "capability_final": evaluate(model, capability.inputs, capability.targets),
                "test_final": evaluate(model, run.split.test.inputs, run.split.test.targets),
                "divergence": s["output_divergence"],
                "drift": s["parameter_drift"],
                "steps": r.report["training"]["steps"],
            }
        row["teacher_test_accuracy"] = run.record["test_accuracy"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="modular", choices=sorted(STUDENTS))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--traces", type=int, default=16)
    ap.add_argument("--protected", type=int, default=256)
    ap.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    ap.add_argument("--quick", action="store_true", help="small task, few steps (smoke run)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ap.add_argument("--quality", action="store_true", help="metrics per family (docs/ingestion)")
    ap.add_argument("--defence", action="store_true", help="poisoned packets per family")
    ap.add_argument("--families", nargs="+", default=sorted(STUDENTS), choices=sorted(STUDENTS))
    ap.add_argument("--ingest-steps", type=int, help="override IngestConfig.steps (modes)")
    args = ap.parse_args(argv)
    if args.quality or args.defence:
        torch.set_num_threads(1)
        rows = (quality if args.quality else defence)(args.families, args.ingest_steps)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    options: dict[str, Any] = {}
    if args.quick:
        options = {"modular": {"p": 13}, "hierarchy": {"depth": 3}, "chain": {"n": 8, "k": 3}}[
            args.task
        ]
        args.steps, args.rounds, args.protected = 10, 1, 32
    torch.set_num_threads(1)
    t = time.perf_counter()
    task, packet = build(args.task, options, args.traces)
    build_s = time.perf_counter() - t
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("# no CUDA device: GPU rows skipped", file=sys.stderr)
    rows = []
    for device in devices:
        settings = (
            [(n, False) for n in args.threads] if device == "cpu" else [(1, False), (1, True)]
        )
        for threads, bf16 in settings:
            row = measure(
                task,
                packet,
                device=device,
                threads=threads,
                steps=args.steps,
                rounds=args.rounds,
                protected=args.protected,
                bf16=bf16,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(
        f"packet: {args.task} {task.option_dict()}, built in {build_s:.1f}s; "
        f"torch {torch.__version__}, {platform.machine()}"
    )
    print(
        "| device | threads | bf16 | student | batch rows | ingest steps/s | peer steps/s | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['device']} | {r['threads']} | {'yes' if r['bf16'] else 'no'} | "
            f"{r['student']} | {r['batch_rows']} | {r['ingest_steps_per_s']:.1f} | "
            f"{r['peer_steps_per_s']:.1f} | {r['ratio']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
