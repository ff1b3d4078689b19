"""Pieces several ``m2kt`` subcommands share: JSON output and the trust-store options."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = [
    "add_distributed_options",
    "add_limit_option",
    "add_trust_option",
    "distributed_run",
    "joined_process_group",
    "limits_from",
    "print_json",
    "rank0_writes",
    "start_distributed",
    "stop_distributed",
]


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys (the form every ``--json`` uses)."""
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def add_trust_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--trust PUB`` (repeatable): the keys a verifying command trusts."""
    parser.add_argument(
        "--trust",
        action="append",
        default=None if required else [],
        required=required,
        metavar="PUB",
        help="a .pub file or a JSON trust store; repeat for several",
    )


def add_limit_option(parser: argparse.ArgumentParser) -> None:
    """``--limit NAME=N`` (repeatable): a decoding limit other than the spec's default (§8)."""
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a decoding limit of spec/packet-1.1.md §8 other than its default, e.g. "
        "max_body_items=16777216 for a large local packet or max_packet_bytes=1048576 for "
        "untrusted input; repeat for several",
    )


def limits_from(args: argparse.Namespace) -> Any:
    """The :class:`~m2kt_ref.packet.limits.Limits` that ``--limit`` asks for.

    Raises:
        UsageError: ``USAGE`` for an unknown name or a value that is not a whole number >= 0.
    """
    from m2kt_ref.errors import UsageError
    from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits

    values = DEFAULT_LIMITS.to_dict()
    for spec in args.limit:
        name, sep, text = spec.partition("=")
        if not sep or name not in values or not text.isdigit():
            raise UsageError(
                f"--limit {spec!r}: expected NAME=N with N a whole number and NAME one of "
                + ", ".join(values)
            )
        values[name] = int(text)
    return Limits(**values)


def add_distributed_options(parser: argparse.ArgumentParser, *, shard: bool = False) -> None:
    """``--distributed`` and ``--dist-timeout`` (and ``--shard``): run under torchrun."""
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="run as one rank of a torchrun job (gloo on CPU, NCCL with --device cuda; "
        "docs/scaling.md); rank 0 writes the output",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds a rank waits for the others before the run fails (300)",
    )
    if shard:
        parser.add_argument(
            "--shard",
            action="store_true",
            help="with --distributed: shard the student's parameters, gradients, optimiser "
            "state and snapshots over the ranks (FSDP) instead of replicating it (DDP)",
        )


#: Whether this process joined a process group through :func:`start_distributed`.
_joined_process_group = False


def start_distributed(args: argparse.Namespace) -> Any:
    """The :class:`~m2kt_ref.transfer.distributed.DistContext` for ``--distributed``, or None."""
    global _joined_process_group
    if not getattr(args, "distributed", False):
        return None
    from m2kt_ref.transfer.distributed import init_distributed

    ctx = init_distributed(args.device, timeout_s=args.dist_timeout)
    _joined_process_group = True
    return ctx


def stop_distributed(ctx: Any) -> None:
    """Leave the process group started by :func:`start_distributed` (None: nothing to do)."""
    if ctx is not None:
        from m2kt_ref.transfer.distributed import shutdown

        shutdown(ctx)


@contextlib.contextmanager
def distributed_run(args: argparse.Namespace) -> Iterator[Any]:
    """The process group of ``--distributed`` for the ``with`` block (None without the flag),
    left however the block ends."""
    ctx = start_distributed(args)
    try:
        yield ctx
    finally:
        stop_distributed(ctx)


def rank0_writes(ctx: Any, what: str, write: Callable[[], _T]) -> _T | None:
    """Run ``write`` in a plain run or on rank 0 only; then every rank agrees whether it
    succeeded (``DIST_FAILED`` on the others when it did not). Returns what ``write`` returned,
    or None on a rank that did not write."""
    if ctx is not None and not ctx.is_main:
        ctx.agree(True, what)
        return None
    try:
        result = write()
    except BaseException:
        if ctx is not None:
            ctx.agree(False, what)
        raise
    if ctx is not None:
        ctx.agree(True, what)
    return result


def joined_process_group() -> bool:
    """Whether a ``--distributed`` command of this process joined (and has left) a process
    group; the command line then ends the process without interpreter finalisation."""
    return _joined_process_group
