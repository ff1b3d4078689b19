"""Benchmark: distributed ingestion (``--distributed`` under torchrun), 1 and 2 ranks, CPU.

It builds one packet (a task at its default options, read from an untrained teacher of the
default preset's shape: throughput does not depend on what the teacher knows) and measures, in
interleaved rounds (median):

- **plain**: one process, no process group (the single-process path);
- **1 rank**: ``torchrun --nproc-per-node 1``: the same, wrapped in DDP with gloo (the cost of
  the wrapper and the collectives with nobody to talk to);
- **2 ranks**: ``torchrun --nproc-per-node 2``: each rank runs half of every step's rows;
- **2 ranks, sharded**: the same with ``--shard`` semantics (FSDP): parameters, gradients,
  optimiser state and snapshots split over the ranks.

Every run is :func:`m2kt_ref.transfer.ingest` for ``--steps`` optimiser steps (early stopping
off) with the same global batch, one compute thread per rank and a protected set of
``--protected`` task problems. The rate is the training loop's own (``training.steps_per_s``:
not the alignment fit or the verification passes). Memory per rank is the peak resident set of
the rank's process (``ru_maxrss``) and what it added since the process started its work.
Scaling efficiency = (2-rank steps/s) / (2 x 1-rank steps/s): 1.0 would be perfect scaling.

Usage (the figures in docs/performance.md, ## Distributed ingestion)::

    python benchmarks/distributed.py --rounds 3          # modular p=97, 60 steps
    python benchmarks/distributed.py --quick              # smoke run (chain, 3 steps, 1 round)
    python benchmarks/distributed.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import machine_line  # noqa: E402

from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.transfer.nets import build_model  # noqa: E402
from m2kt_ref.transfer.student.config import IngestConfig  # noqa: E402
from m2kt_ref.transfer.student.ingest import ingest  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teacher.generate import generate_from_model  # noqa: E402
from m2kt_ref.transfer.teachers import init_student, teacher_preset  # noqa: E402

CREATED = "2026-01-01T00:00:00Z"
#: student shape per task: another width and depth than the default teacher preset
STUDENTS = {"modular": ("transformer", 96, 2), "chain": ("transformer", 32, 2)}
MiB = 1 << 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(args: argparse.Namespace) -> int:
    """One rank (or the plain process): ingest once to warm up, once timed; write rankN.json."""
    torch.set_num_threads(1)
    start_rss = _rss_bytes()
    dist = None
    if args.distributed:
        from m2kt_ref.transfer.distributed import init_distributed, shutdown

        dist = init_distributed("cpu", timeout_s=120)
    shard = bool(args.shard)
    task = make_task(args.task)
    packet = codec.read_packet(args.packet)
    problems = task.problems()
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(problems), generator=g)[: args.protected].numpy()
    capability = problems.take(pick)
    family, width, depth = STUDENTS[args.task]
    warm, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1)
    ingest(packet, warm, task, IngestConfig(steps=2), allow_unverified=True, dist=dist, shard=shard)
    student, _, _ = init_student(task, family=family, width=width, depth=depth, seed=1)
    config = IngestConfig(steps=args.steps, patience=0, eval_every=max(args.steps, 1))
    t = time.perf_counter()
    result = ingest(
        packet,
        student,
        task,
        config,
        allow_unverified=True,
        protected=capability,
        dist=dist,
        shard=shard,
    )
    wall = time.perf_counter() - t
    rank = 0 if dist is None else dist.rank
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    out = {
        "rank": rank,
        "world_size": 1 if dist is None else dist.world_size,
        "steps": result.report["training"]["steps"],
        "steps_per_s": result.report["training"]["steps_per_s"],
        "ingest_wall_s": wall,
        "peak_rss_bytes": peak,
        "peak_added_bytes": peak - start_rss,
        "decision": result.decision,
        "n_parameters": result.report["student"]["n_parameters"],
    }
    Path(args.worker, f"rank{rank}.json").write_text(json.dumps(out))
    if dist is not None:
        shutdown(dist)
    return 0


def run_config(kind: str, packet: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run one configuration (``plain``, ``1``, ``2`` or ``2-shard``) in fresh processes."""
    with tempfile.TemporaryDirectory() as tmp:
        common = [str(Path(__file__).resolve()), "--worker", tmp, "--packet", str(packet)]
        common += ["--task", args.task, "--steps", str(args.steps)]
        common += ["--protected", str(args.protected)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        if kind == "plain":
            cmd = [sys.executable, *common]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd += ["--nproc-per-node", kind[0], *common, "--distributed"]
            cmd += ["--shard"] if kind.endswith("shard") else []
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        return [json.loads(f.read_text()) for f in sorted(Path(tmp).glob("rank*.json"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="modular", choices=sorted(STUDENTS))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--protected", type=int, default=256)
    p.add_argument("--traces", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="chain, 3 steps, 1 round (smoke run)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    # worker mode (internal)
    p.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--packet", help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shard", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        status = worker(args)
        if args.distributed:  # a rank ends without finalisation (see end_process)
            from m2kt_ref.transfer.distributed import end_process

            end_process(status)
        return status
    if args.quick:
        args.task, args.steps, args.rounds, args.protected, args.traces = "chain", 3, 1, 16, 4
    torch.set_num_threads(1)
    task = make_task(args.task)
    teacher = build_model(teacher_preset(args.task, "default").net_config(task, seed=0))
    packet = generate_from_model(teacher, task, traces=args.traces, created=CREATED).packet
    kinds = ("plain", "1", "2", "2-shard")
    runs: dict[str, list[list[dict[str, Any]]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "packet.m2kt"
        codec.write_packet(packet, path)
        for _ in range(args.rounds):  # interleaved: background load hits every kind alike
            for kind in kinds:
                runs[kind].append(run_config(kind, path, args))
    rows = []
    for kind in kinds:
        ranks = len(runs[kind][0])
        # a step ends when the slowest rank's collective does: every rank reports the same rate
        sps = statistics.median(min(r["steps_per_s"] for r in rnd) for rnd in runs[kind])
        rows.append(
            {
                "config": {
                    "plain": "plain (no process group)",
                    "1": "1 rank (DDP)",
                    "2": "2 ranks (DDP)",
                    "2-shard": "2 ranks (FSDP, --shard)",
                }[kind],
                "ranks": ranks,
                "steps_per_s": sps,
                "peak_rss_mib_per_rank": [
                    statistics.median(rnd[r]["peak_rss_bytes"] for rnd in runs[kind]) / MiB
                    for r in range(ranks)
                ],
                "peak_added_mib_per_rank": [
                    statistics.median(rnd[r]["peak_added_bytes"] for rnd in runs[kind]) / MiB
                    for r in range(ranks)
                ],
                "decisions": sorted({r["decision"] for rnd in runs[kind] for r in rnd}),
            }
        )
    one, two = rows[1]["steps_per_s"], rows[2]["steps_per_s"]
    summary = {
        "task": args.task,
        "student": "{}x{}x{}".format(*STUDENTS[args.task]),
        "n_parameters": runs["plain"][0][0]["n_parameters"],
        "anchors": len(packet.body.anchors),
        "traces": len(packet.body.traces),
        "steps": args.steps,
        "rounds": args.rounds,
        "speedup_2_over_1": two / one,
        "scaling_efficiency": two / (2 * one),
        "ddp_overhead_1_rank": one / rows[0]["steps_per_s"],
        "fsdp_over_ddp_2_ranks": rows[3]["steps_per_s"] / two,
        "machine": machine_line(threads=1),
        "rows": rows,
    }
    print(summary["machine"])
    print(
        f"task {args.task}, student {summary['student']} ({summary['n_parameters']} "
        f"parameters), {summary['anchors']} anchors, {summary['traces']} traces, "
        f"{args.steps} steps, median of {args.rounds} round(s), 1 thread per rank"
    )
    print("| config | steps/s | peak RSS per rank (MiB) | added per rank (MiB) |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        rss = ", ".join(f"{v:.0f}" for v in r["peak_rss_mib_per_rank"])
        add = ", ".join(f"{v:.0f}" for v in r["peak_added_mib_per_rank"])
        print(f"| {r['config']} | {r['steps_per_s']:.2f} | {rss} | {add} |")
    print(
        f"speed-up 2 ranks / 1 rank {summary['speedup_2_over_1']:.2f}; scaling efficiency "
        f"{summary['scaling_efficiency']:.2f}; 1 rank / plain "
        f"{summary['ddp_overhead_1_rank']:.2f}; FSDP / DDP at 2 ranks "
        f"{summary['fsdp_over_ddp_2_ranks']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
