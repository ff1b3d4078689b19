"""Mutation testing of the conformance suite (conformance/mutate, spec/conformance.md §6.1).

The suite must kill every single-rule mutant of ``conformance/mutants/catalogue.py``, and every
MUST of spec/packet-1.1.md and spec/signing.md must be covered by a mutant (or, for what the
protocol cannot show, by a named test). The kill count is printed at the end of the pytest run
(``conftest.pytest_terminal_summary``), so CI shows it.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "conformance" / "mutants"
sys.path.insert(0, str(MUTANTS))
sys.path.insert(0, str(ROOT / "conformance"))

import mutate  # noqa: E402
from catalogue import ALL, BY_ID  # noqa: E402
from engine import run_harness, run_inprocess  # noqa: E402
from requirements import REQUIREMENTS, SPEC_FILES  # noqa: E402

from m2kt_ref.conformance import load_vectors  # noqa: E402

#: What the kill-rate test found, for the terminal summary (tests/conftest.py).
RESULT: dict[str, int] = {}


def _spec(name: str) -> str:
    return re.sub(r"\s+", " ", (ROOT / "spec" / name).read_text(encoding="utf-8"))


def test_there_are_enough_mutants_and_each_applies() -> None:
    assert len(ALL) >= 40
    for m in ALL:
        source = m.mutated_source()  # raises when the text to replace is gone
        assert source != (ROOT / m.target).read_text(encoding="utf-8"), m.id
        ast.parse(source)  # a mutant is a valid program that breaks one rule
        assert re.fullmatch(r"(packet-1\.1|signing)\.md §[0-9.]+( step [0-9.]+)?: .+", m.rule), m.id


def test_every_must_of_the_spec_is_covered() -> None:
    by_file: dict[str, list] = {}
    for r in REQUIREMENTS:
        assert r.file in SPEC_FILES
        by_file.setdefault(r.file, []).append(r)
        assert r.mutants or r.tested_by, r.quote
        for mid in r.mutants:
            assert mid in BY_ID, f"{r.quote!r} names an unknown mutant {mid}"
        if r.tested_by and not r.tested_by.startswith("not a behaviour: "):
            path, _, rest = r.tested_by.partition("::")
            name = rest.split(":")[0]
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE), (
                f"{r.tested_by}: no such test"
            )
    for name in SPEC_FILES:
        text = _spec(name)
        spans = []
        for r in by_file.get(name, []):
            assert text.count(r.quote) == 1, f"{name}: quote not found once: {r.quote!r}"
            start = text.index(r.quote)
            spans.append((start, start + len(r.quote)))
        uncovered = [
            text[max(0, m.start() - 60) : m.end() + 60]
            for m in re.finditer(r"\bMUST\b", text)
            if not any(a <= m.start() < b for a, b in spans)
        ]
        assert not uncovered, f"{name}: MUSTs without a mutant or test: {uncovered}"
    named = {mid for r in REQUIREMENTS for mid in r.mutants}
    assert named == set(BY_ID), f"mutants tied to no MUST: {sorted(set(BY_ID) - named)}"


def test_the_recorded_full_run_is_current() -> None:
    """``kills.json`` (the last ``conformance/mutate --write``) names every mutant of the
    catalogue with the vectors that killed it, and only vectors that exist."""
    doc = json.loads((MUTANTS / "kills.json").read_text(encoding="utf-8"))
    assert set(doc["mutants"]) == set(BY_ID)
    assert doc["count"] == len(BY_ID) == doc["killed"] and doc["kill_rate"] == 100.0
    vector_ids = {v.id for v in load_vectors()}
    for mid, row in doc["mutants"].items():
        assert row["killers"], f"{mid} escaped in the recorded run"
        assert set(row["killers"]) <= vector_ids, mid
        assert row["rule"] == BY_ID[mid].rule


def test_the_suite_kills_every_mutant() -> None:
    """The fast form of ``conformance/mutate``: each mutant against its recorded killer first,
    then every vector; the kill rate must be 100 %."""
    known = mutate.recorded()
    escaped = []
    for m in ALL:
        first = known.get(m.id, [])[:1]
        verdict = run_inprocess(m, first) if not m.reference else run_harness(m, only=first)
        if not verdict.killed and m.reference:
            verdict = run_harness(m)
        if not verdict.killed:
            escaped.append(m.id)
    RESULT.update(count=len(ALL), killed=len(ALL) - len(escaped))
    assert not escaped, f"mutants no vector kills: {escaped}"


@pytest.mark.parametrize("mid", ["envelope-pad-length", "trust-kid"])
def test_a_mutant_escapes_without_its_vectors(mid: str) -> None:
    """The runner itself: with only an unrelated vector, the mutant is not killed."""
    verdict = run_harness(BY_ID[mid], only=["r-valid-minimal"])
    assert verdict.ran == 1 and not verdict.killed
