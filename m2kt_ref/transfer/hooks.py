"""Read hidden states out of any torch module through forward hooks.

Teacher-side generation reads concept embeddings (hidden states at probe positions) and
reasoning traces from the teacher; the student side reads its own states to align and ingest.
The reader does not care who wrote the model: it resolves layers by their dotted submodule
names (``model.get_submodule``), so it works on our nets and on a plain ``nn.Sequential`` alike.

It also *counts* what passes through it: every input row, and the distinct rows among them. The
experiments report "inputs used" from this instrumentation, not from a formula.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import UnknownLayerError, UsageError
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.distributed import DistContext, gather_chunks, local_chunks

__all__ = ["HiddenStateReader", "LayerTap", "first_tensor", "resolve_layer"]


def first_tensor(output: Any) -> torch.Tensor:
    """The hidden state of a module output: the tensor itself, or a tuple's first element.

    Raises:
        UsageError: ``USAGE`` when the output holds no tensor (the layer cannot be read).
    """
    while isinstance(output, (tuple, list)):
        if not output:
            raise UsageError("the layer returned an empty tuple")
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise UsageError(f"the layer returned {type(output).__name__}, not a tensor")
    return output


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``.

    Raises:
        UnknownLayerError: ``USAGE``; the message lists the valid names.
    """
    try:
        return model.get_submodule(name)
    except AttributeError:
        valid = [n for n, _ in model.named_modules() if n]
        raise UnknownLayerError(
            f"unknown layer {name!r}; valid layers: {', '.join(valid)}"
        ) from None


class LayerTap:
    """Keeps the last output of one submodule, autograd graph included.

    The single forward hook of the library: ingestion trains through :attr:`out`, and
    :class:`HiddenStateReader` copies it out after each batch. Use as a context manager or call
    :meth:`close` to remove the hook.

    Args:
        module: the submodule to tap (e.g. ``model.get_submodule("final")``). Its output, or
            the first element of a tuple output, is kept.

    Example:
        >>> import torch
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, _, _ = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> with mt.LayerTap(model.get_submodule("final")) as tap:
        ...     logits = model(torch.zeros(3, task.seq_len, dtype=torch.long))
        ...     state = tap.take()
        >>> tuple(logits.shape), tuple(state.shape), state.requires_grad
        ((3, 8), (3, 16), True)
    """

    def __init__(self, module: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self._handle: Any = module.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self.out = first_tensor(output)

    def take(self) -> torch.Tensor:
        """The last output, cleared so a layer that did not run is never read twice.

        Raises:
            UsageError: ``USAGE`` when the layer did not run since the last call.
        """
        out, self.out = self.out, None
        if out is None:
            raise UsageError("the layer did not run during the forward pass")
        return out

    def close(self) -> None:
        """Remove the hook (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> LayerTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HiddenStateReader:
    """Capture the outputs of named submodules while running batches through a model.

    Use as a context manager (hooks are removed on exit) or call :meth:`close`. The reader also
    counts the rows that pass through it (``rows_total``, :attr:`distinct_rows`).

    Args:
        model: any ``nn.Module``; it is not moved or modified (apart from the hooks, and eval
            mode while reading).
        layers: dotted submodule names (``"blocks.0"``, ``"final"``, ``"2"`` for the third
            module of an ``nn.Sequential``).
        device: where inputs are sent; ``None`` uses the device of the model's first parameter.
        batch_size: rows per forward pass.
        shard: one rank of a distributed run (:mod:`~m2kt_ref.transfer.distributed`): this
            rank runs its share of the ``batch_size`` chunks and :meth:`read` returns every
            rank's results, in order, as one process would compute them.

    Raises:
        UnknownLayerError: ``USAGE`` when a name does not resolve; the message lists the valid
            names.
        UsageError: ``USAGE`` when layer names repeat or ``batch_size`` is below 1.
        DeviceUnavailableError: ``USAGE`` when ``device`` does not exist here.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, _, _ = mt.init_student(task, family="transformer", width=16, depth=2)
        >>> rows = task.problems().inputs[:5]
        >>> with mt.HiddenStateReader(model, ["blocks.1", "final"]) as reader:
        ...     states = reader.read(rows)
        ...     print(reader.rows_total, reader.distinct_rows, reader.seen(rows[0]))
        5 5 True
        >>> {name: tuple(t.shape) for name, t in states.items()}
        {'blocks.1': (5, 4, 16), 'final': (5, 16)}
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        device: str | torch.device | None = None,
        batch_size: int = 1024,
        shard: DistContext | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError("batch_size must be >= 1")
        self.model = model
        self.layers = list(layers)
        if len(set(self.layers)) != len(self.layers):
            raise UsageError("layer names repeat")
        self.batch_size = int(batch_size)
        self.shard = shard
        if device is None:
            param = next(iter(model.parameters()), None)
            self.device = param.device if param is not None else torch.device("cpu")
        else:
            self.device = resolve_device(device)
        self._taps = {name: LayerTap(resolve_layer(model, name)) for name in self.layers}
        self._seen: set[bytes] = set()
        self.rows_total = 0

    # -- reading ----------------------------------------------------------------------------

    def _count(self, x: torch.Tensor) -> None:
        rows = np.ascontiguousarray(x.detach().to("cpu").numpy())
        rows = rows.reshape(len(rows), -1)
        self.rows_total += len(rows)
        self._seen.update(row.tobytes() for row in rows)

    def read(self, inputs: Any, *, return_logits: bool = False) -> dict[str, torch.Tensor]:
        """Run ``inputs`` through the model and return each layer's output for all rows.

        Args:
            inputs: a tensor or array whose first dimension indexes rows (token ids as int64
                for our nets; any dtype the model accepts otherwise). Numpy integer arrays
                become int64 tensors.
            return_logits: also return the model output under the key ``"logits"``.

        Returns:
            layer name -> CPU tensor, batches concatenated along dimension 0.
        """
        if not self._taps:
            raise UsageError("HiddenStateReader is closed")
        x = _as_tensor(inputs)
        if not len(x):
            raise UsageError("no input rows to read")
        self._count(x)
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        logits = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for i, stop in local_chunks(len(x), self.batch_size, self.shard):
                    out = self.model(x[i:stop].to(self.device))
                    for name, tap in self._taps.items():
                        captured[name].append(tap.take().detach().to("cpu"))
                    if return_logits:
                        logits.append(first_tensor(out).detach().to("cpu"))
        finally:
            self.model.train(was_training)
        if self.shard is not None:
            n, bs, ctx = len(x), self.batch_size, self.shard
            result = {name: gather_chunks(ctx, n, bs, bufs) for name, bufs in captured.items()}
            if return_logits:
                result["logits"] = gather_chunks(ctx, n, bs, logits)
            return result
        result = {name: torch.cat(bufs) for name, bufs in captured.items()}
        if return_logits:
            result["logits"] = torch.cat(logits)
        return result

    __call__ = read

    def read_at(self, inputs: Any, positions: Iterable[int], layer: str) -> torch.Tensor:
        """Hidden state of ``layer`` at one position per row: ``[N, d]``.

        ``positions[i]`` selects the sequence position of row ``i``; a layer whose output has
        no sequence axis (``[N, d]``, like ``final``) is returned as is.
        """
        states = self.read(inputs)[layer] if layer in self.layers else None
        if states is None:
            raise UnknownLayerError(f"layer {layer!r} is not one of {self.layers}")
        if states.ndim == 2:
            return states
        pos = torch.as_tensor(list(positions), dtype=torch.long)
        if len(pos) != len(states):
            raise UsageError("one position per row is needed")
        return states[torch.arange(len(states)), pos]

    # -- instrumentation --------------------------------------------------------------------

    @property
    def distinct_rows(self) -> int:
        """Number of distinct input rows that have passed through the reader."""
        return len(self._seen)

    def seen(self, row: Any) -> bool:
        """Whether this exact input row (same values, same dtype rule) has passed through."""
        x = row[None] if isinstance(row, torch.Tensor) else np.asarray(row)[None]
        key = np.ascontiguousarray(_as_tensor(x).detach().cpu().numpy()).reshape(-1).tobytes()
        return key in self._seen

    def reset_counts(self) -> None:
        """Forget the rows seen so far."""
        self._seen.clear()
        self.rows_total = 0

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the hooks (idempotent)."""
        for tap in self._taps.values():
            tap.close()
        self._taps = {}

    def __enter__(self) -> HiddenStateReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_tensor(inputs: Any) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
        return inputs
    arr = np.asarray(inputs)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64, copy=False)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")  # torch wants writable memory (task arrays are read-only)
    return torch.from_numpy(arr)
