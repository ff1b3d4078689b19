"""``m2kt align`` and ``m2kt ingest``: outputs, files written, exit statuses and error lines."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.packet import codec  # noqa: E402
from m2kt_ref.packet.keys import SigningKey, write_key_pair  # noqa: E402
from m2kt_ref.packet.receipt import read_report, validate_report, verify_receipt  # noqa: E402
from m2kt_ref.packet.trust import TrustStore  # noqa: E402
from m2kt_ref.transfer.model_dir import load_model_dir, weights_digest  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teacher.generate import generate_packet  # noqa: E402
from m2kt_ref.transfer.teachers import teacher_preset, train_teacher  # noqa: E402

OPTS = {"n": 8, "functions": 2, "k": 3}
CREATED = "2026-01-01T00:00:00Z"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A quick chain teacher, a fresh student of another shape, keys, signed and unsigned
    packets."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("student_cli")
    task = make_task("chain", **OPTS)
    preset = teacher_preset("chain", "quick")
    run = train_teacher(
        task,
        scale="quick",
        seed=0,
        progress=False,
        train_config=dataclasses.replace(preset.train, steps=100),
    )
    teacher = run.save(root / "teacher")
    key = SigningKey(bytes(range(32)))
    secret, public = write_key_pair(key, root / "teacher-op")
    operator_secret, operator_public = write_key_pair(SigningKey(bytes([5]) * 32), root / "op")
    signed = root / "signed.m2kt"
    unsigned = root / "unsigned.m2kt"
    result = generate_packet(teacher, traces=4, created=CREATED, key=key)
    codec.write_packet(result.packet, signed)
    codec.write_packet(result.packet.with_signatures(None), unsigned)
    student = root / "student"
    args = ["init-student", "--task", "chain", "--family", "transformer", "--width", "16"]
    args += ["--depth", "2", "--out", str(student)]
    for k, v in OPTS.items():
        args += ["--opt", f"{k}={v}"]
    assert main(args) == 0
    return {
        "root": root,
        "teacher": teacher,
        "student": student,
        "signed": signed,
        "unsigned": unsigned,
        "pub": public,
        "key": secret,
        "op_key": operator_secret,
        "op_pub": operator_public,
    }


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- align ------------------------------------------------------------------------------------


def test_align_json_has_every_method_and_the_curve(files, capsys):
    code, out, _ = cli(capsys, "align", files["signed"], "--student", files["student"], "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc["methods"]) == {"procrustes", "ridge", "mlp"}
    assert doc["teacher_dim"] == 32 and doc["student_dim"] == 16
    assert set(doc["curve"]) == set(doc["methods"])
    assert all(doc["methods"][m]["heldout"]["n"] == doc["n_heldout"] for m in doc["methods"])


def test_align_text_one_method(files, capsys):
    code, out, _ = cli(
        capsys,
        "align",
        files["signed"],
        "--student",
        files["student"],
        "--method",
        "ridge",
        "--curve",
        "2,4",
    )
    assert code == 0
    assert "ridge" in out and "procrustes" not in out
    assert "curve ridge" in out and "2: " in out and "4: " in out


def test_align_usage_errors(files, capsys):
    for extra in (["--curve", "x"], ["--holdout", "1.5"], ["--threads", "0"]):
        code, _, err = cli(capsys, "align", files["signed"], "--student", files["student"], *extra)
        assert code == 1 and err.startswith("USAGE: "), extra


# -- ingest -----------------------------------------------------------------------------------


def test_ingest_writes_the_student_and_a_valid_report(files, capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        out_dir,
        "--trust",
        files["pub"],
        "--steps",
        "8",
        "--json",
        "--no-progress",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report == read_report(out_dir / "report.json")
    validate_report(report)
    assert report["decision"] == "accepted" and report["trust"]["verified"]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "config.json",
        "model.safetensors",
        "record.json",
        "report.json",
    ]
    # the report's digest is the digest of the weights file written
    assert report["student"]["digest_after"] == "sha256:" + weights_digest(out_dir)
    assert report["student"]["digest_before"] == "sha256:" + weights_digest(files["student"])
    loaded = load_model_dir(out_dir)
    assert loaded.net_config.width == 16 and loaded.task_name == "chain"
    (entry,) = loaded.record["ingestions"]
    assert entry["packet_id"] == report["packet"]["id"] and entry["decision"] == "accepted"
    assert report["training"]["steps"] <= 8


def test_ingest_text_summary(files, capsys, tmp_path):
    code, out, _ = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "o",
        "--trust",
        files["pub"],
        "--steps",
        "3",
        "--method",
        "ridge",
        "--set",
        "lambda_struct=0",
    )
    assert code == 0
    assert "verified" in out and "ridge alignment 32 -> 16" in out and "accepted ->" in out
    report = read_report(tmp_path / "o" / "report.json")
    assert report["config"]["lambda_struct"] == 0.0 and report["config"]["steps"] == 3


def test_unsigned_packet_is_refused_with_a_report(files, capsys, tmp_path):
    out_dir = tmp_path / "refused"
    code, _, err = cli(
        capsys,
        "ingest",
        files["unsigned"],
        "--student",
        files["student"],
        "--out",
        out_dir,
        "--trust",
        files["pub"],
    )
    assert code == 1
    assert err.startswith("INGEST_REFUSED: ") and "UNSIGNED" in err
    assert [p.name for p in out_dir.iterdir()] == ["report.json"]  # no student written
    report = read_report(out_dir / "report.json")
    validate_report(report)
    assert report["decision"] == "refused"
    code, _, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "untrusted",
    )
    assert code == 1 and err.startswith("INGEST_REFUSED: ")
    code, _, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "two",
        "--trust",
        files["pub"],
        "--min-signers",
        "2",
    )
    assert code == 1 and "POLICY_UNMET" in err


def test_allow_unverified_is_explicit_and_recorded(files, capsys, tmp_path):
    code, _, err = cli(
        capsys,
        "ingest",
        files["unsigned"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "o",
        "--allow-unverified",
        "--steps",
        "3",
    )
    assert code == 0, err
    trust = read_report(tmp_path / "o" / "report.json")["trust"]
    assert trust["allow_unverified"] and not trust["verified"]


def test_rollback_exits_3_and_keeps_the_original_student(files, capsys, tmp_path):
    out_dir = tmp_path / "rolled"
    code, out, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["teacher"],
        "--out",
        out_dir,
        "--trust",
        files["pub"],
        "--steps",
        "5",
        "--protect-problems",
        "40",
        "--set",
        "max_output_divergence=0",
        "--set",
        "lambda_safe=0",
    )
    assert code == 3
    assert err.strip().splitlines()[-1].startswith("INGEST_ROLLED_BACK: ")
    report = read_report(out_dir / "report.json")
    validate_report(report)
    assert report["decision"] == "rolled_back"
    assert report["safety"]["capability_rows"] == 40
    assert weights_digest(out_dir) == weights_digest(files["teacher"])
    assert "rolled_back ->" in out
    code, _, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["teacher"],
        "--out",
        tmp_path / "kept",
        "--trust",
        files["pub"],
        "--steps",
        "5",
        "--protect-problems",
        "40",
        "--set",
        "max_output_divergence=0",
        "--set",
        "rollback=false",
    )
    assert code == 3 and "warning: ingestion kept_unsafe" in err


def test_signed_report_is_a_verifiable_receipt(files, capsys, tmp_path):
    out_dir = tmp_path / "receipt"
    code, _, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        out_dir,
        "--trust",
        files["pub"],
        "--steps",
        "3",
        "--sign-key",
        files["op_key"],
    )
    assert code == 0, err
    report = read_report(out_dir / "report.json")
    validate_report(report)
    check = verify_receipt(report, TrustStore.load([files["op_pub"]]))
    assert check.valid and check["name"] == "op"
    # refusals are signed too: the operator's record of what it turned away
    code, _, _ = cli(
        capsys,
        "ingest",
        files["unsigned"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "refused",
        "--sign-key",
        files["op_key"],
    )
    assert code == 1
    assert verify_receipt(read_report(tmp_path / "refused" / "report.json")).valid
    # the command line: verified by the operator's key; edited, untrusted or unreadable fail
    code, out, _ = cli(
        capsys, "verify-receipt", out_dir / "report.json", "--trust", files["op_pub"]
    )
    assert code == 0 and "receipt verified: signed by op" in out
    edited = dict(report, decision="refused")
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    code, out, _ = cli(
        capsys, "verify-receipt", tmp_path / "edited.json", "--trust", files["op_pub"], "--json"
    )
    assert code == 1 and json.loads(out)[0]["errors"][0]["code"] == "PAYLOAD_MISMATCH"
    code, out, _ = cli(capsys, "verify-receipt", out_dir / "report.json", "--trust", files["pub"])
    assert code == 1 and "SIGNER_UNTRUSTED" in out
    code, out, _ = cli(
        capsys, "verify-receipt", tmp_path / "missing.json", "--trust", files["op_pub"]
    )
    assert code == 1 and "IO_ERROR" in out


def test_ingest_usage_and_file_errors(files, capsys, tmp_path):
    base = ["ingest", files["signed"], "--student", files["student"], "--out", tmp_path / "x"]
    cases = [
        (["--set", "nope=1"], "USAGE: "),
        (["--set", "steps"], "USAGE: "),
        (["--min-signers", "0"], "USAGE: "),
        (["--protect-problems", "-1"], "USAGE: "),
        (["--sign-key", tmp_path / "missing.key"], "IO_ERROR: "),
    ]
    if not torch.cuda.is_available():
        cases += [(["--bf16"], "USAGE: "), (["--device", "cuda"], "USAGE: ")]
    for extra, prefix in cases:
        code, _, err = cli(capsys, *base, *extra)
        assert code == 1 and err.startswith(prefix), (extra, err)
    code, _, err = cli(
        capsys,
        "ingest",
        tmp_path / "nothing.m2kt",
        "--student",
        files["student"],
        "--out",
        tmp_path / "y",
    )
    assert code == 1 and err.startswith("IO_ERROR: ")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.cuda
def test_ingest_on_cuda_with_bf16(files, capsys, tmp_path):
    code, _, err = cli(
        capsys,
        "ingest",
        files["signed"],
        "--student",
        files["student"],
        "--out",
        tmp_path / "gpu",
        "--trust",
        files["pub"],
        "--steps",
        "5",
        "--device",
        "cuda",
        "--bf16",
    )
    assert code == 0, err
    report = read_report(tmp_path / "gpu" / "report.json")
    assert report["device"]["type"] == "cuda" and report["device"]["bf16"]
    assert load_model_dir(tmp_path / "gpu").model is not None


def test_command_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "align" in out and "ingest" in out
