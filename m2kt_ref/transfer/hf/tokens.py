"""What token ids mean: a tokenizer's digest and readable token labels (no torch, no model)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["token_labels", "tokenizer_digest"]


def tokenizer_digest(tokenizer: Any) -> str:
    """SHA-256 (hex) of what a token row means: the JSON list of tokens in id order.

    Two tokenizers with the same digest give every id the same token, so a packet's rows
    (token ids) mean the same to both; their merges or normalisation rules may still differ.
    """
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    text = json.dumps(tokens, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_labels(tokenizer: Any, n: int) -> list[str]:
    """A readable label for each of ``n`` token ids.

    The decoded text without surrounding spaces (so GPT-2's ``Ġtree`` reads ``tree`` and names
    a concept labelled ``tree``), the raw token where that is empty, ``<id:N>`` past the
    tokenizer's end (models often pad their vocabulary).
    """
    size = min(n, len(tokenizer))
    decoded = tokenizer.batch_decode([[i] for i in range(size)])
    raw = tokenizer.convert_ids_to_tokens(list(range(size)))
    out = [d.strip() or (r or "") for d, r in zip(decoded, raw, strict=True)]
    return out + [f"<id:{i}>" for i in range(size, n)]
