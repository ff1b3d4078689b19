"""The public API: both ``__all__`` lists resolve, are documented, and their examples run.

``m2kt_ref`` (the format, torch-free) and ``m2kt_ref.transfer`` (the algorithms, torch,
imported lazily) name their public objects in ``__all__``. Every public function and the main
classes carry a Google-style docstring with ``Args:`` and ``Returns:`` where the signature calls
for them and an ``Example:`` whose doctest runs here, so the examples cannot drift from the code.
"""

from __future__ import annotations

import ast
import doctest
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import m2kt_ref
import m2kt_ref.transfer as transfer  # torch-free: its names are imported on first use

ROOT = Path(__file__).resolve().parents[1]

#: Public classes whose docstrings must document their constructor and show an example.
FORMAT_CLASSES = (
    "Derivation",
    "EncodedTensor",
    "Limits",
    "OperatorEntry",
    "Packet",
    "PublicKey",
    "SigningKey",
    "TraceSelection",
    "TrustStore",
    "TrustedKey",
    "VerificationResult",
)
#: Public format classes documented elsewhere on purpose: the body model mirrors the schemas
#: (spec §3), and the errors are the spec's registry (spec/errors.md).
FORMAT_CLASSES_EXEMPT = ("PacketBody",)

FORMAT_FUNCTIONS = tuple(
    name for name in m2kt_ref.__all__ if inspect.isfunction(getattr(m2kt_ref, name))
)
#: Every name of ``m2kt_ref.transfer`` is a function or one of the classes of the brief (or
#: ``TeacherRun``), and all of them are documented.
TRANSFER_DOCUMENTED = tuple(transfer.__all__)

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SECTION = re.compile(r"^(Args|Returns|Yields|Raises|Example|Examples):[ \t]*$", re.MULTILINE)


def _resolve(api: str, name: str) -> Any:
    """The public object ``api.name``; transfer objects need torch (skipped without it)."""
    if api == "m2kt_ref.transfer":
        pytest.importorskip("torch")
        return getattr(transfer, name)
    return getattr(m2kt_ref, name)


# --------------------------------------------------------------------------- (1) names


def test_format_names_resolve():
    assert len(set(m2kt_ref.__all__)) == len(m2kt_ref.__all__)
    missing = [name for name in m2kt_ref.__all__ if not hasattr(m2kt_ref, name)]
    assert not missing


def test_every_public_format_class_is_documented_or_exempt():
    """A new public class must join FORMAT_CLASSES (and be documented) or be exempted here."""
    classes = {
        name
        for name in m2kt_ref.__all__
        if inspect.isclass(getattr(m2kt_ref, name))
        and not issubclass(getattr(m2kt_ref, name), m2kt_ref.M2ktError)
    }
    assert classes == set(FORMAT_CLASSES) | set(FORMAT_CLASSES_EXEMPT)


def test_transfer_all_equals_the_lazy_map():
    assert len(set(transfer.__all__)) == len(transfer.__all__)
    assert set(transfer.__all__) == set(transfer._LAZY)


def test_transfer_type_checking_block_names_the_lazy_map():
    """The eager imports for type checkers name the same objects from the same modules."""
    tree = ast.parse(Path(transfer.__file__).read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    imported: dict[str, str] = {}
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.dump(stmt)
        for alias in stmt.names:
            name = alias.asname or alias.name
            assert name not in imported, f"{name} imported twice"
            imported[name] = stmt.module
    assert set(imported) == set(transfer.__all__)
    assert imported == transfer._LAZY


def test_transfer_names_resolve():
    pytest.importorskip("torch")
    for name in transfer.__all__:
        obj = getattr(transfer, name)
        assert obj.__name__ == name
        assert inspect.isfunction(obj) or inspect.isclass(obj), name
    assert set(transfer.__all__) <= set(dir(transfer))
    with pytest.raises(AttributeError):
        transfer.no_such_name  # noqa: B018


def test_importing_both_apis_loads_no_torch():
    """``import m2kt_ref.transfer`` is lazy, so the checks above run without torch too."""
    program = (
        "import sys, m2kt_ref, m2kt_ref.transfer as mt; "
        "assert len(mt.__all__) == len(mt._LAZY); "
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


# --------------------------------------------------------------------------- (2) docstrings


def _sections(doc: str) -> dict[str, str]:
    """Top-level Google-style sections of a cleaned docstring: title -> body."""
    found = list(SECTION.finditer(doc))
    ends = [m.start() for m in found[1:]] + [len(doc)]
    return {m.group(1): doc[m.end() : end] for m, end in zip(found, ends, strict=True)}


def _documented() -> list[Any]:
    cases = [("m2kt_ref", name) for name in (*FORMAT_FUNCTIONS, *FORMAT_CLASSES)]
    cases += [("m2kt_ref.transfer", name) for name in TRANSFER_DOCUMENTED]
    return [pytest.param(api, name, id=f"{api}.{name}") for api, name in cases]


@pytest.mark.parametrize(("api", "name"), _documented())
def test_public_object_is_documented(api, name):
    obj = _resolve(api, name)
    # __doc__, not inspect.getdoc: a class without a docstring must not pass on its base's
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert doc, f"{api}.{name} has no docstring"
    sections = _sections(doc)
    example = sections.get("Example", sections.get("Examples", ""))
    assert ">>>" in example, f"{api}.{name}: no Example section with a doctest"

    signature = inspect.signature(obj)
    params = [p for n, p in signature.parameters.items() if n not in ("self", "cls")]
    if params:
        assert "Args" in sections, f"{api}.{name}: takes arguments but has no Args section"
        undocumented = [p.name for p in params if not re.search(rf"\b{p.name}\b", sections["Args"])]
        assert not undocumented, f"{api}.{name}: Args does not mention {undocumented}"
    if inspect.isfunction(obj):
        returns = signature.return_annotation
        if returns not in (inspect.Signature.empty, None, "None"):
            wanted = "Yields" if inspect.isgeneratorfunction(obj) else "Returns"
            assert wanted in sections, f"{api}.{name}: returns a value but has no {wanted}"


# --------------------------------------------------------------------------- (3) examples


def _doctest_cases() -> list[Any]:
    cases = [pytest.param("m2kt_ref", None, id="m2kt_ref")]
    cases += [
        pytest.param("m2kt_ref", name, id=f"m2kt_ref.{name}")
        for name in m2kt_ref.__all__
        if inspect.isfunction(getattr(m2kt_ref, name)) or inspect.isclass(getattr(m2kt_ref, name))
    ]
    cases.append(pytest.param("m2kt_ref.transfer", None, id="m2kt_ref.transfer"))
    cases += [
        pytest.param("m2kt_ref.transfer", name, id=f"m2kt_ref.transfer.{name}")
        for name in transfer.__all__
    ]
    return cases


@pytest.mark.parametrize(("api", "name"), _doctest_cases())
def test_docstring_examples_run(api, name):
    """Each public object's examples (its methods' included), with empty globals: an example
    imports what it uses, as a reader would."""
    if name is None:  # the package docstring alone, not the objects it re-exports
        if api == "m2kt_ref.transfer":
            pytest.importorskip("torch")
        obj, label, recurse = (m2kt_ref if api == "m2kt_ref" else transfer), api, False
    else:
        obj, label, recurse = _resolve(api, name), f"{api}.{name}", True
    tests = doctest.DocTestFinder(recurse=recurse).find(obj, label, globs={})
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    failed = 0
    for test in sorted(tests, key=lambda t: t.name):
        failed += runner.run(test, out=report.append).failed
    assert not failed, "".join(report)
