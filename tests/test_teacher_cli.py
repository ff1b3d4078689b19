"""``m2kt tasks``, ``train-teacher`` and ``init-student``: outputs, files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m2kt_ref.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_cli_starts_without_torch():
    code = (
        "import sys; from m2kt_ref.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


def test_tasks_json(capsys):
    assert main(["tasks", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    by_name = {t["name"]: t for t in tasks}
    assert {"modular", "hierarchy", "chain"} <= set(by_name)
    p = next(o for o in by_name["modular"]["options"] if o["name"] == "p")
    assert p["default"] == 97 and p["type"] == "int"


def test_tasks_text(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "modular:" in out and "--opt p=97" in out


def test_train_teacher_quick_writes_model_dir(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "teacher"
    argv = ["train-teacher", "--task", "chain", "--opt", "n=8", "--opt", "functions=2"]
    argv += ["--opt", "k=3", "--out", str(out), "--scale", "quick", "--seed", "2", "--json"]
    assert main([*argv, "--no-progress"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "record.json"}
    assert record["seed"] == 2 and record["threads"] == 1 and len(record["weights_sha256"]) == 64
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == {
        "name": "chain",
        "options": {"n": 8, "functions": 2, "k": 3, "structure_seed": 0},
    }
    assert config["split"]["seed"] == 2


def test_init_student_writes_untrained_dir(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "student"
    argv = ["init-student", "--task", "modular", "--opt", "p=11", "--family", "gru"]
    assert main([*argv, "--width", "16", "--depth", "2", "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["trained"] is False
    assert json.loads((out / "record.json").read_text())["trained"] is False
    assert json.loads((out / "config.json").read_text())["net"]["width"] == 16


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["train-teacher", "--task", "nope"], 2),
        (["train-teacher", "--task", "modular", "--opt", "q=1"], 2),
        (["train-teacher", "--task", "modular", "--opt", "p=x"], 2),
        (["train-teacher", "--task", "modular", "--opt", "p"], 2),
        (["train-teacher", "--task", "modular", "--device", "tpu"], 2),
        (["train-teacher", "--task", "modular", "--threads", "0"], 2),
        (["init-student", "--task", "modular", "--family", "transformer", "--width", "10"], 2),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, capsys, argv, status):
    pytest.importorskip("torch")
    extra = ["--out", str(tmp_path / "o")]
    if argv[0] == "init-student":
        extra += ["--depth", "1", "--heads", "3"]
    assert main(argv + extra) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("USAGE: ")
    assert not (tmp_path / "o").exists()


def test_cuda_without_cuda_is_a_usage_error(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    argv = ["train-teacher", "--task", "modular", "--opt", "p=11", "--device", "cuda"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--scale", "quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("USAGE: ") and "cuda" in err and "\n" not in err


def test_unwritable_out_is_io_error(tmp_path, capsys):
    pytest.importorskip("torch")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["init-student", "--task", "modular", "--opt", "p=11", "--family", "mlp"]
    argv += ["--width", "8", "--depth", "1", "--out", str(blocker / "sub")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("IO_ERROR: ") and "\n" not in err


def test_argparse_rejects_unknown_family(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train-teacher", "--task", "modular", "--out", "x", "--family", "lstm"])
    assert info.value.code == 2
