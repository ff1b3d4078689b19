"""The Python examples in the docs run: each page's ``python`` blocks, in order, in one namespace.

A block fenced as ``python`` runs; fence a block ``python notest`` to show code that should not
run here (a GPU, a large download). Each page runs in its own temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"docs/library.md": ("torch",), "docs/huggingface.md": ("torch", "transformers")}
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(text)]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_examples_of_a_page_run(page: str, tmp_path: Path, monkeypatch, capsys) -> None:
    for module in PAGES[page]:
        pytest.importorskip(module)
    blocks = python_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page} block {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    for expected in re.findall(r"print\([^)]*\)\s*#\s*(\S+)$", "".join(blocks), re.M):
        if "," not in expected:
            assert expected in printed, f"{page}: expected {expected!r} in {printed!r}"
