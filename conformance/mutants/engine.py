"""Applying single-rule mutants and running the conformance suite against each.

A mutant is one textual change to a correct implementation (the independent implementation in
``conformance/independent/`` or the reference library ``m2kt_ref``) that breaks exactly one rule
of the specification. The suite *kills* a mutant when at least one vector fails or errors on the
mutated implementation; a mutant no vector kills names a rule the suite does not test.

Two ways to run one mutant:

* :func:`run_harness` - the real thing: the mutated files are written to a temporary copy, and
  ``m2kt conformance run``'s harness drives the copy, as a separate process, through every vector
  of the verifier profile (reader vectors included). Every killing vector is recorded.
* :func:`run_inprocess` - the fast form (independent mutants only): the mutated modules are
  executed in this process and each vector's request is handled by a direct call, the recorded
  killer first; it stops at the first killing vector. What the tests run.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "conformance"
INDEPENDENT = SUITE / "independent"
INDEPENDENT_FILES = ("m2kt_indep.py", "m2kt_indep_verify.py")
#: The profile every mutant runs under: the verifier's vectors include every reader vector.
PROFILE = "verifier"


@dataclass(frozen=True)
class Mutant:
    """One single-rule change.

    Args:
        id: stable name, ``area-what-breaks``.
        rule: the requirement it breaks, as ``FILE §N: what the rule says``.
        target: the file changed, relative to the repository root
            (``conformance/independent/...`` or ``m2kt_ref/...``).
        find: text that occurs exactly once in ``target``.
        replace: what replaces it.
        more: further (find, replace) pairs of the same change, for a rule that a one-place
            edit cannot break (moving a check, for instance).
    """

    id: str
    rule: str
    target: str
    find: str
    replace: str
    more: tuple[tuple[str, str], ...] = ()

    @property
    def reference(self) -> bool:
        """Whether the mutant changes the reference library rather than the independent one."""
        return self.target.startswith("m2kt_ref/")

    def mutated_source(self) -> str:
        """The target file with the change applied.

        Raises:
            ValueError: when ``find`` does not occur exactly once (the mutant has gone stale).
        """
        text = (ROOT / self.target).read_text(encoding="utf-8")
        for find, replace in ((self.find, self.replace), *self.more):
            count = text.count(find)
            if count != 1:
                raise ValueError(f"mutant {self.id}: the text to replace occurs {count} times")
            text = text.replace(find, replace)
        return text


@dataclass
class Verdict:
    """What running the suite against one mutant gave."""

    mutant: Mutant
    killers: list[str] = field(default_factory=list)
    ran: int = 0
    seconds: float = 0.0
    detail: str = ""

    @property
    def killed(self) -> bool:
        return bool(self.killers)


@functools.cache
def _vectors() -> tuple[Any, ...]:
    """The verifier profile's vectors, loaded (and checked against the manifest) once."""
    from m2kt_ref.conformance.vectors import load_vectors

    return tuple(load_vectors(SUITE, profile=PROFILE))


# --------------------------------------------------------------------------- harness


def _copy_for(mutant: Mutant, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Write the mutated implementation under ``workdir``; (command, extra environment)."""
    if mutant.reference:
        package = workdir / "m2kt_ref"
        # symlinks followed: the schemas and vectors are links relative to the source tree
        shutil.copytree(ROOT / "m2kt_ref", package, ignore=shutil.ignore_patterns("__pycache__"))
        (workdir / mutant.target).write_text(mutant.mutated_source(), encoding="utf-8")
        # the copy goes first on the path, ahead of the editable install's finder
        code = (
            f"import sys; sys.path.insert(0, {str(workdir)!r}); "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
            "from m2kt_ref.cli import main; sys.exit(main(['conformance', 'adapter']))"
        )
        return [sys.executable, "-c", code], {}
    for name in INDEPENDENT_FILES:
        shutil.copy(INDEPENDENT / name, workdir / name)
    (workdir / Path(mutant.target).name).write_text(mutant.mutated_source(), encoding="utf-8")
    return [sys.executable, str(workdir / "m2kt_indep.py")], {
        "M2KT_SCHEMA_DIR": str(ROOT / "schemas")
    }


def run_harness(mutant: Mutant, only: Sequence[str] | None = None) -> Verdict:
    """Run the suite's harness against a temporary copy of the mutated implementation."""
    import os

    from m2kt_ref.conformance.harness import run_suite

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="m2kt-mutant-") as tmp:
        command, env = _copy_for(mutant, Path(tmp))
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            report = run_suite(
                command, PROFILE, suite_dir=SUITE, only=list(only) if only else None, timeout=20
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    killers = [o.id for o in report.outcomes if o.status in ("fail", "errored")]
    first = next((o for o in report.outcomes if o.status in ("fail", "errored")), None)
    return Verdict(
        mutant,
        killers,
        ran=len(report.outcomes),
        seconds=time.monotonic() - started,
        detail=first.detail if first else "",
    )


# --------------------------------------------------------------------------- in process


@contextmanager
def _independent_modules(mutant: Mutant | None) -> Iterator[types.ModuleType]:
    """The independent implementation's two modules, executed afresh from (mutated) source and
    registered under their own names for as long as the context lasts."""
    names = ("m2kt_indep", "m2kt_indep_verify")
    saved = {n: sys.modules.get(n) for n in names}
    try:
        modules = {}
        for name in names:
            path = INDEPENDENT / f"{name}.py"
            rel = str(path.relative_to(ROOT))
            source = (
                mutant.mutated_source()
                if mutant is not None and mutant.target == rel
                else path.read_text(encoding="utf-8")
            )
            module = types.ModuleType(name)
            module.__file__ = str(path)
            sys.modules[name] = module
            exec(compile(source, str(path), "exec"), module.__dict__)
            modules[name] = module
        yield modules["m2kt_indep"]
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def run_inprocess(mutant: Mutant, first: Sequence[str] = ()) -> Verdict:
    """Handle the vectors' requests with the mutated independent modules in this process, the
    ``first`` ids before the others, stopping at the first vector that kills the mutant."""
    from m2kt_ref.conformance.harness import materialise
    from m2kt_ref.conformance.protocol import judge

    if mutant.reference:
        raise ValueError(f"{mutant.id} changes the reference; run it with run_harness")
    started = time.monotonic()
    order = {vid: i for i, vid in enumerate(first)}
    vectors = sorted(_vectors(), key=lambda v: order.get(v.id, len(order)))
    verdict = Verdict(mutant)
    with (
        tempfile.TemporaryDirectory(prefix="m2kt-mutant-") as tmp,
        _independent_modules(mutant) as indep,
    ):
        for v in vectors:
            verdict.ran += 1
            try:
                result = indep.handle(v.op, materialise(v.input, Path(tmp)))
                problem = judge(v.expected, result, v.op)
            except Exception as exc:  # a crash of the mutant is an errored vector
                problem = f"errored: {type(exc).__name__}: {exc}"
            if problem is not None:
                verdict.killers.append(v.id)
                verdict.detail = problem
                break
    verdict.seconds = time.monotonic() - started
    return verdict
