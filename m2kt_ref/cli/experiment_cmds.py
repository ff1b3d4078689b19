"""``m2kt experiment``: M2KT against logit distillation, end to end (docs/results.md).

Torch is imported inside the handler only.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["experiment_command", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``experiment`` to the ``m2kt`` parser."""
    p = subparsers.add_parser(
        "experiment",
        help="measure M2KT against logit distillation (teacher, packet, students, baselines)",
        description="Train (or reuse) a teacher, generate and sign a knowledge packet, ingest it "
        "into students of another shape and family, and compare with logit distillation on a "
        "log grid of input budgets and with training from scratch; writes results.json, "
        "report.md and transfer.png. Prints the headline: relative performance and data "
        "reduction against KD.",
    )
    p.add_argument("--task", default="modular", help="task family (default modular)")
    p.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option or experiment setting (steps, traces, lambda_geo, ...); repeatable",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/<task>)")
    p.add_argument("--seed", type=int, default=0, help="first transfer seed (0)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (1)")
    p.add_argument("--scale", default="default", choices=("quick", "default"))
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="print results.json's headline as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="instead of running, merge the results of runs that differ only in seeds into --out",
    )
    p.set_defaults(handler=experiment_command)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def experiment_command(args: argparse.Namespace) -> int:
    """Run the experiment and print the headline."""
    from m2kt_ref.experiments import run_experiment
    from m2kt_ref.transfer.tasks import parse_option_pairs

    options = parse_option_pairs(args.opt)
    if args.merge:
        from m2kt_ref.experiments import merge_results

        res = merge_results(args.merge, args.out or f"runs/{args.task}-merged")
        return _print_headline(res, args)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    res = run_experiment(
        args.task,
        options=options,
        out=args.out,
        seed=args.seed,
        seeds=args.seeds,
        scale=args.scale,
        device=args.device,
        threads=args.threads,
        log=log,
    )
    return _print_headline(res, args)


def _print_headline(res: dict, args: argparse.Namespace) -> int:
    if args.json:
        keys = (
            "task",
            "seeds",
            "teacher",
            "m2kt",
            "relative_performance",
            "kd_inputs_to_match",
            "data_reduction",
            "scratch",
            "steps_to_90",
            "ablations",
        )
        print(json.dumps({k: res[k] for k in keys}, indent=1))
        return 0
    out = args.out or f"runs/{args.task}"
    print(f"task {res['task']} ({res['scale']}), seeds {res['seeds']}, results in {out}/")
    print(f"teacher accuracy {res['teacher']['accuracy']:.4f}")
    chance = res["teacher"]["chance_accuracy"]
    for name, s in res["students"].items():
        m = s["m2kt"]
        match = s["kd_inputs_to_match"]["mean"]
        if not s["above_chance"]:
            versus = f"not above chance ({chance:.4f}): no data reduction to report"
        elif match is None:
            versus = "KD needs more than the full pool (not reached)"
        else:
            versus = f"KD needs {match:.0f} -> data reduction {_pct(s['data_reduction']['mean'])}"
            if s["above_chance"] < len(res["seeds"]):
                versus += f" (seeds above chance: {s['above_chance']}/{len(res['seeds'])})"
        print(
            f"{name}: M2KT acc {m['accuracy']['mean']:.4f} = "
            f"{_pct(s['relative_performance']['mean'])} of teacher with "
            f"{m['inputs_used']['mean']:.0f} task inputs (+{m['concept_probes']['mean']:.0f} "
            f"concept probes); {versus}"
        )
    return 0
