"""A Hugging Face model as a teacher: ``m2kt generate --teacher hf:DIR`` (spec/algorithms.md §6).

The model directory is loaded offline (:func:`~m2kt_ref.transfer.hf.load_hf_model`), the concept
and prompt files are tokenised into a :class:`~m2kt_ref.transfer.hf.TextTask`, and the packet is
built by the very generator the built-in teachers use
(:func:`~m2kt_ref.transfer.generate_from_model`): the same concept statistics, graph, trace
naming, anchors, accounting and signing, every fact with its derivation. What is particular to a
text model is decided here: which layer (``hidden.N`` with a language-model head, ``mean.N``
without), whether trace steps can be named by the model's own head (only where its head reads
the layer and reproduces the model's logits), and what the provenance records about the model
(``provenance.parameters.hf``: model type, config, weights and tokenizer digests).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.hf.load import HFModel, load_hf_model
from m2kt_ref.transfer.hf.rows import TokenRowModel, last_real_positions
from m2kt_ref.transfer.hf.text_task import (
    ConceptFile,
    PromptText,
    build_text_task,
    read_concepts,
    read_prompts,
)
from m2kt_ref.transfer.teacher.generate import (
    DEFAULT_CLUSTER_LEVELS,
    DEFAULT_COMPONENTS,
    DEFAULT_KNN,
    GenerationResult,
    generate_from_model,
)
from m2kt_ref.transfer.teacher.readout import ReadoutFn

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "generate_hf_packet",
    "greedy_continuations",
    "readout_for",
    "rows_per_batch",
]

#: Tokens a causal teacher may add to a prompt that has no answer.
DEFAULT_MAX_NEW_TOKENS = 8
#: Floats one forward batch may produce in its largest tensor (logits or stacked states).
_BATCH_FLOATS = 1 << 25


def rows_per_batch(seq_len: int, width: int) -> int:
    """Rows per forward pass so that ``rows × seq_len × width`` stays near 2²⁵ floats (128 MiB
    in fp32), ``width`` being the larger of the vocabulary (readout logits) and the stacked
    hidden states; between 1 and 1024."""
    return int(max(1, min(1024, _BATCH_FLOATS // max(1, seq_len * width))))


def readout_for(rows_model: TokenRowModel, layer: str, probe: np.ndarray) -> ReadoutFn | None:
    """The teacher's own readout for ``layer``, or None where it has none.

    Only ``hidden.N`` of a model with a language-model head feeds the head; the head counts as
    the teacher's readout only if applied to that state it gives the model's own logits on a
    probe row (a model that rescales or caps its logits is decoded by the nearest concept).
    """
    readout = rows_model.readout()
    if readout is None or layer != f"hidden.{rows_model.n_layers}":
        return None
    from m2kt_ref.transfer.hooks import HiddenStateReader

    with HiddenStateReader(rows_model, [layer]) as reader:
        out = reader.read(probe[None], return_logits=True)
    last = int(last_real_positions(torch.from_numpy(probe[None]), rows_model.pad_id)[0])
    mine = readout(out[layer][0, last][None])[0]
    theirs = out["logits"][0].float()
    scale = float(theirs.abs().max()) or 1.0
    return readout if float((mine - theirs).abs().max()) <= 1e-3 * scale + 1e-4 else None


def greedy_continuations(
    rows_model: TokenRowModel, eos_id: int | None, batch_size: int = 64
) -> Any:
    """A completer for :func:`~m2kt_ref.transfer.hf.text_task.build_text_task`: each prompt
    row continued greedily, one token at a time, until ``eos_id`` (kept) or the token limit.

    Returns:
        ``complete(rows, max_new_tokens) -> continuations`` that also counts, in its
        ``forward_rows`` attribute, the rows it ran (the provenance records them).
    """

    class _Complete:
        forward_rows = 0

        def __call__(self, rows: list[list[int]], max_new_tokens: int) -> list[list[int]]:
            device = next(iter(rows_model.parameters())).device
            out: list[list[int]] = [[] for _ in rows]
            live = list(range(len(rows)))
            rows_model.eval()
            for _ in range(max_new_tokens):
                if not live:
                    break
                for start in range(0, len(live), batch_size):
                    part = live[start : start + batch_size]
                    seqs = [rows[i] + out[i] for i in part]
                    width = max(len(s) for s in seqs)
                    x = torch.full((len(seqs), width), rows_model.pad_id, dtype=torch.long)
                    for j, s in enumerate(seqs):
                        x[j, : len(s)] = torch.tensor(s)
                    with torch.no_grad():
                        logits = rows_model(x.to(device))
                    self.forward_rows += len(seqs)
                    for i, token in zip(part, logits.argmax(dim=-1).tolist(), strict=True):
                        out[i].append(int(token))
                live = [i for i in live if eos_id is None or out[i][-1] != eos_id]
            return out

    return _Complete()


def generate_hf_packet(
    teacher: str | os.PathLike[str] | HFModel,
    concepts: str | os.PathLike[str] | ConceptFile,
    prompts: str | os.PathLike[str] | Sequence[PromptText] | None = None,
    *,
    layer: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    traces: int | None = None,
    trace_selection: str = "declared",
    step_decoding: str | None = None,
    declare: bool = False,
    dtype: str = "f32",
    knn: int = DEFAULT_KNN,
    components: int = DEFAULT_COMPONENTS,
    cluster_levels: int = DEFAULT_CLUSTER_LEVELS,
    seed: int = 0,
    created: str | int | _dt.datetime | None = None,
    protected: Iterable[str] = (),
    safety: Mapping[str, Any] | None = None,
    key: Any = None,
    name: str | None = None,
    device: Any = "cpu",
    model_dtype: str | None = None,
    batch_size: int | None = None,
    dist: Any = None,
) -> GenerationResult:
    """Build a knowledge packet from a Hugging Face model directory (spec/algorithms.md §6).

    Args:
        teacher: a ``save_pretrained`` directory or a loaded :class:`HFModel`.
        concepts: a concept file (path) or a parsed :class:`ConceptFile`.
        prompts: a prompt file (path), parsed prompts, or None for a packet without traces.
        layer: ``hidden.K`` (per position; a probe is read at its phrase's last token) or
            ``mean.K`` (mean over the row's tokens); default :attr:`TokenRowModel.default_layer`.
        max_new_tokens: a teacher with a language-model head continues each prompt that has no
            answer by up to this many tokens (greedy); 0 leaves such prompts as they are.
        traces: number of traces; None takes every prompt with a step (``declared``) or the
            cover (``cover``).
        trace_selection: ``declared`` (every prompt, in file order), ``cover`` or ``random``.
        step_decoding: ``teacher-readout`` (the model's head) or ``nearest-concept``; default:
            the head where it reads ``layer`` (see :func:`readout_for`), else the nearest concept.
        declare, dtype, knn, components, cluster_levels, seed, created, protected, safety, key:
            as for :func:`~m2kt_ref.transfer.generate_from_model`.
        name: ``teacher.name`` (default: the directory's name).
        device: where the model runs (``cpu``, ``cuda``, ``auto``).
        model_dtype: precision of the weights (``fp32``; ``bf16``/``fp16`` on CUDA).
        batch_size: rows per forward pass (default: as many as fit a few MiB of activations
            at this model's width). Other batch shapes may change the last bits of the
            states (sums in another order); a distributed run matches a single process with
            the same batch size.
        dist: a :class:`~m2kt_ref.transfer.distributed.DistContext`: the forward passes over
            probes, anchors and trace problems are shared out in whole batches and gathered,
            as for :func:`~m2kt_ref.transfer.generate_from_model`; the packet's bytes are a
            single process's (the prompts' greedy continuations run on every rank).

    Returns:
        a :class:`~m2kt_ref.transfer.GenerationResult`; ``teacher.architecture`` is the model
        type and ``provenance.parameters.hf`` what was loaded.

    Raises:
        ModelDirError: ``IO_ERROR`` for a missing or incomplete model directory.
        FileAccessError: ``IO_ERROR`` for an unreadable concept or prompt file.
        UsageError: ``USAGE`` for a malformed concept or prompt file (with the offending
            value's JSON Pointer or line), an unknown layer, teacher-readout decoding without a
            head that reads the layer, or a bad option.
        SignatureError, ValidationError: as for :func:`~m2kt_ref.transfer.generate_from_model`.

    Example:
        See docs/huggingface.md; tests/test_hf_teacher.py runs GPT-2, Llama and BERT teachers.
    """
    hf = (
        teacher
        if isinstance(teacher, HFModel)
        else load_hf_model(teacher, device=device, dtype=model_dtype)
    )
    rows_model = hf.rows
    layer = rows_model.check_layer(layer or rows_model.default_layer)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise UsageError("max_new_tokens must be an integer >= 0")
    if max_new_tokens < 0:
        raise UsageError("max_new_tokens must be >= 0")
    cf = concepts if isinstance(concepts, ConceptFile) else read_concepts(concepts)
    prompts_digest = ""
    if prompts is None:
        prompt_list: list[PromptText] = []
    elif isinstance(prompts, (str, os.PathLike)):
        prompt_list, prompts_digest = read_prompts(prompts)
    else:
        prompt_list = list(prompts)
    n_classes = _n_classes(hf)
    eos = hf.tokenizer.eos_token_id
    complete = greedy_continuations(rows_model, None if eos is None else int(eos))
    task = build_text_task(
        cf,
        prompt_list,
        hf.tokenizer,
        pad_id=hf.pad_id,
        lm_head=hf.lm_head,
        n_classes=n_classes,
        max_len=_max_positions(hf),
        prompts_digest=prompts_digest,
        complete=complete,
        max_new_tokens=max_new_tokens,
    )
    probe = np.asarray(task.concepts()[0].probes[0].tokens, dtype=np.int64)
    readout = readout_for(rows_model, layer, probe)
    if step_decoding == "teacher-readout" and readout is None:
        raise UsageError(
            f"teacher-readout decoding needs a language-model head that reads {layer}; "
            f"this {hf.model_type} model has {'none' if not hf.lm_head else 'one only at'}"
            + ("" if not hf.lm_head else f" hidden.{rows_model.n_layers}")
        )
    width = max(n_classes, hf.rows.config.hidden_size * (rows_model.n_layers + 1))
    info = hf.describe()
    info.update(
        {
            "layer_kind": "per-position" if layer.startswith("hidden.") else "mean-pooled",
            "concepts_digest": "sha256:" + cf.digest,
            "prompts": len(prompt_list),
            "max_new_tokens": max_new_tokens if hf.lm_head else 0,
            "continued_prompts": sum(p.answer is None for p in prompt_list) if hf.lm_head else 0,
            "continuation_forward_rows": complete.forward_rows,
        }
    )
    if prompts_digest:
        info["prompts_digest"] = "sha256:" + prompts_digest
    return generate_from_model(
        rows_model,
        task,
        layer=layer,
        readout=readout if step_decoding != "nearest-concept" else None,
        teacher_name=name or Path(hf.path).resolve().name or "teacher",
        architecture=hf.model_type,
        model_digest="sha256:" + hf.files.weights_digest,
        candidates=task.problems(),
        traces=traces,
        trace_selection=trace_selection,
        step_decoding=step_decoding,
        declare=declare,
        dtype=dtype,
        knn=knn,
        components=components,
        cluster_levels=cluster_levels,
        seed=seed,
        created=created,
        protected=protected,
        safety=safety,
        key=key,
        title=f"{task.name} knowledge from a {hf.model_type} model ({layer})",
        extra_parameters={"hf": info},
        batch_size=batch_size or rows_per_batch(task.seq_len, width),
        dist=dist,
    )


def _n_classes(hf: HFModel) -> int:
    """Width of the model's output: its vocabulary with a head, its hidden size without."""
    config = hf.rows.config
    if hf.lm_head:
        head = hf.rows.model.get_output_embeddings()
        return int(head.weight.shape[0]) if head is not None else int(config.vocab_size)
    return int(config.hidden_size)


def _max_positions(hf: HFModel) -> int | None:
    config = hf.rows.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
