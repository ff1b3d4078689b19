"""``m2kt keygen``, ``sign`` and ``verify`` end to end on the demo packet (spec/signing.md)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from m2kt_ref.cli import COMMAND_MODULES, main
from m2kt_ref.packet import codec, trust
from m2kt_ref.packet.demo import demo_packet
from m2kt_ref.packet.keys import load_public_key


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    codec.write_packet(demo_packet(), tmp_path / "demo.m2kt")
    return tmp_path


def keygen(capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert run(capsys, "keygen", "-o", name)[0] == 0


def test_registered() -> None:
    assert "m2kt_ref.cli.sign_cmds" in COMMAND_MODULES


def test_keygen_sign_verify(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keygen", "-o", "alice")
    assert code == 0 and "alice.key" in out
    assert stat.S_IMODE(os.stat("alice.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat("alice.pub").st_mode) == 0o644
    code, out, _ = run(capsys, "sign", "demo.m2kt", "--key", "alice.key", "-o", "signed.m2kt")
    assert code == 0 and out.startswith("signed.m2kt: signed by")
    code, out, _ = run(capsys, "verify", "signed.m2kt", "--trust", "alice.pub")
    assert code == 0, out
    assert out.startswith("signed.m2kt: verified") and "alice" in out
    # the unsigned original fails, with the FILE: CODE: message convention
    code, out, _ = run(capsys, "verify", "demo.m2kt", "signed.m2kt", "--trust", "alice.pub")
    assert code == 1
    assert out.splitlines()[0].startswith("demo.m2kt: UNSIGNED: ")


def test_keygen_refuses_to_overwrite(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "alice")
    before = Path("alice.key").read_bytes()
    code, _, err = run(capsys, "keygen", "-o", "alice")
    assert code == 1 and err.startswith("USAGE: ")
    assert Path("alice.key").read_bytes() == before
    code, out, _ = run(capsys, "keygen", "-o", "alice", "--force", "--json")
    assert code == 0 and Path("alice.key").read_bytes() != before
    assert json.loads(out)["kid"] == load_public_key("alice.pub").kid_hex


def test_verify_untrusted_and_k_of_n(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("alice", "bob", "carol"):
        keygen(capsys, name)
    assert run(capsys, "sign", "demo.m2kt", "--key", "alice.key", "-o", "one.m2kt")[0] == 0
    assert run(capsys, "sign", "one.m2kt", "--key", "bob.key", "-o", "two.m2kt")[0] == 0
    code, out, _ = run(capsys, "verify", "one.m2kt", "--trust", "carol.pub")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("one.m2kt: SIGNER_UNTRUSTED: ")
    assert lines[-1].startswith("one.m2kt: POLICY_UNMET: ")
    trusted = ("--trust", "alice.pub", "--trust", "bob.pub")
    assert run(capsys, "verify", "one.m2kt", *trusted, "--min-signers", "2")[0] == 1
    assert run(capsys, "verify", "two.m2kt", *trusted, "--min-signers", "2")[0] == 0
    # signing the same packet twice with one key counts once
    code, _, err = run(capsys, "sign", "two.m2kt", "--key", "alice.key", "-o", "three.m2kt")
    assert code == 1 and "USAGE" in err and not Path("three.m2kt").exists()
    code, _, err = run(capsys, "verify", "two.m2kt", "--min-signers", "0")
    assert code == 1 and err.startswith("USAGE: ")


def test_verify_json(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "alice")
    run(capsys, "sign", "demo.m2kt", "--key", "alice.key", "-o", "signed.m2kt")
    code, out, _ = run(
        capsys,
        "verify",
        "signed.m2kt",
        "demo.m2kt",
        "missing.m2kt",
        "--trust",
        "alice.pub",
        "--json",
    )
    assert code == 1
    results: list[dict[str, Any]] = json.loads(out)
    assert [r["file"] for r in results] == ["signed.m2kt", "demo.m2kt", "missing.m2kt"]
    ok, unsigned, missing = results
    assert ok["valid"] and ok["errors"] == [] and ok["signers"][0]["name"] == "alice"
    assert {c["check"] for c in ok["signers"][0]["checks"]} >= {"signature", "trust"}
    assert not unsigned["valid"] and unsigned["errors"][0]["code"] == "UNSIGNED"
    assert missing["errors"][0]["code"] == "IO_ERROR"


def test_trust_store_window_on_the_command_line(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keygen(capsys, "alice")
    run(capsys, "sign", "demo.m2kt", "--key", "alice.key", "-o", "signed.m2kt")
    entry = trust.trust_entry(
        load_public_key("alice.pub"), "alice", not_after="2001-01-01T00:00:00Z"
    )
    Path("trust.json").write_text(json.dumps({"keys": [entry]}))
    code, out, _ = run(capsys, "verify", "signed.m2kt", "--trust", "trust.json")
    assert code == 1 and out.startswith("signed.m2kt: KEY_EXPIRED: ")
    del entry["not_after"]
    Path("trust.json").write_text(json.dumps({"keys": [entry]}))
    assert run(capsys, "verify", "signed.m2kt", "--trust", "trust.json")[0] == 0


def test_sign_refuses_incomplete_provenance(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "alice")
    data = demo_packet().body.to_data()
    data["provenance"]["parameters"] = {}
    body = codec.validate_body(data)
    packet = demo_packet()
    bare = codec.Packet(body, codec.canonical_cbor(body.to_data()), packet.data)
    codec.write_packet(bare, "bare.m2kt")
    code, out, err = run(capsys, "sign", "bare.m2kt", "--key", "alice.key", "-o", "out.m2kt")
    assert code == 1 and out == ""
    assert err.startswith("bare.m2kt: PROVENANCE_INCOMPLETE: ")
    assert not Path("out.m2kt").exists()


def test_sign_keeps_the_json_form(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "alice")
    codec.write_packet(demo_packet(), "demo.json", encoding="json")
    assert run(capsys, "sign", "demo.json", "--key", "alice.key", "-o", "signed.json")[0] == 0
    assert Path("signed.json").read_bytes().startswith(b"{")
    assert run(capsys, "verify", "signed.json", "--trust", "alice.pub")[0] == 0


def test_tampered_file_fails(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(capsys, "alice")
    run(capsys, "sign", "demo.m2kt", "--key", "alice.key", "-o", "signed.m2kt")
    blob = bytearray(Path("signed.m2kt").read_bytes())
    blob[-1] ^= 0x01  # last byte of the Ed25519 signature
    Path("bad.m2kt").write_bytes(blob)
    code, out, _ = run(capsys, "verify", "bad.m2kt", "--trust", "alice.pub")
    assert code == 1 and out.startswith("bad.m2kt: SIGNATURE_INVALID: ")
    code, _, err = run(capsys, "sign", "bad.m2kt", "--key", "alice.pub", "-o", "x.m2kt")
    assert code == 1 and "KEY_MALFORMED" in err
