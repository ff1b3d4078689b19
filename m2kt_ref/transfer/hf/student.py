"""A Hugging Face model as a student: ``m2kt ingest PACKET --student hf:DIR --out DIR2``.

The student is wrapped as a :class:`~m2kt_ref.transfer.hf.TokenRowModel` and ingested by the
same :func:`~m2kt_ref.transfer.ingest` as an m2kt net (trust gate, CAL fitted on the student's
own states on the anchors, composite loss with the safety bounds, verification, rollback to the
exact original weights). What is particular to a text student is settled here, before that:

- the packet's rows are token ids, so they must mean the same tokens to the student: the
  packet's ``provenance.parameters.hf.tokenizer_digest`` must equal the student's
  (``INGEST_INCOMPATIBLE`` otherwise, also for a packet from a model that was not a text model);
- the student reads the layer of the same kind as the teacher's (``hidden.N`` for a teacher's
  ``hidden.K``, ``mean.N`` for ``mean.K``), at its own last state;
- the answer term is trained only when both sides answer in the same classes (both have a
  language-model head); otherwise ``reason_answer`` is set to 0 (the report's config says so).

:func:`save_hf_student` writes the result back with ``save_pretrained`` (safetensors), the
tokenizer, the ingestion report and a short ingestion history.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from m2kt_ref.errors import FileAccessError, IngestError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.trust import TrustStore
from m2kt_ref.transfer.hf.files import inspect_hf_dir, is_weight_file
from m2kt_ref.transfer.hf.load import HFModel, load_hf_model, quiet_transformers
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.ingest import Callback, IngestResult, ingest

__all__ = ["HISTORY_FILE", "REPORT_FILE", "hf_ingest_config", "ingest_hf", "save_hf_student"]

#: The ingestion report written beside the model.
REPORT_FILE = "report.json"
#: Every ingestion the directory went through (packet, decision, digests).
HISTORY_FILE = "m2kt-ingestions.json"

_DIGEST_METHOD = (
    "sha256 of the state dict of the student wrapped as m2kt's TokenRowModel (keys prefixed "
    '"model."; tied weights once per name) serialised as safetensors with metadata '
    '{"format": "pt"}; save_pretrained\'s model.safetensors is its own serialisation, recorded '
    "in m2kt-ingestions.json"
)


def _packet_hf(packet: Packet) -> dict[str, Any]:
    params = dict(packet.body.provenance.parameters)
    hf = params.get("hf")
    return dict(hf) if isinstance(hf, dict) else {}


def hf_ingest_config(packet: Packet, hf: HFModel, config: IngestConfig | None) -> IngestConfig:
    """The ingestion config for a text student: its layer and the answer term settled.

    Raises:
        IngestError: ``INGEST_INCOMPATIBLE`` when the packet's rows are not token ids of the
            student's tokenizer.
        UsageError: ``USAGE`` when the teacher's layer is neither ``hidden.K`` nor ``mean.K``
            and the config names no student layer.
    """
    cfg = config or IngestConfig()
    info = _packet_hf(packet)
    theirs = info.get("tokenizer_digest")
    mine = "sha256:" + hf.tokenizer_digest
    if theirs != mine:
        what = (
            f"token ids of the tokenizer {theirs}"
            if theirs
            else "token ids of a task, not of a text model's tokenizer"
        )
        raise IngestError(
            "INGEST_INCOMPATIBLE",
            f"the packet's rows are {what}; the student's tokenizer is {mine} (a text student "
            "needs the teacher's tokenizer)",
        )
    updates: dict[str, Any] = {}
    if cfg.student_layer is None:
        updates["student_layer"] = hf.rows.counterpart(packet.body.teacher.layer)
    if not (hf.lm_head and info.get("lm_head") is True):
        updates["reason_answer"] = 0.0
    return dataclasses.replace(cfg, **updates) if updates else cfg


def ingest_hf(
    packet: Packet,
    student: str | os.PathLike[str] | HFModel,
    config: IngestConfig | None = None,
    *,
    trust: TrustStore | None = None,
    allow_unverified: bool = False,
    progress: bool = False,
    callback: Callback | None = None,
    now: int | None = None,
    model_dtype: str | None = None,
    dist: Any = None,
    shard: bool = False,
) -> tuple[IngestResult, HFModel]:
    """Ingest ``packet`` into a Hugging Face student (spec/algorithms.md §3–§4 and §6.6).

    Args:
        packet: a decoded packet from a text teacher that shares the student's tokenizer.
        student: a ``save_pretrained`` directory or a loaded :class:`HFModel` (trained in place).
        config: an :class:`~m2kt_ref.transfer.IngestConfig`; its ``device`` is where the
            student is loaded and trained. ``student_layer`` and ``reason_answer`` are settled
            by :func:`hf_ingest_config`.
        trust, allow_unverified, progress, callback, now: as for
            :func:`~m2kt_ref.transfer.ingest`.
        model_dtype: precision of the student's weights when loading a directory (``fp32``;
            ``bf16``/``fp16`` on CUDA).
        dist, shard: a :class:`~m2kt_ref.transfer.distributed.DistContext` and FSDP sharding,
            as for :func:`~m2kt_ref.transfer.ingest` (docs/scaling.md): every rank loads the
            directory and runs this call; the returned student is the one to save on rank 0
            (a plain copy with the final weights when sharded).

    Returns:
        ``(result, student)``: the :class:`~m2kt_ref.transfer.IngestResult` (decision
        ``accepted``, ``rolled_back`` with the exact original weights restored, or
        ``kept_unsafe``) and the student, for :func:`save_hf_student`.

    Raises:
        IngestRefusedError: ``INGEST_REFUSED`` at the trust gate (nothing ingested).
        IngestError: ``INGEST_INCOMPATIBLE`` for a packet whose rows are not token ids of the
            student's tokenizer, or that does not fit the student otherwise.
        ModelDirError: ``IO_ERROR`` for a missing or incomplete student directory.
        UsageError: ``USAGE`` for a bad config, layer, device or dtype.

    Example:
        See docs/huggingface.md; tests/test_hf_student.py ingests GPT-2 packets into Llama
        and BERT students.
    """
    cfg = config or IngestConfig()
    hf = (
        student
        if isinstance(student, HFModel)
        else load_hf_model(student, device=cfg.device, dtype=model_dtype)
    )
    cfg = hf_ingest_config(packet, hf, cfg)
    result = ingest(
        packet,
        hf.rows,
        None,
        cfg,
        trust=trust,
        allow_unverified=allow_unverified,
        progress=progress,
        callback=callback,
        now=now,
        dist=dist,
        shard=shard,
    )
    if shard and result.model is not hf.rows:  # rank 0's plain copy holds the final weights
        hf = dataclasses.replace(hf, rows=result.model)
    result.report["student"]["digest_method"] = _DIGEST_METHOD
    result.report["student"]["architecture"]["class"] = (
        f"TokenRowModel({type(hf.rows.model).__name__})"
    )
    return result, hf


def save_hf_student(
    hf: HFModel,
    out: str | os.PathLike[str],
    *,
    report: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the student back: ``save_pretrained`` (safetensors), tokenizer, report, history.

    The files are written into a temporary directory beside ``out`` and moved in one by one
    (each move atomic), so a failure midway never leaves a half-written weights file.

    Args:
        hf: the (ingested or restored) student.
        out: the directory to write (created with its parents).
        report: the ingestion report (already signed, if it is to be), written as
            ``report.json``.
        history: earlier entries of ``m2kt-ingestions.json`` (default: those of the directory
            the student was loaded from); this ingestion is appended when ``report`` is given.

    Returns:
        ``out``.

    Raises:
        FileAccessError: ``IO_ERROR`` when the directory cannot be written.
    """
    from m2kt_ref.packet.receipt import write_report

    target = Path(out)
    if history is None:
        history = _read_history(hf.path)
    try:
        target.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            with quiet_transformers():
                hf.rows.model.save_pretrained(tmp)
                hf.tokenizer.save_pretrained(tmp)
            entries = list(history)
            if report is not None:
                entries.append(
                    {
                        "packet_id": report["packet"]["id"],
                        "decision": report["decision"],
                        "digest_before": report["student"]["digest_before"],
                        "digest_after": report["student"]["digest_after"],
                        "weights_sha256": inspect_hf_dir(tmp).weights_digest,
                        "report": REPORT_FILE,
                    }
                )
                write_report(tmp / REPORT_FILE, report)
            if entries:
                text = json.dumps(entries, indent=2, sort_keys=True) + "\n"
                (tmp / HISTORY_FILE).write_text(text, encoding="utf-8")
            written = {f.name for f in tmp.iterdir()}
            for f in sorted(tmp.iterdir()):
                os.replace(f, target / f.name)
            # weights of another layout left by an earlier save (a single file where shards
            # are now, or the reverse) would make the directory hold two sets of weights
            for f in sorted(target.iterdir()):
                if is_weight_file(f.name) and f.name not in written:
                    f.unlink()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise FileAccessError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _read_history(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((path / HISTORY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
