"""Load a Hugging Face model directory offline, safetensors only, as a :class:`TokenRowModel`.

Nothing is downloaded: ``from_pretrained`` runs with ``local_files_only=True`` on a directory
whose files :func:`~m2kt_ref.transfer.hf.files.inspect_hf_dir` has checked, with
``use_safetensors=True`` (no pickle) and without remote code. A model whose config lists a
``...ForCausalLM`` / ``...LMHeadModel`` architecture (or ``is_decoder``) is loaded with its
language-model head (``AutoModelForCausalLM``); any other with ``AutoModel``.

Weights the checkpoint lacks would be initialised at random by ``transformers``, silently; here
that is an error (a teacher with random layers would hand out noise), except for BERT's pooler,
which m2kt never reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from m2kt_ref.errors import ModelDirError, UsageError
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.hf.files import HFFiles, inspect_hf_dir
from m2kt_ref.transfer.hf.rows import TokenRowModel
from m2kt_ref.transfer.hf.tokens import tokenizer_digest

__all__ = [
    "MODEL_DTYPES",
    "HFModel",
    "has_lm_head",
    "load_hf_model",
    "quiet_transformers",
]

#: Weight precisions a model may be loaded in (anything but fp32 needs CUDA).
MODEL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Missing weights that may be left at their initial values: modules m2kt never reads.
_IGNORABLE_MISSING = ("pooler.",)


def has_lm_head(config: dict[str, Any]) -> bool:
    """Whether a config describes a model with a language-model head (loaded for causal LM)."""
    archs = config.get("architectures") or []
    return bool(config.get("is_decoder")) or any(
        isinstance(a, str) and a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Keep ``transformers``' warnings and progress bars off stderr while loading or saving
    (a command prints one line per outcome; the library prints nothing)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass
class HFModel:
    """A loaded Hugging Face model directory (see :func:`load_hf_model`).

    Args:
        files: the checked files and their digests.
        rows: the model as a :class:`TokenRowModel` (eval mode, on its device).
        tokenizer: the fast tokenizer.
        tokenizer_digest: :func:`tokenizer_digest` of it.
        dtype: the weights' precision (``fp32``, ``bf16``, ``fp16``).

    Example:
        See :func:`load_hf_model`.
    """

    files: HFFiles
    rows: TokenRowModel
    tokenizer: Any
    tokenizer_digest: str
    dtype: str

    @property
    def path(self) -> Path:
        """The directory."""
        return self.files.path

    @property
    def model_type(self) -> str:
        """``gpt2``, ``llama``, ``bert``..."""
        return self.files.model_type

    @property
    def lm_head(self) -> bool:
        """Whether the model has a language-model head."""
        return self.rows.lm_head

    @property
    def pad_id(self) -> int:
        """The padding id of its rows."""
        return self.rows.pad_id

    @property
    def special_ids(self) -> list[int]:
        """Token ids of the tokenizer's special tokens."""
        return [int(i) for i in self.rows.special_ids.tolist()]

    def describe(self) -> dict[str, Any]:
        """What a packet's ``provenance.parameters.hf`` records about this model (JSON-able)."""
        import tokenizers
        import transformers

        return {
            "model_type": self.model_type,
            "class": type(self.rows.model).__name__,
            "lm_head": self.lm_head,
            "layers": self.rows.n_layers,
            "config_digest": "sha256:" + self.files.config_digest,
            "weights_digest": "sha256:" + self.files.weights_digest,
            "weights_files": [p.name for p in self.files.weights],
            "tokenizer_digest": "sha256:" + self.tokenizer_digest,
            "vocab_size": len(self.tokenizer),
            "pad_id": self.pad_id,
            "model_dtype": self.dtype,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        }


def _dtype(name: str | None, device: torch.device) -> str:
    name = name or "fp32"
    if name not in MODEL_DTYPES:
        raise UsageError(f"model dtype {name!r} is not one of {', '.join(MODEL_DTYPES)}")
    if name != "fp32" and device.type != "cuda":
        raise UsageError(f"{name} weights need a CUDA device; on the CPU everything runs in fp32")
    return name


def load_hf_model(
    path: str | os.PathLike[str], *, device: Any = "cpu", dtype: str | None = None
) -> HFModel:
    """Load a ``save_pretrained`` directory as an m2kt teacher or student (offline).

    Args:
        path: the directory (``config.json``, safetensors weights, ``tokenizer.json``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        dtype: precision of the weights, ``fp32`` (default), or ``bf16``/``fp16`` on CUDA.

    Returns:
        an :class:`HFModel` in eval mode on ``device``.

    Raises:
        ModelDirError: ``IO_ERROR`` for a missing or incomplete directory (see
            :func:`~m2kt_ref.transfer.hf.inspect_hf_dir`), weights that do not fit the config
            or leave layers uninitialised, or a config ``transformers`` cannot build.
        UsageError: ``USAGE`` for an unknown dtype, bf16/fp16 without CUDA, or a tokenizer
            that is not a fast one.
        DeviceUnavailableError: ``USAGE`` when ``device`` does not exist here.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
        >>> from m2kt_ref.transfer.hf import load_hf_model
        >>> words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "oak", "tree", "pine"]
        >>> core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "[UNK]"))
        >>> core.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]",
        ...     unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
        >>> config = BertConfig(vocab_size=7, hidden_size=8, num_hidden_layers=1,
        ...     num_attention_heads=2, intermediate_size=16, max_position_embeddings=16)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     BertModel(config).save_pretrained(tmp)
        ...     _ = tok.save_pretrained(tmp)
        ...     hf = load_hf_model(tmp)
        >>> hf.model_type, hf.lm_head, hf.rows.default_layer, hf.pad_id
        ('bert', False, 'mean.1', 0)
        >>> try:
        ...     load_hf_model("no/such/dir")
        ... except Exception as exc:
        ...     print(exc.code)
        IO_ERROR
    """
    files = inspect_hf_dir(path)
    dev = resolve_device(device)
    dtype_name = _dtype(dtype, dev)
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    src = str(files.path)
    lm_head = has_lm_head(files.config)
    cls = AutoModelForCausalLM if lm_head else AutoModel
    with quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelDirError(f"cannot load the tokenizer of {src}: {_first_line(exc)}") from None
        if not getattr(tokenizer, "is_fast", False):
            raise UsageError(f"the tokenizer of {src} is not a fast tokenizer (tokenizer.json)")
        try:
            model, info = cls.from_pretrained(
                src,
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                dtype=MODEL_DTYPES[dtype_name],
                output_loading_info=True,
            )
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelDirError(f"cannot load the model in {src}: {_first_line(exc)}") from None
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith(_IGNORABLE_MISSING)]
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        shown = ", ".join(str(k) for k in [*missing, *mismatched][:5])
        raise ModelDirError(
            f"the weights in {src} do not fit its config ({shown}…): those layers would be random"
        )
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    rows = TokenRowModel(
        model, pad_id=int(pad), special_ids=tokenizer.all_special_ids, lm_head=lm_head
    )
    rows.to(dev).eval()
    return HFModel(
        files=files,
        rows=rows,
        tokenizer=tokenizer,
        tokenizer_digest=tokenizer_digest(tokenizer),
        dtype=dtype_name,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
