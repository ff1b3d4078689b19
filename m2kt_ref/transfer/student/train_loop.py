"""The optimisation of an ingestion: the composite loss over the student's parameters.

spec/algorithms.md §3.6-§3.7: geometric, structural, reasoning and safety terms, AdamW, a hard
projection into the drift ball after every step, and early stopping on a plateau. Bookkeeping
(reports, rollback) stays in :mod:`m2kt_ref.transfer.student.ingest`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.transfer.accounting import RowRecorder
from m2kt_ref.transfer.distributed import (
    DistContext,
    gather_rows_with_grad,
    local_part,
    row_slice,
)
from m2kt_ref.transfer.hooks import LayerTap, first_tensor
from m2kt_ref.transfer.student import losses as L
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.readout import states_at
from m2kt_ref.transfer.student.view import (
    PacketView,
    WorkBudget,
    hierarchy_closure,
    linked_pairs,
)

__all__ = ["Callback", "CompositeLossTrainer"]

#: ``callback(step, info) -> stop?``: ``info`` holds the history entry and the model.
Callback = Callable[[int, dict[str, Any]], Any]


class CompositeLossTrainer:
    """The optimisation of spec/algorithms.md §3.6–§3.7 (bookkeeping stays in :func:`ingest`)."""

    def __init__(
        self,
        model: nn.Module,
        cap: LayerTap,
        view: PacketView,
        rep: np.ndarray,
        y_hat: torch.Tensor,
        step_targets: torch.Tensor,
        kl_x: torch.Tensor,
        logits0: torch.Tensor,
        params: list[torch.Tensor],
        theta0: list[torch.Tensor],
        theta0_norm_sq: torch.Tensor,
        policy: Mapping[str, Any],
        device: torch.device,
        cfg: IngestConfig,
        budget: WorkBudget | None = None,
        *,
        dist: DistContext | None = None,
        forward: nn.Module | None = None,
        sharded: bool = False,
    ) -> None:
        """``dist``: run as one rank of a distributed ingestion; ``forward``: the module to call
        (the student wrapped in DDP), ``model`` itself when None; ``sharded``: the parameters
        are FSDP shards (the drift and the projection sum over every rank's shard)."""
        self.model, self.cap, self.cfg, self.device = model, cap, cfg, device
        self.dist = dist
        self.forward = forward if forward is not None else model
        self.sharded = sharded and dist is not None
        self.params, self.theta0 = params, theta0
        self.theta0_norm_sq = theta0_norm_sq.to(device)
        self.theta0_norm = float(theta0_norm_sq) ** 0.5
        bound = policy["max_parameter_drift"]["value"]
        # no bound (packet policy ignored, none configured): nothing to project into
        self.ball = math.inf if bound is None else cfg.drift_ball * float(bound)
        dev = device
        self.n_rep = len(rep)
        self.anchor_x = torch.from_numpy(view.anchor_inputs).to(dev)
        self.anchor_pos = torch.from_numpy(view.anchor_positions).to(dev)
        member = view.membership.take(rep)  # sparse [n_rep, n_a]
        self.m_row = torch.from_numpy(member.row_ids()).to(dev)
        self.m_col = torch.from_numpy(member.cols).to(dev)
        self.m_w = torch.from_numpy(member.weights).to(dev)
        self.e = torch.from_numpy(view.embeddings[rep]).to(dev)
        self.y_hat = y_hat[torch.from_numpy(rep)].to(dev)
        t = self.y_hat
        self.target_scale = (
            ((t - t.mean(0, keepdim=True)) ** 2).sum(1).mean() if len(t) > 1 else (t * t).sum()
        ).clamp_min(1e-12)
        local = -np.ones(len(view.concept_ids), dtype=np.int64)
        local[rep] = np.arange(len(rep))
        keep = (local[view.edge_source] >= 0) & (local[view.edge_target] >= 0)
        src, dst = local[view.edge_source[keep]], local[view.edge_target[keep]]
        rels = [r for r, k in zip(view.edge_relation, keep, strict=True) if k]
        self.edge_src = torch.from_numpy(src).to(dev)
        self.edge_dst = torch.from_numpy(dst).to(dev)
        self.edge_w = torch.from_numpy(view.edge_weight[keep]).to(dev)
        hier = np.array([r in cfg.hierarchy_relations for r in rels], dtype=bool)
        self.h_child = torch.from_numpy(src[hier]).to(dev)
        self.h_parent = torch.from_numpy(dst[hier]).to(dev)
        work = budget if budget is not None else WorkBudget(cfg.work_budget)
        self.ancestors = hierarchy_closure(len(rep), src[hier], dst[hier], work)
        self.linked = linked_pairs(len(rep), src, dst, work)
        self.trace_x = torch.from_numpy(view.trace_inputs).to(dev)
        self.trace_y = torch.from_numpy(view.trace_answers).to(dev)
        self.step_trace = torch.from_numpy(view.step_trace).to(dev)
        self.step_pos = torch.from_numpy(view.step_position).to(dev)
        self.step_has = torch.from_numpy(view.step_has_state).to(dev)
        self.step_targets = step_targets.to(dev)
        self.kl_x = kl_x.to(dev)
        self.logits0 = logits0.to(dev)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.use_geo = cfg.use_concepts and cfg.lambda_geo > 0 and self.n_rep > 0
        self.use_struct = cfg.use_graph and cfg.lambda_struct > 0 and self.n_rep > 1
        self.use_reason = cfg.use_traces and cfg.lambda_reason > 0 and len(view.trace_ids) > 0
        self.use_kl = cfg.lambda_safe > 0 and cfg.safe_kl > 0 and len(kl_x) > 0
        self.use_drift = cfg.lambda_safe > 0 and cfg.safe_drift > 0
        # the full-batch case, computed once
        self.full_cols = torch.unique(self.m_col)  # sorted anchors some concept uses
        self.full_col_local = torch.searchsorted(self.full_cols, self.m_col)

    # -- sampling -----------------------------------------------------------------------------
    def _subset(self, n: int, size: int | None) -> torch.Tensor | None:
        """None (all rows) or a sorted random subset of ``size`` rows."""
        if size is None or n <= size:
            return None
        return torch.randperm(n, generator=self.gen)[:size].sort().values

    def _sample_negatives(self, child: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One random non-ancestor per triplet; returns (negatives, valid mask)."""
        r = torch.randint(0, n, (len(child),), generator=self.gen).to(self.device)
        valid = ~self.ancestors.contains(self.sel[child], self.sel[r])
        return r, valid

    def _sample_unrelated(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.unrelated_pairs
        a = torch.randint(0, n, (k,), generator=self.gen).to(self.device)
        b = torch.randint(0, n, (k,), generator=self.gen).to(self.device)
        valid = ~self.linked.contains(self.sel[a], self.sel[b])
        return a[valid], b[valid]

    # -- one step -----------------------------------------------------------------------------
    def _loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        dev = self.device
        parts_x: list[torch.Tensor] = []
        concept_idx = self._subset(self.n_rep, cfg.batch_concepts)
        need_concepts = self.use_geo or self.use_struct
        cols = None
        if need_concepts:
            if concept_idx is None:
                m_row, m_w = self.m_row, self.m_w
                cols, m_col = self.full_cols, self.full_col_local
            else:
                pos = torch.full((self.n_rep,), -1, dtype=torch.long, device=dev)
                pos[concept_idx.to(dev)] = torch.arange(len(concept_idx), device=dev)
                m_row = pos[self.m_row]
                keep = m_row >= 0
                m_row, m_w, m_col = m_row[keep], self.m_w[keep], self.m_col[keep]
                cols = torch.unique(m_col)
                m_col = torch.searchsorted(cols, m_col)
            parts_x.append(self.anchor_x[cols])
        trace_idx = None
        if self.use_reason:
            trace_idx = self._subset(len(self.trace_x), cfg.batch_traces)
            parts_x.append(self.trace_x if trace_idx is None else self.trace_x[trace_idx.to(dev)])
        prot_idx = None
        if self.use_kl:
            prot_idx = self._subset(len(self.kl_x), cfg.batch_protected)
            parts_x.append(self.kl_x if prot_idx is None else self.kl_x[prot_idx.to(dev)])
        terms: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=dev)
        if parts_x:
            x = torch.cat(parts_x)
            if self.dist is None:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16):
                    logits = first_tensor(self.forward(x))
                states = self.cap.take().float()
                logits = logits.float()
            else:
                logits, states, total = self._sharded_forward(x)
            offset = 0
            if need_concepts:
                assert cols is not None
                n = len(cols)
                a = states_at(states[:n], torch.arange(n, device=dev), self.anchor_pos[cols])
                n_rows = self.n_rep if concept_idx is None else len(concept_idx)
                z = torch.zeros((n_rows, a.shape[1]), dtype=a.dtype, device=dev).index_add(
                    0, m_row, a[m_col] * m_w[:, None].to(a.dtype)
                )
                offset = n
                sel = (
                    torch.arange(self.n_rep, device=dev)
                    if concept_idx is None
                    else concept_idx.to(dev)
                )
                zg = L.centred(z) if cfg.center and len(z) > 1 else z
                if self.use_geo:
                    geo = self._geo(z, sel)
                    terms.update(geo)
                    total = total + cfg.lambda_geo * (
                        cfg.geo_cos * geo["geo_cos"]
                        + cfg.geo_dist * geo["geo_dist"]
                        + cfg.geo_anchor * geo["geo_anchor"]
                    )
                if self.use_struct:
                    st = self._struct(zg, sel)
                    terms.update(st)
                    total = total + cfg.lambda_struct * (
                        cfg.struct_edge * st["struct_edge"]
                        + cfg.struct_hierarchy * st["struct_hierarchy"]
                        + cfg.struct_unrelated * st["struct_unrelated"]
                    )
            if self.use_reason:
                n_t = len(self.trace_x) if trace_idx is None else len(trace_idx)
                t_states = states[offset : offset + n_t]
                t_logits = logits[offset : offset + n_t]
                offset += n_t
                rs = self._reason(t_states, t_logits, trace_idx)
                terms.update(rs)
                total = total + cfg.lambda_reason * (
                    rs["reason_state"] + cfg.reason_answer * rs["reason_answer"]
                )
            if self.use_kl:
                ref = self.logits0 if prot_idx is None else self.logits0[prot_idx.to(dev)]
                kl = L.output_kl(ref, logits[offset:])
                terms["safe_kl"] = kl
                total = total + cfg.lambda_safe * cfg.safe_kl * kl
        if self.use_drift and self.sharded:
            assert self.dist is not None
            mine = L.relative_drift_sq(
                [local_part(p) for p in self.params],
                [local_part(p) for p in self.theta0],
                self.theta0_norm_sq,
            )
            (whole,) = self.dist.all_reduce([float(mine.detach())], "sum")
            # the value of the whole sum, the gradient of this rank's shard (the only one it has)
            drift_sq = mine + (whole - float(mine.detach()))
            terms["safe_drift"] = drift_sq
            total = total + cfg.lambda_safe * cfg.safe_drift * drift_sq
        elif self.use_drift:
            drift_sq = L.relative_drift_sq(self.params, self.theta0, self.theta0_norm_sq)
            terms["safe_drift"] = drift_sq
            total = total + cfg.lambda_safe * cfg.safe_drift * drift_sq
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _sharded_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank runs its slice of the step's rows; every rank gets the whole batch's
        logits and states (with autograd to its own slice), so each computes the same loss."""
        assert self.dist is not None
        n = len(x)
        start, stop, size = row_slice(n, self.dist)
        local = x[start:stop]
        if len(local) < size:  # pad with copies of row 0 (dropped after the gather)
            local = torch.cat([local, x[:1].expand(size - len(local), *x.shape[1:])])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            out = first_tensor(self.forward(local))
        states = self.cap.take().float()
        logits = gather_rows_with_grad(self.dist, out.float(), n)
        states = gather_rows_with_grad(self.dist, states, n)
        # every parameter that reaches the output joins the graph, so DDP's reducer always
        # receives a gradient for it (zero when no term uses the logits)
        return logits, states, out.float().sum() * 0.0

    def _geo(self, z: torch.Tensor, sel: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        e, y = self.e[sel], self.y_hat[sel]
        zero = z.sum() * 0.0
        return {
            "geo_cos": L.cosine_geometry_loss(z, e, center=cfg.center) if cfg.geo_cos else zero,
            "geo_dist": L.distance_geometry_loss(z, e) if cfg.geo_dist else zero,
            "geo_anchor": L.anchoring_loss(z, y) if cfg.geo_anchor else zero,
        }

    def _struct(self, zg: torch.Tensor, sel: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, dev = self.cfg, self.device
        n = len(sel)
        local = torch.full((self.n_rep,), -1, dtype=torch.long, device=dev)
        local[sel] = torch.arange(n, device=dev)
        zero = zg.sum() * 0.0
        out = {"struct_edge": zero, "struct_hierarchy": zero, "struct_unrelated": zero}
        if cfg.struct_edge and len(self.edge_src):
            s, t = local[self.edge_src], local[self.edge_dst]
            ok = (s >= 0) & (t >= 0)
            out["struct_edge"] = L.edge_pull_loss(
                zg,
                s[ok],
                t[ok],
                self.edge_w[ok],
                cos_min=cfg.edge_cos_min,
                cos_max=cfg.edge_cos_max,
            )
        self.sel = sel  # local row -> concept row (of rep), for the pair lookups
        if cfg.struct_hierarchy and len(self.h_child):
            c, p = local[self.h_child], local[self.h_parent]
            ok = (c >= 0) & (p >= 0)
            c, p = c[ok], p[ok]
            neg, valid = self._sample_negatives(c, n)
            out["struct_hierarchy"] = L.hierarchy_triplet_loss(
                zg, c[valid], p[valid], neg[valid], margin=cfg.hierarchy_margin
            )
        if cfg.struct_unrelated and cfg.unrelated_pairs > 0:
            a, b = self._sample_unrelated(n)
            out["struct_unrelated"] = L.unrelated_margin_loss(zg, a, b, margin=cfg.unrelated_margin)
        return out

    def _reason(
        self, t_states: torch.Tensor, t_logits: torch.Tensor, trace_idx: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        cfg, dev = self.cfg, self.device
        if trace_idx is None:
            step_mask = self.step_has
            rows = self.step_trace
        else:
            local = torch.full((len(self.trace_x),), -1, dtype=torch.long, device=dev)
            local[trace_idx.to(dev)] = torch.arange(len(trace_idx), device=dev)
            rows = local[self.step_trace]
            step_mask = self.step_has & (rows >= 0)
        answers = self.trace_y if trace_idx is None else self.trace_y[trace_idx.to(dev)]
        zero = t_logits.sum() * 0.0
        state_loss = zero
        if (cfg.reason_state or cfg.reason_cosine) and bool(step_mask.any()):
            s = states_at(t_states, rows[step_mask], self.step_pos[step_mask])
            state_loss = L.trace_state_loss(
                s,
                self.step_targets[step_mask],
                self.target_scale,
                mse_weight=cfg.reason_state,
                cosine_weight=cfg.reason_cosine,
            )
        return {
            "reason_state": state_loss,
            "reason_answer": L.answer_loss(t_logits, answers) if cfg.reason_answer else zero,
        }

    # -- the hard bound -----------------------------------------------------------------------
    @torch.no_grad()
    def _project(self) -> tuple[float, bool]:
        """Scale ``theta - theta_0`` back into the drift ball; returns (drift, projected)."""
        pairs = list(zip(self.params, self.theta0, strict=True))
        if self.sharded:
            assert self.dist is not None
            mine = sum(float(((local_part(p) - local_part(p0)) ** 2).sum()) for p, p0 in pairs)
            (sq,) = self.dist.all_reduce([mine], "sum")
        else:
            sq = float(sum(((p - p0) ** 2).sum() for p, p0 in pairs))
        drift = sq**0.5 / max(self.theta0_norm, 1e-30)
        if self.dist is not None:  # the replicas are equal; the largest drift decides anyway
            (drift,) = self.dist.all_max(drift)
        if drift > self.ball > 0 or (self.ball == 0 and drift > 0):
            factor = self.ball / drift if drift > 0 else 0.0
            for p, p0 in zip(self.params, self.theta0, strict=True):
                p.copy_(p0 + (p - p0) * factor)
            return self.ball, True
        return drift, False

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self, *, progress: bool, callback: Callback | None, ledger: RowRecorder
    ) -> dict[str, Any]:
        import contextlib

        from tqdm.auto import tqdm

        # cuDNN's RNN kernels refuse backward in eval mode; the native ones do not.
        rnn = any(isinstance(m, nn.RNNBase) for m in self.model.modules())
        no_cudnn = self.device.type == "cuda" and rnn and not self.cfg.train_mode
        with torch.backends.cudnn.flags(enabled=False) if no_cudnn else contextlib.nullcontext():
            return self._run(progress, callback, ledger, tqdm)

    def _run(
        self, progress: bool, callback: Callback | None, ledger: RowRecorder, tqdm: Any
    ) -> dict[str, Any]:
        cfg = self.cfg
        opt = torch.optim.AdamW(
            self.params,
            lr=cfg.lr,
            betas=(float(cfg.betas[0]), float(cfg.betas[1])),
            weight_decay=cfg.weight_decay,
        )
        self.model.train(cfg.train_mode)
        history: list[dict[str, Any]] = []
        first: dict[str, float] | None = None
        last: dict[str, float] = {}
        best = math.inf
        stale = 0
        projections = 0
        stop_reason = "steps"
        finite = True
        step = 0
        drift = 0.0
        start = time.perf_counter()
        bar = tqdm(total=cfg.steps, desc="ingest", disable=not progress, leave=False)
        try:
            for step in range(1, cfg.steps + 1):
                loss, terms = self._loss()
                value = float(loss.detach())
                if self.dist is not None:  # every rank stops, or goes on, on the same number
                    (value,) = self.dist.all_max(value)
                if not math.isfinite(value):
                    finite = False
                    stop_reason = "nonfinite"
                    break
                opt.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    if self.dist is not None:  # DDP's gradient all-reduce runs in backward
                        self.dist.run("the gradient all-reduce", loss.backward)
                    else:
                        loss.backward()
                    if cfg.grad_clip is not None:
                        nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                    opt.step()
                drift, projected = self._project()
                projections += projected
                last = {"loss": value, **terms}
                if first is None:
                    first = dict(last)
                bar.update(1)
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    entry = {
                        "step": step,
                        "wall_s": round(time.perf_counter() - start, 4),
                        **last,
                        "drift": drift,
                    }
                    history.append(entry)
                    bar.set_postfix(loss=f"{value:.4g}", drift=f"{drift:.3f}")
                    if callback is not None:
                        try:
                            with ledger.paused():
                                stop = callback(step, {**entry, "model": self.model})
                        finally:
                            self.model.train(cfg.train_mode)
                        if self.dist is not None:  # one rank's stop stops all
                            (flag,) = self.dist.all_max(1.0 if stop else 0.0)
                            stop = bool(flag)
                        if stop:
                            stop_reason = "callback"
                            break
                    threshold = best - cfg.min_delta * abs(best) if math.isfinite(best) else best
                    if value < threshold:
                        best, stale = value, 0
                    else:
                        stale += 1
                        if cfg.patience and stale >= cfg.patience and step >= cfg.min_steps:
                            stop_reason = "plateau"
                            break
        finally:
            bar.close()
            self.model.eval()
        wall = time.perf_counter() - start
        return {
            "steps": step if finite else step - 1,
            "stop_reason": stop_reason,
            "finite": finite,
            "wall_s": round(wall, 4),
            "steps_per_s": (step / wall) if wall > 0 and step else None,
            "initial": first or {},
            "final": last,
            "best_loss": best if math.isfinite(best) else None,
            "projections": int(projections),
            "drift_ball": self.ball if math.isfinite(self.ball) else None,
            "history": history,
        }
