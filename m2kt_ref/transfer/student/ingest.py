"""Student-side ingestion of a knowledge packet (spec/algorithms.md §2–§4).

:func:`ingest` takes a decoded packet and any ``nn.Module`` mapping token rows ``[B, L]`` to
logits (the student, of any width and depth), and in order:

1. **trust gate**: verifies the packet's tensor digests and signatures against a trust store and
   a k-of-n policy (the stricter of the packet's ``safety`` and the caller's config) and refuses
   an unverified packet (:class:`IngestRefusedError`, ``INGEST_REFUSED``) unless the caller opts
   out with ``allow_unverified=True`` (recorded in the report);
2. snapshots the student (``theta_0``) and its outputs on a **protected set**: the anchors of the
   packet's ``safety.protected_concepts`` plus caller-supplied problems (a capability the
   student already has), whose accuracy it records;
3. reads the student's states on the anchors at the layer that corresponds to the teacher's,
   fits the **Concept Alignment Layer** (CAL, :mod:`~m2kt_ref.transfer.student.align`) on a split
   of the anchors and maps every concept embedding and trace state into student space;
4. minimises the **composite loss** (:mod:`~m2kt_ref.transfer.student.losses`) over the
   student's parameters with AdamW, with a hard bound on the parameter drift applied after
   every step and early stopping on a plateau;
5. **verifies** the result (:mod:`m2kt_ref.transfer.student.verify`) and rolls the student back to
   ``theta_0`` when a safety bound fails;
6. returns the student and the **ingestion report** (``schemas/ingestion-report.schema.json``).

Everything runs on CPU or CUDA (``IngestConfig.device``), optionally under bf16 autocast on CUDA.
On CPU, a run is deterministic for a seed and a thread count.
"""

from __future__ import annotations

import copy
import datetime as _dt
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref import __version__
from m2kt_ref.errors import IngestError, IngestRefusedError, UsageError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.gate import check_trust
from m2kt_ref.packet.receipt import REPORT_FORMAT, REPORT_VERSION, json_safe
from m2kt_ref.packet.trust import TrustStore
from m2kt_ref.transfer.accounting import RowRecorder
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.distributed import (
    DistContext,
    full_state_dict,
    local_part,
    shard_module,
    union_rows,
)
from m2kt_ref.transfer.hooks import LayerTap, first_tensor
from m2kt_ref.transfer.model_dir import state_dict_digest
from m2kt_ref.transfer.student import verify as V
from m2kt_ref.transfer.student.align import AlignmentMap, evaluate_alignment, fit_alignment
from m2kt_ref.transfer.student.anchors import heldout_metrics, split_anchors
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.readout import read_student, student_layer
from m2kt_ref.transfer.student.safety import effective_policy, safety_checks
from m2kt_ref.transfer.student.train_loop import Callback, CompositeLossTrainer
from m2kt_ref.transfer.student.verify import Verifier
from m2kt_ref.transfer.student.view import (
    PacketView,
    WorkBudget,
    check_compatible,
    packet_view,
)

__all__ = ["Callback", "IngestResult", "ingest"]


@dataclass
class IngestResult:
    """What :func:`ingest` returns.

    Args:
        model: the student (the same object that was passed in, trained in place; restored to
            its pre-ingestion weights when the decision is ``rolled_back``).
        report: the ingestion report (JSON-able; ``schemas/ingestion-report.schema.json``).
        alignment: the fitted alignment map (teacher -> student space).
        history: one entry per ``eval_every`` steps: ``step``, ``wall_s``, ``loss`` and each
            term, ``drift`` (for steps-to-accuracy curves).

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
        >>> packet = mt.generate_from_model(teacher, task, traces=4, created=0).packet
        >>> student, _, _ = mt.init_student(task, family="mlp", width=12, depth=1, seed=1)
        >>> config = mt.IngestConfig(steps=3, eval_every=1)
        >>> result = mt.ingest(packet, student, task, config, allow_unverified=True)
        >>> result.model is student, result.decision, result.accepted
        (True, 'accepted', True)
        >>> result.raise_for_decision()          # raises INGEST_ROLLED_BACK when rolled back
        >>> [entry["step"] for entry in result.history], result.alignment.method
        ([1, 2, 3], 'procrustes')
    """

    model: nn.Module
    report: dict[str, Any]
    alignment: AlignmentMap
    history: list[dict[str, Any]]

    @property
    def decision(self) -> str:
        """``accepted``, ``rolled_back`` or ``kept_unsafe``."""
        return str(self.report["decision"])

    @property
    def accepted(self) -> bool:
        """Whether every safety check passed and the ingested student was kept."""
        return self.decision == "accepted"

    def raise_for_decision(self) -> None:
        """Raise ``INGEST_ROLLED_BACK`` when a safety check failed and the student was restored
        (a ``kept_unsafe`` result was kept on purpose and does not raise).

        Raises:
            IngestError: ``INGEST_ROLLED_BACK``; the message lists the failed checks.
        """
        if self.decision == "rolled_back":
            reasons = "; ".join(self.report.get("reasons", [])) or "a safety check failed"
            raise IngestError("INGEST_ROLLED_BACK", f"ingestion rolled back: {reasons}")


def _as_protected(protected: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if protected is None:
        return np.zeros((0, 0), np.int64), None
    inputs = getattr(protected, "inputs", None)
    if inputs is not None:
        targets = getattr(protected, "targets", None)
        return np.asarray(inputs, dtype=np.int64), (
            None if targets is None else np.asarray(targets, dtype=np.int64)
        )
    if isinstance(protected, tuple) and len(protected) == 2:
        return np.asarray(protected[0], dtype=np.int64), np.asarray(protected[1], np.int64)
    return np.asarray(protected, dtype=np.int64), None


def _now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _packet_summary(packet: Packet) -> dict[str, Any]:
    body = packet.body
    t = body.teacher
    return {
        "id": packet.packet_id,
        "title": body.header.title,
        "created": body.header.created,
        "task": {"name": body.provenance.task.name, "options": dict(body.provenance.task.options)},
        "teacher": {
            "name": t.name,
            "architecture": t.architecture,
            "latent_dim": t.latent_dim,
            "layer": t.layer,
            "model_digest": t.model_digest,
        },
        "counts": {
            "concepts": len(body.concepts),
            "edges": len(body.graph.edges),
            "traces": len(body.traces),
            "anchors": len(body.anchors),
            "steps": sum(len(t.steps) for t in body.traces),
        },
        "provenance": {
            "task_inputs_used": body.provenance.task_inputs_used,
            "concept_probes_used": body.provenance.concept_probes_used,
        },
        "signed": packet.signatures is not None,
    }


def _environment(device: torch.device, bf16: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": device.type,
        "name": str(device),
        "threads": torch.get_num_threads(),
        "bf16": bool(bf16),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "m2kt": __version__,
    }
    if device.type == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name(device)
    return out


def ingest(
    packet: Packet,
    student_model: nn.Module,
    task: Any = None,
    config: IngestConfig | None = None,
    *,
    trust: TrustStore | None = None,
    allow_unverified: bool = False,
    progress: bool = False,
    protected: Any = None,
    callback: Callback | None = None,
    now: int | None = None,
    dist: DistContext | None = None,
    shard: bool = False,
) -> IngestResult:
    """Ingest ``packet`` into ``student_model`` (spec/algorithms.md §3) and verify it (§4).

    Args:
        packet: a decoded packet (``codec.decode`` / ``codec.read_packet``).
        student_model: any module mapping ``int64 [B, L]`` token rows to logits ``[B, C]``;
            trained in place (moved to ``config.device``).
        task: the student's :class:`~m2kt_ref.transfer.tasks.Task`; checked against the packet's
            ``provenance.task``, used to classify the rows that reach the student (data
            accounting) and to draw ``config.protect_task_problems``. May be None for a model
            without a task; then trace rows count as task inputs.
        config: an :class:`IngestConfig` (defaults when None).
        trust: the trusted keys; None trusts nobody.
        allow_unverified: ingest a packet that fails signature verification (recorded).
        progress: show a tqdm bar on stderr.
        protected: a capability the student must keep: an object with ``inputs`` ``[N, L]`` and
            ``targets`` ``[N]`` (a task ``ProblemSet``), a pair ``(inputs, targets)``, or inputs
            alone (output divergence only).
        callback: called every ``eval_every`` steps as ``callback(step, info)``; ``info`` is the
            history entry plus ``"model"``; a truthy return stops training (``stop_reason``
            ``callback``), e.g. once a target accuracy is reached.
        now: verification time (Unix seconds) for key validity windows; the clock when None.
        dist: run as one rank of a distributed ingestion (:func:`~m2kt_ref.transfer.\
            distributed.init_distributed`; docs/scaling.md): every rank calls :func:`ingest`
            with the same arguments; the student is wrapped in DDP, each step's rows are split
            among the ranks, rank 0's alignment targets are broadcast, and every check, stop
            and the decision are agreed over all ranks. The caller writes files on rank 0 only.
        shard: with ``dist``, shard the student with FSDP instead of replicating it: its
            parameters, gradients, optimiser state and snapshots are split over the ranks.
            The student is sharded in place; on rank 0 ``result.model`` is a plain copy with
            the final weights (for saving), on the other ranks the sharded module.

    Returns:
        an :class:`IngestResult`; ``report["decision"]`` is ``accepted``, ``rolled_back`` or
        ``kept_unsafe`` (with ``config.rollback=False``).

    Raises:
        IngestRefusedError: ``INGEST_REFUSED`` (trust gate); ``exc.report`` is the report.
            Nothing was ingested.
        IngestError: ``INGEST_INCOMPATIBLE`` when the packet does not fit the student;
            ``INGEST_BUDGET`` when its graph needs more index entries than
            ``config.work_budget`` (refused before they are built; nothing was ingested).
        DistributedError: ``DIST_FAILED`` (with ``dist``) when another rank failed, timed out or
            disagreed; the student is restored.
        UsageError: ``USAGE`` for a bad config, layer or device (e.g. bf16 without CUDA), an
            alignment that cannot be fitted, or protected rows of another length.

        A safety check that fails is not raised: the decision is ``rolled_back`` (see
        :meth:`IngestResult.raise_for_decision`). On any error the student's weights are
        restored.

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> teacher, _, _ = mt.init_student(task, family="gru", width=16, depth=1)
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> packet = mt.generate_from_model(teacher, task, traces=4, created=0, key=key).packet
        >>> trust = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(key.public_key, "teacher-lab")])
        >>> student, _, _ = mt.init_student(task, family="mlp", width=12, depth=1, seed=1)
        >>> config = mt.IngestConfig(steps=3)
        >>> result = mt.ingest(packet, student, task, config, trust=trust, now=0)
        >>> result.decision, result.report["trust"]["signers"][0]["name"]
        ('accepted', 'teacher-lab')
        >>> all(check["passed"] for check in result.report["safety"]["checks"])
        True
        >>> try:
        ...     mt.ingest(packet, student, task, config)             # nobody trusted
        ... except m2kt_ref.IngestRefusedError as exc:
        ...     print(exc.code, exc.report["decision"])
        INGEST_REFUSED refused
    """
    cfg = config or IngestConfig()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    clock = t_start

    def lap(name: str) -> None:
        nonlocal clock
        t = time.perf_counter()
        timings[name] = round(t - clock, 4)
        clock = t

    device = resolve_device(cfg.device) if dist is None else dist.device
    if cfg.bf16 and device.type != "cuda":
        raise UsageError("bf16 autocast needs a CUDA device (device=cuda)")
    layer = student_layer(student_model, cfg)
    student_model.to(device)
    digest_before = state_dict_digest(student_model)
    policy = effective_policy(packet, cfg)
    base_report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created": _now_text(),
        "packet": None,
        "student": {
            "architecture": _architecture(student_model),
            "layer": layer,
            "n_parameters": sum(p.numel() for p in student_model.parameters()),
            "digest_method": "sha256 of the state dict serialised as safetensors with metadata "
            '{"format": "pt"} (equals the sha256 of model.safetensors written by m2kt)',
            "digest_before": digest_before,
            "digest_after": digest_before,
        },
        "config": cfg.to_dict(),
        "policy": policy,
        "device": _environment(device, cfg.bf16),
    }
    if shard and dist is None:
        raise UsageError("shard needs a distributed run (dist)")
    if dist is not None:
        base_report["device"]["distributed"] = {
            **dist.describe(),
            "sharded": "the rows of each step's batch (contiguous slices, one per rank)"
            + (
                "; parameters, gradients, optimiser state, theta_0 and the rollback copy (FSDP)"
                if shard
                else ""
            ),
            "replicated": "alignment targets, verification"
            if shard
            else "parameters, optimiser state, alignment targets, verification",
            "rows_total": "data.rows_total sums every rank's forward rows (replicated reads "
            "and padding rows count once per rank); distinct rows are the union",
        }

    # 1. trust gate -------------------------------------------------------------------------
    base_report["packet"] = _packet_summary(packet)
    try:
        trust_info = check_trust(
            packet,
            trust,
            require_signature=cfg.require_signature,
            min_signers=cfg.min_signers,
            allow_unverified=allow_unverified,
            now=now,
        )
    except IngestRefusedError as exc:
        if dist is not None:  # every rank refuses, or it is not a refusal but a failure
            dist.agree(False, "the trust gate")
        lap("trust")
        timings["total"] = round(time.perf_counter() - t_start, 4)
        exc.report = json_safe(
            {
                **base_report,
                "trust": exc.verification,
                "decision": "refused",
                "reasons": [exc.message],
                "timings": timings,
            }
        )
        raise
    if dist is not None:
        dist.agree(True, "the trust gate")
    lap("trust")
    budget = WorkBudget(cfg.work_budget)
    view = packet_view(packet, budget)
    check_compatible(view, packet, task, student_model)

    plain_copy: nn.Module | None = None
    if shard:
        assert dist is not None
        if dist.is_main:  # the module rank 0 saves: a CPU copy, given the final weights later
            student_model.to("cpu")  # copied on the CPU, never twice on the device
            plain_copy = copy.deepcopy(student_model)
            student_model.to(device)
        shard_module(student_model, dist)

    # 2. snapshot, protected set ------------------------------------------------------------
    params: list[torch.Tensor] = [p for p in student_model.parameters() if p.requires_grad]
    if not params:
        raise UsageError("the student has no trainable parameters")
    state0 = {k: v.detach().clone() for k, v in student_model.state_dict().items()}
    theta0 = [p.detach().clone() for p in params]
    theta0_norm_sq = torch.stack([(local_part(p).double() ** 2).sum() for p in theta0]).sum()
    if shard:
        assert dist is not None
        theta0_norm_sq = torch.tensor(dist.all_reduce([float(theta0_norm_sq)], "sum")[0])
    theta0_norm_sq = theta0_norm_sq.float()
    protected_inputs, protected_targets = _as_protected(protected)
    if protected_inputs.size and protected_inputs.shape[1] != view.seq_len:
        raise UsageError("protected inputs have another row length than the packet")
    if cfg.protect_task_problems > 0:
        if task is None:
            raise UsageError("protect_task_problems needs the student's task")
        ps = task.problems()
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0x9A0D])))
        pick = np.sort(rng.permutation(len(ps))[: cfg.protect_task_problems])
        extra_x, extra_y = ps.inputs[pick], ps.targets[pick]
        if protected_inputs.size:
            protected_targets = (
                np.concatenate([protected_targets, extra_y])
                if protected_targets is not None
                else None
            )
            protected_inputs = np.concatenate([protected_inputs, extra_x])
        else:
            protected_inputs, protected_targets = extra_x, extra_y
    n_caller = len(protected_inputs)
    protected_ids = set(policy["protected_concepts"])
    index = {cid: i for i, cid in enumerate(view.concept_ids)}
    prot_cols = sorted(
        {int(j) for cid in protected_ids if cid in index for j in view.membership.row(index[cid])}
    )
    anchor_prot = view.anchor_inputs[prot_cols] if prot_cols else np.zeros((0, view.seq_len))
    kl_inputs = np.concatenate(
        [protected_inputs.reshape(-1, view.seq_len), anchor_prot.reshape(-1, view.seq_len)]
    ).astype(np.int64)
    kl_x = torch.from_numpy(kl_inputs)
    cap_y = torch.from_numpy(protected_targets) if protected_targets is not None else None

    check_x, check_sources = _self_check_inputs(view, task, cfg)
    ledger = RowRecorder([student_model])
    cap = LayerTap(student_model.get_submodule(layer))
    was_training = student_model.training
    autocast = bool(cfg.bf16)
    forward: nn.Module | None = None
    if dist is not None and not shard:
        from torch.nn.parallel import DistributedDataParallel as DDP

        dist.same_on_all_ranks(
            [float(theta0_norm_sq), float(len(params))], "the student's initial weights"
        )
        forward = DDP(
            student_model,
            device_ids=[device.index or 0] if device.type == "cuda" else None,
        )
    try:
        student_model.eval()
        before = read_student(student_model, cap, view, kl_x, device, autocast)
        logits0 = before.protected_logits
        with ledger.paused():  # a measurement of the student against itself, not data used
            answers0 = _answers(student_model, check_x, device)
        lap("snapshot")

        # 3. alignment ----------------------------------------------------------------------
        fit_rows, hold_rows = split_anchors(len(view.anchor_ids), cfg)
        x_all = torch.from_numpy(view.anchor_states).double()
        y_all = before.anchors.double()
        options = dict(cfg.align_options)
        if cfg.align_method == "mlp":
            options.setdefault("seed", cfg.seed)
        cal = fit_alignment(cfg.align_method, x_all[fit_rows], y_all[fit_rows], **options)
        e_all = torch.from_numpy(view.embeddings).double()
        y_hat = cal(e_all).float()  # [n_c, d_S]
        step_targets = cal(torch.from_numpy(view.step_states).double()).float()
        anchor_mapped = cal(x_all).float()
        if dist is not None:
            # every rank fits the same map on the same states; rank 0's targets are broadcast
            # so that all train towards one target, and whether the fits agreed is recorded
            own = [y_hat, step_targets, anchor_mapped]
            y_hat, step_targets, anchor_mapped = (dist.broadcast(t) for t in own)
            mine = (y_hat, step_targets, anchor_mapped)
            same = all(torch.equal(a, b) for a, b in zip(own, mine, strict=True))
            (agreed,) = dist.all_reduce([1.0 if same else 0.0], "min")
            base_report["device"]["distributed"]["cal_identical_on_ranks"] = bool(agreed)
        alignment = {
            "method": cfg.align_method,
            "options": options,
            "teacher_dim": int(view.embeddings.shape[1]),
            "student_dim": int(y_all.shape[1]),
            "n_fit": len(fit_rows),
            "n_heldout": len(hold_rows),
            "fit_info": dict(cal.fit_info),
            "fit": evaluate_alignment(cal, x_all[fit_rows], y_all[fit_rows], k=cfg.csls_k),
            "heldout_before": heldout_metrics(cal, x_all, y_all, hold_rows, cfg),
        }
        lap("align")

        # static structures for the loss and the metrics ------------------------------------
        rep = np.flatnonzero(view.represented)
        verify_static = Verifier.build(
            view, rep, y_hat, hold_rows, anchor_mapped, step_targets, cfg, budget
        )
        metrics_before = verify_static.measure(before, y_hat, step_targets, view, cfg)
        lap("verify_before")

        # 4. composite loss ----------------------------------------------------------------
        loop = CompositeLossTrainer(
            student_model,
            cap,
            view,
            rep,
            y_hat,
            step_targets,
            kl_x,
            logits0,
            params,
            theta0,
            theta0_norm_sq,
            policy,
            device,
            cfg,
            budget,
            dist=dist,
            forward=forward,
            sharded=shard,
        )
        training = loop.run(progress=progress, callback=callback, ledger=ledger)
        lap("train")

        # 5. verification ----------------------------------------------------------------
        student_model.eval()
        after = read_student(student_model, cap, view, kl_x, device, autocast)
        metrics_after = verify_static.measure(after, y_hat, step_targets, view, cfg)
        alignment["heldout_after"] = heldout_metrics(
            cal, x_all, after.anchors.double(), hold_rows, cfg
        )
        if shard:
            assert dist is not None
            num, den = dist.all_reduce(
                [
                    sum(
                        float(((local_part(p) - local_part(q)).detach().double() ** 2).sum())
                        for p, q in zip(params, theta0, strict=True)
                    ),
                    sum(float((local_part(q).double() ** 2).sum()) for q in theta0),
                ],
                "sum",
            )
            drift = num**0.5 / den**0.5 if den > 0 else (0.0 if num == 0 else float("inf"))
        else:
            drift = V.relative_drift(params, theta0)
        divergence = V.mean_kl(logits0, after.protected_logits)
        cap_before = cap_after = None
        if cap_y is not None and n_caller:
            cap_before = V.accuracy(logits0[:n_caller], cap_y)
            cap_after = V.accuracy(after.protected_logits[:n_caller], cap_y)
        with ledger.paused():
            answers1 = _answers(student_model, check_x, device)
        self_agreement = {
            "rows": len(check_x),
            "sources": check_sources,
            "agreement": float((answers0 == answers1).double().mean()) if len(check_x) else None,
            "enforced": bool(cfg.student_trained) and cfg.max_self_disagreement is not None,
            "limit": cfg.max_self_disagreement,
        }
        self_agreement["disagreement"] = (
            None if self_agreement["agreement"] is None else 1.0 - self_agreement["agreement"]
        )
        if dist is not None:  # the worst rank's numbers decide, for every rank
            drift, divergence, worst_cap, unfinite, worst_dis = dist.all_max(
                drift,
                divergence,
                None if cap_after is None else -cap_after,
                0.0 if training["finite"] else 1.0,
                self_agreement["disagreement"],
            )
            self_agreement["disagreement"] = worst_dis
            if worst_dis is not None:
                self_agreement["agreement"] = 1.0 - worst_dis
            cap_after = None if worst_cap is None else -worst_cap
            training["finite"] = not unfinite
        checks = safety_checks(
            policy, drift, divergence, cap_before, cap_after, training, self_agreement
        )
        failed = [c for c in checks if not c["passed"]]
        if dist is not None:
            dist.same_on_all_ranks(
                [1.0 if c["passed"] else 0.0 for c in checks], "the safety checks"
            )
        if failed and cfg.rollback:
            student_model.load_state_dict(state0)
            decision = "rolled_back"
        elif failed:
            decision = "kept_unsafe"
        else:
            decision = "accepted"
        if dist is not None:
            dist.same_on_all_ranks(
                [float(("accepted", "rolled_back", "kept_unsafe").index(decision))],
                "the decision",
            )
        lap("verify_after")
    except BaseException:
        # an error (or an interrupt) midway must not leave a half-ingested student behind
        student_model.load_state_dict(state0)
        raise
    finally:
        del forward  # DDP's hooks go with it
        cap.close()
        ledger.close()
        student_model.train(was_training)
    model_out = student_model
    if shard:  # gather the whole state on rank 0, into the plain copy it saves
        assert dist is not None
        whole = full_state_dict(student_model)
        if plain_copy is not None:
            plain_copy.load_state_dict(whole)
            model_out = plain_copy
        digest_after = state_dict_digest(model_out) if dist.is_main else digest_before
    else:
        digest_after = state_dict_digest(student_model)
    rows, rows_total = ledger.rows, ledger.rows_total
    if dist is not None:  # each rank saw its slices: the run's inputs are their union
        rows, rows_total = union_rows(dist, rows, rows_total)
    if dist is not None and not shard:
        digests = [float(int(digest_after[-13:], 16))]
        dist.same_on_all_ranks(digests, "the student's final weights")
    data = _data_accounting(rows, rows_total, view, task, protected_inputs, kl_x)
    timings["total"] = round(time.perf_counter() - t_start, 4)
    reasons = [c["message"] for c in failed]
    report = {
        **base_report,
        "student": {
            **base_report["student"],
            "latent_dim": int(y_all.shape[1]),
            "digest_after": digest_after,
        },
        "trust": trust_info,
        "alignment": alignment,
        "training": dict(training),
        "verification": {
            "teacher": verify_static.teacher_reference,
            "before": metrics_before,
            "after": metrics_after,
        },
        "safety": {
            "parameter_drift": drift,
            "output_divergence": divergence,
            "protected_rows": len(kl_inputs),
            "protected_concept_anchors": len(prot_cols),
            "capability_rows": int(n_caller) if cap_y is not None else 0,
            "capability_before": cap_before,
            "capability_after": cap_after,
            "capability_drop": None
            if cap_before is None or cap_after is None
            else cap_before - cap_after,
            "self_agreement": {
                k: self_agreement[k] for k in ("rows", "sources", "agreement", "enforced")
            },
            "checks": checks,
        },
        "data": data,
        "decision": decision,
        "reasons": reasons,
        "timings": timings,
    }
    report = json_safe(report)
    return IngestResult(model_out, report, cal, list(training["history"]))


def _self_check_inputs(
    view: PacketView, task: Any, cfg: IngestConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows on which the student's answers before and after ingestion are compared: a seeded
    sample of at most ``cfg.self_check_rows`` each of the packet's trace problems, its probes
    (anchor inputs) and the task's inputs (their labels are not read)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0x5E1F])))
    k = int(cfg.self_check_rows)

    def sample(rows: np.ndarray) -> np.ndarray:
        rows = rows.reshape(-1, view.seq_len) if rows.size else np.zeros((0, view.seq_len))
        if len(rows) > k:
            rows = rows[np.sort(rng.permutation(len(rows))[:k])]
        return rows.astype(np.int64)

    parts = {"trace_problems": sample(view.trace_inputs), "probes": sample(view.anchor_inputs)}
    task_rows = np.zeros((0, view.seq_len), np.int64)
    if task is not None and k:
        inputs = np.asarray(task.problems().inputs)
        if inputs.ndim == 2 and inputs.shape[1] == view.seq_len:
            task_rows = inputs
    parts["task_inputs"] = sample(task_rows)
    rows = np.concatenate(list(parts.values())) if k else np.zeros((0, view.seq_len), np.int64)
    return rows, {name: len(v) if k else 0 for name, v in parts.items()}


@torch.no_grad()
def _answers(model: nn.Module, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """The student's answers (argmax) on ``rows``, in batches, on the CPU."""
    out = []
    for start in range(0, len(rows), 1024):
        x = torch.from_numpy(rows[start : start + 1024]).to(device)
        out.append(first_tensor(model(x)).argmax(dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _architecture(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    to_dict = getattr(cfg, "to_dict", None)
    out: dict[str, Any] = {"class": type(model).__name__}
    if callable(to_dict):
        out["net"] = to_dict()
    return out


def _data_accounting(
    rows: set[bytes],
    rows_total: int,
    view: PacketView,
    task: Any,
    protected_inputs: np.ndarray,
    kl_x: torch.Tensor,
) -> dict[str, Any]:
    """Classify the distinct rows the forward pre-hook saw (spec/algorithms.md §3.8, §5)."""

    def keys(a: np.ndarray) -> set[bytes]:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.int64))
        return {r.tobytes() for r in a.reshape(len(a), -1)} if a.size else set()

    trace_keys = keys(view.trace_inputs)
    protected_keys = keys(protected_inputs)
    if task is not None:
        task_rows = task.problems().row_keys()
        probe_rows = keys(view.anchor_inputs)
        for spec in task.concepts():
            probe_rows |= keys(spec.probe_arrays()[0])
    else:
        task_rows = trace_keys | protected_keys
        probe_rows = keys(view.anchor_inputs)
    used_task = rows & task_rows
    return {
        "method": "forward pre-hook on the student recording every distinct input row "
        "(trust gate to verification)",
        "task_inputs_used": len(used_task),
        "concept_probes_used": len((rows & probe_rows) - task_rows),
        "other_inputs_used": len(rows - task_rows - probe_rows),
        "task_inputs_by_role": {
            "traces": len(used_task & trace_keys),
            "protected": len((used_task & protected_keys) - trace_keys),
        },
        "rows_total": int(rows_total),
        "distinct_rows": len(rows),
        "task_known": task is not None,
    }
