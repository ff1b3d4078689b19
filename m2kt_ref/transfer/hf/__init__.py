"""Hugging Face ``transformers`` models as M2KT teachers and students (the ``hf`` extra).

A ``save_pretrained`` directory (``config.json``, safetensors weights, a fast tokenizer's
``tokenizer.json``) becomes a teacher of ``m2kt generate --teacher hf:DIR`` and a student of
``m2kt ingest --student hf:DIR``; docs/huggingface.md is the user's page and
spec/algorithms.md §6 the rules. The pieces, from the bottom:

- :mod:`~m2kt_ref.transfer.hf.files`: what a directory must hold, and the digests a packet
  records (config, weights, tokenizer), read without loading anything;
- :mod:`~m2kt_ref.transfer.hf.rows`: :class:`TokenRowModel`, the adapter that makes a
  ``transformers`` model the function from padded token rows to logits that generation and
  ingestion already take, with every hidden state readable as a named layer;
- :mod:`~m2kt_ref.transfer.hf.load`: :func:`load_hf_model` (offline, safetensors only);
- :mod:`~m2kt_ref.transfer.hf.text_task`: concept files and prompt files as a task;
- :mod:`~m2kt_ref.transfer.hf.teacher` and :mod:`~m2kt_ref.transfer.hf.student`: generation
  and ingestion;
- :mod:`~m2kt_ref.transfer.hf.minilm`: the pretrained all-MiniLM-L6-v2 teacher from its wheel,
  checked against the wheel's RECORD.

Importing this package without ``transformers`` and ``tokenizers`` raises a coded
``UsageError`` that names the extra to install, so the command line prints one line instead of
a traceback.
"""

from __future__ import annotations

from m2kt_ref.errors import UsageError

try:  # the optional extra: fail with a coded error, not an ImportError traceback
    import tokenizers as _tokenizers  # noqa: F401
    import transformers as _transformers  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a process without the extra
    raise UsageError(
        f"Hugging Face models need the hf extra ({_exc.name} is not installed): "
        "pip install 'm2kt-ref[hf]'"
    ) from None

from m2kt_ref.transfer.hf.files import HFFiles, inspect_hf_dir
from m2kt_ref.transfer.hf.load import HFModel, load_hf_model
from m2kt_ref.transfer.hf.rows import TokenRowModel
from m2kt_ref.transfer.hf.student import hf_ingest_config, ingest_hf, save_hf_student
from m2kt_ref.transfer.hf.teacher import generate_hf_packet
from m2kt_ref.transfer.hf.text_task import TextTask, read_concepts, read_prompts

__all__ = [
    "HFFiles",
    "HFModel",
    "TextTask",
    "TokenRowModel",
    "generate_hf_packet",
    "hf_ingest_config",
    "ingest_hf",
    "inspect_hf_dir",
    "load_hf_model",
    "read_concepts",
    "read_prompts",
    "save_hf_student",
]
