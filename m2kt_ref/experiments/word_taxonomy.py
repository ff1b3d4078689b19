"""The MiniLM study: what a random-weight BERT gets from a pretrained teacher's packet alone.

Teacher: all-MiniLM-L6-v2 (the ``minilm`` extra; :func:`~m2kt_ref.transfer.hf.minilm.minilm_dir`),
read mean-pooled at its last layer. Task: the curated word taxonomy of
``data/word_taxonomy.json`` (26 categories of 10 words); each word is a concept whose probes are
a few short phrases. The packet holds the teacher's concept geometry only (centroids,
manifolds, ``similar_to`` and cluster edges, all ``teacher-geometry``); the categories never
enter it. They are used only to measure a student and to train the labelled baseline.

Arms, per seed (the same random-weight BERT-config student, smaller than the teacher, sharing
its tokenizer):

- ``untrained``: the student as initialised (the same student without the packet);
- ``packet``: the student after ingesting the packet (0 labels);
- ``labelled``: the student trained with a linear head on the category of every word (as many
  labelled words as the packet has concepts), on the same probe rows, for the same number of
  steps, then read like the others (the head discarded);
- ``packet_half``: the student after ingesting a packet of half the words of each category
  (fold A), to see what reaches the words the packet does not carry (fold B);
- ``teacher`` (ceiling) and ``chance`` (1 / categories) as references.

Metrics on the word states ``z_w`` (mean of the student's states on the word's probes, at the
layer ingestion reads): **category accuracy** of a nearest-centroid probe (leave-one-out, cosine
on centred states); **CKA** (linear) with the teacher's word embeddings; **CSLS retrieval**
(top-1, k = 10) of each word after a Procrustes map fitted on the other half of the words
(two folds, stratified by category); **held-out category accuracy**: fold B's words classified by
the centroids of fold A's words (for ``packet_half``, words the packet never carried).

``python benchmarks/minilm_study.py`` runs it (figures in docs/huggingface.md); ``--quick`` is
the form the tests run.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2kt_ref.experiments.machine import environment

__all__ = [
    "StudyConfig",
    "category_accuracy",
    "csls_two_fold",
    "load_taxonomy",
    "run_study",
    "split_accuracy",
]

#: Probe phrases of a word (``{w}`` is the word).
PROBE_TEMPLATES = ("{w}", "the {w}", "some {w}")


@dataclass(frozen=True)
class StudyConfig:
    """Every setting of the study (recorded in its results).

    Args:
        categories: use the first N categories (None: all 26).
        words_per_category: use the first N words of each (None: all 10).
        templates: probe phrases of a word.
        student_width, student_layers, student_heads: the BERT-config student.
        steps: ingestion steps (IngestConfig default) and labelled-training steps.
        lr: learning rate of the labelled baseline (AdamW; ingestion uses its default).
        seeds: student initialisations.
        cache: where the MiniLM files are extracted (default: ``~/.cache/m2kt``).
    """

    categories: int | None = None
    words_per_category: int | None = None
    templates: tuple[str, ...] = PROBE_TEMPLATES
    student_width: int = 128
    student_layers: int = 2
    student_heads: int = 2
    steps: int = 300
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    cache: str | None = None

    @classmethod
    def quick(cls) -> StudyConfig:
        """A few seconds' worth: 4 categories of 5 words, two probes, 20 steps, one seed."""
        return cls(
            categories=4,
            words_per_category=5,
            templates=("{w}", "the {w}"),
            steps=20,
            student_width=32,
            seeds=(0,),
        )


def load_taxonomy(
    categories: int | None = None, words_per_category: int | None = None
) -> dict[str, list[str]]:
    """The curated word taxonomy (category -> words), optionally its first part."""
    text = (
        resources.files("m2kt_ref.experiments")
        .joinpath("data/word_taxonomy.json")
        .read_text(encoding="utf-8")
    )
    cats = json.loads(text)["categories"]
    names = list(cats)[:categories] if categories else list(cats)
    return {
        c: list(cats[c])[:words_per_category] if words_per_category else list(cats[c])
        for c in names
    }


def category_accuracy(states: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy (cosine on centred, normalised states).

    Each word is classified by the centroid of every category computed without it.
    """
    z = states - states.mean(axis=0, keepdims=True)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    n_cat = int(labels.max()) + 1
    onehot = np.eye(n_cat)[labels]  # [n, C]
    sums = onehot.T @ z  # [C, d]
    counts = onehot.sum(axis=0)  # [C]
    own = sums[labels] - z  # the own category without the word
    cents = np.broadcast_to(sums, (len(z), *sums.shape)).copy()
    cents[np.arange(len(z)), labels] = own
    sizes = np.broadcast_to(counts, (len(z), n_cat)).copy()
    sizes[np.arange(len(z)), labels] -= 1
    cents = cents / np.maximum(sizes, 1)[..., None]
    cents /= np.maximum(np.linalg.norm(cents, axis=2, keepdims=True), 1e-12)
    scores = np.einsum("nd,ncd->nc", z, cents)
    scores[sizes == 0] = -np.inf
    return float((scores.argmax(axis=1) == labels).mean())


def _folds(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xF01D])))
    a: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a.extend(idx[: len(idx) // 2].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[a] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def csls_two_fold(
    teacher: np.ndarray, student: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """Top-1 CSLS retrieval and centred cosine of words under a Procrustes map fitted on the
    other half (two folds stratified by category, averaged)."""
    from m2kt_ref.transfer.student.align import fit_alignment
    from m2kt_ref.transfer.student.align_metrics import evaluate_alignment

    x = torch.from_numpy(teacher).double()
    y = torch.from_numpy(student).double()
    a, b = _folds(labels, seed)
    out = []
    for fit, test in ((a, b), (b, a)):
        cal = fit_alignment("procrustes", x[fit], y[fit])
        out.append(evaluate_alignment(cal, x[test], y[test]))
    return {k: float(np.mean([o[k] for o in out])) for k in ("top1_csls", "cosine_centred")}


def split_accuracy(
    states: np.ndarray, labels: np.ndarray, support: np.ndarray, query: np.ndarray
) -> float:
    """Nearest-centroid accuracy of the ``query`` words, centroids from the ``support`` words
    (cosine on states centred over all words)."""
    z = states - states.mean(axis=0, keepdims=True)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    n_cat = int(labels.max()) + 1
    cents = np.stack([z[support][labels[support] == c].mean(axis=0) for c in range(n_cat)])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    return float(((z[query] @ cents.T).argmax(axis=1) == labels[query]).mean())


def _measure(teacher: np.ndarray, states: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from m2kt_ref.transfer.student.align_metrics import linear_cka

    cka = float(linear_cka(torch.from_numpy(teacher).double(), torch.from_numpy(states).double()))
    support, query = _folds(labels, 0)
    return {
        "category_accuracy": category_accuracy(states, labels),
        "heldout_category_accuracy": split_accuracy(states, labels, support, query),
        "cka": cka,
        **csls_two_fold(teacher, states, labels),
    }


@dataclass
class _Words:
    words: list[str]
    labels: np.ndarray
    categories: list[str]
    anchor_rows: np.ndarray  # [n_a, L]
    anchor_word: np.ndarray  # [n_a]
    teacher: np.ndarray  # [n_w, d_T]
    packet_layer: str
    extra: dict[str, Any] = field(default_factory=dict)


def _word_states(rows_model: Any, layer: str, words: _Words) -> np.ndarray:
    from m2kt_ref.transfer.hooks import HiddenStateReader

    with HiddenStateReader(rows_model, [layer]) as reader:
        s = reader.read(words.anchor_rows)[layer].double().numpy()
    if s.ndim == 3:
        raise ValueError("the study reads mean-pooled layers")
    out = np.zeros((len(words.words), s.shape[1]))
    np.add.at(out, words.anchor_word, s)
    return out / np.bincount(words.anchor_word, minlength=len(words.words))[:, None]


def _train_labelled(hf: Any, layer: str, words: _Words, cfg: StudyConfig, seed: int) -> None:
    """The labelled baseline: a linear head on the student's pooled state, cross-entropy on the
    category of every probe row, full batch, AdamW, ``cfg.steps`` steps (no safety bounds)."""
    from m2kt_ref.transfer.hooks import LayerTap

    model = hf.rows
    torch.manual_seed(10_000 + seed)
    width = int(model.config.hidden_size)
    head = torch.nn.Linear(width, len(words.categories))
    x = torch.from_numpy(words.anchor_rows)
    y = torch.from_numpy(words.labels[words.anchor_word])
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    model.eval()  # dropout off, as in ingestion
    with LayerTap(model.get_submodule(layer)) as tap:
        for _ in range(cfg.steps):
            model(x)
            loss = torch.nn.functional.cross_entropy(head(tap.take()), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _student_dir(root: Path, teacher_dir: Path, cfg: StudyConfig, seed: int) -> Path:
    """A random-weight BERT-config student sharing the teacher's tokenizer, saved."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from m2kt_ref.transfer.hf.load import quiet_transformers

    out = root / f"student-seed{seed}"
    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(teacher_dir), local_files_only=True)
        torch.manual_seed(seed)
        model = BertModel(
            BertConfig(
                vocab_size=len(tok),
                hidden_size=cfg.student_width,
                num_hidden_layers=cfg.student_layers,
                num_attention_heads=cfg.student_heads,
                intermediate_size=4 * cfg.student_width,
                max_position_embeddings=64,
                pad_token_id=tok.pad_token_id,
            )
        )
        model.save_pretrained(out)
        tok.save_pretrained(out)
    return out


def run_study(
    config: StudyConfig | None = None,
    *,
    workdir: str | Path | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run the MiniLM study (module docstring); returns a JSON-able results document.

    Args:
        config: the settings (default: the full study).
        workdir: where students and the packet are written (default: a temporary directory).
        log: progress messages.

    Returns:
        ``{"config", "environment", "packet", "teacher", "chance", "arms", "summary",
        "timing_s"}``; ``arms[name]`` lists one metrics dict per seed, ``summary[name]`` their
        mean and sample standard deviation.

    Raises:
        UsageError: ``USAGE`` when the ``minilm`` extra is not installed.
    """
    from m2kt_ref.transfer.hf import generate_hf_packet, ingest_hf, load_hf_model
    from m2kt_ref.transfer.hf.minilm import minilm_dir
    from m2kt_ref.transfer.hf.text_task import parse_concepts
    from m2kt_ref.transfer.student.config import IngestConfig

    cfg = config or StudyConfig()
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    teacher_dir = minilm_dir(cfg.cache)
    timing["extract"] = round(time.perf_counter() - t0, 2)
    taxonomy = load_taxonomy(cfg.categories, cfg.words_per_category)
    categories = list(taxonomy)
    words = [w for c in categories for w in taxonomy[c]]
    labels = np.array([i for i, c in enumerate(categories) for _ in taxonomy[c]], dtype=np.int64)

    def concepts_of(chosen: Sequence[str]) -> Any:
        return parse_concepts(
            {
                "task": "word-taxonomy",
                "concepts": [
                    {
                        "id": f"w:{w}",
                        "label": w,
                        "kind": "word",
                        "probes": [t.format(w=w) for t in cfg.templates],
                    }
                    for w in chosen
                ],
            }
        )

    concept_file = concepts_of(words)
    t = time.perf_counter()
    teacher = load_hf_model(teacher_dir)
    # unsigned: a packet without prompts records no task input, and signing requires one
    # (spec/signing.md §8); the students ingest it with allow_unverified, recorded in reports
    generated = generate_hf_packet(teacher, concept_file, None, created=0)
    packet = generated.packet
    timing["generate"] = round(time.perf_counter() - t, 2)
    fold_a, _ = _folds(labels, 0)
    half = generate_hf_packet(teacher, concepts_of([words[i] for i in fold_a]), None, created=0)
    body = packet.body
    word_of = {f"w:{w}": i for i, w in enumerate(words)}
    data = _Words(
        words=words,
        labels=labels,
        categories=categories,
        anchor_rows=np.array([list(a.input) for a in body.anchors], dtype=np.int64),
        anchor_word=np.array([word_of[a.concept] for a in body.anchors], dtype=np.int64),
        teacher=np.stack(
            [packet.tensor_f32(c.embedding) for c in body.concepts[: len(words)]]
        ).astype(np.float64),
        packet_layer=body.teacher.layer,
    )
    derivations = generated.stats["edges_by_derivation"]
    log(
        f"packet: {len(words)} words in {len(categories)} categories, {len(body.anchors)} anchors,"
        f" {len(body.graph.edges)} edges {derivations}, {generated.stats['packet_bytes']} bytes"
    )
    arms: dict[str, list[dict[str, Any]]] = {
        "untrained": [],
        "packet": [],
        "labelled": [],
        "packet_half": [],
    }
    root_ctx = tempfile.TemporaryDirectory() if workdir is None else None
    root = Path(root_ctx.name if root_ctx else workdir)  # type: ignore[arg-type]
    try:
        for seed in cfg.seeds:
            sdir = _student_dir(root, teacher_dir, cfg, seed)
            student = load_hf_model(sdir)
            layer = student.rows.counterpart(data.packet_layer)
            arms["untrained"].append(
                {
                    "seed": seed,
                    **_measure(data.teacher, _word_states(student.rows, layer, data), labels),
                }
            )
            t = time.perf_counter()
            result, student = ingest_hf(
                packet,
                student,
                IngestConfig(steps=cfg.steps, seed=seed),
                allow_unverified=True,
            )
            wall = round(time.perf_counter() - t, 2)
            rep = result.report
            arms["packet"].append(
                {
                    "seed": seed,
                    **_measure(data.teacher, _word_states(student.rows, layer, data), labels),
                    "decision": rep["decision"],
                    "steps": rep["training"]["steps"],
                    "drift": rep["safety"]["parameter_drift"],
                    "concept_retrieval_csls": rep["verification"]["after"]["concept_retrieval"][
                        "top1_csls"
                    ],
                    "wall_s": wall,
                }
            )
            fresh = load_hf_model(sdir)
            t = time.perf_counter()
            _train_labelled(fresh, layer, data, cfg, seed)
            arms["labelled"].append(
                {
                    "seed": seed,
                    **_measure(data.teacher, _word_states(fresh.rows, layer, data), labels),
                    "labelled_words": len(words),
                    "wall_s": round(time.perf_counter() - t, 2),
                }
            )
            half_student = load_hf_model(sdir)
            t = time.perf_counter()
            result, half_student = ingest_hf(
                half.packet,
                half_student,
                IngestConfig(steps=cfg.steps, seed=seed),
                allow_unverified=True,
            )
            arms["packet_half"].append(
                {
                    "seed": seed,
                    **_measure(data.teacher, _word_states(half_student.rows, layer, data), labels),
                    "decision": result.report["decision"],
                    "packet_words": len(fold_a),
                    "wall_s": round(time.perf_counter() - t, 2),
                }
            )
            log(
                f"seed {seed}: "
                + ", ".join(f"{k} {arms[k][-1]['category_accuracy']:.3f}" for k in arms)
            )
    finally:
        if root_ctx is not None:
            root_ctx.cleanup()
    teacher_metrics = _measure(data.teacher, data.teacher, labels)
    summary = {
        name: {
            k: _mean_sd([r[k] for r in runs])
            for k in (
                "category_accuracy",
                "heldout_category_accuracy",
                "cka",
                "top1_csls",
                "cosine_centred",
            )
        }
        for name, runs in arms.items()
    }
    timing["total"] = round(time.perf_counter() - t0, 2)
    return {
        "config": asdict(cfg),
        "environment": environment(torch.device("cpu")),
        "packet": {
            "id": packet.packet_id,
            "bytes": generated.stats["packet_bytes"],
            "layer": body.teacher.layer,
            "concepts": generated.stats["concepts"],
            "clusters": generated.stats["clusters"],
            "anchors": len(body.anchors),
            "edges_by_derivation": derivations,
            "label_equivalents": 0,
            "concept_probes": len(body.anchors),
        },
        "words": len(words),
        "categories": len(categories),
        "teacher": teacher_metrics,
        "chance": 1.0 / len(categories),
        "arms": arms,
        "summary": summary,
        "timing_s": timing,
    }


def _mean_sd(values: Sequence[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None,
    }
