"""spec/errors.md lists exactly the codes of ``m2kt_ref.errors.REGISTRY``, and stays generated.

Other engineers add codes over time; the table is regenerated with one command, named in every
failure message below.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import spec_tables  # tools/, on the path through conftest

from m2kt_ref import errors

ROOT = Path(__file__).resolve().parents[1]
ERRORS_MD = ROOT / "spec" / "errors.md"
FIX = f"regenerate with: {spec_tables.REGENERATE}"


def registry_rows() -> list[list[str]]:
    block = spec_tables.generated_blocks(ERRORS_MD.read_text(encoding="utf-8"))["errors"]
    rows = []
    for line in block.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def test_the_table_lists_every_registered_code_once_in_order() -> None:
    codes = [row[0].strip("`") for row in registry_rows()]
    assert codes == list(errors.REGISTRY), FIX


def test_the_table_gives_each_code_its_meaning_and_family() -> None:
    families = {code: errors.family_of(code) for code in errors.REGISTRY}
    for code, family, meaning, where in registry_rows():
        code = code.strip("`")
        assert meaning == errors.REGISTRY[code], f"{code}: {FIX}"
        assert family.strip("`") == families[code].__name__, f"{code}: {FIX}"
        assert where, code


def test_the_table_is_exactly_what_the_generator_writes() -> None:
    block = spec_tables.generated_blocks(ERRORS_MD.read_text(encoding="utf-8"))["errors"]
    assert block == spec_tables.error_table() + "\n", FIX


def test_every_code_belongs_to_one_family() -> None:
    families = {code: errors.family_of(code) for code in errors.REGISTRY}
    assert set(families) == set(errors.REGISTRY)
    for code, family in families.items():
        assert issubclass(family, errors.M2ktError)
        assert isinstance(errors.error_for(code, "x"), (ValueError, OSError)), code


def test_codes_are_upper_snake_case() -> None:
    for code in errors.REGISTRY:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", code), code


def test_every_packet_code_is_raised_somewhere_in_the_spec() -> None:
    """Codes with a step in RAISED_AT are the packet format's: packet-1.1.md must name them."""
    text = (ROOT / "spec" / "packet-1.1.md").read_text(encoding="utf-8")
    for code, where in spec_tables.RAISED_AT.items():
        assert code in errors.REGISTRY, f"RAISED_AT names unregistered code {code}"
        if "§10" in where:
            assert f"`{code}`" in text, f"packet-1.1.md never names {code}"


def test_the_regeneration_command_prints_and_rewrites(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "spec_tables.py"), "--error-table"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out == spec_tables.error_table() + "\n"
    stale = tmp_path / "errors.md"
    stale.write_text(
        "x\n<!-- BEGIN GENERATED: errors -->\nold\n<!-- END GENERATED: errors -->\ny\n",
        encoding="utf-8",
    )
    assert spec_tables.main(["--check", str(stale)]) == 1
    assert spec_tables.main(["--write", str(stale)]) == 0
    assert spec_tables.main(["--check", str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("x\n") and text.endswith("y\n")
    assert spec_tables.generated_blocks(text)["errors"] == spec_tables.error_table() + "\n"
