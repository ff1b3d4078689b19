"""Shared loop of the deliberately broken implementations in this directory.

Each fake is the independent implementation (``../independent``) with one fault added. They
exist to test the harness and the suite: ``tests/test_conformance.py`` asserts exactly which
vectors each one fails or errors on. Do not use them for anything else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "independent"))

import m2kt_indep
import m2kt_indep_verify  # noqa: F401  (imported so fakes can patch it)

Behaviour = Callable[[dict[str, Any]], str | None]


def serve(name: str, behave: Behaviour | None = None, *, start: str | None = None) -> int:
    """Answer the protocol like the independent implementation, except where ``behave`` returns
    a line of its own (sent verbatim) for a run request; ``start`` replaces the start reply."""
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg["cmd"] == "start":
            out = start or json.dumps(
                {
                    "protocol": 1,
                    "implementation": {
                        "name": name,
                        "version": "0",
                        "language": "python",
                        "profiles": ["reader", "verifier"],
                    },
                }
            )
        elif msg["cmd"] == "run":
            out = behave(msg) if behave is not None else None
            if out is None:
                result = m2kt_indep.handle(msg["op"], msg["input"])
                out = json.dumps({"seq": msg["seq"], "result": result})
        else:
            return 0
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return 0
