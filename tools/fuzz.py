#!/usr/bin/env python3
"""The long fuzzing run: every property test of tests/ under the hypothesis ``fuzz`` profile.

CI runs the same tests under the derandomised ``ci`` profile (tests/conftest.py): 100 examples
each, the same examples on every run, so CI passes or fails by the code and never by luck. This
script is the nightly-style counterpart: random examples, ``--examples`` per test (5,000 by
default), no deadline, failing examples printed with their reproduction blob. A failure it finds
is fixed and pinned with ``@example`` in the test (or a vector), so the CI profile keeps it.

Usage::

    python tools/fuzz.py                      # 5,000 examples per property test
    python tools/fuzz.py --examples 20000 -- -x tests/test_codec.py

It prints one summary line (date, examples, tests, outcome, seconds); docs/fuzzing.md records
the last one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=5000, help="examples per property test")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = ap.parse_args(argv)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz", "M2KT_FUZZ_EXAMPLES": str(args.examples)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "hypothesis", "-p", "no:cacheprovider"]
    cmd += args.pytest_args or ["tests/"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    sys.stdout.write(proc.stdout[-20000:])
    sys.stderr.write(proc.stderr[-5000:])
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    print(
        f"fuzz {when}: {args.examples} examples per property test: {last} "
        f"({seconds:.0f} s, exit {proc.returncode})"
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
