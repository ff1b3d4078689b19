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

from m2kt_ref.errors import UsageError


class UnknownLayerError(UsageError):
    """A layer name does not resolve to a submodule; the message lists the valid names."""

    def __init__(self, message: str) -> None:
        super().__init__("USAGE", message)


def _first_tensor(output: Any) -> torch.Tensor:
    """The hidden state of a module output: the tensor itself, or a tuple's first element."""
    while isinstance(output, (tuple, list)):
        if not output:
            raise TypeError("module returned an empty tuple")
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"module output is {type(output).__name__}, not a tensor")
    return output


class HiddenStateReader:
    """Capture the outputs of named submodules while running batches through a model.

    Use as a context manager (hooks are removed on exit) or call :meth:`close`.

    Args:
        model: any ``nn.Module``; it is not moved or modified (apart from the hooks, and eval
            mode while reading).
        layers: dotted submodule names (``"blocks.0"``, ``"final"``, ``"2"`` for the third
            module of an ``nn.Sequential``).
        device: where inputs are sent; ``None`` uses the device of the model's first parameter.
        batch_size: rows per forward pass.

    Raises:
        UnknownLayerError: a name does not resolve; the message lists the valid names.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        device: str | torch.device | None = None,
        batch_size: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise UsageError("USAGE", "batch_size must be >= 1")
        self.model = model
        self.layers = list(layers)
        if len(set(self.layers)) != len(self.layers):
            raise UsageError("USAGE", "layer names repeat")
        self.batch_size = int(batch_size)
        if device is None:
            param = next(iter(model.parameters()), None)
            self.device = param.device if param is not None else torch.device("cpu")
        else:
            self.device = torch.device(device)
        modules = {name: self._resolve(name) for name in self.layers}
        self._captured: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        self._handles = [
            module.register_forward_hook(self._make_hook(name)) for name, module in modules.items()
        ]
        self._active = False
        self._seen: set[bytes] = set()
        self.rows_total = 0

    # -- setup ------------------------------------------------------------------------------

    def _resolve(self, name: str) -> nn.Module:
        try:
            return self.model.get_submodule(name)
        except AttributeError:
            valid = [n for n, _ in self.model.named_modules() if n]
            raise UnknownLayerError(
                f"unknown layer {name!r}; valid layers: {', '.join(valid)}"
            ) from None

    def _make_hook(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self._active:
                self._captured[name].append(_first_tensor(output).detach().to("cpu"))

        return hook

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
        if not self._handles:
            raise UsageError("USAGE", "HiddenStateReader is closed")
        x = _as_tensor(inputs)
        self._count(x)
        for buf in self._captured.values():
            buf.clear()
        logits = []
        was_training = self.model.training
        self.model.eval()
        self._active = True
        try:
            with torch.no_grad():
                for i in range(0, len(x), self.batch_size):
                    out = self.model(x[i : i + self.batch_size].to(self.device))
                    if return_logits:
                        logits.append(_first_tensor(out).detach().to("cpu"))
        finally:
            self._active = False
            self.model.train(was_training)
        result = {name: torch.cat(bufs) for name, bufs in self._captured.items() if bufs}
        for name in self.layers:
            if name not in result:
                raise UsageError("USAGE", f"layer {name!r} did not run during the forward pass")
        for buf in self._captured.values():
            buf.clear()
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
            raise UsageError("USAGE", "one position per row is needed")
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
        for handle in self._handles:
            handle.remove()
        self._handles = []

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
