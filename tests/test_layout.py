"""The package's architecture holds: import boundaries read from the tree, and a wheel that works
without the source tree.

The boundary test is generated from the files on disk, not from a hand-kept list: every module
under a layer is parsed and every import it makes (at the top or inside a function) is checked
against what that layer may depend on.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "m2kt_ref"

#: Third-party packages only the algorithms may use.
ALGORITHM_ONLY = (
    "torch",
    "safetensors",
    "scipy",
    "matplotlib",
    "tqdm",
    "transformers",
    "tokenizers",
)
#: Optional packages (the ``hf`` extra) that only ``m2kt_ref.transfer.hf`` may import at module
#: level; elsewhere they are imported inside functions, so the rest runs without them.
HF_ONLY = ("transformers", "tokenizers")
#: Layer -> m2kt_ref subpackages it must not import (dependencies point one way:
#: packet <- conformance; packet <- transfer <- experiments <- cli).
FORBIDDEN_INTERNAL = {
    "packet": ("m2kt_ref.conformance", "m2kt_ref.transfer", "m2kt_ref.experiments", "m2kt_ref.cli"),
    "conformance": ("m2kt_ref.transfer", "m2kt_ref.experiments", "m2kt_ref.cli"),
    "transfer": ("m2kt_ref.conformance", "m2kt_ref.experiments", "m2kt_ref.cli"),
    "experiments": ("m2kt_ref.cli",),
}
#: Layers that must run without the ``torch`` extra.
TORCH_FREE = ("packet", "conformance")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, wherever the import statement sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def layer_files() -> list[tuple[str, Path]]:
    files = [(layer, p) for layer in FORBIDDEN_INTERNAL for p in (PACKAGE / layer).rglob("*.py")]
    # the top-level modules belong to the format half: ``import m2kt_ref`` must stay torch-free
    files += [("packet", p) for p in PACKAGE.glob("*.py")]
    return sorted(files)


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize(
    ("layer", "path"), layer_files(), ids=[str(p.relative_to(ROOT)) for _, p in layer_files()]
)
def test_imports_respect_the_layers(layer: str, path: Path) -> None:
    modules = imported_modules(path)
    forbidden = list(FORBIDDEN_INTERNAL[layer])
    if layer in TORCH_FREE:
        forbidden += ALGORITHM_ONLY
    bad = sorted(m for m in modules for f in forbidden if _is_under(m, f))
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports {bad}"


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside a function or class)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, ast.Try) else [node]:
            if isinstance(sub, ast.Import):
                found.update(alias.name for alias in sub.names)
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                found.add(sub.module)
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if "hf" not in p.relative_to(PACKAGE).parts),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_hf_package_needs_transformers_to_import(path: Path) -> None:
    """``m2kt_ref.transfer.hf`` alone imports the optional ``hf`` extra at module level, so every
    other module (the CLI included) imports without it."""
    bad = sorted(
        m
        for m in _top_level_imports(path)
        for f in (*HF_ONLY, "m2kt_ref.transfer.hf")
        if _is_under(m, f)
    )
    assert not bad, f"{path.relative_to(ROOT)} imports {bad} at module level"


def test_every_module_is_in_a_layer() -> None:
    """A new top-level subpackage must be placed in the layer map above."""
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(FORBIDDEN_INTERNAL) | {"cli"}


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the wheel is built from the tracked files")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [f for f in out.split("\0") if f]


def test_an_installed_wheel_runs_the_conformance_suite_without_the_source_tree(
    tmp_path: Path,
) -> None:
    """``pip wheel .``, install it elsewhere, run the verifier profile from an empty directory.

    The tracked files are copied first (links kept as links), so a stale ``build/`` or an
    untracked file cannot leak into the wheel. The installed copy shadows the editable one
    through ``PYTHONPATH``; the test checks which one was imported.
    """
    src = tmp_path / "src"
    for name in _tracked_files():
        origin, target = ROOT / name, src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            target.symlink_to(os.readlink(origin))
        elif origin.is_file():
            shutil.copy2(origin, target)
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("m2kt_ref-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import m2kt_ref; print(m2kt_ref.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where
    m2kt = [sys.executable, "-m", "m2kt_ref.cli"]
    run = subprocess.run(
        [
            *m2kt,
            "conformance",
            "run",
            "--impl",
            f"{sys.executable} -m m2kt_ref.cli conformance adapter",
            "--profile",
            "verifier",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed" in run.stdout and "PASSED" in run.stdout, run.stdout
