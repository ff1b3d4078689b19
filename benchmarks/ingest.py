"""Benchmark: ingestion steps per second, against plain training of the same student.

For each device and thread count it builds, once, a default-scale-ish packet (a task at its
default options, read from an untrained teacher of the default preset's shape: throughput does
not depend on what the teacher knows) and a student of another width and depth, then measures,
interleaved over ``--rounds`` rounds (median):

- **ingest**: :func:`m2kt_ref.ingest.ingest` for ``--steps`` optimiser steps (early stopping off),
  with a protected capability set of ``--protected`` task problems; the rate is the one the
  training loop itself reports (``training.steps_per_s``: the loop only, not the alignment
  fit or the verification passes, which are timed separately in the report's ``timings``);
- **peer**: the same student trained with AdamW on cross-entropy for the same number of steps on
  a batch of task problems of the same size as one ingestion step's batch (anchor rows + trace
  rows + protected rows): the raw forward + backward + update rate of that network at that batch
  size, measured in the same process under the same load.

The ratio ingest / peer says how much the composite loss costs over plain training (hooks,
gathering states at positions, the pairwise geometry, the sampled structure terms, the drift
term over all parameters and the projection after every step). CUDA rows are added when a GPU
is present (and ``--bf16`` adds bf16 autocast rows there).

Usage (the figures in docs/performance.md, ## Ingestion)::

    python benchmarks/ingest.py                       # CPU 1 and 2 threads (+ CUDA if present)
    python benchmarks/ingest.py --quick               # smoke run
    python benchmarks/ingest.py --task hierarchy --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2kt_ref.generate import generate_from_model
from m2kt_ref.ingest import IngestConfig, ingest
from m2kt_ref.nets import build_model
from m2kt_ref.tasks import make_task
from m2kt_ref.training import init_student, teacher_preset

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
    args = ap.parse_args(argv)
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
