"""The ``m2kt`` command.

Each group of subcommands lives in its own module with a ``register(subparsers)`` function.
Modules import torch only inside their handlers, so format commands (``validate``, ``inspect``,
``verify``...) run on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from m2kt_ref import __version__
from m2kt_ref.errors import M2ktError

#: Subcommand modules, in the order their commands appear in ``m2kt --help``.
COMMAND_MODULES = (
    "m2kt_ref.cli.format_cmds",
    "m2kt_ref.cli.sign_cmds",
    "m2kt_ref.cli.teacher_cmds",
    "m2kt_ref.cli.generate_cmds",
    "m2kt_ref.cli.student_cmds",
    "m2kt_ref.cli.conformance_cmds",
    "m2kt_ref.cli.experiment_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="m2kt", description="Model-to-Model Knowledge Transmission reference tool"
    )
    parser.add_argument("--version", action="version", version=f"m2kt {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen handler; returns the exit status.

    After a ``--distributed`` command (one rank of a torchrun job) the process ends here, its
    output flushed, without interpreter finalisation
    (:func:`~m2kt_ref.transfer.distributed.end_process`): everything was written atomically
    and agreed by the ranks before.
    """
    args = build_parser().parse_args(argv)
    status = _run(args)
    from m2kt_ref.cli.common import joined_process_group

    if joined_process_group():
        from m2kt_ref.transfer.distributed import end_process

        end_process(status)
    return status


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except M2ktError as exc:
        print(f"{exc.code}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader of stdout left (``m2kt inspect F | head``): not an error of ours; point
        # stdout at /dev/null so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
