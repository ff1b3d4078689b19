"""``m2kt demo / inspect / validate / convert``: outputs, exit codes, and no traceback ever."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples

from m2kt_ref.cli import main
from m2kt_ref.cli.format_cmds import file_problems
from m2kt_ref.errors import REGISTRY
from m2kt_ref.packet import codec
from m2kt_ref.packet.limits import Limits

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<file>.+): (?P<code>[A-Z_]+): (?P<message>.+)$")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def demo_file(tmp_path, capsys) -> Path:
    path = tmp_path / "demo.m2kt"
    code, out, _ = run(capsys, "demo", "-o", str(path))
    assert code == 0 and str(path) in out
    return path


def test_demo_validate_convert_round_trip(tmp_path, capsys, demo_file, demo_cbor):
    assert demo_file.read_bytes() == demo_cbor
    code, out, err = run(capsys, "validate", str(demo_file))
    assert (code, out.strip(), err) == (0, f"{demo_file}: valid", "")
    as_json, back = tmp_path / "demo.json", tmp_path / "back.m2kt"
    assert run(capsys, "convert", str(demo_file), "--to", "json", "-o", str(as_json))[0] == 0
    assert as_json.read_bytes().startswith(b"{")
    assert run(capsys, "validate", str(as_json))[0] == 0
    assert run(capsys, "convert", str(as_json), "--to", "cbor", "-o", str(back))[0] == 0
    assert back.read_bytes() == demo_cbor
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.m2kt", "demo.json", "demo.m2kt"]


def test_demo_json_form_and_json_output(tmp_path, capsys, demo, demo_json):
    path = tmp_path / "demo.json"
    code, out, _ = run(capsys, "demo", "-o", str(path), "--json-form", "--json")
    assert code == 0 and path.read_bytes() == demo_json
    report = json.loads(out)
    assert report == {
        "file": str(path),
        "encoding": "json",
        "bytes": len(demo_json),
        "packet_id": demo.packet_id,
    }
    out_path = tmp_path / "c.m2kt"
    code, out, _ = run(capsys, "convert", str(path), "--to", "cbor", "-o", str(out_path), "--json")
    assert code == 0 and json.loads(out)["packet_id"] == demo.packet_id


def test_inspect_text(capsys, demo_file, demo):
    code, out, err = run(capsys, "inspect", str(demo_file))
    assert code == 0 and err == ""
    assert demo.packet_id in out
    for expected in (
        "m2kt 1.0",
        "demo-teacher (transformer), latent_dim 8",
        "concepts   6 (category 1, symbol 5), 5 with a manifold",
        "num:0  '0'  [symbol]",
        "graph      11 edges (inverse_of 1, is_a 5, precedes 5)",
        "num:0 -is_a-> number",
        "t0: input [1, 5, 2, 6] -> answer 3; steps num:1 > num:2 > num:3; with states",
        "anchors    5, 5 tied to a concept: a0, a1, a2, a3, a4",
        "task inputs used 2, concept probes 5, parents 0, seed 0",
        "require_signature true, min_signers 1, protected_concepts [num:0]",
        "tensors    23, 512 bytes",
        "bf16: 3 tensors, 112 bytes",
        "i8: 5 tensors, 40 bytes",
        "extensions x-demo.note",
        "signatures none (unsigned)",
    ):
        assert expected in out, expected


def test_inspect_json(capsys, demo_file, demo):
    code, out, _ = run(capsys, "inspect", str(demo_file), "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary["packet_id"] == demo.packet_id
    assert summary["concepts"]["count"] == 6
    assert summary["graph"]["by_relation"] == {"is_a": 5, "precedes": 5, "inverse_of": 1}
    assert summary["traces"]["examples"][0]["steps"] == ["num:1", "num:2", "num:3"]
    assert summary["provenance"]["task_inputs_used"] == 2
    assert summary["tensors"]["by_dtype"]["f16"] == {"count": 5, "bytes": 160}
    assert sum(v["bytes"] for v in summary["tensors"]["by_dtype"].values()) == 512
    assert summary["extensions"] == {"x-demo.note": {"critical": False}}
    assert summary["signatures"] is None


def test_inspect_lists_signers(tmp_path, capsys, demo):
    from m2kt_ref.packet.keys import SigningKey
    from m2kt_ref.packet.signing import sign_packet

    keys = [SigningKey(bytes([i]) * 32) for i in (1, 2)]
    packet = demo
    for key in keys:
        packet = sign_packet(packet, key, signing_time=1_700_000_000)
    path = tmp_path / "signed.m2kt"
    codec.write_packet(packet, path)
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0
    assert "signatures 2 (listed, not verified" in out
    for i, key in enumerate(keys):
        assert f"#{i} kid {key.kid.hex()}, EdDSA, signed 2023-11-14T22:13:20Z" in out
    code, out, _ = run(capsys, "inspect", "--json", str(path))
    signers = json.loads(out)["signatures"]
    assert [s["kid"] for s in signers] == [k.kid.hex() for k in keys]


def test_inspect_escapes_control_characters(tmp_path, capsys, demo):
    fields = demo.body.to_data()
    fields["teacher"]["name"] = "evil\x1b[2J\nname"
    tensors = {t.name: _encoded(demo, t.name) for t in demo.body.tensors}
    del fields["tensors"]
    packet = codec.assemble(fields, tensors)
    path = tmp_path / "p.m2kt"
    codec.write_packet(packet, path)
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0 and "\x1b" not in out and "'evil\\x1b[2J\\nname'" in out


def _encoded(packet: codec.Packet, name: str) -> codec.tz.EncodedTensor:
    info = packet.tensor_info(name)
    return codec.tz.EncodedTensor(
        info.dtype, tuple(info.shape), memoryview(packet.tensor(name)).cast("B"), info.scale
    )


def test_validate_lists_problems_per_file(tmp_path, capsys, demo_file, demo_cbor):
    files = {
        "truncated.m2kt": demo_cbor[:100],
        "garbage.bin": b"\xff\x00garbage",
        "empty.m2kt": b"",
        "not-packet.json": b'{"a": 1}',
        "broken.json": b"{",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(demo_file)] + [str(tmp_path / n) for n in files] + [str(tmp_path / "missing")]
    code, out, err = run(capsys, "validate", *paths)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{demo_file}: valid"
    codes = {}
    for line in lines[1:]:
        match = LINE.match(line)
        assert match, line
        assert match["code"] in REGISTRY
        codes[Path(match["file"]).name] = match["code"]
    assert codes == {
        "truncated.m2kt": "TRUNCATED",
        "garbage.bin": "NOT_A_PACKET",
        "empty.m2kt": "TRUNCATED",
        "not-packet.json": "NOT_A_PACKET",
        "broken.json": "JSON_MALFORMED",
        "missing": "IO_ERROR",
    }
    code, out, _ = run(capsys, "validate", "--json", *paths)
    report = json.loads(out)
    assert code == 1
    assert [r["file"] for r in report] == paths
    assert report[0] == {"file": str(demo_file), "valid": True, "errors": []}
    for entry in report[1:]:
        assert entry["valid"] is False and entry["errors"]
        for error in entry["errors"]:
            assert set(error) <= {"code", "message", "path"} and error["code"] in REGISTRY


def test_validate_reports_every_body_problem_in_both_encodings(tmp_path, capsys, demo, envelope):
    doc = codec.to_json_data(demo)
    doc["body"]["graph"]["edges"][0]["target"] = "nowhere"
    doc["body"]["anchors"][0]["concept"] = "nobody"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    cbor = envelope(cbor2.dumps(doc["body"], canonical=True), demo.data)
    (tmp_path / "bad.m2kt").write_bytes(cbor)
    for name in ("bad.json", "bad.m2kt"):
        code, out, _ = run(capsys, "validate", str(tmp_path / name))
        assert code == 1
        assert out.count("DANGLING_REFERENCE") == 2, out
        assert "at /body/graph/edges/0" in out and "at /body/anchors/0/concept" in out


def test_inspect_and_convert_refuse_bad_files(tmp_path, capsys, demo_cbor):
    bad = tmp_path / "bad.m2kt"
    bad.write_bytes(demo_cbor[:-1])
    for argv in (["inspect", str(bad)], ["convert", str(bad), "--to", "json", "-o", "x.json"]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == ""
        assert LINE.match(err.strip()), err
        assert err.startswith(f"{bad}: TRUNCATED: ")
    assert not (tmp_path / "x.json").exists()


def test_main_prints_coded_errors(tmp_path, capsys):
    code, _, err = run(capsys, "demo", "-o", str(tmp_path / "no" / "such" / "dir.m2kt"))
    assert code == 1 and err.startswith("IO_ERROR: ")


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["convert", "x"], ["convert", "x", "--to", "yaml", "-o", "y"], ["nope"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda b: b"{" + b))
def test_any_bytes_give_coded_problems(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "input"
    path.write_bytes(data)
    problems = file_problems(str(path))
    assert problems and all(p.code in REGISTRY for p in problems)


def test_no_traceback_in_a_real_process(tmp_path, demo_cbor):
    inputs = [b"", b"\x00", b"{", b"[1]", demo_cbor[:-3], demo_cbor + b"\x00", b"\xd9\xd9\xf7\xbf"]
    paths = []
    for i, data in enumerate(inputs):
        paths.append(tmp_path / f"in{i}")
        paths[-1].write_bytes(data)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    script = "import sys; from m2kt_ref.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", script, "validate", *map(str, paths), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(inputs) + 1
    assert all(LINE.match(line) and LINE.match(line)["code"] in REGISTRY for line in lines)


def test_file_problems_respects_limits_for_both_forms(tmp_path, demo_cbor, demo_json):
    tight = Limits(max_packet_bytes=10)
    for name, data in (("a.json", b"{" + b"[" * 50), ("b.json", demo_json), ("c.m2kt", demo_cbor)):
        (tmp_path / name).write_bytes(data)
        assert [p.code for p in file_problems(str(tmp_path / name), tight)] == ["LIMIT_EXCEEDED"]


@pytest.mark.parametrize("command", ["validate", "inspect", "convert"])
def test_limit_options_reach_the_reader(tmp_path, capsys, demo_file, command):
    """``--limit NAME=N`` lowers (or raises) a limit of spec §8; a bad one is USAGE, exit 1."""
    out = ["-o", str(tmp_path / "out.json"), "--to", "json"] if command == "convert" else []
    items = ["--limit", "max_body_items=100"]
    code, stdout, stderr = run(capsys, command, str(demo_file), *out, *items)
    assert code == 1 and "LIMIT_EXCEEDED" in stdout + stderr
    code, _, _ = run(capsys, command, str(demo_file), *out, "--limit", "max_body_items=1000000")
    assert code == 0
    for bad in ("max_body_itemz=5", "max_body_items=-1", "max_body_items", "max_depth=1e3"):
        code, _, stderr = run(capsys, command, str(demo_file), *out, "--limit", bad)
        assert code == 1 and stderr.startswith("USAGE: --limit"), (bad, stderr)


def test_verify_and_sign_take_limits_too(tmp_path, capsys, demo_file):
    code, stdout, _ = run(capsys, "verify", str(demo_file), "--limit", "max_depth=3", "--json")
    assert code == 1 and json.loads(stdout)[0]["errors"][0]["code"] == "LIMIT_EXCEEDED"
    code, _, _ = run(capsys, "keygen", "-o", str(tmp_path / "k"))
    assert code == 0
    signed = ["sign", str(demo_file), "--key", str(tmp_path / "k.key"), "-o", str(tmp_path / "s")]
    code, _, stderr = run(capsys, *signed, "--limit", "max_depth=3")
    assert code == 1 and "LIMIT_EXCEEDED" in stderr


def test_a_reader_that_stops_reading_is_not_a_crash(demo_file):
    """``m2kt inspect F | head -1``: the closed pipe ends the command quietly (exit 141)."""
    script = "import sys; from m2kt_ref.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "inspect", str(demo_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in stderr


def test_demo_packet_refuses_sizes_it_cannot_fill() -> None:
    import pytest

    from m2kt_ref import UsageError, demo_packet

    for bad in ({"n": 4}, {"n": 0}, {"dim": 0}):
        with pytest.raises(UsageError):
            demo_packet(**bad)


def test_inspect_says_where_the_facts_came_from(tmp_path, capsys) -> None:
    import m2kt_ref
    from m2kt_ref.cli import main

    demo = m2kt_ref.demo_packet()
    body = demo.body.to_data()
    n_edges = len(body["graph"]["edges"])
    body["extensions"] = {
        **body.get("extensions", {}),
        "derivation": m2kt_ref.derivation_block(["teacher-geometry"] * n_edges),
    }
    body["header"]["version"] = "1.1"
    packet = m2kt_ref.assemble(
        {k: v for k, v in body.items() if k != "tensors"},
        {
            t.name: m2kt_ref.EncodedTensor(
                t.dtype, tuple(t.shape), demo.data[t.offset : t.offset + t.length], t.scale
            )
            for t in demo.body.tensors
        },
    )
    path = tmp_path / "d.m2kt"
    m2kt_ref.write_packet(packet, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"derived    edges teacher-geometry {n_edges}" in out
    assert main(["inspect", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["derivation"]["edges"] == {"teacher-geometry": n_edges}


@pytest.mark.parametrize("vector", ["v-alg-array", "v-alg-map"])
def test_an_alg_that_is_an_array_or_a_map_is_reported_not_a_crash(vector, tmp_path, capsys):
    """Issue 13: such a protected header made `m2kt verify` and `m2kt inspect` die with a
    TypeError traceback."""
    import base64

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "conformance" / "vectors" / f"{vector}.json").read_text())
    path = tmp_path / "p.m2kt"
    path.write_bytes(base64.b64decode(doc["input"]["b64"]))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr()
    assert "ALG_UNSUPPORTED" in out.out and "Traceback" not in out.err
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr()
    assert "ALG_UNSUPPORTED" in out.out + out.err and "Traceback" not in out.err
