"""Tiny random-weight ``transformers`` models with a word-level tokenizer, built offline.

Tests, the documentation's examples and the benchmarks need Hugging Face directories without
the network: :func:`word_tokenizer` builds a fast tokenizer over a word list with ``tokenizers``
(one token per word, whitespace split), and :func:`save_tiny_model` writes a GPT-2, Llama or
BERT of a given width with that tokenizer as a ``save_pretrained`` directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from m2kt_ref.errors import UsageError

__all__ = ["FAMILIES", "SPECIAL_TOKENS", "save_tiny_model", "tiny_model", "word_tokenizer"]

#: Families :func:`tiny_model` builds: GPT-2 and Llama with a language-model head, BERT without.
FAMILIES = ("gpt2", "llama", "bert")
#: Special tokens of :func:`word_tokenizer`, ids 0-4 in this order.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]")


def word_tokenizer(words: Sequence[str], *, bert: bool = False) -> Any:
    """A fast word-level tokenizer: ids 0-4 are :data:`SPECIAL_TOKENS`, then ``words``.

    Args:
        words: the vocabulary (duplicates and special tokens are dropped).
        bert: wrap every text as ``[CLS] … [SEP]`` (what a BERT reads); otherwise texts are
            encoded as they are and ``[EOS]`` is the end-of-text token.

    Returns:
        a ``transformers.PreTrainedTokenizerFast``.

    Example:
        >>> from m2kt_ref.transfer.hf.tiny import word_tokenizer
        >>> tok = word_tokenizer(["oak", "is", "a", "tree"])
        >>> tok("oak is a tree")["input_ids"], tok.pad_token_id, len(tok)
        ([5, 6, 7, 8], 0, 9)
        >>> word_tokenizer(["oak"], bert=True)("oak")["input_ids"]
        [2, 5, 3]
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = list(SPECIAL_TOKENS) + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bert:
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        eos_token="[EOS]",
    )


def tiny_model(
    family: str,
    vocab_size: int,
    *,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_len: int = 64,
    seed: int = 0,
) -> Any:
    """A random-weight ``transformers`` model (``family`` one of :data:`FAMILIES`).

    Raises:
        UsageError: ``USAGE`` for an unknown family.
    """
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    if family == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab_size,
                n_positions=max_len,
                n_embd=width,
                n_layer=layers,
                n_head=heads,
                bos_token_id=4,
                eos_token_id=4,
                pad_token_id=0,
            )
        )
    if family == "llama":
        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab_size,
                hidden_size=width,
                intermediate_size=2 * width,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                num_key_value_heads=heads,
                max_position_embeddings=max_len,
                bos_token_id=4,
                eos_token_id=4,
                pad_token_id=0,
                tie_word_embeddings=False,
            )
        )
    if family == "bert":
        return BertModel(
            BertConfig(
                vocab_size=vocab_size,
                hidden_size=width,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                intermediate_size=2 * width,
                max_position_embeddings=max_len,
                pad_token_id=0,
            )
        )
    raise UsageError(f"tiny model family {family!r} is not one of {', '.join(FAMILIES)}")


def save_tiny_model(
    path: str | os.PathLike[str],
    family: str,
    words: Sequence[str],
    *,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_len: int = 64,
    seed: int = 0,
    model: Any = None,
) -> Path:
    """Write a tiny ``family`` model and its word-level tokenizer with ``save_pretrained``.

    Args:
        path: the directory (created).
        family: ``gpt2``, ``llama`` or ``bert``.
        words: the tokenizer's words.
        width, layers, heads, max_len, seed: the model's size and initialisation.
        model: a model to save instead of a fresh one (e.g. after training it).

    Returns:
        the directory.

    Example:
        >>> import tempfile
        >>> from m2kt_ref.transfer.hf import load_hf_model
        >>> from m2kt_ref.transfer.hf.tiny import save_tiny_model
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     hf = load_hf_model(save_tiny_model(tmp, "llama", ["oak", "tree"], width=16))
        >>> hf.model_type, hf.lm_head, hf.rows.default_layer
        ('llama', True, 'hidden.2')
    """
    tokenizer = word_tokenizer(words, bert=family == "bert")
    if model is None:
        model = tiny_model(
            family,
            len(tokenizer),
            width=width,
            layers=layers,
            heads=heads,
            max_len=max_len,
            seed=seed,
        )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    from m2kt_ref.transfer.hf.load import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out
