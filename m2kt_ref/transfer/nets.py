"""Model families that map token rows to answer logits.

Every net has the same contract, ``forward(tokens: LongTensor[B, L]) -> logits[B, n_classes]``,
and the same addressable submodules, so the hidden-state reader and packet generation can name
layers without knowing the family:

===============  ============================================  ==============================
name             transformer                                   mlp / gru
===============  ============================================  ==============================
``embed``        token embedding, ``[B, L, d]`` (no position)  same
``blocks.i``     transformer block ``i`` output ``[B, L, d]``  --
``layers.i``     --                                            mlp: hidden layer ``i``
                                                               ``[B, width]``; gru: GRU layer
                                                               ``i``, a tuple whose first
                                                               element is ``[B, L, d]``
``final``        normed state read out at the last position    same (mlp: last hidden layer;
                 (or mean-pooled), ``[B, d]``                  gru: last position)
``head``         linear classifier, ``[B, n_classes]``         same
===============  ============================================  ==============================

``d`` is ``config.width``. Initialisation is deterministic in ``config.seed``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from m2kt_ref.errors import NetConfigError

__all__ = [
    "FAMILIES",
    "READOUTS",
    "Block",
    "GRUNet",
    "MLPNet",
    "NetConfig",
    "Readout",
    "TransformerNet",
    "build_model",
    "count_parameters",
    "layer_names",
]

#: Net families; ``gpt2``, ``llama`` and ``bert`` are ``transformers`` bodies with m2kt's readout
#: and head (:mod:`m2kt_ref.transfer.hf.nets`; they need the ``hf`` extra).
FAMILIES = ("transformer", "mlp", "gru", "gpt2", "llama", "bert")
READOUTS = ("last", "mean")


@dataclass(frozen=True)
class NetConfig:
    """JSON-able description of a net; :func:`build_model` turns it into a module.

    Args:
        family: one of :data:`FAMILIES` (``transformer``, ``mlp``, ``gru``; ``gpt2``, ``llama``,
            ``bert`` with the ``hf`` extra).
        vocab_size, seq_len, n_classes: the task's shape.
        width: model dimension ``d`` (embedding size, hidden size).
        depth: number of blocks (transformer) or layers (mlp, gru).
        heads: attention heads (transformer only; must divide ``width``).
        mlp_ratio: hidden size of the transformer's feed-forward, as a multiple of ``width``
            (unused by mlp and gru, whose hidden layers all have ``width`` units).
        dropout: dropout probability (0 for the deterministic small tasks).
        readout: ``last`` (state at the last position) or ``mean`` (mean over positions).
        seed: initialisation seed.

    Raises:
        NetConfigError: ``USAGE`` for an unknown family or readout, a size below 1, ``width``
            not divisible by ``heads`` (transformer), or dropout outside [0, 1).

    Example:
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> config = mt.NetConfig("mlp", vocab_size=11, seq_len=4, n_classes=8, width=16)
        >>> mt.NetConfig.from_dict(config.to_dict()) == config
        True
        >>> try:
        ...     mt.NetConfig("transformer", vocab_size=11, seq_len=4, n_classes=8, width=10)
        ... except m2kt_ref.UsageError as exc:     # NetConfigError is a UsageError
        ...     print(exc.code, exc)
        USAGE width 10 is not divisible by heads 4
    """

    family: str
    vocab_size: int
    seq_len: int
    n_classes: int
    width: int = 128
    depth: int = 1
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    readout: str = "last"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise NetConfigError(
                f"unknown net family {self.family!r}; known: {', '.join(FAMILIES)}"
            )
        for name in ("vocab_size", "seq_len", "n_classes", "width", "depth", "mlp_ratio"):
            if int(getattr(self, name)) < 1:
                raise NetConfigError(f"net config {name} must be >= 1")
        if self.family not in ("mlp", "gru") and self.width % self.heads:
            raise NetConfigError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.readout not in READOUTS:
            raise NetConfigError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise NetConfigError("dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (no silent drift)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NetConfigError(f"unknown net config field(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise NetConfigError(f"bad net config: {exc}") from None


class Readout(nn.Module):
    """Pooling of ``[B, L, d]`` to ``[B, d]`` plus a LayerNorm (the hook point ``final``)."""

    def __init__(self, width: int, mode: str, norm: bool = True) -> None:
        super().__init__()
        self.mode = mode
        self.norm = nn.LayerNorm(width) if norm else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pooled = h[:, -1] if self.mode == "last" else h.mean(dim=1)
        return self.norm(pooled)


class Block(nn.Module):
    """Pre-LN transformer block (bidirectional attention, GELU feed-forward)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width),
            nn.GELU(),
            nn.Linear(mlp_ratio * width, width),
            nn.Dropout(dropout),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.ln1(h)
        h = h + self.attn(x, x, x, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class TransformerNet(nn.Module):
    """Token + learned position embeddings, pre-LN blocks, readout, linear head."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.width)
        self.pos = nn.Parameter(torch.zeros(c.seq_len, c.width))
        self.blocks = nn.ModuleList(
            Block(c.width, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth)
        )
        self.final = Readout(c.width, c.readout)
        self.head = nn.Linear(c.width, c.n_classes)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(c.width))
        nn.init.normal_(self.pos, std=1.0 / math.sqrt(c.width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.head(self.final(h))


class MLPNet(nn.Module):
    """Embeddings of all positions concatenated, then ``depth`` GELU layers of ``width``."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.width)
        sizes = [c.seq_len * c.width] + [c.width] * c.depth
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.GELU(), nn.Dropout(c.dropout))
            for a, b in itertools.pairwise(sizes)
        )
        self.final = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.n_classes)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(c.width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens).flatten(1)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.final(h))


class GRUNet(nn.Module):
    """Stacked single-layer GRUs (one submodule each, so every layer is addressable)."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.width)
        self.layers = nn.ModuleList(
            nn.GRU(c.width, c.width, batch_first=True) for _ in range(c.depth)
        )
        self.drop = nn.Dropout(c.dropout)
        self.final = Readout(c.width, c.readout)
        self.head = nn.Linear(c.width, c.n_classes)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(c.width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.layers:
            h = self.drop(layer(h)[0])
        return self.head(self.final(h))


_FAMILY_CLASSES: dict[str, type[nn.Module]] = {
    "transformer": TransformerNet,
    "mlp": MLPNet,
    "gru": GRUNet,
}


def build_model(config: NetConfig) -> nn.Module:
    """Build the net described by ``config``, initialised from ``config.seed``.

    The global torch RNG is left untouched (the init runs in a forked RNG state), so building a
    model never shifts the random stream of surrounding code.

    Args:
        config: the net's family, shape and seed.

    Returns:
        A module mapping ``int64`` token rows ``[B, seq_len]`` to logits ``[B, n_classes]``,
        with the submodules ``embed``, ``blocks.i`` (transformer) or ``layers.i`` (mlp, gru),
        ``final`` and ``head``.

    Example:
        >>> import torch
        >>> import m2kt_ref.transfer as mt
        >>> config = mt.NetConfig("transformer", vocab_size=11, seq_len=4, n_classes=8, width=16)
        >>> model = mt.build_model(config)
        >>> model(torch.zeros(2, 4, dtype=torch.long)).shape
        torch.Size([2, 8])
        >>> [name for name, _ in model.named_children()]
        ['embed', 'blocks', 'final', 'head']
    """
    if config.family in _FAMILY_CLASSES:
        cls = _FAMILY_CLASSES[config.family]
    else:  # a transformers body: imported only when asked for (the hf extra)
        import m2kt_ref.transfer.hf  # noqa: F401  (a coded USAGE error without the extra)
        from m2kt_ref.transfer.hf.nets import TaskNet

        cls = TaskNet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return cls(config)


def layer_names(config: NetConfig) -> list[str]:
    """The addressable hidden-state layers of a net, input to output."""
    inner = "layers" if config.family in ("mlp", "gru") else "blocks"
    return ["embed", *(f"{inner}.{i}" for i in range(config.depth)), "final"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
