"""Pieces several ``m2kt`` subcommands share: JSON output and the trust-store options."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_trust_option", "print_json"]


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
