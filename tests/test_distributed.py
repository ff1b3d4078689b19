"""``--distributed``: two real processes started by ``torchrun`` (gloo, CPU), against one.

* ingestion on 2 ranks, the student replicated (DDP) or sharded (FSDP, ``--shard``), reaches
  the single-process decision (accepted, and rolled back) with the same global batch;
  parameters agree within 1 % of the update's norm (float sums in another order; Adam turns a
  near-zero gradient's noise into a step of size ``lr``), final loss within 1e-4 relative;
* the same for a Hugging Face student (``hf:DIR``), replicated or sharded, and for the safe
  default that protects a trained student (self-agreement enforced on both ranks);
* generation on 2 ranks writes the very bytes of a single-process run with the same batch size;
* a rank that raises, dies or hangs fails the whole run: non-zero exit, nothing written to
  ``--out``, the student directory untouched; a hang ends at the process-group timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from m2kt_ref.cli import main  # noqa: E402
from m2kt_ref.packet.receipt import validate_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPTS = ["--opt", "n=8", "--opt", "functions=2", "--opt", "k=3"]
INGEST = ["--allow-unverified", "--steps", "12", "--set", "patience=0", "--no-progress"]
INGEST += ["--protect-problems", "8"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dist")
    teacher, student, packet = root / "teacher", root / "student", root / "p.m2kt"
    train = ["train-teacher", "--task", "chain", *OPTS, "--scale", "quick", "--no-progress"]
    assert main([*train, "--out", str(teacher)]) == 0
    generate = ["generate", "--teacher", str(teacher), "--traces", "4", "--created", "0"]
    assert main([*generate, "-o", str(packet)]) == 0
    init = ["init-student", "--task", "chain", "--family", "transformer", "--width", "16"]
    assert main([*init, "--depth", "2", *OPTS, "--out", str(student)]) == 0
    return {"root": root, "teacher": teacher, "student": student, "packet": packet}


def torchrun(*args, fault: str | None = None, timeout: float = 180):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("M2KT_TEST_FAULT", None)
    if fault:
        env["M2KT_TEST_FAULT"] = fault
        target = [str(ROOT / "tests" / "dist_fault.py")]
    else:
        target = ["-m", "m2kt_ref.cli"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["--max-restarts", "0", *target, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def weights(directory: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    tensors = load_file(directory / "model.safetensors")
    return np.concatenate([tensors[k].ravel().astype(np.float64) for k in sorted(tensors)])


def tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.rglob("*")):
        h.update(f.name.encode() + (f.read_bytes() if f.is_file() else b""))
    return h.hexdigest()


@pytest.mark.parametrize("shard", [False, True], ids=["ddp", "fsdp"])
@pytest.mark.parametrize(
    ("extra", "decision", "status"),
    [
        (["--set", "ignore_packet_policy=true", "--set", "max_output_divergence=1"], "accepted", 0),
        (["--set", "max_output_divergence=0"], "rolled_back", 3),
    ],
)
def test_two_ranks_decide_and_train_as_one_process(files, extra, decision, status, shard):
    root = files["root"]
    one, two = root / f"one-{decision}-{shard}", root / f"two-{decision}-{shard}"
    args = ["ingest", files["packet"], "--student", files["student"], *INGEST, *extra]
    assert main([*map(str, args), "--out", str(one)]) == status
    flags = ["--distributed", "--dist-timeout", "60", *(["--shard"] if shard else [])]
    run = torchrun(*args, "--out", two, *flags)
    # torchrun exits 1 when a rank exits non-zero; the ranks' own status (3) is in its summary
    assert run.returncode == (1 if status else 0), run.stderr[-3000:]
    if status:
        assert f"exitcode  : {status}" in run.stderr
    r1 = json.loads((one / "report.json").read_text())
    r2 = json.loads((two / "report.json").read_text())
    validate_report(r2)
    assert r1["decision"] == r2["decision"] == decision
    assert [c["passed"] for c in r1["safety"]["checks"]] == [
        c["passed"] for c in r2["safety"]["checks"]
    ]
    d = r2["device"]["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo" and d["cal_identical_on_ranks"]
    assert ("(FSDP)" in d["sharded"]) == shard
    assert r1["training"]["steps"] == r2["training"]["steps"] == 12
    l1, l2 = r1["training"]["final"]["loss"], r2["training"]["final"]["loss"]
    assert abs(l1 - l2) <= 1e-4 * abs(l1)
    assert r1["data"]["distinct_rows"] == r2["data"]["distinct_rows"]
    assert r1["data"]["task_inputs_used"] == r2["data"]["task_inputs_used"]
    theta0, w1, w2 = weights(files["student"]), weights(one), weights(two)
    if decision == "rolled_back":
        assert np.array_equal(w1, theta0) and np.array_equal(w2, theta0)
        assert r2["student"]["digest_after"] == r2["student"]["digest_before"]
    else:
        update = np.linalg.norm(w1 - theta0)
        assert update > 0
        assert np.linalg.norm(w2 - w1) <= 0.01 * update
    # the trained student is the one the report describes
    digest = "sha256:" + hashlib.sha256((two / "model.safetensors").read_bytes()).hexdigest()
    assert r2["student"]["digest_after"] == digest


def _wrong_answers(packet: Path, out: Path) -> Path:
    """The packet with every trace's answer moved to the next class: a trusted packet that
    would change a trained student's answers on its own problems (issue 13.4)."""
    from m2kt_ref.packet import codec
    from m2kt_ref.packet import tensors as tz

    original = codec.read_packet(packet)
    fields = original.body.to_data()
    fields.pop("tensors")
    n_classes = 1 + max(t["answer"] for t in fields["traces"])
    for t in fields["traces"]:
        t["answer"] = (t["answer"] + 1) % n_classes
    tensors = {
        t.name: tz.encode(np.array(original.tensor_f32(t.name)), "f32")
        for t in original.body.tensors
    }
    codec.write_packet(codec.assemble(fields, tensors), out)
    return out


def test_a_trained_student_is_protected_on_two_ranks_as_on_one(files):
    """The self-agreement check is enforced for a trained student (the teacher's own directory)
    under torchrun as in one process: the same answers changed, the same roll-back; and with
    ``student_trained=false`` it is measured, not enforced, on both."""
    root = files["root"]
    wrong = _wrong_answers(files["packet"], root / "wrong.m2kt")
    args = ["ingest", wrong, "--student", files["teacher"], "--allow-unverified", "--steps", "40"]
    args += ["--set", "patience=0", "--set", "lr=0.01", "--no-progress"]
    args += ["--set", "ignore_packet_policy=true", "--set", "max_output_divergence=1"]
    reports = {}
    for trained in ("true", "false"):
        extra = ["--set", f"student_trained={trained}"]
        one, two = root / f"self-one-{trained}", root / f"self-two-{trained}"
        status = main([*map(str, args), *extra, "--out", str(one)])
        run = torchrun(*args, *extra, "--out", two, "--distributed", "--dist-timeout", "60")
        assert run.returncode == (1 if status else 0), run.stderr[-3000:]
        r1 = json.loads((one / "report.json").read_text())
        r2 = json.loads((two / "report.json").read_text())
        checks = [{c["name"]: c for c in r["safety"]["checks"]} for r in (r1, r2)]
        assert [c["self_agreement"]["passed"] for c in checks] == [trained == "false"] * 2
        assert r1["decision"] == r2["decision"]
        sa1, sa2 = r1["safety"]["self_agreement"], r2["safety"]["self_agreement"]
        assert sa1["enforced"] == sa2["enforced"] == (trained == "true")
        assert abs(sa1["agreement"] - sa2["agreement"]) <= 0.05
        reports[trained] = (status, r1)
    status, r1 = reports["true"]
    assert status == 3 and r1["decision"] == "rolled_back"
    assert r1["safety"]["self_agreement"]["agreement"] < 0.8  # far past the 5 % allowed


@pytest.mark.parametrize("shard", [False, True], ids=["ddp", "fsdp"])
def test_a_hugging_face_student_on_two_ranks_as_in_one_process(files, shard):
    """``--student hf:DIR --distributed``: a Llama-config student ingesting a GPT-2 packet on
    two ranks (replicated or sharded) takes the single process's decision and ends within the
    stated tolerance of its weights; rank 0 alone writes the ``save_pretrained`` directory."""
    pytest.importorskip("transformers")
    from hf_words import CONCEPT_WORDS, WORDS

    import m2kt_ref
    from m2kt_ref.transfer.hf import generate_hf_packet, load_hf_model
    from m2kt_ref.transfer.hf.text_task import PromptText, parse_concepts
    from m2kt_ref.transfer.hf.tiny import save_tiny_model

    root = files["root"] / f"hf-{shard}"
    teacher = save_tiny_model(root / "gpt2", "gpt2", WORDS, width=32, seed=0)
    student = save_tiny_model(root / "llama", "llama", WORDS, width=24, seed=1)
    concepts = parse_concepts(
        {"task": "toy", "concepts": [{"id": w, "probes": [w, f"the {w}"]} for w in CONCEPT_WORDS]}
    )
    prompts = [PromptText("oak is a kind of", "tree"), PromptText("dog is a kind of", "animal")]
    packet = generate_hf_packet(teacher, concepts, prompts, created=0).packet
    m2kt_ref.write_packet(packet, root / "p.m2kt")
    args = ["ingest", root / "p.m2kt", "--student", f"hf:{student}", "--allow-unverified"]
    args += ["--steps", "8", "--set", "patience=0", "--no-progress"]
    one, two = root / "one", root / "two"
    assert main([*map(str, args), "--out", str(one)]) == 0
    flags = ["--distributed", "--dist-timeout", "60", *(["--shard"] if shard else [])]
    run = torchrun(*args, "--out", two, *flags)
    assert run.returncode == 0, run.stderr[-3000:]
    r1 = json.loads((one / "report.json").read_text())
    r2 = json.loads((two / "report.json").read_text())
    validate_report(r2)
    assert r1["decision"] == r2["decision"] == "accepted"
    assert r2["device"]["distributed"]["world_size"] == 2
    assert ("(FSDP)" in r2["device"]["distributed"]["sharded"]) == shard

    def flat(directory: Path) -> np.ndarray:
        state = load_hf_model(directory).rows.model.state_dict()
        return np.concatenate([state[k].double().numpy().ravel() for k in sorted(state)])

    theta0, w1, w2 = flat(student), flat(one), flat(two)
    update = np.linalg.norm(w1 - theta0)
    assert update > 0 and np.linalg.norm(w2 - w1) <= 0.01 * update
    assert r2["student"]["digest_after"] != r2["student"]["digest_before"]


def test_a_hugging_face_teacher_on_two_ranks_writes_the_same_bytes(files, tmp_path):
    """``m2kt generate --teacher hf:DIR --distributed``: the probes', anchors' and traces'
    forward passes shared out over two ranks give the single process's packet, byte for byte."""
    pytest.importorskip("transformers")
    from hf_words import CONCEPT_WORDS, WORDS

    from m2kt_ref.transfer.hf.tiny import save_tiny_model

    teacher = save_tiny_model(tmp_path / "gpt2", "gpt2", WORDS, width=32, seed=0)
    concepts = {
        "task": "toy",
        "concepts": [{"id": w, "probes": [w, f"the {w}"]} for w in CONCEPT_WORDS],
    }
    (tmp_path / "concepts.json").write_text(json.dumps(concepts))
    prompts = [{"prompt": "oak is a kind of", "answer": "tree"}, {"prompt": "dog is a kind of"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    args = ["generate", "--teacher", f"hf:{teacher}", "--concepts", tmp_path / "concepts.json"]
    args += ["--traces", tmp_path / "prompts.jsonl", "--created", "0", "--batch-size", "4"]
    one, two = tmp_path / "one.m2kt", tmp_path / "two.m2kt"
    assert main([*map(str, args), "-o", str(one)]) == 0
    run = torchrun(*args, "-o", two, "--distributed", "--dist-timeout", "60")
    assert run.returncode == 0, run.stderr[-3000:]
    assert two.read_bytes() == one.read_bytes()  # 4-row batches: both ranks computed some


def test_generation_on_two_ranks_writes_the_same_bytes(files):
    root = files["root"]
    args = ["generate", "--teacher", files["teacher"], "--traces", "4", "--created", "0"]
    args += ["--batch-size", "8", "--operators", "--declare"]
    assert main([*map(str, args), "-o", str(root / "g1.m2kt")]) == 0
    run = torchrun(*args, "-o", root / "g2.m2kt", "--distributed", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads(run.stdout)  # rank 0 alone prints
    assert stats["distributed"]["world_size"] == 2
    assert (root / "g1.m2kt").read_bytes() == (root / "g2.m2kt").read_bytes()


@pytest.mark.parametrize("mode", ["raise", "exit", "hang"])
def test_a_failing_rank_fails_the_run_and_writes_nothing(files, mode):
    out = files["root"] / f"fault-{mode}"
    before = tree_digest(files["student"])
    start = time.perf_counter()
    run = torchrun(
        "ingest", files["packet"], "--student", files["student"], "--out", out, *INGEST,
        "--distributed", "--dist-timeout", "5", fault=f"{mode}:1:4",
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert run.returncode != 0
    assert not out.exists() or not any(out.iterdir())
    assert tree_digest(files["student"]) == before
    assert elapsed < 90
    if mode == "hang":  # rank 0 gave up at the timeout with a coded error
        assert "DIST_FAILED" in run.stderr, run.stderr[-3000:]


def test_distributed_needs_torchrun_and_shard_needs_distributed(files, capsys, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    base = ["ingest", str(files["packet"]), "--student", str(files["student"])]
    base += ["--out", str(files["root"] / "never"), "--allow-unverified"]
    assert main([*base, "--distributed"]) == 1
    assert "USAGE: --distributed needs the torchrun environment" in capsys.readouterr().err
    assert main([*base, "--shard"]) == 1
    assert "USAGE: --shard shards the student over the ranks of a --distributed" in (
        capsys.readouterr().err
    )
    assert not (files["root"] / "never").exists()


def _ctx(rank: int, world: int):
    from m2kt_ref.transfer.distributed import DistContext

    return DistContext(rank, world, rank, "gloo", torch.device("cpu"), 5.0)


@pytest.mark.parametrize(("n", "batch", "world"), [(1, 4, 2), (10, 3, 2), (17, 4, 3), (8, 8, 4)])
def test_chunks_and_slices_cover_every_row_once(n, batch, world):
    from m2kt_ref.transfer.distributed import local_chunks, row_slice

    chunks = sorted(c for r in range(world) for c in local_chunks(n, batch, _ctx(r, world)))
    assert chunks == local_chunks(n, batch, None)  # the single process's chunks, each once
    slices = [row_slice(n, _ctx(r, world)) for r in range(world)]
    rows = [i for start, stop, _ in slices for i in range(start, stop)]
    assert rows == list(range(n))
    assert len({size for _, _, size in slices}) == 1  # one padded size: equal all-gathers
