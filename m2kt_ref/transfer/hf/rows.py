"""A ``transformers`` model as the function generation and ingestion already take.

The teacher and student sides of m2kt run any ``nn.Module`` that maps ``int64 [N, L]`` token
rows to logits and read its states through forward hooks on named submodules
(:class:`~m2kt_ref.transfer.hooks.HiddenStateReader`, :class:`~m2kt_ref.transfer.hooks.LayerTap`).
:class:`TokenRowModel` gives a ``transformers`` model exactly that shape, so none of that code
needs to know about Hugging Face:

- **rows**: token ids right-padded with the tokenizer's padding id; the attention mask covers
  every position up to the last one that is not padding (so a padding id inside a row, such as
  GPT-2's end-of-text used as padding, is still read);
- **layers**: ``output_hidden_states=True`` gives ``N + 1`` states per position (the embeddings,
  then each of the ``N`` blocks); state ``i`` is passed through the identity module
  ``hidden.{i}`` (``[B, L, d]``, one state per position), and its mean over the row's real,
  non-special tokens through ``mean.{i}`` (``[B, d]``), so a hook on either reads it;
- **logits**: a model with a language-model head answers with its next-token logits at the last
  real position (``[B, V]``); a model without one (an encoder such as BERT or MiniLM) with the
  mean-pooled last state (``[B, d]``), its output representation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from m2kt_ref.errors import UnknownLayerError, UsageError
from m2kt_ref.transfer.teacher.readout import ReadoutFn

__all__ = ["TokenRowModel", "last_real_positions"]


def last_real_positions(rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Index of the last position of each row that is not padding (0 for an all-padding row)."""
    real = rows != pad_id
    index = torch.arange(1, rows.shape[1] + 1, device=rows.device)
    return (real.long() * index).max(dim=1).values.clamp_min(1) - 1


class TokenRowModel(nn.Module):
    """A ``transformers`` model that maps padded token rows to logits, with named layers.

    Build one with :func:`~m2kt_ref.transfer.hf.load_hf_model`, which also checks the files;
    the constructor is for models already in memory.

    Args:
        model: a ``transformers`` ``PreTrainedModel`` (with or without a language-model head).
        pad_id: the padding token id of the rows.
        special_ids: token ids left out of the ``mean.{i}`` pooling (``[CLS]``, ``[SEP]``,
            BOS...).
        lm_head: whether ``model`` returns next-token logits (``AutoModelForCausalLM``).

    Raises:
        UsageError: ``USAGE`` when the model's config has no ``num_hidden_layers``.

    Example:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> from m2kt_ref.transfer.hf import TokenRowModel
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> config = GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=2, n_head=2,
        ...                     bos_token_id=1, eos_token_id=1)
        >>> rows_model = TokenRowModel(GPT2LMHeadModel(config), pad_id=0, special_ids=[1],
        ...                            lm_head=True).eval()
        >>> rows = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
        >>> tuple(rows_model(rows).shape), rows_model.layer_names()[-1], rows_model.default_layer
        ((2, 20), 'mean.2', 'hidden.2')
        >>> from m2kt_ref.transfer import HiddenStateReader
        >>> with HiddenStateReader(rows_model, ["hidden.2"]) as reader:
        ...     states = reader.read(rows)["hidden.2"]
        >>> tuple(states.shape)
        (2, 4, 8)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        pad_id: int,
        special_ids: Sequence[int] = (),
        lm_head: bool,
    ) -> None:
        super().__init__()
        self.model = model
        # the same config object: ingestion reads vocab_size from it to check a packet's tokens
        self.config = model.config
        n_layers = getattr(model.config, "num_hidden_layers", None)
        if not isinstance(n_layers, int) or n_layers < 1:
            raise UsageError(f"{type(model).__name__}'s config has no num_hidden_layers")
        self.n_layers = n_layers
        self.pad_id = int(pad_id)
        self.lm_head = bool(lm_head)
        self.hidden = nn.ModuleList(nn.Identity() for _ in range(n_layers + 1))
        self.mean = nn.ModuleList(nn.Identity() for _ in range(n_layers + 1))
        special = torch.tensor(sorted({int(i) for i in special_ids}), dtype=torch.long)
        self.register_buffer("special_ids", special, persistent=False)

    # -- names ----------------------------------------------------------------------------------

    def layer_names(self) -> list[str]:
        """Every readable layer: ``hidden.0 … hidden.N``, then ``mean.0 … mean.N``."""
        n = self.n_layers + 1
        return [f"hidden.{i}" for i in range(n)] + [f"mean.{i}" for i in range(n)]

    @property
    def default_layer(self) -> str:
        """The layer read by default (spec/algorithms.md §6.2): the last state, per position
        (``hidden.N``, the state the language-model head reads) for a model with a head, and
        mean-pooled (``mean.N``, the sentence embedding of encoders like MiniLM) without."""
        return f"{'hidden' if self.lm_head else 'mean'}.{self.n_layers}"

    def check_layer(self, layer: str) -> str:
        """Return ``layer`` if it is one of :meth:`layer_names`.

        Raises:
            UnknownLayerError: ``USAGE``, listing the valid names.
        """
        if layer not in self.layer_names():
            n = self.n_layers
            raise UnknownLayerError(
                f"unknown layer {layer!r}; valid layers: hidden.0 … hidden.{n} (per position), "
                f"mean.0 … mean.{n} (mean over the row's tokens)"
            )
        return layer

    def counterpart(self, teacher_layer: str) -> str:
        """This model's layer of the same kind as ``teacher_layer``, at its last state.

        ``hidden.K`` (per position) or ``mean.K`` (pooled) of a teacher becomes ``hidden.N`` or
        ``mean.N`` here, as an m2kt student reads its last block for a teacher's last block.

        Raises:
            UsageError: ``USAGE`` when ``teacher_layer`` is neither kind.
        """
        kind, _, index = teacher_layer.partition(".")
        if kind not in ("hidden", "mean") or not index.isdigit():
            raise UsageError(
                f"the packet's teacher layer {teacher_layer!r} is not hidden.K or mean.K; "
                "name the student layer (student_layer, --set student_layer=...)"
            )
        return f"{kind}.{self.n_layers}"

    # -- the teacher's own readout --------------------------------------------------------------

    def readout(self) -> ReadoutFn | None:
        """The language-model head as a readout of ``hidden.N`` states, or None without one.

        States may come from the CPU in float32; they are sent to the head's device and dtype,
        and logits come back as CPU float32.
        """
        head = self.model.get_output_embeddings() if self.lm_head else None
        if head is None:
            return None

        def readout(states: torch.Tensor) -> torch.Tensor:
            weight = next(iter(head.parameters()))
            with torch.no_grad():
                out = head(states.to(device=weight.device, dtype=weight.dtype))
            return out.float().cpu()

        return readout

    # -- forward --------------------------------------------------------------------------------

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, V]`` (next token at the last real position) or ``[B, d]`` (no head)."""
        if rows.ndim != 2:
            raise UsageError(f"token rows must be [N, L], got {list(rows.shape)}")
        rows = rows.long()
        last = last_real_positions(rows, self.pad_id)
        positions = torch.arange(rows.shape[1], device=rows.device)
        mask = positions[None, :] <= last[:, None]
        kwargs: dict[str, Any] = {"attention_mask": mask.long(), "output_hidden_states": True}
        if self.lm_head:
            kwargs["use_cache"] = False
        out = self.model(input_ids=rows, **kwargs)
        states = out.hidden_states
        if len(states) != self.n_layers + 1:
            raise UsageError(
                f"the model returned {len(states)} hidden states, expected {self.n_layers + 1}"
            )
        pooled = mask & ~torch.isin(rows, self.special_ids)
        weights = pooled / pooled.sum(dim=1, keepdim=True).clamp_min(1)
        for i, h in enumerate(states):
            self.hidden[i](h)
            self.mean[i](torch.einsum("bl,bld->bd", weights.to(h.dtype), h))
        batch = torch.arange(len(rows), device=rows.device)
        if self.lm_head:
            return out.logits[batch, last]
        return torch.einsum("bl,bld->bd", weights.to(states[-1].dtype), states[-1])
