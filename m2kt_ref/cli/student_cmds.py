"""``m2kt align``, ``m2kt ingest``, ``m2kt verify-receipt``: the student side (spec/algorithms.md
§2–§4).

Torch is imported inside the handlers only. Exit status of ``m2kt ingest``: 0 accepted; 1 an
error, printed as ``CODE: message`` (among them ``INGEST_REFUSED`` when the trust gate stops the
packet: the report with decision ``refused`` is still written to ``--out``); 3 a safety check
failed after ingestion (``INGEST_ROLLED_BACK``: ``--out`` holds the restored, pre-ingestion
student and the report; also 3 for ``kept_unsafe`` when rollback was disabled); 2 is argparse's
status for a malformed command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from m2kt_ref.cli.common import (
    add_distributed_options,
    add_trust_option,
    distributed_run,
    print_json,
    rank0_writes,
)
from m2kt_ref.cli.generate_cmds import HF_PREFIX
from m2kt_ref.errors import UsageError

__all__ = [
    "EXIT_ROLLED_BACK",
    "METHODS",
    "align_command",
    "ingest_command",
    "register",
    "verify_receipt_command",
]

#: Exit status when the student was rolled back (or kept though unsafe).
EXIT_ROLLED_BACK = 3
METHODS = ("procrustes", "ridge", "mlp")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``align``, ``ingest`` and ``verify-receipt`` to the ``m2kt`` parser."""
    p = subparsers.add_parser(
        "align",
        help="fit the concept alignment map from a packet's anchors into a student",
        description="Read the student's states on the packet's anchors, fit the Concept "
        "Alignment Layer (teacher -> student space) with one or all methods, and print its "
        "quality on held-out anchors and a curve of quality versus number of anchors. The "
        "student is not changed; signatures are not checked (m2kt verify does).",
    )
    p.add_argument("packet", metavar="PACKET")
    p.add_argument(
        "--student",
        required=True,
        metavar="DIR",
        help="student model directory, or hf:DIR for a Hugging Face save_pretrained directory",
    )
    p.add_argument(
        "--method",
        choices=(*METHODS, "all"),
        default="all",
        help="alignment method (default: all three)",
    )
    p.add_argument("--holdout", type=float, default=0.2, metavar="F", help="held-out share (0.2)")
    p.add_argument("--seed", type=int, default=0, help="anchor split and fit seed (0)")
    p.add_argument(
        "--curve",
        metavar="N,N,...",
        help="anchor counts of the quality curve (default: 2, 4, 8, ... and all); '' skips it",
    )
    p.add_argument("--layer", metavar="L", help="student layer (default: last block / layer)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=align_command)

    p = subparsers.add_parser(
        "ingest",
        help="ingest a verified knowledge packet into a student and verify the result",
        description="Verify PACKET against trusted keys, align it to the student, minimise the "
        "composite loss (geometry, structure, reasoning, safety), verify the result, roll back "
        "when a safety bound fails, and write the student directory and report.json to --out. "
        "Exit 0 accepted, 1 error or refused (INGEST_REFUSED), 3 rolled back.",
    )
    p.add_argument("packet", metavar="PACKET")
    p.add_argument(
        "--student",
        required=True,
        metavar="DIR",
        help="student model directory, or hf:DIR for a Hugging Face save_pretrained directory "
        "(written back with save_pretrained)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    add_trust_option(p)
    p.add_argument("--min-signers", type=int, default=1, metavar="K", help="k of n (default 1)")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="ingest even if the packet is unsigned or untrusted (recorded in the report)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument(
        "--model-dtype",
        choices=("fp32", "bf16", "fp16"),
        help="hf: students: precision of the weights (fp32; bf16/fp16 need --device cuda)",
    )
    p.add_argument("--steps", type=int, metavar="N", help="maximum optimiser steps (300)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (0)")
    p.add_argument("--method", choices=METHODS, help="alignment method (procrustes)")
    p.add_argument(
        "--protect-problems",
        type=int,
        default=0,
        metavar="N",
        help="protect the student's accuracy on N task problems (its training split when it "
        "has one, else drawn from the task)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any IngestConfig field, repeatable (e.g. --set lambda_struct=0)",
    )
    p.add_argument("--sign-key", metavar="KEY", help="sign the report with this secret key")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add_distributed_options(p, shard=True)
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=ingest_command)

    p = subparsers.add_parser(
        "verify-receipt",
        help="check the signed receipt of an ingestion report against trusted keys",
        description="Check that REPORT's receipt is a well-formed COSE_Sign1 over this very "
        "report (any edited number or decision fails) by a trusted key. Needs no torch. Exit "
        "0 when every report verifies, 1 otherwise.",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT", help="report.json written by ingest")
    add_trust_option(p, required=True)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=verify_receipt_command)


def _threads(n: int) -> None:
    if n < 1:
        raise UsageError("--threads must be >= 1")
    import torch

    torch.set_num_threads(n)


def _settings(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def align_command(args: argparse.Namespace) -> int:
    from m2kt_ref.packet import codec

    packet = codec.read_packet(args.packet)
    _threads(args.threads)
    from m2kt_ref.transfer.model_dir import load_model_dir
    from m2kt_ref.transfer.student.anchors import align_packet
    from m2kt_ref.transfer.student.config import IngestConfig

    if not 0.0 <= args.holdout < 1.0:
        raise UsageError("--holdout must be in [0, 1)")
    methods = list(METHODS) if args.method == "all" else [args.method]
    curve = None
    if args.curve is not None:
        try:
            curve = [int(c) for c in args.curve.split(",") if c.strip()]
        except ValueError:
            raise UsageError(f"--curve {args.curve!r} is not a list of integers") from None
    config = IngestConfig(
        holdout_fraction=args.holdout, seed=args.seed, student_layer=args.layer, device=args.device
    )
    if args.student.startswith(HF_PREFIX):
        import m2kt_ref.transfer.hf as mhf  # a coded error when the hf extra is missing

        hf = mhf.load_hf_model(args.student[len(HF_PREFIX) :], device=args.device)
        config = mhf.hf_ingest_config(packet, hf, config)
        model = hf.rows
    else:
        model = load_model_dir(args.student, device=args.device).model
    result = align_packet(packet, model, methods=methods, config=config, curve_counts=curve)
    if args.json:
        print_json(result)
        return 0
    print(
        f"packet {result['packet_id'][:16]}…: {result['anchors']} anchors, teacher d="
        f"{result['teacher_dim']} -> student d={result['student_dim']} ({result['layer']}); "
        f"fit on {result['n_fit']}, held out {result['n_heldout']}"
    )
    print(
        f"{'method':<11} {'cosine':>7} {'centred':>8} {'top1':>6} {'csls':>6} {'cka':>6} "
        f"{'resid':>6}   (held-out anchors)"
    )
    for name, m in result["methods"].items():
        h = m["heldout"] or {}
        print(
            f"{name:<11} {_fmt(h.get('cosine')):>7} {_fmt(h.get('cosine_centred')):>8} "
            f"{_fmt(h.get('top1_nn')):>6} {_fmt(h.get('top1_csls')):>6} {_fmt(h.get('cka')):>6} "
            f"{_fmt(h.get('residual')):>6}"
        )
    for name, points in result["curve"].items():
        cells = ", ".join(
            f"{p['anchors']}: {_fmt(p['cosine_centred'], 2)}/{_fmt(p['top1_csls'], 2)}"
            for p in points
        )
        print(f"curve {name} (anchors: centred cosine/csls top-1): {cells}")
    return 0


def ingest_command(args: argparse.Namespace) -> int:
    if args.shard and not args.distributed:
        raise UsageError("--shard shards the student over the ranks of a --distributed run")
    with distributed_run(args) as dist:
        return _ingest(args, dist)


def _ingest(args: argparse.Namespace, dist: Any) -> int:
    from m2kt_ref.packet import codec
    from m2kt_ref.packet.receipt import sign_report, write_report
    from m2kt_ref.packet.trust import TrustStore

    key = None
    if args.sign_key:
        from m2kt_ref.packet.keys import load_signing_key

        key = load_signing_key(args.sign_key)  # fail before any work
    if args.min_signers < 1:
        raise UsageError("--min-signers must be >= 1")
    if args.protect_problems < 0:
        raise UsageError("--protect-problems must be >= 0")
    trust = TrustStore.load(args.trust) if args.trust else None
    packet = codec.read_packet(args.packet)
    _threads(args.threads)
    from m2kt_ref.errors import IngestRefusedError
    from m2kt_ref.transfer.device import resolve_device
    from m2kt_ref.transfer.model_dir import load_model_dir, save_model_dir
    from m2kt_ref.transfer.student.config import IngestConfig
    from m2kt_ref.transfer.student.ingest import ingest

    device = str(dist.device) if dist is not None else args.device
    resolve_device(device)
    main = dist is None or dist.is_main
    updates: dict[str, Any] = {
        "seed": args.seed,
        "device": device,
        "bf16": args.bf16,
        "min_signers": args.min_signers,
    }
    if args.steps is not None:
        updates["steps"] = args.steps
    if args.method is not None:
        updates["align_method"] = args.method
    config = IngestConfig(**updates).with_settings(_settings(args.set))
    out = Path(args.out)

    def write(report: dict[str, Any]) -> dict[str, Any]:
        if key is not None:
            report = sign_report(report, key)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from m2kt_ref.errors import FileAccessError

            raise FileAccessError(f"cannot create {out}: {exc.strerror}") from None
        write_report(out / "report.json", report)
        return report

    show = main and not args.no_progress and sys.stderr.isatty()
    if args.student.startswith(HF_PREFIX):
        return _ingest_hf(args, packet, config, trust, key, show, write, dist)
    if args.model_dtype is not None:
        raise UsageError("--model-dtype is for hf: students")
    student = load_model_dir(args.student, device=device)
    task = student.task()
    if "student_trained" not in _settings(args.set):
        # safe default (issue 13.4): a trained student, or one that accepted a packet before,
        # must not lose what it knows; the self-agreement bound applies to it
        import dataclasses

        record = student.record
        trained = bool(record.get("trained")) or any(
            i.get("decision") == "accepted" for i in record.get("ingestions", [])
        )
        config = dataclasses.replace(config, student_trained=trained)
    protected = None
    if args.protect_problems:
        if student.split_config:
            protected = student.split().train.head(args.protect_problems)
        else:
            import dataclasses

            config = dataclasses.replace(config, protect_task_problems=args.protect_problems)
    try:
        result = ingest(
            packet,
            student.model,
            task,
            config,
            trust=trust,
            allow_unverified=args.allow_unverified,
            progress=show,
            protected=protected,
            dist=dist,
            shard=args.shard,
        )
    except IngestRefusedError as exc:
        if exc.report is not None and main:
            report = write(exc.report)
            if args.json:
                print_json(report)
        raise
    report = result.report
    split = student.split() if student.split_config else None
    record = dict(student.record)
    record["ingestions"] = [
        *student.record.get("ingestions", []),
        {
            "packet_id": report["packet"]["id"],
            "decision": report["decision"],
            "digest_before": report["student"]["digest_before"],
            "digest_after": report["student"]["digest_after"],
            "report": "report.json",
        },
    ]

    def save() -> dict[str, Any]:
        save_model_dir(
            out,
            result.model.to("cpu"),
            student.net_config,
            task,
            record,
            split=split,
            train_config=student.train_config,
        )
        return write(report)

    # rank 0 writes; the others wait until it has, and share its outcome
    written = rank0_writes(dist, "writing the student", save)
    if written is None:
        return _status(report)
    return _finish(args, written, out, result)


def _status(report: dict[str, Any]) -> int:
    return 0 if report["decision"] == "accepted" else EXIT_ROLLED_BACK


def _finish(args: argparse.Namespace, report: dict[str, Any], out: Path, result: Any) -> int:
    """Print the outcome and return the exit status (0 accepted, 3 rolled back or unsafe)."""
    from m2kt_ref.errors import M2ktError

    if args.json:
        print_json(report)
    else:
        _print_summary(report, out)
    if report["decision"] == "rolled_back":
        try:
            result.raise_for_decision()
        except M2ktError as exc:
            print(f"{exc.code}: {exc}", file=sys.stderr)
        return EXIT_ROLLED_BACK
    if report["decision"] != "accepted":
        print(
            f"warning: ingestion {report['decision']}: {'; '.join(report['reasons'])}",
            file=sys.stderr,
        )
        return EXIT_ROLLED_BACK
    return 0


def _ingest_hf(
    args: argparse.Namespace,
    packet: Any,
    config: Any,
    trust: Any,
    key: Any,
    show: bool,
    write: Any,
    dist: Any,
) -> int:
    """``m2kt ingest --student hf:DIR``: ingest, then save_pretrained into --out with the
    report (also the restored student after a rollback); under ``--distributed`` every rank
    ingests and rank 0 alone writes, the others waiting for its outcome."""
    from m2kt_ref.errors import IngestRefusedError
    from m2kt_ref.packet.receipt import sign_report

    if args.protect_problems:
        raise UsageError("--protect-problems needs an m2kt student (a text model has no task)")
    import m2kt_ref.transfer.hf as mhf  # a coded error when the hf extra is missing

    try:
        result, hf = mhf.ingest_hf(
            packet,
            args.student[len(HF_PREFIX) :],
            config,
            trust=trust,
            allow_unverified=args.allow_unverified,
            progress=show,
            model_dtype=args.model_dtype,
            dist=dist,
            shard=args.shard,
        )
    except IngestRefusedError as exc:
        if exc.report is not None and (dist is None or dist.is_main):
            report = write(exc.report)
            if args.json:
                print_json(report)
        raise
    out = Path(args.out)

    def save() -> dict[str, Any]:
        report = result.report if key is None else sign_report(result.report, key)
        mhf.save_hf_student(hf, out, report=report)
        return report

    written = rank0_writes(dist, "writing the student", save)
    if written is None:  # rank 0 wrote it
        return _status(result.report)
    return _finish(args, written, out, result)


def _print_summary(report: dict[str, Any], out: Path) -> None:
    a, t, s = report["alignment"], report["training"], report["safety"]
    before, after = report["verification"]["before"], report["verification"]["after"]
    held = a["heldout_before"] or {}
    trust = report["trust"]
    print(
        f"packet {report['packet']['id'][:16]}… "
        f"({'verified' if trust['verified'] else 'UNVERIFIED, allowed by the caller'}); "
        f"{a['method']} alignment {a['teacher_dim']} -> {a['student_dim']}, held-out csls "
        f"top-1 {_fmt(held.get('top1_csls'), 2)}"
    )
    print(
        f"{t['steps']} steps ({t['stop_reason']}), loss {_fmt(t['initial'].get('loss'))} -> "
        f"{_fmt(t['final'].get('loss'))}, {t['wall_s']:.1f}s"
    )

    def pair(getter: Any) -> str:
        return f"{_fmt(getter(before), 2)} -> {_fmt(getter(after), 2)}"

    print(
        "concept retrieval "
        + pair(lambda m: m["concept_retrieval"]["top1_csls"])
        + ", relations "
        + pair(lambda m: m["relations"]["overall"]["agreement"])
        + ", trace steps "
        + pair(lambda m: m["traces"]["step_agreement"])
        + ", trace answers "
        + pair(lambda m: m["traces"]["answer_agreement"])
    )
    print(
        f"drift {_fmt(s['parameter_drift'])}, divergence {_fmt(s['output_divergence'])}, "
        f"capability {_fmt(s['capability_before'])} -> {_fmt(s['capability_after'])}; "
        f"task inputs {report['data']['task_inputs_used']}, probes "
        f"{report['data']['concept_probes_used']}"
    )
    print(f"{report['decision']} -> {out}" + ("; report signed" if "receipt" in report else ""))


def verify_receipt_command(args: argparse.Namespace) -> int:
    from m2kt_ref.errors import M2ktError
    from m2kt_ref.packet.receipt import read_report, verify_receipt
    from m2kt_ref.packet.trust import TrustStore

    trust = TrustStore.load(args.trust)
    results: list[dict[str, Any]] = []
    for file in args.reports:
        try:
            check = dict(verify_receipt(read_report(file), trust))
        except M2ktError as exc:  # unreadable file or not a JSON object
            check = {"valid": False, "errors": [exc.to_dict()]}
        results.append({"file": file, **check})
        if args.json:
            continue
        if check["valid"]:
            print(
                f"{file}: receipt verified: signed by {check['name']} "
                f"({check['kid'][:16]}…) at {check['signing_time']}"
            )
        for err in check["errors"]:
            print(f"{file}: {err['code']}: {err['message']}")
    if args.json:
        print_json(results)
    return 0 if all(r["valid"] for r in results) else 1
