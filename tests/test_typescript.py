"""The TypeScript implementation (implementations/typescript) against this repository.

Both conformance profiles run through the harness against its adapter, and its packet viewer,
in a real headless Chromium, must show for a packet made by ``m2kt generate`` the verification
result that ``m2kt verify`` reports. The package must be built first
(``cd implementations/typescript && npm ci && npm run build``); without it the tests skip, unless
``M2KT_REQUIRE_TYPESCRIPT=1`` (set by ``.ci/run``), which makes a missing build a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "implementations" / "typescript"
ADAPTER = PACKAGE / "dist" / "adapter.js"
PROBE = PACKAGE / "build" / "test-browser" / "viewer-probe.js"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("M2KT_REQUIRE_TYPESCRIPT") == "1"


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"M2KT_REQUIRE_TYPESCRIPT=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def built() -> None:
    _require(NODE is not None, "node is not installed")
    _require(
        ADAPTER.exists() and PROBE.exists(),
        "the TypeScript package is not built "
        "(cd implementations/typescript && npm ci && npm run build)",
    )


def m2kt(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Runs the `m2kt` command of this environment."""
    command = [str(Path(sys.executable).parent / "m2kt"), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("profile", ["reader", "verifier"])
def test_typescript_passes_the_profile(built: None, profile: str, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    impl = f"{shlex.quote(str(NODE))} {shlex.quote(str(ADAPTER))}"
    run = m2kt(
        "conformance",
        "run",
        "--impl",
        impl,
        "--profile",
        profile,
        "--report",
        "json",
        "-o",
        report_file,
    )
    report = json.loads(report_file.read_text())
    manifest = json.loads((ROOT / "conformance" / "manifest.json").read_text())
    vectors = sum(profile in v["profiles"] for v in manifest["vectors"])
    assert report["counts"] == {"pass": vectors, "fail": 0, "skipped": 0, "errored": 0}, run.stdout
    assert report["implementation"]["language"].startswith("typescript")
    assert run.returncode == 0


def _jwk_trust_store(path: Path, *pub_files: Path) -> Path:
    """A JSON trust store (spec/signing.md §6.1) listing the keys of `.pub` files."""
    keys = []
    for pub in pub_files:
        x = cbor2.loads(pub.read_bytes())[-2]
        keys.append(
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "name": pub.stem,
                "x": base64.urlsafe_b64encode(x).rstrip(b"=").decode(),
            }
        )
    path.write_text(json.dumps({"keys": keys}))
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packet made by `m2kt generate` from a quickly trained teacher, signed by alice."""
    work = tmp_path_factory.mktemp("viewer")
    for args in (
        (
            "train-teacher",
            "--task",
            "modular",
            "--opt",
            "p=5",
            "--out",
            "teacher",
            "--scale",
            "quick",
            "--no-progress",
        ),
        ("keygen", "-o", "alice"),
        ("keygen", "-o", "bob"),
        (
            "generate",
            "--teacher",
            "teacher",
            "-o",
            "packet.m2kt",
            "--traces",
            "4",
            "--key",
            "alice.key",
            "--created",
            "2026-01-01T00:00:00Z",
        ),
    ):
        run = m2kt(*args, cwd=work)
        assert run.returncode == 0, run.stderr
    return work


def test_viewer_shows_what_m2kt_verify_reports(built: None, generated: Path) -> None:
    _require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    work = generated
    packet = work / "packet.m2kt"
    scenarios = [
        {"name": "trusted", "trust": _jwk_trust_store(work / "t1.json", work / "alice.pub")},
        {"name": "untrusted", "trust": _jwk_trust_store(work / "t2.json", work / "bob.pub")},
        {
            "name": "two required",
            "min_signers": 2,
            "trust": _jwk_trust_store(work / "t3.json", work / "alice.pub", work / "bob.pub"),
        },
    ]
    screenshot = Path(os.environ.get("M2KT_VIEWER_SCREENSHOT", work / "viewer.png")).resolve()
    spec = work / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "packet": str(packet),
                "screenshot": str(screenshot),
                "scenarios": [{**s, "trust": str(s["trust"])} for s in scenarios],
            }
        )
    )
    probe = subprocess.run(
        [NODE, PROBE, spec],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    assert probe.returncode == 0, probe.stderr
    shown = json.loads(probe.stdout)
    assert shown["problems"] == []

    inspected = json.loads(m2kt("inspect", packet, "--json").stdout)
    for scenario, page in zip(scenarios, shown["results"], strict=True):
        verify = m2kt(
            "verify",
            packet,
            "--trust",
            scenario["trust"],
            "--min-signers",
            str(scenario.get("min_signers", 1)),
            "--json",
        )
        [expected] = json.loads(verify.stdout)
        assert page["valid"] is expected["valid"] is (verify.returncode == 0)
        assert page["verdict"] == ("VALID" if expected["valid"] else "INVALID")
        assert page["packet_id"] == expected["packet_id"]
        counted, required = expected["counted"], expected["required"]
        assert page["counted"] == f"{counted} counted of {required} required"
        assert page["errors"] == [e["code"] for e in expected["errors"]]
        assert page["signers"] == [
            {"kid": s["kid"], "trusted": s["trusted"], "counted": s["counted"]}
            for s in expected["signers"]
        ]
        assert page["concepts_drawn"] == page["nodes_drawn"] == inspected["concepts"]["count"]
        assert page["edges_drawn"] == inspected["graph"]["edges"]
        n = len(inspected["traces"]["examples"][0]["steps"])
        assert page["trace_steps"] == [f"step {i} of {n}" for i in range(1, n + 1)]
        assert inspected["provenance"]["generator"]["name"] in page["provenance"]
    assert [r["valid"] for r in shown["results"]] == [True, False, False]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
