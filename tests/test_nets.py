"""Model families: shapes, addressable layers, deterministic init, config round trip."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")

from m2kt_ref.errors import NetConfigError  # noqa: E402
from m2kt_ref.transfer.nets import FAMILIES, NetConfig, build_model, count_parameters, layer_names  # noqa: E402

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


def _config(family: str, **kw) -> NetConfig:
    base = {"vocab_size": 20, "seq_len": 5, "n_classes": 7, "width": 16, "depth": 2, "heads": 2}
    return NetConfig(family=family, **{**base, **kw})


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_forward_shape_and_layers(family):
    cfg = _config(family)
    model = build_model(cfg)
    x = torch.randint(0, 20, (3, 5))
    assert model(x).shape == (3, 7)
    names = dict(model.named_modules())
    for name in layer_names(cfg):
        assert name in names
    assert "head" in names
    assert count_parameters(model) > 0


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_init_is_deterministic_and_seeded(family):
    x = torch.randint(0, 20, (4, 5))
    before = torch.random.get_rng_state()
    a, b = build_model(_config(family, seed=3)), build_model(_config(family, seed=3))
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    c = build_model(_config(family, seed=4))
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_config_round_trip(family):
    cfg = _config(family, readout="mean")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert NetConfig.from_dict(data) == cfg


def test_bad_configs():
    with pytest.raises(NetConfigError):
        _config("lstm")
    with pytest.raises(NetConfigError):
        _config("transformer", width=10, heads=3)
    with pytest.raises(NetConfigError):
        NetConfig.from_dict({**_config("mlp").to_dict(), "extra": 1})
    with pytest.raises(NetConfigError):
        _config("gru", depth=0)
    with pytest.raises(ValueError):  # also a ValueError for callers outside m2kt
        _config("mlp", readout="max")
