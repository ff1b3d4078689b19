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
    p.add_argument("--task", default="chain", help="task family (default chain)")
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
    p.add_argument(
        "--summary",
        nargs="+",
        metavar="DIR",
        help="instead of running, print the combined headline table of these results (Markdown)",
    )
    p.add_argument(
        "--depth-curve",
        nargs="+",
        metavar="DIR",
        help="instead of running, print the data-reduction table of hierarchy runs by depth",
    )
    p.set_defaults(handler=experiment_command)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _load(paths: list[str]) -> list[dict]:
    from pathlib import Path

    from m2kt_ref.errors import UsageError

    docs = []
    for p in paths:
        path = Path(p)
        path = path / "results.json" if path.is_dir() else path
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read results {path}: {exc}") from None
    return docs


def experiment_command(args: argparse.Namespace) -> int:
    """Run the experiment (or merge or summarise results) and print the headline."""
    from m2kt_ref.experiments import merge_results, run_experiment
    from m2kt_ref.experiments.render import depth_curve_table, headline_table
    from m2kt_ref.transfer.tasks import parse_option_pairs

    if args.summary:
        print(headline_table(_load(args.summary)), end="")
        return 0
    if args.depth_curve:
        print(depth_curve_table(_load(args.depth_curve), "concept-state"), end="")
        return 0
    options = parse_option_pairs(args.opt)
    if args.merge:
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


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _rows(v: float | None) -> str:
    return "more rows than the pool" if v is None else f"{v:.0f} rows"


def _acc(v: float | None) -> str:
    return "not run" if v is None else f"{v:.3f}"


def _print_headline(res: dict, args: argparse.Namespace) -> int:
    if args.json:
        keys = ("task", "seeds", "teacher", "information_floor", "answer_key", "students")
        print(json.dumps({k: res[k] for k in keys}, indent=1))
        return 0
    out = args.out or f"runs/{args.task}"
    t = res["teacher"]
    print(f"task {res['task']} ({res['scale']}), seeds {res['seeds']}, results in {out}/")
    print(
        f"teacher accuracy {t['accuracy']:.4f}; chance {t['chance_accuracy']:.4f}; information "
        f"floor {res['information_floor']['label_equivalents']} label-equivalents"
    )
    for name, s in res["students"].items():
        if "accuracy" not in s:
            if "kd_warm_curve" in s:
                warm, cold = s["warm_inputs_to_target"]["mean"], s["kd_inputs_to_target"]["mean"]
                print(
                    f"{name}: KD needs {_rows(cold)} for 90 % of the teacher; after the "
                    f"packet's geometry {_rows(warm)}; data reduction "
                    f"{_pct(s['data_reduction']['mean'])}"
                )
            continue
        acc, le = s["accuracy"]["mean"], s["label_equivalents"]["mean"]
        line = (
            f"{name}: M2KT acc {acc:.4f} = {_pct(s['relative']['mean'])} of teacher with "
            f"{le:.0f} label-equivalents ({s['floor_multiple']['mean']:.2f}x floor); "
        )
        if not s["above_chance_seeds"]:
            line += "not above chance: no data reduction to report"
        elif not s["kd_curve"]:
            line += "no KD curve on this student (concept_controls off)"
        elif s["data_reduction"]["mean"] is None:
            line += "KD does not reach it within the pool"
        else:
            line += (
                f"KD needs {s['kd_inputs_to_match']['mean']:.0f} -> data reduction "
                f"{_pct(s['data_reduction']['mean'])}"
            )
        line += (
            f"; answer-key reader {s['answer_key']['mean']:.3f}, same-prior control "
            f"{_acc(s['same_prior']['mean'])}"
        )
        print(line)
    return 0
