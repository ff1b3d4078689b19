"""``m2kt conformance list|run|adapter``: the conformance suite from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``conformance`` command group."""
    parser = subparsers.add_parser(
        "conformance",
        help="run the conformance suite against an implementation",
        description="The M2KT conformance suite (spec/conformance.md): list the vectors, run "
        "them against any implementation that speaks the harness protocol, or serve the "
        "reference library behind that protocol.",
    )
    sub = parser.add_subparsers(dest="conformance_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="list profiles and vectors")
    p.add_argument("--profile", choices=("reader", "verifier", "producer"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--suite", type=Path, help="suite directory (default: conformance/)")
    p.set_defaults(handler=_list)

    p = sub.add_parser("run", help="run one profile's vectors against an implementation")
    p.add_argument(
        "--impl",
        required=True,
        metavar="COMMAND",
        help="command that starts the implementation (split like a shell does)",
    )
    p.add_argument("--profile", required=True, choices=("reader", "verifier", "producer"))
    p.add_argument("--report", choices=("text", "json", "junit"), default="text")
    p.add_argument("--only", nargs="+", metavar="ID", help="run just these vectors")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds per vector before the implementation is killed (default 10)",
    )
    p.add_argument("--output", "-o", type=Path, help="write the report here (default stdout)")
    p.add_argument("--verbose", "-v", action="store_true", help="text report: list passes too")
    p.add_argument("--suite", type=Path, help="suite directory (default: conformance/)")
    p.set_defaults(handler=_run)

    p = sub.add_parser("adapter", help="serve the reference library over the harness protocol")
    p.set_defaults(handler=_adapter)


def _list(args: argparse.Namespace) -> int:
    from m2kt_ref.conformance import load_manifest, load_vectors

    manifest = load_manifest(args.suite)
    vectors = load_vectors(args.suite, profile=args.profile)
    if args.json:
        doc = {
            "suite_version": manifest["suite_version"],
            "protocol": manifest["protocol"],
            "profiles": {
                name: {**p, "vectors": sum(name in v.profiles for v in vectors)}
                for name, p in manifest["profiles"].items()
            },
            "vectors": [
                {
                    "id": v.id,
                    "op": v.op,
                    "profiles": list(v.profiles),
                    "expect": v.expect,
                    "spec": list(v.spec),
                    "description": v.description,
                }
                for v in vectors
            ],
        }
        print(json.dumps(doc, indent=1))
        return 0
    print(f"m2kt conformance suite {manifest['suite_version']} (protocol {manifest['protocol']})")
    for name, p in manifest["profiles"].items():
        count = sum(name in v.profiles for v in vectors)
        print(f"  {name:9} {count:4} vectors  {p['description']}")
    print()
    width = max((len(v.id) for v in vectors), default=0)
    for v in vectors:
        print(f"{v.id:{width}}  {v.op:7} {v.expect:20} {v.description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from m2kt_ref.conformance import (
        json_report,
        junit_report,
        load_vectors,
        run_suite,
        text_report,
    )

    def progress(outcome: Any) -> None:
        if args.report == "text" and args.output is None and sys.stderr.isatty():
            print(f"\r{outcome.id[:60]:60}", end="", file=sys.stderr, flush=True)

    report = run_suite(
        args.impl,
        args.profile,
        suite_dir=args.suite,
        only=args.only,
        timeout=args.timeout,
        progress=progress,
    )
    if args.report == "text" and args.output is None and sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    vectors = load_vectors(args.suite, profile=args.profile, only=args.only)
    if args.report == "json":
        text = json_report(report)
    elif args.report == "junit":
        text = junit_report(report, vectors)
    else:
        text = text_report(report, vectors, verbose=args.verbose)
    if args.output is not None:
        from m2kt_ref.packet.files import write_atomic

        write_atomic(args.output, [text.encode("utf-8") + b"\n"])
    else:
        print(text)
    return 0 if report.ok else 1


def _adapter(args: argparse.Namespace) -> int:
    from m2kt_ref.conformance.adapter import serve

    return serve()
