"""Concept files and prompt files: what a text model is asked, as an m2kt task.

A built-in task enumerates its concepts and problems itself; a text model's are given by its
user in two files (docs/huggingface.md, spec/algorithms.md §6.3–§6.4):

- a **concept file** (JSON): each concept an id, a label and one or more probe texts, which the
  model reads to place the concept in its latent space; optionally declared relations (used
  only with ``--declare``, marked ``declared``);
- a **prompt file** (JSON lines): each line a ``prompt`` and optionally its ``answer``; every
  line is a candidate trace.

:func:`build_text_task` tokenises both with the model's tokenizer into padded rows and returns
a :class:`TextTask`, which the generator reads like any other task: probes become anchors and
concept statistics, prompts become traces. Nothing here runs a model except the optional
``complete`` callback that lets a causal teacher continue prompts that have no answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.hf.tokens import token_labels, tokenizer_digest
from m2kt_ref.transfer.tasks.base import (
    RELATIONS,
    ConceptSpec,
    Probe,
    ProblemSet,
    Relation,
    Task,
    TaskOptions,
    default_step_positions,
)

__all__ = [
    "MAX_FILE_BYTES",
    "ConceptFile",
    "ConceptText",
    "PromptText",
    "TextTask",
    "build_text_task",
    "read_concepts",
    "read_prompts",
]

#: Largest concept or prompt file read (bytes).
MAX_FILE_BYTES = 64 << 20
#: Most concepts, probes per concept, and prompts.
MAX_CONCEPTS = 100_000
MAX_PROBES = 1_000
MAX_PROMPTS = 100_000
#: Longest probe, prompt or answer text (characters).
MAX_TEXT = 10_000

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+*=<>-]{0,127}")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ConceptText:
    """One concept of a concept file.

    Args:
        id: packet concept id.
        label: readable name; a token whose text equals it names the concept in traces.
        kind: packet concept kind (default ``concept``).
        probes: ``(text, phrase)`` pairs: the model reads ``text``; the concept's state is read
            at ``phrase``'s last token (or pooled over the row, for a ``mean.K`` layer).
        level: optional depth in a hierarchy.
    """

    id: str
    label: str
    kind: str
    probes: tuple[tuple[str, str], ...]
    level: int | None = None


@dataclass(frozen=True)
class ConceptFile:
    """A parsed concept file (:func:`read_concepts`).

    Args:
        task: the task name recorded in the packet's provenance.
        concepts: the concepts, in file order.
        relations: declared relations (ground truth: a packet carries them only when asked,
            marked ``declared``).
        digest: SHA-256 (hex) of the file's bytes (of the canonical JSON for one built in code).
    """

    task: str
    concepts: tuple[ConceptText, ...]
    relations: tuple[Relation, ...]
    digest: str


@dataclass(frozen=True)
class PromptText:
    """One line of a prompt file: ``prompt``, optional ``answer``, optional ``id``."""

    prompt: str
    answer: str | None = None
    id: str | None = None


def _fail(where: str, pointer: str, message: str) -> UsageError:
    return UsageError(f"{where}: {message}", path=pointer or "/")


def _read_text(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{p}: {size} bytes, more than the {MAX_FILE_BYTES} read")
        raw = p.read_bytes()
    except OSError as exc:
        from m2kt_ref.errors import FileAccessError

        raise FileAccessError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not UTF-8 text") from None


def _text(where: str, pointer: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, pointer, f"{what} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise _fail(where, pointer, f"{what} is longer than {MAX_TEXT} characters")
    return value


def _probe(where: str, pointer: str, value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        text = _text(where, pointer, value, "a probe")
        return text, text
    if isinstance(value, dict) and set(value) <= {"text", "phrase"} and "text" in value:
        text = _text(where, pointer + "/text", value["text"], "text")
        phrase = _text(where, pointer + "/phrase", value.get("phrase", text), "phrase")
        if phrase not in text:
            raise _fail(where, pointer + "/phrase", f"phrase {phrase!r} is not in {text!r}")
        return text, phrase
    raise _fail(where, pointer, 'a probe is a text or {"text": ..., "phrase": ...}')


def _concept(where: str, pointer: str, value: Any) -> ConceptText:
    if isinstance(value, str):
        value = {"label": value}
    if not isinstance(value, dict):
        raise _fail(where, pointer, "a concept is a label or an object")
    unknown = set(value) - {"id", "label", "kind", "probes", "level"}
    if unknown:
        raise _fail(where, pointer, f"unknown field(s) {', '.join(sorted(unknown))}")
    label = _text(where, pointer + "/label", value.get("label", value.get("id")), "label")
    cid = value.get("id", label)
    if not isinstance(cid, str) or not _ID.fullmatch(cid):
        raise _fail(
            where,
            pointer + "/id",
            f"id {cid!r} is not a packet identifier (letters, digits, "
            "_.:/+*=<>-, up to 128; give an id when the label has spaces)",
        )
    kind = value.get("kind", "concept")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise _fail(where, pointer + "/kind", f"kind {kind!r} is not [a-z][a-z0-9_-]*")
    level = value.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or level < 0):
        raise _fail(where, pointer + "/level", "level must be an integer >= 0")
    probes_in = value.get("probes", [label])
    if not isinstance(probes_in, list) or not probes_in or len(probes_in) > MAX_PROBES:
        raise _fail(where, pointer + "/probes", f"probes must be a list of 1 to {MAX_PROBES}")
    probes = tuple(_probe(where, f"{pointer}/probes/{j}", p) for j, p in enumerate(probes_in))
    return ConceptText(cid, label, kind, probes, level)


def _relation(where: str, pointer: str, value: Any, ids: set[str]) -> Relation:
    if not isinstance(value, dict) or not {"source", "target", "relation"} <= set(value):
        raise _fail(where, pointer, "a relation has source, target, relation (and weight)")
    for key in ("source", "target"):
        if not isinstance(value[key], str) or value[key] not in ids:
            raise _fail(where, f"{pointer}/{key}", f"{value[key]!r} is not a concept id")
    if value["relation"] not in RELATIONS:
        raise _fail(where, pointer + "/relation", f"relation is not one of {', '.join(RELATIONS)}")
    weight = value.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise _fail(where, pointer + "/weight", "weight must be a number in [0, 1]")
    return Relation(value["source"], value["target"], value["relation"], float(weight))


def parse_concepts(data: Any, *, where: str = "concepts", digest: str | None = None) -> ConceptFile:
    """A concept file's content (already parsed JSON) as a :class:`ConceptFile`.

    Accepts ``{"task": NAME, "concepts": [...], "relations": [...]}`` or a bare list of
    concepts. A concept is a label (its own id and its only probe) or an object with ``label``
    and optionally ``id``, ``kind``, ``level`` and ``probes``; a probe is a text (the phrase
    itself) or ``{"text": ..., "phrase": ...}`` (a phrase in context).

    Raises:
        UsageError: ``USAGE`` with the JSON Pointer of the offending value.
    """
    if isinstance(data, list):
        data = {"concepts": data}
    if not isinstance(data, dict):
        raise _fail(where, "", "expected an object with a concepts list")
    unknown = set(data) - {"task", "concepts", "relations", "description"}
    if unknown:
        raise _fail(where, "", f"unknown field(s) {', '.join(sorted(unknown))}")
    task = data.get("task", "text")
    if not isinstance(task, str) or not _NAME.fullmatch(task):
        raise _fail(where, "/task", f"task name {task!r} is not [A-Za-z0-9][A-Za-z0-9_.-]*")
    items = data.get("concepts")
    if not isinstance(items, list) or not items or len(items) > MAX_CONCEPTS:
        raise _fail(where, "/concepts", f"concepts must be a list of 1 to {MAX_CONCEPTS}")
    concepts = tuple(_concept(where, f"/concepts/{i}", c) for i, c in enumerate(items))
    seen: dict[str, int] = {}
    for i, c in enumerate(concepts):
        if c.id in seen:
            raise _fail(where, f"/concepts/{i}/id", f"id {c.id!r} repeats concept {seen[c.id]}")
        seen[c.id] = i
    rels_in = data.get("relations", [])
    if not isinstance(rels_in, list):
        raise _fail(where, "/relations", "relations must be a list")
    relations = tuple(
        _relation(where, f"/relations/{i}", r, set(seen)) for i, r in enumerate(rels_in)
    )
    if digest is None:
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return ConceptFile(task, concepts, relations, digest)


def read_concepts(path: str | os.PathLike[str]) -> ConceptFile:
    """Read a concept file (JSON; format in :func:`parse_concepts` and docs/huggingface.md).

    Args:
        path: the file.

    Returns:
        a :class:`ConceptFile` whose ``digest`` is the SHA-256 of the file's bytes.

    Raises:
        FileAccessError: ``IO_ERROR`` when the file cannot be read.
        UsageError: ``USAGE`` for bad JSON or content, with a JSON Pointer to the value.

    Example:
        >>> import json, tempfile
        >>> from m2kt_ref.transfer.hf import read_concepts
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        ...     json.dump({"task": "trees", "concepts": [
        ...         "oak", {"id": "pine", "label": "pine", "probes": ["pine", "a pine"]}]}, fh)
        >>> file = read_concepts(fh.name)
        >>> file.task, [c.id for c in file.concepts], file.concepts[1].probes[1]
        ('trees', ['oak', 'pine'], ('a pine', 'a pine'))
    """
    text, raw = _read_text(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON: {exc}") from None
    return parse_concepts(data, where=str(path), digest=hashlib.sha256(raw).hexdigest())


def read_prompts(path: str | os.PathLike[str]) -> tuple[list[PromptText], str]:
    """Read a prompt file: one JSON object per line, ``{"prompt": ..., "answer": ...}``.

    ``answer`` and ``id`` are optional; blank lines are skipped.

    Args:
        path: the file.

    Returns:
        the prompts in file order, and the SHA-256 (hex) of the file's bytes.

    Raises:
        FileAccessError: ``IO_ERROR`` when the file cannot be read.
        UsageError: ``USAGE`` naming the line of a malformed entry.

    Example:
        >>> import tempfile
        >>> from m2kt_ref.transfer.hf import read_prompts
        >>> with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        ...     _ = fh.write('{"prompt": "an oak is a", "answer": "tree"}\\n')
        ...     _ = fh.write('\\n{"prompt": "pine"}\\n')
        >>> prompts, digest = read_prompts(fh.name)
        >>> [(p.prompt, p.answer) for p in prompts]
        [('an oak is a', 'tree'), ('pine', None)]
    """
    text, raw = _read_text(path)
    out: list[PromptText] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{where}: not JSON: {exc}") from None
        if not isinstance(item, dict) or "prompt" not in item:
            raise UsageError(f'{where}: expected {{"prompt": ..., "answer": ...}}')
        unknown = set(item) - {"prompt", "answer", "id"}
        if unknown:
            raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        prompt = _text(where, "/prompt", item["prompt"], "prompt")
        answer = item.get("answer")
        if answer is not None:
            answer = _text(where, "/answer", answer, "answer")
        pid = item.get("id")
        if pid is not None and not isinstance(pid, str):
            raise UsageError(f"{where}: id must be a string")
        out.append(PromptText(prompt, answer, pid))
        if len(out) > MAX_PROMPTS:
            raise UsageError(f"{path}: more than {MAX_PROMPTS} prompts")
    return out, hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class TextTaskOptions(TaskOptions):
    """What fixes a text task's rows: the two files and the tokenizer (digests), the length."""

    concepts: str = ""
    prompts: str = ""
    tokenizer: str = ""
    seq_len: int = 1


class TextTask(Task):
    """A concept file and a prompt file, tokenised: the task a text model is a teacher of.

    Built by :func:`build_text_task`; the generator reads it like a built-in task. Problems are
    the prompt rows (target: the last token of the answer, or -1 when there is none); each
    concept's probes are its probe texts. Steps of a row with an answer are read where the
    answer is produced (:meth:`step_positions`).

    Example:
        See :func:`build_text_task`.
    """

    name = "text"
    description = "concepts and prompts of a text model (a concept file and a prompt file)"
    Options = TextTaskOptions

    def __init__(
        self,
        *,
        name: str,
        vocab: list[str],
        answer_labels: list[str],
        pad_id: int,
        concepts: list[ConceptSpec],
        relations: list[Relation],
        problems: ProblemSet,
        steps: dict[bytes, list[int]],
        options: dict[str, Any],
    ) -> None:
        super().__init__(**options)
        self.name = name  # type: ignore[misc]  # a text task is named by its concept file
        self._vocab = vocab
        self._answer_labels = answer_labels
        self._pad = int(pad_id)
        self._concepts = concepts
        self._relations = relations
        self._rows = problems
        self._steps = steps

    @property
    def vocab(self) -> list[str]:
        """The tokenizer's tokens, as readable labels."""
        return self._vocab

    @property
    def seq_len(self) -> int:
        """Length of every row (the longest probe or prompt row)."""
        return int(self.options.seq_len)  # type: ignore[attr-defined]

    @property
    def answer_labels(self) -> list[str]:
        """One label per output class of the model (tokens for a language-model head)."""
        return self._answer_labels

    @property
    def pad_id(self) -> int:
        """The tokenizer's padding id."""
        return self._pad

    def _enumerate(self) -> ProblemSet:
        return self._rows

    def concepts(self) -> list[ConceptSpec]:
        """The concept file's concepts with their probe rows."""
        return list(self._concepts)

    def relations(self) -> list[Relation]:
        """The concept file's declared relations."""
        return list(self._relations)

    def step_positions(self, row: Sequence[int], n_states: int) -> list[int]:
        """Where the answer is produced: a row with an answer (given, or the teacher's own
        continuation) is read from the position that predicts the answer's first token (a model
        with a language-model head) or at the answer's tokens (an encoder); other rows as
        built-in tasks are (every position after the first)."""
        if n_states == 1:
            return [0]
        key = np.ascontiguousarray(np.asarray(row, dtype=np.int64)).tobytes()
        found = self._steps.get(key)
        return list(found) if found else default_step_positions(row, n_states, self._pad)

    def option_dict(self) -> dict[str, Any]:
        """The options as recorded in the packet's provenance."""
        return dataclasses.asdict(self.options)


#: ``complete(rows, max_new_tokens) -> continuations``: a causal teacher's greedy continuation.
Completer = Callable[[list[list[int]], int], list[list[int]]]


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]], list[bool]]:
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    ids = [int(i) for i in enc["input_ids"]]
    special = set(tokenizer.all_special_ids)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    return ids, offsets, [i in special for i in ids]


def _probe_row(tokenizer: Any, text: str, phrase: str, where: str) -> tuple[list[int], int]:
    ids, offsets, special = _encode(tokenizer, text)
    start = text.find(phrase)
    end = start + len(phrase)
    inside = [
        j
        for j, ((a, b), s) in enumerate(zip(offsets, special, strict=True))
        if not s and b > start and a < end
    ]
    if not inside:
        raise UsageError(f"{where}: the phrase {phrase!r} of {text!r} tokenises to nothing")
    return ids, inside[-1]


def _strip_trailing(ids: list[int], special: list[bool]) -> tuple[list[int], list[bool]]:
    while ids and special[-1]:
        ids, special = ids[:-1], special[:-1]
    return ids, special


def _prompt_row(
    tokenizer: Any, p: PromptText, lm_head: bool, where: str
) -> tuple[list[int], int, list[int] | None]:
    """``(row, target, step positions)`` of one prompt (a continuation comes later).

    With a language-model head the row stops before the answer's last token (the target), and
    the steps run from the position that predicts the answer's first token to the row's end;
    an encoder reads the whole text and its steps are the answer's tokens.
    """
    if p.answer is None:
        ids, _, special = _encode(tokenizer, p.prompt)
        if lm_head:
            ids, special = _strip_trailing(ids, special)
        return ids, -1, None
    joint = "" if p.prompt[-1:].isspace() or p.answer[:1].isspace() else " "
    text = p.prompt + joint + p.answer
    cut = len(p.prompt) + len(joint)
    ids, offsets, special = _encode(tokenizer, text)
    answer = [
        j for j, ((a, _), s) in enumerate(zip(offsets, special, strict=True)) if not s and a >= cut
    ]
    if not answer:
        raise UsageError(f"{where}: the answer {p.answer!r} tokenises to nothing")
    if not lm_head:
        return ids, -1, answer
    last = answer[-1]
    return ids[:last], ids[last], list(range(max(answer[0] - 1, 0), last))


def build_text_task(
    concept_file: ConceptFile,
    prompts: Sequence[PromptText],
    tokenizer: Any,
    *,
    pad_id: int,
    lm_head: bool,
    n_classes: int,
    max_len: int | None = None,
    prompts_digest: str = "",
    complete: Completer | None = None,
    max_new_tokens: int = 0,
) -> TextTask:
    """Tokenise a concept file and prompts into a :class:`TextTask` (spec/algorithms.md §6).

    Args:
        concept_file: from :func:`read_concepts` or :func:`parse_concepts`.
        prompts: from :func:`read_prompts` (may be empty: a packet without traces).
        tokenizer: the model's fast tokenizer (special tokens are added as the model expects).
        pad_id: the rows' padding id.
        lm_head: whether the model has a language-model head: then a row ends just before the
            answer's last token, which is the row's target, and steps are read from the position
            that predicts the answer's first token.
        n_classes: the model's output classes (its vocabulary, with a head).
        max_len: the model's longest input; a longer row is an error.
        prompts_digest: SHA-256 of the prompt file, recorded among the task's options.
        complete: with ``max_new_tokens`` > 0 and a head, continues every prompt that has no
            answer (greedy), and the continuation becomes the answer.
        max_new_tokens: most tokens a continuation may have.

    Returns:
        the task.

    Raises:
        UsageError: ``USAGE`` for a probe or answer that tokenises to nothing, a row longer
            than ``max_len``, or two prompts with the same row.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> from transformers import PreTrainedTokenizerFast
        >>> from m2kt_ref.transfer.hf.text_task import build_text_task, parse_concepts
        >>> from m2kt_ref.transfer.hf.text_task import PromptText
        >>> words = ["<pad>", "<unk>", "oak", "pine", "is", "a", "tree"]
        >>> core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<unk>"))
        >>> core.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>",
        ...                               unk_token="<unk>")
        >>> concepts = parse_concepts(["oak", "pine", "tree"])
        >>> task = build_text_task(concepts, [PromptText("oak is a", "tree")], tok, pad_id=0,
        ...                        lm_head=True, n_classes=7)
        >>> task.seq_len, task.problems().inputs.tolist(), task.problems().targets.tolist()
        (3, [[2, 4, 5]], [6])
        >>> task.step_positions(task.problems().inputs[0], 3)   # where "tree" is predicted
        [2]
    """
    concepts_in = concept_file.concepts
    probe_rows: list[list[tuple[list[int], int]]] = []
    for i, c in enumerate(concepts_in):
        probe_rows.append(
            [
                _probe_row(tokenizer, text, phrase, f"concept {c.id} (/concepts/{i}/probes/{j})")
                for j, (text, phrase) in enumerate(c.probes)
            ]
        )
    rows: list[list[int]] = []
    targets: list[int] = []
    positions: list[list[int] | None] = []
    for n, p in enumerate(prompts):
        row, target, steps_at = _prompt_row(tokenizer, p, lm_head, f"prompt {n + 1}")
        rows.append(row)
        targets.append(target)
        positions.append(steps_at)
    if complete is not None and max_new_tokens > 0 and lm_head:
        todo = [n for n, p in enumerate(prompts) if p.answer is None]
        if todo:
            continuations = complete([rows[n] for n in todo], max_new_tokens)
            for n, cont in zip(todo, continuations, strict=True):
                if cont:
                    start = len(rows[n])
                    rows[n], targets[n] = rows[n] + cont[:-1], cont[-1]
                    positions[n] = list(range(max(start - 1, 0), len(rows[n])))
    lengths = [len(r) for r in rows] + [len(ids) for ps in probe_rows for ids, _ in ps]
    seq_len = max(lengths)
    if max_len is not None and seq_len > max_len:
        raise UsageError(f"a probe or prompt has {seq_len} tokens; the model reads {max_len}")

    def pad(ids: list[int]) -> tuple[int, ...]:
        return tuple(ids + [pad_id] * (seq_len - len(ids)))

    specs = [
        ConceptSpec(
            id=c.id,
            label=c.label,
            kind=c.kind,
            probes=tuple(Probe(pad(ids), pos) for ids, pos in ps),
            level=c.level,
        )
        for c, ps in zip(concepts_in, probe_rows, strict=True)
    ]
    inputs = np.array([pad(r) for r in rows], dtype=np.int64).reshape(len(rows), seq_len)
    steps: dict[bytes, list[int]] = {}
    first: dict[bytes, int] = {}
    for n, (row, at) in enumerate(zip(inputs, positions, strict=True)):
        key = row.tobytes()
        if key in first:
            raise UsageError(f"prompts {first[key] + 1} and {n + 1} give the same row")
        first[key] = n
        if at:
            steps[key] = at
    vocab = token_labels(tokenizer, len(tokenizer))
    if lm_head:
        labels = token_labels(tokenizer, n_classes)
    else:  # an encoder's outputs are its pooled state's dimensions, which name nothing
        labels = [f"dim:{i}" for i in range(n_classes)]
    return TextTask(
        name=concept_file.task,
        vocab=vocab,
        answer_labels=labels,
        pad_id=pad_id,
        concepts=specs,
        relations=list(concept_file.relations),
        problems=ProblemSet(inputs, np.array(targets, dtype=np.int64)),
        steps=steps,
        options={
            "concepts": "sha256:" + concept_file.digest,
            "prompts": "sha256:" + prompts_digest if prompts_digest else "",
            "tokenizer": "sha256:" + tokenizer_digest(tokenizer),
            "seq_len": seq_len,
        },
    )
