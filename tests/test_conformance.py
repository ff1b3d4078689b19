"""The conformance suite: vectors, generator, harness, reference adapter, independent
implementation, and the deliberately broken fakes the harness must catch.

The harness runs are started together on a thread pool by one session fixture (each run is a
separate process; the harness itself mostly waits), then each test asserts on its report.
"""

from __future__ import annotations

import ast
import base64
import filecmp
import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from m2kt_ref.cli import main
from m2kt_ref.conformance import (
    PROFILES,
    Report,
    json_report,
    judge,
    junit_report,
    load_manifest,
    load_vectors,
    run_suite,
    text_report,
)
from m2kt_ref.conformance.adapter import serve
from m2kt_ref.conformance.protocol import load_schema, message_problem
from m2kt_ref.errors import REGISTRY, DistributedError, IngestError, M2ktError

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
FAKES = SUITE / "fakes"
REFERENCE = [
    sys.executable,
    "-c",
    "import sys; from m2kt_ref.cli import main; sys.exit(main(sys.argv[1:]))",
    "conformance",
    "adapter",
]
INDEPENDENT = [sys.executable, str(SUITE / "independent" / "m2kt_indep.py")]


def fake(name: str, *args: str) -> list[str]:
    return [sys.executable, str(FAKES / f"{name}.py"), *args]


#: name -> (command, profile, timeout): every harness run the tests below look at.
RUNS = {
    "reference-reader": (REFERENCE, "reader", 20.0),
    "reference-verifier": (REFERENCE, "verifier", 20.0),
    "reference-producer": (REFERENCE, "producer", 20.0),
    "independent-reader": (INDEPENDENT, "reader", 20.0),
    "independent-verifier": (INDEPENDENT, "verifier", 20.0),
    "skip-signatures": (fake("skip_signatures"), "verifier", 20.0),
    "accept-nan": (fake("accept_nan"), "reader", 20.0),
    "ignore-key-order": (fake("ignore_key_order"), "verifier", 20.0),
    "crash": (fake("crash"), "reader", 20.0),
    "hang": (fake("hang"), "reader", 0.5),
    "garbage": (fake("garbage"), "reader", 20.0),
}


@pytest.fixture(scope="session")
def reports() -> dict[str, Report]:
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run_suite, cmd, profile, timeout=timeout)
            for name, (cmd, profile, timeout) in RUNS.items()
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="session")
def vectors() -> list:
    return load_vectors()


def ids(report: Report, status: str) -> set[str]:
    return {o.id for o in report.outcomes if o.status == status}


def of_profile(vectors: list, profile: str) -> list:
    return [v for v in vectors if profile in v.profiles]


# --------------------------------------------------------------------------- the vectors


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    """The generator is deterministic and the committed files are what it writes today; it also
    cross-checks every vector with the reference, the independent implementation and pycose."""
    subprocess.run(
        [sys.executable, str(SUITE / "generate"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert (tmp_path / "manifest.json").read_bytes() == (SUITE / "manifest.json").read_bytes()
    fresh = sorted(p.name for p in (tmp_path / "vectors").iterdir())
    committed = sorted(p.name for p in (SUITE / "vectors").iterdir())
    assert fresh == committed
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "vectors", SUITE / "vectors", fresh, shallow=False
    )
    assert not mismatch and not errors, f"regenerate the vectors: {mismatch[:5]}"


def test_schemas_are_valid_and_used(vectors: list) -> None:
    for name in ("conformance-manifest", "conformance-protocol"):
        jsonschema.Draft202012Validator.check_schema(load_schema(name))
    manifest = load_manifest()  # validated against its schema
    assert len(manifest["vectors"]) == len(vectors)
    assert {v["id"] for v in manifest["vectors"]} == {v.id for v in vectors}


def test_every_registry_code_has_a_vector(vectors: list) -> None:
    covered = {v.expect for v in vectors}
    # ingestion outcomes and distributed runs: no reader/verifier profile has them
    student_side = IngestError.codes | DistributedError.codes
    missing = set(REGISTRY) - covered - student_side
    assert missing == set(), "codes without a vector: re-run conformance/generate"
    assert covered - {"valid"} <= set(REGISTRY)


def test_the_suite_covers_what_it_promises(vectors: list) -> None:
    assert len(vectors) >= 100
    for profile in PROFILES:
        mine = of_profile(vectors, profile)
        assert any(v.expect == "valid" for v in mine) and any(v.expect != "valid" for v in mine)
    valid = [v for v in vectors if v.op == "decode" and v.expect == "valid"]
    dtypes = {t["dtype"] for v in valid for t in v.expected["summary"]["tensors"]}
    assert dtypes == {"f32", "f16", "bf16", "i8"}
    assert any(
        v.expected["summary"]["counts"]["anchors"] and v.expected["summary"]["extensions"]
        for v in valid
    )
    tags = [t for v in vectors for t in v.tags]
    for tag, at_least in {
        "truncation": 10,
        "unsorted-keys": 2,
        "non-minimal": 4,
        "indefinite": 3,
        "duplicate-key": 3,
        "nonfinite": 8,
        "dimension": 3,
        "dangling": 5,
        "cycle": 3,
        "limits": 10,
        "multi-signer": 4,
        "extension-noncritical": 2,
        "extension-critical": 2,
        "bad-signature": 4,
        "untrusted": 2,
        "json-form": 4,
        "every-dtype": 2,
        "shape": 2,
    }.items():
        assert tags.count(tag) >= at_least, tag
    cut = {v.mutation["detail"] for v in vectors if "truncation" in v.tags and v.mutation}
    assert len(cut) >= 10
    assert all(v.spec and v.description for v in vectors)


def test_signed_vectors_record_what_was_signed(vectors: list) -> None:
    """The intermediate values of valid verify vectors: the exact Sig_structure bytes each
    signer signed, which pynacl verifies under the signer's key."""
    import nacl.signing

    from m2kt_ref.packet.signing import sig_structure

    checked = 0
    for v in vectors:
        if v.op != "verify" or v.expect != "valid":
            continue
        payload = bytes.fromhex(v.intermediate["cose_payload_hex"])
        assert payload.hex() == v.expected["packet_id"]
        for row in v.intermediate["signers"]:
            message = bytes.fromhex(row["sig_structure_hex"])
            assert message == sig_structure(bytes.fromhex(row["protected_hex"]), payload)
            key = nacl.signing.VerifyKey(bytes.fromhex(row["public_key_hex"]))
            key.verify(message, bytes.fromhex(row["signature_hex"]))
            checked += row["kid"] in v.expected["signers"]
    assert checked >= 8


def test_spec_sections_named_by_vectors_exist(vectors: list) -> None:
    spec = ROOT / "spec"
    missing = []
    for ref in sorted({r for v in vectors for r in v.spec}):
        name, section = ref.split(" §")
        path = spec / name
        if not path.exists():
            missing.append(ref)
            continue
        text = path.read_text(encoding="utf-8")
        heads = [line for line in text.splitlines() if line.startswith("#")]
        if not any(
            f" {section} " in h or f" {section}." in h or h.endswith(f" {section}") for h in heads
        ):
            missing.append(ref)
    assert not missing, f"vectors cite sections the spec lacks: {missing}"


# --------------------------------------------------------------------------- implementations


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_reference_adapter_passes_every_profile(
    reports: dict[str, Report], vectors: list, profile: str
) -> None:
    report = reports[f"reference-{profile}"]
    assert report.ok, text_report(report)
    assert report.counts()["pass"] == len(of_profile(vectors, profile))
    assert report.implementation["name"] == "m2kt_ref"
    assert report.restarts == 0


@pytest.mark.parametrize("profile", ["reader", "verifier"])
def test_the_independent_implementation_passes(
    reports: dict[str, Report], vectors: list, profile: str
) -> None:
    report = reports[f"independent-{profile}"]
    assert report.ok, text_report(report)
    assert report.counts()["pass"] == len(of_profile(vectors, profile))


def test_the_independent_implementation_imports_no_reference_code() -> None:
    imports = re.compile(r"^\s*(from|import)\s+(m2kt_ref|cbor2)\b", re.MULTILINE)
    for path in (SUITE / "independent").glob("*.py"):
        assert not imports.search(path.read_text(encoding="utf-8")), path
    code = "import sys, m2kt_indep, m2kt_indep_verify; print(sorted(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=SUITE / "independent",
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout
    loaded = ast.literal_eval(out)
    # the editable install's path finder is named after the package; it is not the package
    assert not [m for m in loaded if m.split(".")[0] in ("m2kt_ref", "cbor2")], loaded


def test_the_independent_implementation_refuses_the_producer_profile() -> None:
    with pytest.raises(M2ktError) as exc:
        run_suite(INDEPENDENT, "producer", only=["p-produce-minimal"])
    assert exc.value.code == "USAGE" and "producer" in exc.value.message


# --------------------------------------------------------------------------- the fakes


def test_a_verifier_that_skips_signature_checks_is_caught(
    reports: dict[str, Report], vectors: list
) -> None:
    report = reports["skip-signatures"]
    assert not report.ok
    want = {v.id for v in of_profile(vectors, "verifier") if v.expect == "SIGNATURE_INVALID"}
    assert want == {
        "v-payload-rewritten",
        "v-signature-bit-flip",
        "v-signature-by-other-key",
        "v-second-signature-invalid",
        "v-signature-noncanonical-s",
        "v-signature-small-order-r",
        "v-signature-mixed-torsion-r",
        "v-untrusted-cosigner-invalid",
    }
    assert ids(report, "fail") == want
    assert ids(report, "errored") == set()


def test_a_reader_that_accepts_nan_is_caught(reports: dict[str, Report], vectors: list) -> None:
    report = reports["accept-nan"]
    want = {v.id for v in of_profile(vectors, "reader") if v.expect == "NONFINITE_VALUE"}
    assert len(want) >= 10
    assert ids(report, "fail") == want
    assert ids(report, "errored") == set()
    by_id = {o.id: o for o in report.outcomes}
    assert by_id["r-nonfinite-tensor-bf16-nan"].actual == "valid"
    assert "expected NONFINITE_VALUE" in by_id["r-nonfinite-tensor-bf16-nan"].detail


def test_a_reader_that_ignores_key_order_is_caught(reports: dict[str, Report]) -> None:
    report = reports["ignore-key-order"]
    assert ids(report, "fail") == {
        "r-noncanonical-unsorted-body-keys",
        "r-noncanonical-unsorted-nested-keys",
        "v-malformed-unsorted-header",
    }
    assert ids(report, "errored") == set()


def test_a_crashing_implementation_is_restarted(reports: dict[str, Report], vectors: list) -> None:
    report = reports["crash"]
    want = {v.id for v in of_profile(vectors, "reader") if v.input.get("values")}
    assert len(want) >= 5
    assert ids(report, "errored") == want
    assert ids(report, "fail") == set()
    assert report.restarts == len(want)
    detail = next(o.detail for o in report.outcomes if o.status == "errored")
    assert "exited with status 3" in detail and "fake-crash: crashing on" in detail


def test_a_hanging_implementation_times_out(reports: dict[str, Report]) -> None:
    report = reports["hang"]
    assert ids(report, "errored") == {"r-valid-full-from-file", "r-io-missing-file"}
    assert ids(report, "fail") == set()
    assert all("timed out" in o.detail for o in report.outcomes if o.status == "errored")


def test_garbage_replies_are_errors(reports: dict[str, Report], vectors: list) -> None:
    report = reports["garbage"]
    reader = of_profile(vectors, "reader")
    not_json = {v.id for v in reader if "file" in v.input}
    bad_outcome = {v.id for v in reader if "max_depth" in v.input.get("limits", {})}
    wrong_seq = {v.id for v in reader if v.input.get("values")}
    assert not_json and bad_outcome and wrong_seq
    assert ids(report, "errored") == not_json | bad_outcome | wrong_seq
    assert ids(report, "fail") == set()
    details = {o.id: o.detail for o in report.outcomes}
    assert all("not JSON" in details[i] for i in not_json)
    assert all("malformed reply" in details[i] for i in bad_outcome)
    assert all(details[i].startswith("reply for seq") for i in wrong_seq)


def test_an_implementation_that_never_starts(vectors: list) -> None:
    only = [v.id for v in of_profile(vectors, "reader")][:5]
    report = run_suite(fake("crash", "--at-start"), "reader", only=only, timeout=5)
    assert [o.status for o in report.outcomes] == ["errored"] * 5
    assert report.outcomes[0].detail.startswith("start failed: implementation exited with status")
    assert "not run" in report.outcomes[-1].detail
    assert not report.ok
    report = run_suite(fake("garbage", "--bad-handshake"), "reader", only=only[:2], timeout=5)
    assert all("malformed start reply" in o.detail for o in report.outcomes)
    report = run_suite(["/nonexistent/implementation"], "reader", only=only[:1])
    assert "cannot start" in report.outcomes[0].detail


# --------------------------------------------------------------------------- harness pieces


def test_reports_in_every_format(reports: dict[str, Report], vectors: list) -> None:
    report = reports["crash"]
    doc = json.loads(json_report(report))
    assert doc["ok"] is False and doc["counts"]["errored"] == len(ids(report, "errored"))
    suite = ET.fromstring(junit_report(report, vectors))
    assert suite.get("errors") == str(len(ids(report, "errored")))
    assert len(suite.findall("testcase")) == len(report.outcomes)
    text = text_report(reports["accept-nan"], vectors)
    assert "FAIL     r-nonfinite-body-nan: expected NONFINITE_VALUE, got valid" in text
    assert text.endswith("FAILED")


def test_the_cli_runs_lists_and_exits_by_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = ["r-valid-minimal", "r-truncated-0000"]
    assert (
        main(
            [
                "conformance",
                "run",
                "--impl",
                " ".join(INDEPENDENT),
                "--profile",
                "reader",
                "--only",
                *only,
                "-v",
            ]
        )
        == 0
    )
    assert "PASS     r-valid-minimal" in capsys.readouterr().out
    out = tmp_path / "report.xml"
    cmd = " ".join(fake("accept_nan"))
    code = main(
        [
            "conformance",
            "run",
            "--impl",
            cmd,
            "--profile",
            "reader",
            "--report",
            "junit",
            "--only",
            "r-nonfinite-tensor-f32-nan",
            "-o",
            str(out),
        ]
    )
    assert code == 1 and ET.parse(out).getroot().get("failures") == "1"
    assert main(["conformance", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["profiles"]["reader"]["vectors"] == len(load_vectors(profile="reader"))
    assert main(["conformance", "list", "--profile", "producer"]) == 0
    assert "p-produce-full" in capsys.readouterr().out
    assert main(["conformance", "run", "--impl", cmd, "--profile", "reader", "--only", "x"]) == 1
    assert "USAGE: no vector with id 'x'" in capsys.readouterr().err


def test_the_adapter_speaks_the_protocol(vectors: list) -> None:
    chosen = [v for v in vectors if v.id in ("r-valid-dtype-i8", "p-produce-minimal")]
    lines = [{"cmd": "start", "protocol": 1, "profile": "reader"}]
    lines += [
        {"cmd": "run", "seq": i, "id": v.id, "op": v.op, "input": v.input}
        for i, v in enumerate(chosen)
    ]
    lines.append({"cmd": "stop"})
    for message, kind in zip(lines, ["start", "run", "run", "stop"], strict=True):
        assert message_problem(kind, message) is None
    stdout = io.StringIO()
    assert serve(io.StringIO("\n".join(json.dumps(m) for m in lines) + "\n"), stdout) == 0
    replies = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert message_problem("started", replies[0]) is None
    for reply, v in zip(replies[1:], chosen, strict=True):
        assert message_problem("reply", reply) is None
        assert judge(v.expected, reply["result"], v.op) is None


def test_judge_compares_values_with_a_tolerance_and_bytes_exactly(vectors: list) -> None:
    v = next(v for v in vectors if v.id == "r-valid-dtype-i8")
    result = {
        "outcome": "valid",
        "packet_id": v.expected["packet_id"],
        "summary": json.loads(json.dumps(v.expected["summary"])),
    }
    values = result["summary"]["tensor_values"]["e"]
    values[0] *= 1 + 1e-9
    assert judge(v.expected, result, "decode") is None
    values[0] *= 1.001
    assert "tensor_values[e][0]" in judge(v.expected, result, "decode")
    p = next(v for v in vectors if v.id == "p-produce-minimal")
    emitted = bytearray(base64.b64decode(p.expected["packet_b64"]))
    emitted[10] ^= 1
    got = {"outcome": "valid", "packet_b64": base64.b64encode(bytes(emitted)).decode()}
    assert "first difference at 10" in judge(p.expected, got, "produce")
