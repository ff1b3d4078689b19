"""``m2kt tasks``, ``m2kt train-teacher`` and ``m2kt init-student``.

Torch is imported inside the handlers only, so ``m2kt`` starts (and the format commands run)
on a machine without torch. User mistakes print one line ``CODE: message`` on stderr and exit
with status 2 (bad arguments: unknown task, bad option, unavailable device) or 1 (files: a
directory that cannot be written or read).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from m2kt_ref.errors import FileAccessError, M2ktError

#: m2kt_ref.transfer.nets.FAMILIES, spelled out so the parser needs no torch (gpt2, llama and
#: bert need the hf extra)
NET_FAMILIES = ("transformer", "mlp", "gru", "gpt2", "llama", "bert")

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the teacher/student commands to the ``m2kt`` parser."""
    p = subparsers.add_parser(
        "tasks",
        help="list the symbolic task families and their options",
        description="List the symbolic task families, their options and defaults.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_tasks)

    p = subparsers.add_parser(
        "train-teacher",
        help="train a teacher model on a task and write its model directory",
        description="Train a teacher on a task (seeded split, scale preset) and write "
        "model.safetensors, config.json and record.json to --out.",
    )
    _task_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--seed", type=int, default=0, help="split, init and batch-order seed")
    p.add_argument("--scale", choices=("quick", "default"), default="default")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--family", choices=NET_FAMILIES, help="override the preset family")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(handler=_train_teacher)

    p = subparsers.add_parser(
        "init-student",
        help="write an untrained model directory of any shape for a task",
        description="Write an untrained student (model.safetensors, config.json, record.json "
        "marked untrained) for a task.",
    )
    _task_args(p)
    p.add_argument("--family", choices=NET_FAMILIES, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--depth", type=int, required=True)
    p.add_argument("--heads", type=int, default=4, help="attention heads (transformer)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(handler=_init_student)


def _task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, metavar="NAME", help="task family (see m2kt tasks)")
    p.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, repeatable (e.g. --opt p=31 --opt ops=+)",
    )


def _fail(exc: M2ktError) -> int:
    print(f"{exc.code}: {exc}", file=sys.stderr)
    return 1 if isinstance(exc, FileAccessError) else 2


def _make_task(args: argparse.Namespace) -> Any:
    from m2kt_ref.transfer.tasks import make_task, parse_option_pairs

    return make_task(args.task, **parse_option_pairs(args.opt))


def _tasks(args: argparse.Namespace) -> int:
    from m2kt_ref.transfer.tasks import describe_tasks

    tasks = describe_tasks()
    if args.json:
        print(json.dumps(tasks, indent=2))
        return 0
    for t in tasks:
        print(f"{t['name']}: {t['description']}")
        for o in t["options"]:
            print(f"  --opt {o['name']}={o['default']}  ({o['type']}) {o['help']}")
    return 0


def _set_threads(n: int) -> None:
    import torch

    from m2kt_ref.errors import UsageError

    if n < 1:
        raise UsageError("--threads must be >= 1")
    torch.set_num_threads(n)


def _train_teacher(args: argparse.Namespace) -> int:
    try:
        task = _make_task(args)
        _set_threads(args.threads)
        from m2kt_ref.transfer.device import resolve_device
        from m2kt_ref.transfer.teachers import train_teacher

        resolve_device(args.device)  # fail before any work
        run = train_teacher(
            task,
            scale=args.scale,
            family=args.family,
            seed=args.seed,
            device=args.device,
            progress=False if args.no_progress else None,
        )
        out = run.save(args.out)
    except M2ktError as exc:
        return _fail(exc)
    from m2kt_ref.transfer.model_dir import weights_digest

    record = {**run.record, "out": str(out), "weights_sha256": weights_digest(out)}
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        print(
            f"{task.name} {run.net_config.family}: test accuracy "
            f"{record['test_accuracy']:.4f} ({record['test_size']} problems), "
            f"train {record['train_accuracy']:.4f}, {record['steps']} steps, "
            f"{record['wall_seconds']:.1f}s -> {out}"
        )
    return 0


def _init_student(args: argparse.Namespace) -> int:
    try:
        task = _make_task(args)
        from m2kt_ref.transfer.model_dir import save_model_dir, weights_digest
        from m2kt_ref.transfer.teachers import init_student

        model, net_config, record = init_student(
            task,
            family=args.family,
            width=args.width,
            depth=args.depth,
            heads=args.heads,
            seed=args.seed,
        )
        out = save_model_dir(args.out, model, net_config, task, record)
    except M2ktError as exc:
        return _fail(exc)
    record = {**record, "out": str(out), "weights_sha256": weights_digest(out)}
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        print(
            f"untrained {net_config.family} width={net_config.width} depth={net_config.depth} "
            f"({record['parameters']} parameters) for {task.name} -> {out}"
        )
    return 0
