"""``transformers`` architectures as m2kt net families (``gpt2``, ``llama``, ``bert``).

The experiment runner, ``m2kt train-teacher``/``init-student`` and the model directories build
nets from a :class:`~m2kt_ref.transfer.nets.NetConfig` (family, width, depth, heads, the task's
shape). :class:`TaskNet` makes a GPT-2, Llama or BERT body such a net: it reads the task's token
rows as input ids (padding id 0), and has the submodules every m2kt net has, so the teacher's
default layer, its own readout (trace steps named ``teacher-readout``), ingestion and the
runner's students work without knowing it is a ``transformers`` model:

- ``embed`` and ``blocks.i``: identity taps on ``hidden_states[0]`` and ``hidden_states[i+1]``;
- ``final``: the readout (state at the last position, or the mean, then a LayerNorm);
- ``head``: the linear classifier over the task's answers.

Unlike :class:`~m2kt_ref.transfer.hf.TokenRowModel` (a checkpoint that reads text), these are
task nets of a given shape, initialised from ``config.seed`` and saved as m2kt model
directories.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from m2kt_ref.transfer.nets import NetConfig, Readout

__all__ = ["HF_FAMILIES", "TaskNet"]

#: NetConfig families built from a ``transformers`` body.
HF_FAMILIES = ("gpt2", "llama", "bert")


def _body_config(c: NetConfig) -> Any:
    from transformers import BertConfig, GPT2Config, LlamaConfig

    inner = c.mlp_ratio * c.width
    if c.family == "gpt2":
        return GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.seq_len,
            n_embd=c.width,
            n_layer=c.depth,
            n_head=c.heads,
            n_inner=inner,
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            bos_token_id=None,
            eos_token_id=None,
        )
    if c.family == "llama":
        return LlamaConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.width,
            intermediate_size=inner,
            num_hidden_layers=c.depth,
            num_attention_heads=c.heads,
            num_key_value_heads=c.heads,
            max_position_embeddings=c.seq_len,
            attention_dropout=c.dropout,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
    return BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.width,
        num_hidden_layers=c.depth,
        num_attention_heads=c.heads,
        intermediate_size=inner,
        max_position_embeddings=c.seq_len,
        hidden_dropout_prob=c.dropout,
        attention_probs_dropout_prob=c.dropout,
        pad_token_id=0,
    )


class TaskNet(nn.Module):
    """A GPT-2, Llama or BERT body with m2kt's readout and head, for a task's token rows.

    Args:
        config: a :class:`~m2kt_ref.transfer.nets.NetConfig` whose family is one of
            :data:`HF_FAMILIES` (build it with :func:`~m2kt_ref.transfer.build_model`, which
            seeds the initialisation).

    Example:
        >>> import torch
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, config, _ = mt.init_student(task, family="llama", width=16, depth=2, heads=2)
        >>> [name for name, _ in model.named_children()]
        ['body', 'embed', 'blocks', 'final', 'head']
        >>> tuple(model(torch.zeros(3, task.seq_len, dtype=torch.long)).shape)
        (3, 8)
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        from transformers import AutoModel

        from m2kt_ref.transfer.hf.load import quiet_transformers

        c = config
        self.config = c
        with quiet_transformers():
            self.body = AutoModel.from_config(_body_config(c))
        self.embed = nn.Identity()
        self.blocks = nn.ModuleList(nn.Identity() for _ in range(c.depth))
        self.final = Readout(c.width, c.readout)
        self.head = nn.Linear(c.width, c.n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {"output_hidden_states": True}
        if self.config.family != "bert":
            kwargs["use_cache"] = False
        states = self.body(input_ids=tokens.long(), **kwargs).hidden_states
        h = self.embed(states[0])
        for i, tap in enumerate(self.blocks):
            h = tap(states[i + 1])
        return self.head(self.final(h))
