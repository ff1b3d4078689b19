"""Writing the suite: one JSON file per vector and the manifest that lists them with digests.

The JSON layout (indent 1, UTF-8, trailing newline) is part of what the committed files must
match byte for byte; vector files left over from a removed vector are deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import FORMAT_VERSION, SUITE_VERSION
from .packets import sha
from .reference import PROFILES, PROTOCOL_VERSION


def write(out: Path, vectors: list[dict[str, Any]]) -> None:
    """Write ``vectors/ID.json`` and ``manifest.json`` under ``out``; drop stale vector files."""
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    entries, keep = [], set()
    for v in vectors:
        name = f"vectors/{v['id']}.json"
        text = json.dumps(v, indent=1, ensure_ascii=False) + "\n"
        raw = text.encode("utf-8")
        (out / name).write_bytes(raw)
        keep.add(name)
        entries.append(
            {
                "id": v["id"],
                "file": name,
                "op": v["op"],
                "profiles": v["profiles"],
                "expect": v["expected"]["code"]
                if v["expected"]["outcome"] == "invalid"
                else "valid",
                "tags": v["tags"],
                "sha256": sha(raw),
            }
        )
    for stale in (out / "vectors").glob("*.json"):
        if f"vectors/{stale.name}" not in keep:
            stale.unlink()
    manifest = {
        "suite": "m2kt-conformance",
        "suite_version": SUITE_VERSION,
        "protocol": PROTOCOL_VERSION,
        "format_version": FORMAT_VERSION,
        "generator": "conformance/generate",
        "profiles": {
            "reader": {
                "description": "Decode and validate packets (both encodings); report the packet "
                "id and a content summary, or the first error code.",
                "ops": list(PROFILES["reader"]),
            },
            "verifier": {
                "description": "The reader, plus signatures checked against a trust store and "
                "a k-of-n policy.",
                "ops": list(PROFILES["verifier"]),
            },
            "producer": {
                "description": "Emit packets (from a description, or from the JSON form) that "
                "the reference accepts and that re-encode to identical bytes.",
                "ops": list(PROFILES["producer"]),
            },
        },
        "vectors": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
