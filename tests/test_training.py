"""Training loop, evaluation, model directories, digests, presets (quick scale, 1 thread)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from m2kt_ref.errors import DeviceUnavailableError, ModelDirError  # noqa: E402
from m2kt_ref.transfer.device import resolve_device  # noqa: E402
from m2kt_ref.transfer.model_dir import (  # noqa: E402
    CONFIG_FILE,
    RECORD_FILE,
    WEIGHTS_FILE,
    load_model_dir,
    save_model_dir,
    weights_digest,
)
from m2kt_ref.transfer.nets import NetConfig, build_model  # noqa: E402
from m2kt_ref.transfer.tasks import make_task  # noqa: E402
from m2kt_ref.transfer.teachers import init_student, train_teacher  # noqa: E402
from m2kt_ref.transfer.training import TrainConfig, evaluate, train_model  # noqa: E402

SMALL = {
    "modular": {"p": 13, "ops": "+"},
    "hierarchy": {"depth": 3, "branching": 3},
    "chain": {"n": 8, "functions": 2, "k": 3},
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teachers():
    torch.set_num_threads(1)
    return {
        name: train_teacher(make_task(name, **opts), scale="quick", seed=0, progress=False)
        for name, opts in SMALL.items()
    }


@pytest.mark.parametrize("name", sorted(SMALL))
def test_quick_teacher_learns_above_chance(teachers, name):
    rec = teachers[name].record
    assert rec["train_accuracy"] >= 0.9
    assert rec["test_accuracy"] > rec["chance_accuracy"] + 0.1
    assert rec["trained"] and rec["steps"] >= 1 and rec["wall_seconds"] > 0
    assert rec["train_size"] == len(teachers[name].split.train)


def test_save_load_round_trip(teachers, tmp_path):
    run = teachers["chain"]
    out = run.save(tmp_path / "teacher")
    assert {p.name for p in out.iterdir()} == {WEIGHTS_FILE, CONFIG_FILE, RECORD_FILE}
    loaded = load_model_dir(out)
    x = torch.as_tensor(run.split.test.inputs)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), run.model(x))
    assert loaded.net_config == run.net_config
    assert loaded.task_name == "chain" and loaded.task_options == run.task.option_dict()
    assert loaded.train_config == run.train_config
    split = loaded.split()
    assert np.array_equal(split.test.inputs, run.split.test.inputs)
    assert np.array_equal(split.train.targets, run.split.train.targets)
    record = json.loads((out / RECORD_FILE).read_text())
    for key in ("train_size", "test_size", "test_accuracy", "steps", "wall_seconds", "seed"):
        assert key in record
    assert record["torch_version"] == torch.__version__ and record["device"] == "cpu"
    assert not list(out.glob("*.tmp"))


def test_weights_digest_is_file_sha256(teachers, tmp_path):
    import hashlib

    out = teachers["modular"].save(tmp_path / "m")
    digest = weights_digest(out)
    assert digest == hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert digest == weights_digest(out / WEIGHTS_FILE) == load_model_dir(out).weights_digest
    again = teachers["modular"].save(tmp_path / "m2")
    assert weights_digest(again) == digest  # same tensors, same bytes


def test_weights_file_is_plain_safetensors(teachers, tmp_path):
    from safetensors.torch import load_file

    out = teachers["hierarchy"].save(tmp_path / "h")
    state = load_file(str(out / WEIGHTS_FILE))
    assert set(state) == set(teachers["hierarchy"].model.state_dict())
    assert not (out / WEIGHTS_FILE).read_bytes().startswith(b"PK")  # not a torch zip pickle


def test_training_is_deterministic():
    task = make_task("chain", **SMALL["chain"])
    a = train_teacher(task, scale="quick", seed=1, progress=False)
    b = train_teacher(task, scale="quick", seed=1, progress=False)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)


def test_train_model_minibatch_and_early_stop():
    task = make_task("chain", **SMALL["chain"])
    sp = task.split(0)
    model = build_model(NetConfig("gru", task.vocab_size, task.seq_len, task.n_classes, width=32))
    cfg = TrainConfig(steps=400, lr=3e-3, batch_size=16, eval_every=10, target_accuracy=0.5)
    result = train_model(model, sp.train, cfg, progress=False)
    assert result.stopped_early and result.steps < 400
    assert result.history[-1]["monitor_acc"] >= 0.5  # no valid set: monitors train
    assert not model.training
    acc = evaluate(model, sp.train.inputs, sp.train.targets)
    assert acc == pytest.approx(result.train_accuracy)
    assert evaluate(model, sp.train.inputs[:0], sp.train.targets[:0]) == 0.0


def test_init_student_writes_untrained_dir(tmp_path):
    task = make_task("modular", p=11)
    model, cfg, record = init_student(task, family="mlp", width=24, depth=2, seed=5)
    out = save_model_dir(tmp_path / "s", model, cfg, task, record)
    loaded = load_model_dir(out)
    assert loaded.record["trained"] is False and loaded.record["steps"] == 0
    assert loaded.net_config.width == 24 and loaded.split_config is None
    with pytest.raises(ModelDirError):
        loaded.split()


def test_load_errors(tmp_path):
    with pytest.raises(ModelDirError) as info:
        load_model_dir(tmp_path / "missing")
    assert info.value.code == "IO_ERROR" and isinstance(info.value, OSError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="lacks"):
        load_model_dir(tmp_path / "empty")
    task = make_task("modular", p=11)
    model, cfg, record = init_student(task, family="mlp", width=8, depth=1)
    out = save_model_dir(tmp_path / "bad", model, cfg, task, record)
    (out / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelDirError):
        load_model_dir(out)
    out = save_model_dir(tmp_path / "shape", model, cfg, task, record)
    other = json.loads((out / CONFIG_FILE).read_text())
    other["net"]["width"] = 16
    (out / CONFIG_FILE).write_text(json.dumps(other))
    with pytest.raises(ModelDirError, match="does not fit"):
        load_model_dir(out)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(DeviceUnavailableError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError) as info:
            resolve_device("cuda")
        assert info.value.code == "USAGE"


@pytest.mark.cuda
def test_train_and_reload_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    task = make_task("chain", **SMALL["chain"])
    run = train_teacher(task, scale="quick", seed=0, device="cuda", progress=False)
    assert run.record["device"].startswith("cuda")
    out = run.save(tmp_path / "c")
    cpu = load_model_dir(out, device="cpu")
    x = torch.as_tensor(run.split.test.inputs)
    with torch.no_grad():
        torch.testing.assert_close(cpu.model(x), run.model(x.cuda()).cpu(), atol=1e-4, rtol=1e-4)
