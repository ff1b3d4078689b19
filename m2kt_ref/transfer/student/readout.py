"""Reading the student: its latent layer, and its states and logits on the packet's rows.

One no-gradient pass over every anchor, trace and protected row serves the snapshot before
ingestion and the verification after it, so both see the student the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.hooks import LayerTap, first_tensor
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.view import PacketView

__all__ = ["Readout", "read_student", "states_at", "student_layer"]

_READ_BATCH = 1024


def student_layer(model: nn.Module, config: IngestConfig) -> str:
    """The student layer read as its latent space: ``config.student_layer`` or, for an m2kt net,
    its last block / hidden layer (the counterpart of the teacher's default layer).

    Raises:
        UsageError: ``USAGE`` when neither is available or the name does not resolve.
    """
    name = config.student_layer
    if name is None:
        from m2kt_ref.transfer.nets import NetConfig, layer_names

        cfg = getattr(model, "config", None)
        if not isinstance(cfg, NetConfig):
            raise UsageError("student_layer is required for a model that is not an m2kt net")
        name = layer_names(cfg)[-2]
    try:
        model.get_submodule(name)
    except AttributeError:
        raise UsageError(f"student layer {name!r} does not exist") from None
    return name


def states_at(states: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """States ``[k, d]`` of rows ``rows`` at ``positions`` (a ``[N, d]`` layer ignores them)."""
    if states.ndim == 2:
        return states[rows]
    if states.ndim != 3:
        raise UsageError(f"the student layer outputs shape {list(states.shape)}")
    return states[rows, positions]


@dataclass
class Readout:
    anchors: torch.Tensor  # [n_a, d_S]
    steps: torch.Tensor  # [s, d_S]
    trace_logits: torch.Tensor  # [n_t, C]
    protected_logits: torch.Tensor  # [n_p, C]


def read_student(
    model: nn.Module,
    cap: LayerTap,
    view: PacketView,
    protected: torch.Tensor,
    device: torch.device,
    autocast: bool,
) -> Readout:
    """No-gradient pass over every anchor, trace and protected row (CPU float32 results)."""
    parts = [torch.from_numpy(view.anchor_inputs)]
    if len(view.trace_inputs):
        parts.append(torch.from_numpy(view.trace_inputs))
    parts.append(protected.cpu())
    rows = torch.cat(parts)
    states_out, logits_out = [], []
    with torch.no_grad():
        for i in range(0, len(rows), _READ_BATCH):
            x = rows[i : i + _READ_BATCH].to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = first_tensor(model(x))
            states_out.append(cap.take().float().cpu())
            logits_out.append(logits.float().cpu())
    states = torch.cat(states_out)
    logits = torch.cat(logits_out)
    n_a, n_t = len(view.anchor_inputs), len(view.trace_inputs)
    a_rows = torch.arange(n_a)
    anchors = states_at(states[:n_a], a_rows, torch.from_numpy(view.anchor_positions))
    t_states = states[n_a : n_a + n_t]
    steps = (
        states_at(t_states, torch.from_numpy(view.step_trace), torch.from_numpy(view.step_position))
        if len(view.step_trace)
        else anchors.new_zeros((0, anchors.shape[1]))
    )
    return Readout(anchors, steps, logits[n_a : n_a + n_t], logits[n_a + n_t :])
