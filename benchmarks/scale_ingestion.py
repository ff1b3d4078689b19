"""Scale curve: ingestion cost against the student's size, 10^4 to 10^8 parameters.

One packet (task ``modular`` at its default options, read from an untrained teacher of the
default preset's shape, 16 traces: throughput does not depend on what the teacher knows) is
ingested by transformer students of growing width and depth, from about 7e3 to 1e8 parameters.
Each student is one point in its own child process (the packet and the student are built first
and not counted in the memory), on one thread, CPU:

* ``ingest`` (whole call): :func:`m2kt_ref.transfer.ingest` with ``--steps`` optimiser steps
  (early stopping off, unverified packet allowed: no key is involved), i.e. the trust gate,
  snapshots, alignment fit, the training steps, verification and the report;
* ``per training step``: the training loop's own rate (``report["training"]["steps_per_s"]``),
  reported as seconds per step, from the same call.

Peak memory is what the call adds to the process holding the packet and the student (optimiser
state, the drift reference, activations).

Usage (the figures and docs/scale_ingestion.png in docs/performance.md, ## Scale curves)::

    python benchmarks/scale_ingestion.py                 # 7e3 ... 1e8 parameters
    python benchmarks/scale_ingestion.py --max 2e7       # stop at 2e7 parameters
    python benchmarks/scale_ingestion.py --quick         # two tiny students, no plot
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curve_args, curve_report, machine_line, measure_point, print_point, saved_run

#: (width, depth) of the transformer students; parameter counts for the modular task
STUDENTS = [(16, 1), (32, 2), (64, 2), (128, 4), (256, 4), (512, 6), (1024, 8)]
QUICK = [(8, 1), (16, 1)]
STEPS = 5


def setup(width: int, depth: int, steps: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from m2kt_ref.transfer.nets import build_model
    from m2kt_ref.transfer.tasks import make_task
    from m2kt_ref.transfer.teacher.generate import generate_from_model
    from m2kt_ref.transfer.teachers import init_student, teacher_preset

    task = make_task("modular")
    teacher = build_model(teacher_preset("modular", "default").net_config(task, seed=0))
    packet = generate_from_model(teacher, task, traces=16, created=0).packet
    warm, _, _ = init_student(task, family="transformer", width=8, depth=1, seed=1)
    op_ingest({"task": task, "packet": packet, "student": warm, "steps": 1})  # lazy imports
    student, _, _ = init_student(task, family="transformer", width=width, depth=depth, seed=1)
    return {"task": task, "packet": packet, "student": student, "steps": steps}


def parameters(width: int, depth: int) -> int:
    """Parameters of the transformer student of this shape for the modular task."""
    from m2kt_ref.transfer.tasks import make_task
    from m2kt_ref.transfer.teachers import init_student

    model, _, _ = init_student(make_task("modular"), family="transformer", width=width, depth=depth)
    return sum(p.numel() for p in model.parameters())


def op_ingest(state: dict[str, Any]) -> dict[str, Any]:
    from m2kt_ref.transfer.student.config import IngestConfig
    from m2kt_ref.transfer.student.ingest import ingest

    steps = state["steps"]
    config = IngestConfig(steps=steps, patience=0, eval_every=max(steps, 1))
    result = ingest(state["packet"], state["student"], state["task"], config, allow_unverified=True)
    report = result.report
    return {
        "parameters": report["student"]["n_parameters"],
        "seconds_per_step": 1.0 / report["training"]["steps_per_s"],
        "timings": report["timings"],
    }


def measure(args: Any, students: list[tuple[int, int]], steps: int) -> list[dict[str, Any]]:
    """Run every point (each in its own child process) and print its row."""
    print("| measure | parameters | best s | calls | peak added MiB | student |")
    print("|---|---|---|---|---|---|")
    rows = []
    for width, depth in students:
        if args.max and parameters(width, depth) > args.max:
            break
        row = measure_point(
            setup, op_ingest, width, depth, steps, preload=["torch"], timeout=4 * 3600
        )
        shape = f"transformer {width}x{depth}"
        whole = {**row, "series": "ingest (whole call)", "x": row["parameters"]}
        step = {
            **row,
            "series": "per training step",
            "x": row["parameters"],
            "seconds": row["seconds_per_step"],
            "peak_added_bytes": 0,  # the same call: its memory is in the whole-call row
        }
        for r in (whole, step):
            rows.append(r)
            print_point(r["series"], r["x"], r, shape)
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--steps", type=int, default=STEPS)
    known, rest = extra.parse_known_args(argv)
    args = curve_args(__doc__.split("\n\n")[0], "scale_ingestion.png", rest)
    students = QUICK if args.quick else STUDENTS
    steps = 2 if args.quick else known.steps
    print(machine_line(threads=1) + f"; {steps} training steps per call")
    saved = saved_run(args)
    rows, note = saved if saved else (measure(args, students, steps), machine_line(threads=1))
    curve_report(
        "ingestion: cost against student size (modular task, transformer students, CPU)",
        "student parameters",
        rows,
        args.png,
        args.json,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
