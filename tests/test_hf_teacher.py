"""Hugging Face teachers (the ``hf`` extra): files, loading, hidden states, concept and prompt
files, generation for GPT-2, Llama and BERT, and ``m2kt generate --teacher hf:DIR``.

Every model here is a tiny random-weight one built from a config, with a word-level tokenizer
built by ``tokenizers`` (:mod:`m2kt_ref.transfer.hf.tiny`): nothing touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from hf_words import CONCEPT_WORDS, WORDS  # noqa: E402

import m2kt_ref  # noqa: E402
from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.errors import ModelDirError, UnknownLayerError, UsageError  # noqa: E402
from m2kt_ref.transfer import HiddenStateReader  # noqa: E402
from m2kt_ref.transfer.hf import (  # noqa: E402
    generate_hf_packet,
    inspect_hf_dir,
    load_hf_model,
    read_concepts,
    read_prompts,
)
from m2kt_ref.transfer.hf.text_task import build_text_task, parse_concepts  # noqa: E402
from m2kt_ref.transfer.hf.tiny import save_tiny_model  # noqa: E402

CONCEPTS = CONCEPT_WORDS
PROMPTS = [
    {"prompt": "oak is a kind of", "answer": "tree"},
    {"prompt": "dog is a kind of", "answer": "animal"},
    {"prompt": "red is a"},
    {"prompt": "cat is a kind of", "answer": "the animal"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GPT-2, Llama and BERT directories plus a concept file and a prompt file."""
    root = tmp_path_factory.mktemp("hf")
    dirs = {
        "gpt2": save_tiny_model(root / "gpt2", "gpt2", WORDS, width=32, seed=0),
        "llama": save_tiny_model(root / "llama", "llama", WORDS, width=24, seed=1),
        "bert": save_tiny_model(root / "bert", "bert", WORDS, width=16, seed=2),
    }
    concepts = {
        "task": "toy",
        "concepts": [
            {"id": w, "label": w, "probes": [w, {"text": f"the {w}", "phrase": w}]}
            for w in CONCEPTS
        ],
        "relations": [{"source": "oak", "target": "tree", "relation": "is_a"}],
    }
    (root / "concepts.json").write_text(json.dumps(concepts))
    (root / "prompts.jsonl").write_text("\n".join(json.dumps(p) for p in PROMPTS) + "\n")
    return {**dirs, "concepts": root / "concepts.json", "prompts": root / "prompts.jsonl"}


# --------------------------------------------------------------------------- files and loading


def test_a_directory_missing_files_is_a_coded_error(tiny, tmp_path):
    with pytest.raises(ModelDirError, match="does not exist") as exc:
        inspect_hf_dir(tmp_path / "nope")
    assert exc.value.code == "IO_ERROR"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (broken / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelDirError) as exc:
        load_hf_model(broken)
    message = str(exc.value)
    assert "tokenizer.json" in message and "pytorch_model.bin" in message and "pickle" in message
    (broken / "config.json").write_text("[1]")
    (broken / "model.safetensors").write_bytes(b"x")
    (broken / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelDirError, match="no model_type"):
        inspect_hf_dir(broken)


def test_weights_that_do_not_fit_are_refused(tiny, tmp_path):
    """A checkpoint that leaves layers at random initialisation is not a teacher."""
    other = save_tiny_model(tmp_path / "other", "gpt2", WORDS, width=32, layers=1)
    config = json.loads((tiny["gpt2"] / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config))  # 2 layers, weights of 1
    with pytest.raises(ModelDirError, match="do not fit"):
        load_hf_model(other)


def test_loading_records_digests_and_picks_the_head(tiny):
    gpt2, bert = load_hf_model(tiny["gpt2"]), load_hf_model(tiny["bert"])
    assert (gpt2.model_type, gpt2.lm_head, gpt2.rows.default_layer) == ("gpt2", True, "hidden.2")
    assert (bert.model_type, bert.lm_head, bert.rows.default_layer) == ("bert", False, "mean.2")
    files = inspect_hf_dir(tiny["gpt2"])
    assert gpt2.describe()["weights_digest"] == "sha256:" + files.weights_digest
    assert gpt2.describe()["config_digest"] == "sha256:" + files.config_digest
    # the same word list gives the same token ids, whatever the model
    assert gpt2.tokenizer_digest == load_hf_model(tiny["llama"]).tokenizer_digest
    with pytest.raises(UsageError, match="CUDA"):
        load_hf_model(tiny["gpt2"], dtype="bf16")


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_hidden_states_are_the_models_own_and_ignore_padding(tiny, family):
    hf = load_hf_model(tiny[family])
    ids = hf.tokenizer("oak is a kind of")["input_ids"]
    rows = torch.tensor([ids + [hf.pad_id] * 3, ids[:2] + [hf.pad_id] * (len(ids) + 1)])
    n = hf.rows.n_layers
    with HiddenStateReader(hf.rows, [f"hidden.{n}", f"mean.{n}", "hidden.0"]) as reader:
        out = reader.read(rows, return_logits=True)
    with torch.no_grad():
        ref = hf.rows.model(torch.tensor([ids]), output_hidden_states=True)
    got = out[f"hidden.{n}"][0, : len(ids)]
    torch.testing.assert_close(got, ref.hidden_states[-1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["hidden.0"][0, : len(ids)], ref.hidden_states[0][0])
    special = set(hf.special_ids)
    keep = [j for j, t in enumerate(ids) if t not in special]
    torch.testing.assert_close(
        out[f"mean.{n}"][0], ref.hidden_states[-1][0, keep].mean(0), rtol=1e-4, atol=1e-5
    )
    if hf.lm_head:
        torch.testing.assert_close(out["logits"][0], ref.logits[0, -1], rtol=1e-4, atol=1e-5)
    with pytest.raises(UnknownLayerError, match=r"hidden\.0"):
        hf.rows.check_layer("blocks.0")


# --------------------------------------------------------------------------- concept, prompt files


def test_concept_and_prompt_files_are_checked_with_pointers(tmp_path):
    bad = [
        ({"concepts": []}, "/concepts"),
        ({"concepts": [{"id": "a b", "label": "a b"}]}, "/concepts/0/id"),
        ({"concepts": ["oak", "oak"]}, "/concepts/1/id"),
        ({"concepts": [{"label": "oak", "probes": [{"text": "x", "phrase": "oak"}]}]}, "/phrase"),
        (
            {
                "concepts": ["oak"],
                "relations": [{"source": "oak", "target": "elm", "relation": "is_a"}],
            },
            "/relations/0/target",
        ),
        ({"concepts": ["oak"], "colour": 1}, "/"),
    ]
    for data, pointer in bad:
        with pytest.raises(UsageError) as exc:
            parse_concepts(data)
        assert exc.value.code == "USAGE" and pointer in (exc.value.path or ""), (data, exc.value)
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        read_concepts(tmp_path / "c.json")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"answer": "b"}\n')
    with pytest.raises(UsageError, match=r"p.jsonl:2"):
        read_prompts(tmp_path / "p.jsonl")
    with pytest.raises(m2kt_ref.FileAccessError):
        read_prompts(tmp_path / "missing.jsonl")


def test_prompt_rows_stop_before_the_answer_and_read_steps_where_it_is_produced(tiny):
    hf = load_hf_model(tiny["gpt2"])
    tok = hf.tokenizer
    prompts, _ = read_prompts(tiny["prompts"])
    task = build_text_task(
        read_concepts(tiny["concepts"]), prompts, tok, pad_id=0, lm_head=True, n_classes=len(tok)
    )
    ps = task.problems()
    oak = tok("oak is a kind of")["input_ids"]
    assert ps.inputs[0][: len(oak)].tolist() == oak and ps.targets[0] == tok.convert_tokens_to_ids(
        "tree"
    )
    assert task.step_positions(ps.inputs[0], task.seq_len) == [len(oak) - 1]
    # a two-token answer: the row keeps its first token, steps predict both
    assert task.step_positions(ps.inputs[3], task.seq_len) == [len(oak) - 1, len(oak)]
    assert ps.targets[2] == -1  # no answer and no continuation
    assert task.step_positions(ps.inputs[2], 1) == [0]
    probe = task.concepts()[0].probes[1]  # "the oak": read at "oak"
    assert probe.tokens[probe.position] == tok.convert_tokens_to_ids("oak")


# --------------------------------------------------------------------------- generation


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_generate_a_packet_from_each_architecture(tiny, family):
    key = m2kt_ref.SigningKey(bytes(range(32)))
    result = generate_hf_packet(
        tiny[family], tiny["concepts"], tiny["prompts"], created=0, key=key, declare=True
    )
    packet = m2kt_ref.decode(m2kt_ref.encode(result.packet))
    body = packet.body
    hf = load_hf_model(tiny[family])
    assert body.teacher.architecture == family
    assert body.teacher.model_digest == "sha256:" + inspect_hf_dir(tiny[family]).weights_digest
    params = body.provenance.parameters["hf"]
    for name in ("config_digest", "weights_digest", "tokenizer_digest"):
        assert params[name].startswith("sha256:")
    assert params["model_type"] == family and params["lm_head"] == hf.lm_head
    assert len(body.anchors) == 2 * len(CONCEPTS)
    derivation = m2kt_ref.read_derivation(packet)
    assert derivation.trace_steps == ("teacher-readout" if hf.lm_head else "nearest-concept")
    assert derivation.trace_selection.method == "declared"
    # every edge the teacher's geometry gave, the one declared relation marked declared
    assert derivation.edges.count("declared") == 1
    assert set(derivation.edges) == {"teacher-geometry", "declared"}
    assert body.teacher.layer == hf.rows.default_layer
    trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "lab")])
    assert m2kt_ref.verify_packet(packet, trust).valid
    if not hf.lm_head:  # an encoder's traces: one pooled state per prompt
        assert len(body.traces) == len(PROMPTS)
        assert all(len(t.steps) == 1 for t in body.traces)


def test_generation_is_deterministic_and_records_the_continuation(tiny):
    a = generate_hf_packet(tiny["gpt2"], tiny["concepts"], tiny["prompts"], created=0)
    b = generate_hf_packet(tiny["gpt2"], tiny["concepts"], tiny["prompts"], created=0)
    assert m2kt_ref.encode(a.packet) == m2kt_ref.encode(b.packet)
    hf = a.packet.body.provenance.parameters["hf"]
    assert hf["continued_prompts"] == 1 and hf["continuation_forward_rows"] >= 1
    none = generate_hf_packet(tiny["gpt2"], tiny["concepts"], None, created=0, max_new_tokens=0)
    assert none.stats["traces"] == 0 and none.stats["task_inputs_used"] == 0


def test_teacher_readout_needs_the_layer_the_head_reads(tiny):
    with pytest.raises(UsageError, match="teacher-readout"):
        generate_hf_packet(
            tiny["gpt2"],
            tiny["concepts"],
            tiny["prompts"],
            layer="hidden.1",
            step_decoding="teacher-readout",
            created=0,
        )
    result = generate_hf_packet(
        tiny["gpt2"], tiny["concepts"], tiny["prompts"], layer="mean.1", created=0
    )
    assert result.packet.body.teacher.layer == "mean.1"
    assert m2kt_ref.read_derivation(result.packet).trace_steps == "nearest-concept"


def test_m2kt_generate_with_an_hf_teacher(tiny, tmp_path, capsys):
    out = tmp_path / "p.m2kt"
    argv = ["generate", "--teacher", f"hf:{tiny['gpt2']}", "--concepts", str(tiny["concepts"])]
    assert main([*argv, "--traces", str(tiny["prompts"]), "-o", str(out), "--created", "0"]) == 0
    assert "12 concepts" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    assert main([*argv, "--prompts", str(tiny["prompts"]), "--traces", "1", "-o", str(out)]) == 0
    assert len(m2kt_ref.read_packet(out).body.traces) <= 1
    capsys.readouterr()
    cases = [
        (
            ["generate", "--teacher", f"hf:{tmp_path / 'none'}", "--concepts", "c", "-o", "x"],
            "IO_ERROR",
        ),
        (["generate", "--teacher", f"hf:{tiny['gpt2']}", "-o", "x"], "USAGE: an hf: teacher needs"),
        ([*argv, "--layer", "blocks.0", "-o", "x"], "USAGE: unknown layer"),
        (
            ["generate", "--teacher", str(tmp_path), "--concepts", "c", "-o", "x"],
            "USAGE: --concepts",
        ),
    ]
    for args, expected in cases:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
    assert not Path("x").exists()


def test_probe_states_match_the_packets_anchors(tiny):
    """An anchor's state is the teacher's state at the probe's phrase (its last token)."""
    result = generate_hf_packet(tiny["llama"], tiny["concepts"], None, created=0)
    packet = result.packet
    hf = load_hf_model(tiny["llama"])
    anchor = next(a for a in packet.body.anchors if a.id == "pine/1")  # "the pine"
    ids = hf.tokenizer("the pine")["input_ids"]
    with torch.no_grad():
        ref = hf.rows.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1]
    assert anchor.position == len(ids) - 1
    np.testing.assert_allclose(
        packet.tensor_f32(anchor.state), ref[0, -1].numpy(), rtol=1e-4, atol=1e-5
    )
