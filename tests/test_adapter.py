"""HiddenStateReader: shapes, tuple outputs, foreign modules, hook removal, row counting."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from m2kt_ref.errors import UnknownLayerError  # noqa: E402
from m2kt_ref.transfer.hooks import HiddenStateReader  # noqa: E402
from m2kt_ref.transfer.nets import FAMILIES, NetConfig, build_model, layer_names  # noqa: E402

#: Every family; ``gpt2``, ``llama`` and ``bert`` are skipped without the hf extra.
FAMILY_PARAMS = [
    pytest.param(
        f,
        marks=pytest.mark.skipif(
            f in ("gpt2", "llama", "bert") and importlib.util.find_spec("transformers") is None,
            reason="the hf extra (transformers) is not installed",
        ),
    )
    for f in FAMILIES
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _model(family: str):
    cfg = NetConfig(family, vocab_size=12, seq_len=4, n_classes=5, width=8, depth=2, heads=2)
    return cfg, build_model(cfg)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_shapes_per_layer(family):
    cfg, model = _model(family)
    x = np.random.default_rng(0).integers(0, 12, (10, 4))
    with HiddenStateReader(model, layer_names(cfg), batch_size=3) as reader:
        states = reader.read(x, return_logits=True)
    assert states["embed"].shape == (10, 4, 8)
    inner = layer_names(cfg)[1]
    assert states[inner].shape == ((10, 8) if family == "mlp" else (10, 4, 8))  # gru: tuple
    assert states["final"].shape == (10, 8)
    assert states["logits"].shape == (10, 5)
    with torch.no_grad():
        assert torch.allclose(states["logits"], model(torch.as_tensor(x)), atol=1e-6)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in states.values())


def test_read_at_positions():
    _cfg, model = _model("transformer")
    x = torch.randint(0, 12, (6, 4))
    pos = [0, 1, 2, 3, 0, 1]
    with HiddenStateReader(model, ["blocks.1", "final"]) as reader:
        full = reader.read(x)["blocks.1"]
        at = reader.read_at(x, pos, "blocks.1")
        assert torch.equal(at, full[torch.arange(6), torch.tensor(pos)])
        assert reader.read_at(x, pos, "final").shape == (6, 8)


def test_counts_rows_total_and_distinct():
    _cfg, model = _model("mlp")
    x = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]])
    with HiddenStateReader(model, ["final"], batch_size=2) as reader:
        reader.read(x)
        reader.read(x[2:])
        assert reader.rows_total == 4
        assert reader.distinct_rows == 2
        assert reader.seen([4, 3, 2, 1]) and not reader.seen([0, 0, 0, 0])
        reader.reset_counts()
        assert reader.rows_total == 0 and reader.distinct_rows == 0


def test_works_on_plain_sequential_and_removes_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    reader = HiddenStateReader(model, ["0", "1"])
    states = reader.read(x)
    assert states["0"].shape == (5, 4) and (states["1"] >= 0).all()
    assert reader.rows_total == 5 and reader.distinct_rows == 5
    assert model[0]._forward_hooks
    reader.close()
    assert not model[0]._forward_hooks and not model[1]._forward_hooks
    with pytest.raises(ValueError):
        reader.read(x)


def test_restores_training_mode():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model.train()
    with HiddenStateReader(model, ["1"]) as reader:
        a = reader.read(torch.ones(2, 3))["1"]
        b = reader.read(torch.ones(2, 3))["1"]
    assert torch.equal(a, b)  # dropout off while reading
    assert model.training


def test_unknown_layer_lists_valid_names():
    _, model = _model("transformer")
    with pytest.raises(UnknownLayerError, match=r"valid layers: .*blocks\.0"):
        HiddenStateReader(model, ["blocks.9"])
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.cuda
def test_reads_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    _cfg, model = _model("transformer")
    model.to("cuda")
    with HiddenStateReader(model, ["final"]) as reader:
        out = reader.read(np.zeros((3, 4), dtype=np.int64))
    assert out["final"].device.type == "cpu"


def test_an_unknown_device_is_a_usage_error() -> None:
    from m2kt_ref.errors import DeviceUnavailableError

    model = torch.nn.Sequential(torch.nn.Embedding(4, 3))
    with pytest.raises(DeviceUnavailableError):
        HiddenStateReader(model, ["0"], device="banana")
