"""Validation against the shipped JSON Schemas: the independent check of packet structure.

The schemas in ``schemas/`` (shipped as the ``m2kt_ref.schemas`` package data) are the single
source of truth for structure. This module loads them with :mod:`importlib.resources`, resolves
their ``$ref`` s through an offline :mod:`referencing` registry, and validates documents with
``jsonschema``'s Draft 2020-12 validator. It is the slow, independent path used by the tests and
by conformance runs; :mod:`~m2kt_ref.packet.codec` validates with the pydantic models instead,
and the tests check that both agree.

API in the ``jsonschema`` style: :func:`is_valid` (a boolean), :func:`iter_errors` (every problem)
and :func:`validate` (raise the first). Problems are :class:`~m2kt_ref.errors.ValidationError`
with code ``SCHEMA_VIOLATION``, a JSON Pointer ``path`` and the failed ``rule`` (the keyword).

The spec's tables generated from these schemas are written by ``tools/spec_tables.py``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema
import jsonschema.validators
import referencing
import referencing.jsonschema

from m2kt_ref.errors import UsageError, ValidationError

__all__ = [
    "BASE_URI",
    "BODY",
    "PACKET",
    "SCHEMA_PACKAGE",
    "SchemaValidator",
    "is_valid",
    "iter_errors",
    "registry",
    "resolve_local",
    "schema_documents",
    "schema_uri",
    "validate",
    "validator",
]

#: The package holding the shipped schema files (``m2kt_ref/schemas`` links to ``schemas/``).
SCHEMA_PACKAGE = "m2kt_ref.schemas"
#: Base URI of the packet schemas' ``$id`` s: identifiers, never fetched.
BASE_URI = "https://m2kt.dev/schemas/1.0/"
#: The JSON form of a packet (``{m2kt_json, body, tensor_data, signatures?}``).
PACKET = "packet.schema.json"
#: The body alone (what the CBOR envelope's ``body`` decodes to).
BODY = "body.schema.json"

_MESSAGE_LIMIT = 240


# --------------------------------------------------------------------------- loading


@functools.cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """Every shipped schema file, by file name, parsed (cached)."""
    docs = {}
    for entry in importlib.resources.files(SCHEMA_PACKAGE).iterdir():
        if entry.name.endswith(".json"):
            docs[entry.name] = json.loads(entry.read_text(encoding="utf-8"))
    return dict(sorted(docs.items()))


@functools.cache
def registry() -> referencing.Registry:
    """An offline registry holding every shipped schema under its ``$id``.

    The resources are stored without their ``$schema`` (every file declares 2020-12): jsonschema
    picks the validator class of a ``$ref`` target from its ``$schema``, which would drop the
    ECMA-262 ``pattern`` keyword of :data:`_Validator` below.
    """
    resources = []
    for doc in schema_documents().values():
        contents = {k: v for k, v in doc.items() if k != "$schema"}
        resources.append((doc["$id"], referencing.jsonschema.DRAFT202012.create_resource(contents)))
    return referencing.Registry().with_resources(resources).crawl()


def schema_uri(name: str) -> str:
    """The ``$id`` of the shipped schema file ``name``."""
    return str(schema_documents()[name]["$id"])


# --------------------------------------------------------------------------- ECMA-262 patterns


def _ecma_to_python(pattern: str) -> str:
    """Translate ECMA-262 ``$`` (end of input only) into Python's ``\\Z``.

    Python's ``$`` also matches before a final newline, so ``re.search("^a$", "a\\n")`` succeeds
    where ECMA-262, which JSON Schema prescribes, fails. Our patterns use ``$`` only as an
    anchor; a ``$`` inside a character class or escaped is left alone.
    """
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(ch)
    return "".join(out)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_ecma_to_python(pattern))


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{_short(instance)} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _pattern_keyword}
)


# --------------------------------------------------------------------------- validation


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pointer(parts: Sequence[Any]) -> str:
    """RFC 6901 JSON Pointer (tensor names hold '/', which becomes '~1')."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _error(err: jsonschema.ValidationError, prefix: str) -> ValidationError:
    message = f"{err.validator}: {err.message}"
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    out = ValidationError("SCHEMA_VIOLATION", message, path=prefix + _pointer(err.absolute_path))
    out.rule = str(err.validator)  # type: ignore[attr-defined]
    out.schema_path = "/" + "/".join(str(p) for p in err.absolute_schema_path)  # type: ignore[attr-defined]
    return out


class SchemaValidator:
    """Validates documents against one shipped schema.

    Args:
        schema: file name of the schema (:data:`PACKET` or :data:`BODY`, or another shipped file).
        path_prefix: prepended to error paths; bodies get ``/body`` so that paths read as in the
            JSON form and in :mod:`m2kt_ref.packet.codec`'s errors.
    """

    def __init__(self, schema: str = PACKET, *, path_prefix: str | None = None) -> None:
        if schema not in schema_documents():
            raise UsageError(f"no shipped schema named {schema!r}")
        self.schema = schema
        self.path_prefix = (
            ("/body" if schema == BODY else "") if path_prefix is None else path_prefix
        )
        self._validator = _Validator({"$ref": schema_uri(schema)}, registry=registry())

    def iter_errors(self, doc: Any) -> Iterator[ValidationError]:
        """Every schema violation of ``doc``, ordered by path, as ``SCHEMA_VIOLATION`` errors."""
        found = sorted(
            self._validator.iter_errors(doc),
            key=lambda e: (_pointer(e.absolute_path), str(e.validator)),
        )
        for err in found:
            yield _error(err, self.path_prefix)

    def is_valid(self, doc: Any) -> bool:
        """True when ``doc`` satisfies the schema."""
        return bool(self._validator.is_valid(doc))

    def validate(self, doc: Any) -> None:
        """Raise the first violation (by path) as a ``SCHEMA_VIOLATION`` error."""
        for problem in self.iter_errors(doc):
            raise problem


@functools.cache
def validator(schema: str = PACKET) -> SchemaValidator:
    """The cached :class:`SchemaValidator` for a shipped schema file."""
    return SchemaValidator(schema)


def iter_errors(doc: Any, schema: str = PACKET) -> Iterator[ValidationError]:
    """Every violation of ``doc`` (by default a packet's JSON form; ``schema=BODY`` for a body)."""
    return validator(schema).iter_errors(doc)


def is_valid(doc: Any, schema: str = PACKET) -> bool:
    """True when ``doc`` satisfies the schema."""
    return validator(schema).is_valid(doc)


def validate(doc: Any, schema: str = PACKET) -> None:
    """Raise the first violation of ``doc`` as a ``SCHEMA_VIOLATION`` error."""
    validator(schema).validate(doc)


def resolve_local(name: str, pointer: str = "") -> dict[str, Any]:
    """The node at JSON Pointer ``pointer`` (e.g. ``/$defs/edge``) of shipped schema ``name``."""
    node: Any = schema_documents()[name]
    for part in pointer.split("/")[1:]:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
