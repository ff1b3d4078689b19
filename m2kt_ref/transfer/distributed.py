"""Running generation and ingestion on ``torch.distributed`` (``torchrun``; docs/scaling.md).

One :class:`DistContext` per process holds the process group that ``torchrun`` describes in the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): gloo on
CPU, NCCL on CUDA, with a timeout on every collective so that a rank that hangs or dies makes
the others fail (:class:`~m2kt_ref.errors.DistributedError`, ``DIST_FAILED``) instead of
waiting for ever.

The helpers move tensors only (no pickled objects between processes) and keep a fixed order:

* :func:`local_chunks` / :func:`gather_chunks`: rows cut into the same ``batch_size`` chunks as
  a single process would cut them, chunk ``j`` run by rank ``j mod N``, results put back in
  chunk order. Each chunk is the very forward pass the single process runs, which is why a
  sharded generation writes the same bytes.
* :func:`gather_rows_with_grad`: a step's batch split into contiguous slices, one per rank, the
  slices' outputs gathered with autograd; every rank then computes the same loss on the whole
  batch and DDP's gradient average gives the whole batch's gradient.
* :meth:`DistContext.agree` / :meth:`DistContext.all_max`: decisions no rank takes alone.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from m2kt_ref.errors import DistributedError, UsageError
from m2kt_ref.transfer.device import resolve_device

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "end_process",
    "full_state_dict",
    "gather_chunks",
    "gather_rows_with_grad",
    "init_distributed",
    "local_chunks",
    "local_part",
    "row_slice",
    "shard_module",
    "union_rows",
]

#: Seconds a collective waits for the other ranks before the run fails (``--dist-timeout``).
DEFAULT_TIMEOUT_S = 300.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run.

    Attributes:
        rank: global rank (0 writes files).
        world_size: number of processes.
        local_rank: rank on this machine (selects ``cuda:LOCAL_RANK``).
        backend: ``gloo`` or ``nccl``.
        device: where this rank computes.
        timeout_s: the process group's collective timeout.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    timeout_s: float

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one rank that writes files and prints."""
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where tensors must be for a collective (NCCL: this rank's GPU; gloo: the CPU)."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for reports and stats."""
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "timeout_s": self.timeout_s,
        }

    # -- collectives, each failure a coded error ------------------------------------------
    def run(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run a collective; a timeout or a vanished peer becomes ``DIST_FAILED``."""
        try:
            return fn()
        except DistributedError:
            raise
        except RuntimeError as exc:  # gloo/NCCL report timeouts and lost peers this way
            raise DistributedError(
                f"rank {self.rank}/{self.world_size}: {what} failed (another rank failed, died "
                f"or did not answer within {self.timeout_s:g}s): {str(exc).splitlines()[0]}"
            ) from exc

    def all_reduce(self, values: Sequence[float], op: str = "max") -> list[float]:
        """Element-wise ``max``, ``min`` or ``sum`` of ``values`` over the ranks (float64)."""
        ops = {"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN, "sum": dist.ReduceOp.SUM}
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)
        self.run(f"all_reduce({op})", lambda: dist.all_reduce(t, op=ops[op]))
        return [float(v) for v in t.cpu()]

    def all_max(self, *values: float | None) -> list[Any]:
        """Element-wise maximum over the ranks, in one collective. A NaN anywhere gives NaN;
        None (not measured) counts only where every rank has None."""
        k = len(values)
        flags = [2.0 if v is None else 1.0 if v != v else 0.0 for v in values]
        nums = [0.0 if v is None or f else float(v) for v, f in zip(values, flags, strict=True)]
        # MAX over [-none?, nan?, value]: "some rank measured" and "some rank saw NaN" survive
        got = self.all_reduce(
            [-1.0 if f == 2.0 else 0.0 for f in flags]
            + [1.0 if f == 1.0 else 0.0 for f in flags]
            + [-math.inf if f == 2.0 else x for f, x in zip(flags, nums, strict=True)],
            "max",
        )
        out: list[Any] = []
        for i in range(k):
            if got[i] < 0:
                out.append(None)
            elif got[k + i]:
                out.append(float("nan"))
            else:
                out.append(got[2 * k + i])
        return out

    def agree(self, ok: bool, what: str) -> None:
        """Every rank says whether its part of ``what`` succeeded; unless all did, every rank
        raises (``DIST_FAILED`` on the ranks that were fine). No rank goes on alone."""
        (all_ok,) = self.all_reduce([1.0 if ok else 0.0], "min")
        if ok and not all_ok:
            raise DistributedError(f"{what}: another rank failed; nothing was written")

    def same_on_all_ranks(self, values: Sequence[float], what: str) -> None:
        """Raise ``DIST_FAILED`` unless ``values`` are bit-identical on every rank."""
        hi = self.all_reduce(values, "max")
        lo = self.all_reduce(values, "min")
        if hi != lo:
            raise DistributedError(f"ranks disagree on {what}: min {lo}, max {hi}")

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """``tensor`` as rank ``src`` has it (same shape and dtype on every rank)."""
        t = tensor.detach().to(self.comm_device).contiguous().clone()
        self.run("broadcast", lambda: dist.broadcast(t, src=src))
        return t.to(tensor.device)

    def barrier(self, what: str = "barrier") -> None:
        """Wait for every rank (with the timeout)."""
        if self.backend == "nccl":
            ids = [self.device.index or 0]
            self.run(what, lambda: dist.barrier(device_ids=ids))
        else:
            self.run(what, dist.barrier)


def init_distributed(
    device: str = "cpu", *, timeout_s: float = DEFAULT_TIMEOUT_S, backend: str | None = None
) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Args:
        device: ``cpu`` (gloo), ``cuda`` or ``auto`` (NCCL on ``cuda:LOCAL_RANK`` when CUDA is
            present); ``cuda:N`` is refused (torchrun assigns the GPU).
        timeout_s: collective timeout in seconds.
        backend: force ``gloo`` or ``nccl`` (default: by device).

    Returns:
        this process's :class:`DistContext` (the group stays up until :func:`shutdown`).

    Raises:
        UsageError: ``USAGE`` when the torchrun variables are missing, the device is
            ``cuda:N`` or unavailable, or the timeout is not positive.
        DistributedError: ``DIST_FAILED`` when the rendezvous fails or times out.
    """
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [v for v in needed if v not in os.environ]
    if missing:
        raise UsageError(
            "--distributed needs the torchrun environment (missing "
            f"{', '.join(missing)}); start with torchrun --nproc-per-node N -m m2kt_ref.cli ..."
        )
    if not timeout_s > 0:
        raise UsageError("the distributed timeout must be > 0 seconds")
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if isinstance(device, str) and device.startswith("cuda:"):
        raise UsageError("with --distributed use --device cuda: each rank takes cuda:LOCAL_RANK")
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = resolve_device(f"cuda:{local}")
        torch.cuda.set_device(dev)
    chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if chosen not in ("gloo", "nccl") or (chosen == "nccl" and dev.type != "cuda"):
        raise UsageError(f"backend {chosen!r} does not fit device {dev}")
    ctx = DistContext(rank, world, local, chosen, dev, float(timeout_s))
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if chosen == "nccl":
            kwargs["device_id"] = dev
        ctx.run(
            "joining the process group",
            lambda: dist.init_process_group(
                chosen, timeout=_dt.timedelta(seconds=float(timeout_s)), **kwargs
            ),
        )
    return ctx


def shutdown(ctx: DistContext | None) -> None:
    """Leave the process group (idempotent). Garbage is collected first, so that DDP and FSDP
    objects caught in reference cycles, and the gloo work they hold, go while the group is up."""
    if ctx is not None and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def end_process(status: int) -> NoReturn:
    """End a rank that has left its process group: flush stdout and stderr, then ``os._exit``.

    Interpreter finalisation is skipped on purpose: gloo's worker threads can abort it
    (``terminate called without an active exception``, SIGABRT) when one of their work objects
    outlives the group, and torchrun then reports a failed rank for a run that succeeded
    (2 of 6 runs of tests/test_distributed.py before this). Call it only once every file the
    rank writes is written and closed.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(status)


# -- generation: whole chunks per rank -------------------------------------------------------
def local_chunks(n: int, batch_size: int, ctx: DistContext | None) -> list[tuple[int, int]]:
    """``(start, stop)`` of the ``batch_size`` chunks of ``n`` rows that this rank runs: chunk
    ``j`` belongs to rank ``j mod world_size`` (all of them without a context)."""
    chunks = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if ctx is None:
        return chunks
    return chunks[ctx.rank :: ctx.world_size]


def gather_chunks(
    ctx: DistContext, n: int, batch_size: int, local: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Put the per-chunk results of every rank back in chunk order (a CPU tensor).

    Args:
        ctx: the run.
        n: total rows; batch_size: rows per chunk (as given to :func:`local_chunks`).
        local: this rank's results, one tensor per chunk of :func:`local_chunks`, in that order,
            each with as many rows as its chunk and the same trailing shape and dtype on every
            rank.

    Raises:
        DistributedError: ``DIST_FAILED`` when a rank fails or times out.
    """
    mine = local_chunks(n, batch_size, ctx)
    if len(local) != len(mine):
        raise UsageError("one result per local chunk is needed")
    if n < 1:
        raise UsageError("no rows to gather")
    # every rank needs the trailing shape and dtype, also a rank without chunks: rank 0 always
    # has chunk 0, so its first result describes them
    template = local[0] if local else None
    tail, dtype = _broadcast_layout(ctx, template)
    per_rank = [local_chunks(n, batch_size, _as_rank(ctx, r)) for r in range(ctx.world_size)]
    most = max(sum(b - a for a, b in c) for c in per_rank)
    buf = torch.zeros((most, *tail), dtype=dtype)
    if local:
        flat = torch.cat([t.detach().to("cpu", dtype) for t in local])
        buf[: len(flat)] = flat
    out = [torch.empty_like(buf, device=ctx.comm_device) for _ in range(ctx.world_size)]
    send = buf.to(ctx.comm_device)
    ctx.run("all_gather", lambda: dist.all_gather(out, send))
    pieces: dict[int, torch.Tensor] = {}
    for r, chunks in enumerate(per_rank):
        got = out[r].cpu()
        offset = 0
        for a, b in chunks:
            pieces[a] = got[offset : offset + (b - a)]
            offset += b - a
    return torch.cat([pieces[a] for a in sorted(pieces)])


def _as_rank(ctx: DistContext, rank: int) -> DistContext:
    return DistContext(rank, ctx.world_size, ctx.local_rank, ctx.backend, ctx.device, ctx.timeout_s)


_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32]


def _broadcast_layout(
    ctx: DistContext, template: torch.Tensor | None
) -> tuple[tuple[int, ...], torch.dtype]:
    meta = torch.full((9,), -1, dtype=torch.int64)
    if ctx.is_main:
        assert template is not None
        if template.dtype not in _DTYPES or template.ndim > 8:
            raise UsageError(f"cannot gather a {template.dtype} tensor of {template.ndim} dims")
        meta[0] = _DTYPES.index(template.dtype)
        meta[1 : template.ndim] = torch.tensor(template.shape[1:], dtype=torch.int64)
    meta = ctx.broadcast(meta)
    tail = tuple(int(v) for v in meta[1:] if v >= 0)
    return tail, _DTYPES[int(meta[0])]


def union_rows(ctx: DistContext, rows: set[bytes], total: int) -> tuple[set[bytes], int]:
    """The union over the ranks of the distinct input rows each recorded, and the sum of their
    row counts (so a sharded run accounts for its inputs as one process would)."""
    keys = sorted(rows)
    lengths = np.array([len(k) for k in keys], dtype=np.int64)
    blob = np.frombuffer(b"".join(keys), dtype=np.uint8)
    n_max, b_max = (int(v) for v in ctx.all_reduce([len(keys), len(blob)], "max"))
    lens = torch.full((n_max,), -1, dtype=torch.int64)
    lens[: len(keys)] = torch.from_numpy(lengths)
    data = torch.zeros((b_max,), dtype=torch.uint8)
    data[: len(blob)] = torch.from_numpy(blob.copy())
    all_lens = [torch.empty_like(lens, device=ctx.comm_device) for _ in range(ctx.world_size)]
    all_data = [torch.empty_like(data, device=ctx.comm_device) for _ in range(ctx.world_size)]
    ctx.run("all_gather", lambda: dist.all_gather(all_lens, lens.to(ctx.comm_device)))
    ctx.run("all_gather", lambda: dist.all_gather(all_data, data.to(ctx.comm_device)))
    out: set[bytes] = set()
    for ls, ds in zip(all_lens, all_data, strict=True):
        raw = ds.cpu().numpy().tobytes()
        offset = 0
        for length in ls.cpu().tolist():
            if length < 0:
                break
            out.add(raw[offset : offset + length])
            offset += length
    (grand,) = ctx.all_reduce([total], "sum")
    return out, int(grand)


# -- ingestion: one slice of each step's batch per rank --------------------------------------
def row_slice(n: int, ctx: DistContext) -> tuple[int, int, int]:
    """``(start, stop, size)``: this rank's contiguous slice of ``n`` rows, ``size`` being the
    padded length every rank uses (``ceil(n / world_size)``)."""
    size = -(-n // ctx.world_size)
    start = min(ctx.rank * size, n)
    return start, min(start + size, n), size


def gather_rows_with_grad(ctx: DistContext, local: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every rank's slice (padded to :func:`row_slice`'s size) along dimension 0
    and drop the padding; autograd flows back to each rank's own slice.

    The backward of the gather sums the gradients of all ranks' (identical) losses, so each
    rank's slice gets ``world_size`` times its share; DDP's average over the ranks divides it
    out: the parameters receive exactly the gradient of the whole-batch loss.
    """
    return ctx.run("all_gather (autograd)", lambda: _GatherRows.apply(local, ctx))[:n]


class _GatherRows(torch.autograd.Function):
    """All-gather along dimension 0 (equal slices); backward sums the whole gradient over the
    ranks and keeps this rank's slice."""

    @staticmethod
    def forward(ctx_: Any, local: torch.Tensor, run: DistContext) -> torch.Tensor:
        ctx_.run = run
        ctx_.size = len(local)
        send = local.detach().contiguous().to(run.comm_device)
        parts = [torch.empty_like(send) for _ in range(run.world_size)]
        dist.all_gather(parts, send)
        return torch.cat(parts).to(local.device)

    @staticmethod
    def backward(ctx_: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        run: DistContext = ctx_.run
        g = grad.contiguous().to(run.comm_device)
        run.run("the gradient of the gather", lambda: dist.all_reduce(g))
        start = run.rank * ctx_.size
        return g[start : start + ctx_.size].to(grad.device), None


# -- ingestion with a sharded student (FSDP2, --shard) ---------------------------------------
def shard_module(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """Shard ``model`` in place with FSDP (``fully_shard``): every entry of every
    ``nn.ModuleList`` (the blocks of our nets and of Hugging Face models) is one unit, the rest
    of the root another. Parameters become sharded DTensors; a forward all-gathers one unit at
    a time."""
    from torch.distributed.fsdp import fully_shard

    for module in list(model.modules()):
        if isinstance(module, torch.nn.ModuleList):
            for block in module:
                if any(p.requires_grad for p in block.parameters()):
                    fully_shard(block)
    fully_shard(model)
    return model


def local_part(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a sharded (DTensor) parameter, the tensor itself otherwise;
    differentiable."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict of a sharded module, on CPU, on rank 0 (empty elsewhere). Every rank
    must call it (it gathers)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)
