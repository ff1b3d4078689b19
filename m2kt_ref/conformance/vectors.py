"""Loading the conformance vectors and their manifest (spec/conformance.md §3)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from m2kt_ref.conformance.protocol import PROFILES, load_schema
from m2kt_ref.errors import FileAccessError, UsageError

__all__ = ["Vector", "default_suite_dir", "load_manifest", "load_vectors"]


def default_suite_dir() -> Path:
    """The suite: ``$M2KT_CONFORMANCE_DIR``, else the vectors shipped in the package.

    In the source tree ``m2kt_ref/conformance/suite`` links to ``conformance/``'s manifest and
    vectors; an installed wheel carries them as package data, so ``m2kt conformance run`` works
    without the source tree.
    """
    env = os.environ.get("M2KT_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "suite"


@dataclass(frozen=True)
class Vector:
    """One conformance vector (the parsed ``vectors/ID.json``)."""

    id: str
    description: str
    op: str
    profiles: tuple[str, ...]
    spec: tuple[str, ...]
    input: dict[str, Any]
    expected: dict[str, Any]
    tags: tuple[str, ...] = ()
    mutation: dict[str, Any] | None = None
    intermediate: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, doc: dict[str, Any]) -> Vector:
        return cls(
            id=doc["id"],
            description=doc["description"],
            op=doc["op"],
            profiles=tuple(doc["profiles"]),
            spec=tuple(doc["spec"]),
            input=doc["input"],
            expected=doc["expected"],
            tags=tuple(doc.get("tags", ())),
            mutation=doc.get("mutation"),
            intermediate=doc.get("intermediate", {}),
        )

    @property
    def expect(self) -> str:
        """``valid`` or the expected error code."""
        return "valid" if self.expected["outcome"] == "valid" else self.expected["code"]


def _validator(definition: str | None) -> jsonschema.Draft202012Validator:
    schema = load_schema("conformance-manifest")
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def _read_json(path: Path) -> tuple[bytes, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return raw, json.loads(raw)
    except ValueError:
        raise UsageError(f"{path} is not valid JSON") from None


def _check(validator: jsonschema.Draft202012Validator, doc: Any, path: Path) -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise UsageError(f"{path}: {error.message} at /{where}")


def load_manifest(suite_dir: Path | None = None) -> dict[str, Any]:
    """The manifest, validated against ``schemas/conformance-manifest.schema.json``."""
    suite = suite_dir or default_suite_dir()
    path = suite / "manifest.json"
    _, doc = _read_json(path)
    _check(_validator(None), doc, path)
    return doc


def load_vectors(
    suite_dir: Path | None = None,
    *,
    profile: str | None = None,
    only: list[str] | None = None,
) -> list[Vector]:
    """Vectors of the suite in manifest order, optionally those of one profile or listed ids.

    Each vector file is validated against its schema and its SHA-256 against the manifest.

    Raises:
        UsageError: unknown profile or id, a file that does not match the manifest.
        FileAccessError: a vector file cannot be read.
    """
    suite = suite_dir or default_suite_dir()
    manifest = load_manifest(suite)
    if profile is not None and profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    entries = manifest["vectors"]
    if only:
        known = {e["id"] for e in entries}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise UsageError(f"no vector with id {unknown[0]!r}")
        entries = [e for e in entries if e["id"] in set(only)]
    if profile is not None:
        entries = [e for e in entries if profile in e["profiles"]]
    validator = _validator("vector")
    out = []
    for entry in entries:
        path = suite / entry["file"]
        raw, doc = _read_json(path)
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise UsageError(f"{path} differs from the manifest (re-run generate)")
        _check(validator, doc, path)
        vector = Vector.from_data(doc)
        if vector.id != entry["id"]:
            raise UsageError(f"{path} holds vector {vector.id!r}, not {entry['id']!r}")
        out.append(vector)
    return out
