"""Hugging Face students (the ``hf`` extra): ingestion, rollback to the exact weights, the
``save_pretrained`` round trip, ``m2kt ingest --student hf:DIR``, the end-to-end transfer from a
GPT-2-config teacher trained on a task family into a Llama-config student of another width, and
CUDA runs (bf16/fp16 weights) where a GPU exists.
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
import m2kt_ref.transfer as mt  # noqa: E402
from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.errors import IngestError  # noqa: E402
from m2kt_ref.packet.receipt import read_report, validate_report  # noqa: E402
from m2kt_ref.transfer.hf import (  # noqa: E402
    TokenRowModel,
    generate_hf_packet,
    ingest_hf,
    load_hf_model,
    save_hf_student,
)
from m2kt_ref.transfer.hf.text_task import PromptText, parse_concepts  # noqa: E402
from m2kt_ref.transfer.hf.tiny import save_tiny_model, tiny_model, word_tokenizer  # noqa: E402

CONCEPTS = parse_concepts(
    {
        "task": "toy",
        "concepts": [{"id": w, "label": w, "probes": [w, f"the {w}"]} for w in CONCEPT_WORDS],
    }
)
PROMPTS = [
    PromptText("oak is a kind of", "tree"),
    PromptText("dog is a kind of", "animal"),
    PromptText("red is a kind of", "colour"),
]
KEY = m2kt_ref.SigningKey(bytes(range(32)))
TRUST = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(KEY.public_key, "teacher-lab")])


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hfs")
    return {
        "gpt2": save_tiny_model(root / "gpt2", "gpt2", WORDS, width=32, seed=0),
        "llama": save_tiny_model(root / "llama", "llama", WORDS, width=24, seed=1),
        "bert": save_tiny_model(root / "bert", "bert", WORDS, width=16, seed=2),
        "other": save_tiny_model(root / "other", "llama", [*WORDS, "fir"], width=24, seed=1),
        "root": root,
    }


@pytest.fixture(scope="module")
def packet(dirs: dict[str, Path]) -> m2kt_ref.Packet:
    """A signed GPT-2 packet whose concept ``oak`` is protected."""
    result = generate_hf_packet(
        dirs["gpt2"], CONCEPTS, PROMPTS, created=0, key=KEY, protected=["oak"]
    )
    return m2kt_ref.decode(m2kt_ref.encode(result.packet))


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ingest_into_a_llama_of_another_width_and_save_pretrained(dirs, packet, tmp_path):
    before = _state(load_hf_model(dirs["llama"]).rows.model)
    result, hf = ingest_hf(packet, dirs["llama"], mt.IngestConfig(steps=30), trust=TRUST, now=0)
    report = result.report
    validate_report(report)
    assert result.decision == "accepted", report["reasons"]
    assert report["student"]["layer"] == "hidden.2" and report["alignment"]["student_dim"] == 24
    assert report["alignment"]["teacher_dim"] == 32
    assert report["config"]["reason_answer"] == 1.0  # both sides have a language-model head
    assert report["student"]["digest_after"] != report["student"]["digest_before"]
    assert not _same(before, _state(hf.rows.model))
    out = save_hf_student(hf, tmp_path / "after", report=report)
    assert {"model.safetensors", "config.json", "tokenizer.json", "report.json"} <= {
        p.name for p in out.iterdir()
    }
    again = load_hf_model(out)
    assert _same(_state(again.rows.model), _state(hf.rows.model))
    assert mt.state_dict_digest(again.rows) == report["student"]["digest_after"]
    assert again.tokenizer_digest == hf.tokenizer_digest
    history = json.loads((out / "m2kt-ingestions.json").read_text())
    assert history[-1]["packet_id"] == packet.packet_id and history[-1]["decision"] == "accepted"


def test_rollback_restores_the_exact_original_weights(dirs, packet, tmp_path):
    original = load_hf_model(dirs["llama"])
    weights = _state(original.rows.model)
    # any change moves the protected anchors' outputs: a zero divergence bound must fail
    config = mt.IngestConfig(steps=20, max_output_divergence=1e-12)
    result, hf = ingest_hf(packet, original, config, trust=TRUST, now=0)
    assert result.decision == "rolled_back" and "divergence" in " ".join(result.report["reasons"])
    assert _same(weights, _state(hf.rows.model))
    student = result.report["student"]
    assert student["digest_after"] == student["digest_before"]
    out = save_hf_student(hf, tmp_path / "restored", report=result.report)
    assert _same(weights, _state(load_hf_model(out).rows.model))
    with pytest.raises(IngestError) as exc:
        result.raise_for_decision()
    assert exc.value.code == "INGEST_ROLLED_BACK"


def test_an_encoder_student_skips_the_answer_term(dirs, packet):
    result, _ = ingest_hf(packet, dirs["bert"], mt.IngestConfig(steps=5), trust=TRUST, now=0)
    assert result.decision == "accepted"
    assert result.report["config"]["reason_answer"] == 0.0
    assert result.report["student"]["layer"] == "hidden.2"


def test_a_packet_of_another_tokenizer_is_incompatible(dirs, packet):
    with pytest.raises(IngestError, match="tokenizer") as exc:
        ingest_hf(packet, dirs["other"], mt.IngestConfig(steps=1), trust=TRUST, now=0)
    assert exc.value.code == "INGEST_INCOMPATIBLE"
    task = mt.make_task("chain", n=8, functions=2, k=3)
    teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
    toy = mt.generate_from_model(teacher, task, traces=2, created=0).packet
    with pytest.raises(IngestError, match="not of a text model") as exc:
        ingest_hf(toy, dirs["llama"], allow_unverified=True)
    assert exc.value.code == "INGEST_INCOMPATIBLE"


def test_m2kt_ingest_with_an_hf_student(dirs, packet, tmp_path, capsys):
    root = tmp_path
    m2kt_ref.write_packet(packet, root / "p.m2kt")
    assert main(["keygen", "-o", str(root / "lab")]) == 0  # the student operator's key
    (root / "teacher.pub").write_bytes(KEY.public_key.to_cose_key_bytes())
    student = f"hf:{dirs['llama']}"
    base = [
        "ingest",
        str(root / "p.m2kt"),
        "--student",
        student,
        "--trust",
        str(root / "teacher.pub"),
    ]
    capsys.readouterr()
    assert (
        main(
            [*base, "--out", str(root / "a"), "--steps", "10", "--sign-key", str(root / "lab.key")]
        )
        == 0
    )
    assert "accepted" in capsys.readouterr().out
    assert (root / "a" / "model.safetensors").is_file()
    assert read_report(root / "a" / "report.json")["decision"] == "accepted"
    assert load_hf_model(root / "a").model_type == "llama"
    assert main([*base, "--out", str(root / "b"), "--set", "max_output_divergence=1e-12"]) == 3
    assert "INGEST_ROLLED_BACK" in capsys.readouterr().err
    refused = ["ingest", str(root / "p.m2kt"), "--student", student, "--out", str(root / "c")]
    assert main(refused) == 1
    assert "INGEST_REFUSED" in capsys.readouterr().err
    assert read_report(root / "c" / "report.json")["decision"] == "refused"
    assert (
        main(["align", str(root / "p.m2kt"), "--student", student, "--method", "procrustes"]) == 0
    )
    assert "procrustes" in capsys.readouterr().out
    assert main([*base[:3], f"hf:{root / 'missing'}", *base[4:], "--out", str(root / "d")]) == 1
    assert "IO_ERROR" in capsys.readouterr().err


def _sharded_copy(src: Path, dst: Path) -> Path:
    """The same model written as three safetensors shards and an index (``max_shard_size``)."""
    hf = load_hf_model(src)
    hf.rows.model.save_pretrained(dst, max_shard_size="20KB")
    hf.tokenizer.save_pretrained(dst)
    return dst


def test_sharded_checkpoints_read_and_write_as_single_files_do(dirs, packet, tmp_path):
    """A ``save_pretrained`` directory in shards gives the same packet tensors (teacher) and the
    same ingested weights (student) as its single-file copy; its weights digest covers every
    shard; writing back into it leaves one set of weights, never two."""
    from m2kt_ref.transfer.hf.files import inspect_hf_dir

    teacher = _sharded_copy(dirs["gpt2"], tmp_path / "gpt2-sharded")
    student = _sharded_copy(dirs["llama"], tmp_path / "llama-sharded")
    assert len(inspect_hf_dir(student).weights) == 3
    assert inspect_hf_dir(student).weights_digest != inspect_hf_dir(dirs["llama"]).weights_digest
    single = generate_hf_packet(dirs["gpt2"], CONCEPTS, PROMPTS, created=0).packet
    sharded = generate_hf_packet(teacher, CONCEPTS, PROMPTS, created=0).packet
    assert [t.sha256 for t in sharded.body.tensors] == [t.sha256 for t in single.body.tensors]
    assert sharded.body.teacher.model_digest == f"sha256:{inspect_hf_dir(teacher).weights_digest}"

    m2kt_ref.write_packet(packet, tmp_path / "p.m2kt")
    (tmp_path / "teacher.pub").write_bytes(KEY.public_key.to_cose_key_bytes())
    args = ["ingest", str(tmp_path / "p.m2kt"), "--trust", str(tmp_path / "teacher.pub")]
    args += ["--steps", "5", "--no-progress"]
    assert main([*args, "--student", f"hf:{dirs['llama']}", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--student", f"hf:{student}", "--out", str(student)]) == 0  # in place
    assert _same(_state(load_hf_model(tmp_path / "a").rows.model),
                 _state(load_hf_model(student).rows.model))  # fmt: skip
    weights = sorted(p.name for p in student.iterdir() if p.suffix == ".safetensors")
    assert weights == ["model.safetensors"]  # the stale shards went with their index
    assert not (student / "model.safetensors.index.json").exists()
    history = json.loads((student / "m2kt-ingestions.json").read_text())
    assert history[-1]["weights_sha256"] == inspect_hf_dir(student).weights_digest


def test_a_directory_with_two_sets_of_weights_is_refused(dirs, tmp_path):
    from m2kt_ref.errors import ModelDirError
    from m2kt_ref.transfer.hf.files import inspect_hf_dir

    both = _sharded_copy(dirs["llama"], tmp_path / "both")
    (both / "model.safetensors").write_bytes((dirs["llama"] / "model.safetensors").read_bytes())
    with pytest.raises(ModelDirError, match="two sets of weights") as info:
        inspect_hf_dir(both)
    assert info.value.code == "IO_ERROR"


# --------------------------------------------------------------------------- end to end


def _train_gpt2_on_chain(task: mt.Task, tokenizer, steps: int = 300) -> tuple[TokenRowModel, float]:
    """A tiny GPT-2 that reads a chain row as text and predicts its answer as the next word."""
    words = task.vocab

    def rows_of(ps: mt.Task) -> torch.Tensor:
        texts = [" ".join(words[t] for t in row if t != task.pad_id) for row in ps.inputs]
        ids = [tokenizer(t)["input_ids"] for t in texts]
        width = max(len(i) for i in ids)
        return torch.tensor([i + [0] * (width - len(i)) for i in ids])

    def targets_of(ps) -> torch.Tensor:
        labels = [task.answer_labels[t] for t in ps.targets]
        return torch.tensor(tokenizer.convert_tokens_to_ids(labels))

    model = TokenRowModel(
        tiny_model("gpt2", len(tokenizer), width=32, layers=2, seed=0),
        pad_id=0,
        special_ids=[],
        lm_head=True,
    )
    split = task.split(0)
    x, y = rows_of(split.train), targets_of(split.train)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    torch.manual_seed(0)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        train_accuracy = float((model(x).argmax(-1) == y).float().mean())
    return model, train_accuracy


def test_a_trained_gpt2_teacher_into_a_llama_student_end_to_end(tmp_path):
    """Train a GPT-2-config teacher on the chain task (CPU, 300 steps), generate its packet as
    ``hf:``, and ingest it into a Llama-config student of another width."""
    torch.set_num_threads(1)
    task = mt.make_task("chain", n=8, functions=2, k=3)
    words = task.vocab[1:]  # the task's tokens as words (its padding is the tokenizer's [PAD])
    tokenizer = word_tokenizer(words)
    teacher, train_accuracy = _train_gpt2_on_chain(task, tokenizer)
    assert train_accuracy > 0.9  # it learned its training rows (chance 1/8)
    tdir = save_tiny_model(tmp_path / "teacher", "gpt2", words, model=teacher.model)
    sdir = save_tiny_model(tmp_path / "student", "llama", words, width=48, layers=2, seed=3)
    concepts = parse_concepts(
        {
            "task": "chain-text",
            "concepts": [{"id": c.id, "label": c.label} for c in task.concepts()],
        }
    )
    train = task.split(0).train
    prompts = [PromptText(" ".join(task.vocab[t] for t in row if t)) for row in train.inputs[:24]]
    generated = generate_hf_packet(tdir, concepts, prompts, created=0, key=KEY, max_new_tokens=0)
    packet = m2kt_ref.decode(m2kt_ref.encode(generated.packet))
    assert m2kt_ref.read_derivation(packet).trace_steps == "teacher-readout"
    # the steps name the intermediate symbol: the teacher's readout after each function
    truth = {
        tuple(r.tolist()): int(t)
        for r, t in zip(task.problems().inputs, task.problems().targets, strict=True)
    }
    hits = total = 0
    for trace in packet.body.traces:
        tokens = [tokenizer.convert_ids_to_tokens(i) for i in trace.input if i]
        for step in trace.steps:
            prefix = [task.token_id(t) for t in tokens[: step.position + 1]]
            want = truth.get(tuple(prefix + [0] * (task.seq_len - len(prefix))))
            if want is not None and step.concept.startswith("sym:"):
                total += 1
                hits += step.concept == f"sym:{want}"
    assert total and hits / total > 0.5
    result, hf = ingest_hf(packet, sdir, mt.IngestConfig(steps=60), trust=TRUST, now=0)
    report = result.report
    assert result.decision == "accepted", report["reasons"]
    assert report["student"]["architecture"]["class"] == "TokenRowModel(LlamaForCausalLM)"
    before, after = report["verification"]["before"], report["verification"]["after"]
    assert after["concept_retrieval"]["top1_csls"] > before["concept_retrieval"]["top1_csls"]
    assert after["traces"]["answer_agreement"] >= before["traces"]["answer_agreement"]
    out = save_hf_student(hf, tmp_path / "student-after", report=report)
    assert load_hf_model(out).rows.n_layers == 2


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_cuda_teacher_and_student_in_reduced_precision(dirs, packet, dtype, tmp_path):
    cpu = generate_hf_packet(dirs["gpt2"], CONCEPTS, PROMPTS, created=0)
    gpu = generate_hf_packet(
        dirs["gpt2"], CONCEPTS, PROMPTS, created=0, device="cuda", model_dtype=dtype
    )
    # the task's concepts (the clusters may fall differently once the states are rounded)
    a = np.stack([cpu.packet.tensor_f32(c.embedding) for c in cpu.packet.body.concepts[:12]])
    b = np.stack([gpu.packet.tensor_f32(c.embedding) for c in gpu.packet.body.concepts[:12]])
    np.testing.assert_allclose(a, b, rtol=0.1, atol=0.05)  # bf16/fp16 rounding of the states
    config = mt.IngestConfig(steps=20, device="cuda")
    result, hf = ingest_hf(packet, dirs["llama"], config, trust=TRUST, now=0, model_dtype=dtype)
    assert result.decision in ("accepted", "rolled_back")
    assert (
        next(hf.rows.parameters()).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    )
    out = save_hf_student(hf, tmp_path / dtype, report=result.report)
    assert load_hf_model(out).rows.n_layers == 2
