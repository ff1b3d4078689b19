#!/usr/bin/env python3
"""Mutation testing of the conformance suite: how many single-rule mutants it kills.

Usage::

    conformance/mutate [--fast] [--only ID ...] [--write] [--list]

Each mutant (``mutants/catalogue.py``) breaks one rule of the specification in a copy of a
correct implementation (the independent one, or the reference library); the suite kills it when a
vector fails or errors on the copy. The run prints every mutant with the vector that killed it,
then ``mutants: N, killed: K, kill rate: R %``, and exits 1 unless every mutant was killed.

By default every mutant runs through the harness (``m2kt conformance run``) against all vectors of
the verifier profile, as a third party's implementation would, and every killing vector is
recorded; ``--write`` stores that result in ``mutants/kills.json``. ``--fast`` runs the
independent implementation's mutants in this process, the recorded killer first, stopping at the
first kill, and the reference's through the harness on their recorded killers: what the tests and
CI run (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mutants"))
sys.path.insert(0, str(HERE.parent))

from catalogue import ALL, BY_ID  # noqa: E402
from engine import Mutant, Verdict, run_harness, run_inprocess  # noqa: E402

KILLS = HERE / "mutants" / "kills.json"


def recorded() -> dict[str, list[str]]:
    """Mutant id -> the vectors that killed it in the last full run (``kills.json``)."""
    if not KILLS.exists():
        return {}
    doc = json.loads(KILLS.read_text(encoding="utf-8"))
    return {mid: row["killers"] for mid, row in doc["mutants"].items()}


def run_one(m: Mutant, fast: bool, known: dict[str, list[str]]) -> Verdict:
    """Run one mutant (fast: recorded killers first, stop at the first kill)."""
    first = known.get(m.id, [])[:1]
    if not fast:
        return run_harness(m)
    if not m.reference:
        return run_inprocess(m, first)
    if first:
        verdict = run_harness(m, only=first)
        if verdict.killed:
            return verdict
    return run_harness(m)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="stop at the first killing vector")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--write", action="store_true", help="record the result in kills.json")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = [BY_ID[i] for i in args.only] if args.only else ALL
    if args.list:
        for m in mutants:
            print(f"{m.id:40s} {m.rule}")
        return 0
    if args.write and (args.fast or args.only):
        parser.error("--write records a full run: no --fast, no --only")
    known = recorded()
    started = time.monotonic()
    verdicts = []
    for m in mutants:
        try:
            v = run_one(m, args.fast, known)
        except ValueError as exc:  # the text to replace is gone: a stale mutant
            v = Verdict(m, detail=f"stale: {exc}")
        verdicts.append(v)
        if v.killed:
            print(f"KILLED   {m.id:40s} by {v.killers[0]}", flush=True)
        else:
            print(f"ESCAPED  {m.id:40s} {m.rule} {v.detail}", flush=True)
    killed = sum(v.killed for v in verdicts)
    rate = 100.0 * killed / len(verdicts) if verdicts else 100.0
    print(
        f"mutants: {len(verdicts)}, killed: {killed}, escaped: {len(verdicts) - killed}, "
        f"kill rate: {rate:.1f} % ({time.monotonic() - started:.0f} s"
        f"{', fast' if args.fast else ''})"
    )
    if args.write:
        doc = {
            "command": "conformance/mutate --write",
            "count": len(verdicts),
            "killed": killed,
            "kill_rate": round(rate, 1),
            "mutants": {
                v.mutant.id: {
                    "rule": v.mutant.rule,
                    "target": v.mutant.target,
                    "killers": v.killers,
                }
                for v in verdicts
            },
        }
        KILLS.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0 if killed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
