"""Format 1.1: the registered extensions ``derivation`` and ``operators`` (packet-1.1.md §3.12).

Valid packets that use them (both encodings, critical or not, integer probabilities, a 1.0 header),
a 1.0 packet read unchanged, one invalid vector per rule of §3.12 (each on the full 1.1 packet,
breaking that rule alone), and the producer's side: emit a 1.1 packet, refuse a broken one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from .common import FULL_TENSORS, full_1_1_fields, full_fields, minimal_fields
from .packets import Bases, build, json_form, mutate
from .producer import describe
from .suite import Suite, b64, intermediates

#: The base every vector of this module mutates, as named in its ``mutation``.
BASE = "full-1.1"


def _derivation(f: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = f["extensions"]["derivation"]["data"]
    return data


def _entries(f: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = f["extensions"]["operators"]["data"]["entries"]
    return entries


def add_vectors(s: Suite, bases: Bases) -> None:
    """The 1.1 vectors: valid packets, one refusal per rule, then the producer's."""
    full_1_1 = build(full_1_1_fields(), FULL_TENSORS)

    def critical(f: dict[str, Any]) -> None:
        for name in ("derivation", "operators"):
            f["extensions"][name]["critical"] = True

    # ---- valid
    s.valid(
        "r-valid-1-1-extensions",
        "The full packet as a 1.1 writer makes it: version 1.1, the registered extensions "
        "derivation (one derivation per edge, every value once, trace_steps, trace_selection) "
        "and operators (three entries, every operator derivation, probabilities 0, 0.875 and "
        "1), not critical, beside a private extension.",
        full_1_1,
        spec=["registered", "versioning"],
        tags=["format-1.1", "extension-registered"],
        mutation=("full", "set", "header.version := 1.1; extensions.derivation, operators added"),
    )
    s.valid(
        "r-valid-1-1-extensions-json",
        "The same 1.1 packet in the JSON form: the extension data converts as free-form data.",
        full_1_1,
        spec=["registered", "json"],
        tags=["format-1.1", "extension-registered", "json-form"],
        encoding="json",
    )
    s.valid(
        "r-valid-1-1-critical",
        "Both registered extensions marked critical: a 1.1 reader understands them and accepts "
        "the packet (a 1.0 reader would refuse it with CRITICAL_EXTENSION).",
        build(mutate(full_1_1_fields(), critical), FULL_TENSORS),
        spec=["registered", "versioning"],
        tags=["format-1.1", "extension-registered", "extension-critical"],
        mutation=(BASE, "set", "extensions.derivation.critical := true, operators too"),
    )
    s.valid(
        "r-valid-1-1-minimal",
        "The smallest use: a packet with no edges and a derivation with an empty edges list "
        "and nothing else, and an operators extension with no entries.",
        build(
            mutate(
                minimal_fields(),
                lambda f: (
                    f["header"].update(version="1.1"),
                    f.update(
                        extensions={
                            "derivation": {"critical": False, "data": {"edges": []}},
                            "operators": {"critical": False, "data": {"entries": []}},
                        }
                    ),
                ),
            )
        ),
        spec=["registered"],
        tags=["format-1.1", "extension-registered"],
        mutation=("minimal", "set", "version 1.1; derivation {edges: []}, operators {entries: []}"),
    )
    s.valid(
        "r-valid-1-1-integer-probability",
        "Operator probabilities written as the integers 1 and 0: the data of an extension stays "
        "free-form for the encodings (integers stay integers), and a number field of a "
        "registered extension accepts an integer.",
        build(
            mutate(
                full_1_1_fields(),
                lambda f: (
                    _entries(f)[1].update(probability=1),
                    _entries(f)[2].update(probability=0),
                ),
            ),
            FULL_TENSORS,
        ),
        spec=["registered", "deterministic"],
        tags=["format-1.1", "extension-registered", "numbers"],
        mutation=(BASE, "set", "operators entries[1].probability := 1, entries[2] := 0 (ints)"),
    )
    s.valid(
        "r-valid-1-1-extensions-in-1-0-header",
        "The registered extensions in a packet whose header says 1.0: readers do not compare the "
        "minor version with the content; the extensions are checked and accepted.",
        build(
            mutate(full_1_1_fields(), lambda f: f["header"].update(version="1.0")),
            FULL_TENSORS,
        ),
        spec=["registered", "versioning"],
        tags=["format-1.1", "extension-registered", "version"],
        mutation=(BASE, "set", "header.version := 1.0"),
    )
    s.valid(
        "r-valid-1-0-unchanged",
        "A 1.0 packet (the full one: version 1.0, a private extension, no registered one) is "
        "read by a 1.1 reader exactly as before: same bytes, same id, same summary.",
        bases.full,
        spec=["versioning"],
        tags=["format-1.0"],
    )

    # ---- one rule each
    def bad(
        vid: str,
        desc: str,
        fn: Callable[[dict[str, Any]], Any],
        code: str = "SCHEMA_VIOLATION",
        tags: list[str] | None = None,
        spec: list[str] | None = None,
    ) -> None:
        fields = full_1_1_fields()
        fn(fields)
        s.invalid(
            vid,
            desc,
            build(fields, FULL_TENSORS).encode(),
            code,
            spec=spec or ["registered", "semantics"],
            tags=["format-1.1", "extension-registered", *(tags or [])],
            mutation=(BASE, "set", desc),
        )

    bad(
        "r-ext-derivation-edges-short",
        "derivation.edges has 3 items for the 4 graph edges (the last one removed).",
        lambda f: _derivation(f)["edges"].pop(),
        tags=["edge-count"],
    )
    bad(
        "r-ext-derivation-edges-long",
        'derivation.edges has 5 items for the 4 graph edges ("declared" appended).',
        lambda f: _derivation(f)["edges"].append("declared"),
        tags=["edge-count"],
    )
    bad(
        "r-ext-derivation-unknown-value",
        'derivation.edges[2] is "teacher-guess", not a registered derivation.',
        lambda f: _derivation(f)["edges"].__setitem__(2, "teacher-guess"),
        tags=["registry"],
    )
    bad(
        "r-ext-derivation-bad-decoding",
        'derivation.trace_steps is "argmax", not a registered step decoding.',
        lambda f: _derivation(f).update(trace_steps="argmax"),
        tags=["registry"],
    )
    bad(
        "r-ext-derivation-bad-selection-method",
        'derivation.trace_selection.method is "greedy", not a registered selection method.',
        lambda f: _derivation(f)["trace_selection"].update(method="greedy"),
        tags=["registry"],
    )
    bad(
        "r-ext-derivation-selection-missing-field",
        "derivation.trace_selection has no covered count.",
        lambda f: _derivation(f)["trace_selection"].pop("covered"),
        tags=["schema"],
    )
    bad(
        "r-ext-derivation-selection-float-count",
        "derivation.trace_selection.candidates is the float 25.0: an integer field of a "
        "registered extension holds an integer, even though the data is free-form.",
        lambda f: _derivation(f)["trace_selection"].update(candidates=25.0),
        tags=["schema", "numbers"],
    )
    bad(
        "r-ext-derivation-no-edges",
        "derivation's data has no edges member (only trace_steps and trace_selection).",
        lambda f: _derivation(f).pop("edges"),
        tags=["schema"],
    )
    bad(
        "r-ext-derivation-unknown-field",
        'derivation\'s data has an unknown member "note".',
        lambda f: _derivation(f).update(note="hand-made"),
        tags=["schema"],
    )
    bad(
        "r-ext-derivation-data-null",
        "derivation's data is null (allowed for unknown extensions, not for a registered one).",
        lambda f: f["extensions"]["derivation"].update(data=None),
        tags=["schema"],
    )
    for field in ("operator", "source", "target"):
        bad(
            f"r-ext-operators-dangling-{field}",
            f'operators.entries[0].{field} names the unknown concept "num:9".',
            lambda f, k=field: _entries(f)[0].update({k: "num:9"}),
            code="DANGLING_REFERENCE",
            tags=["dangling"],
        )
    bad(
        "r-ext-operators-probability-above-1",
        "operators.entries[0].probability is 1.5 (probabilities lie in [0, 1]).",
        lambda f: _entries(f)[0].update(probability=1.5),
        tags=["schema"],
    )
    bad(
        "r-ext-operators-probability-negative",
        "operators.entries[2].probability is -0.125 (probabilities lie in [0, 1]).",
        lambda f: _entries(f)[2].update(probability=-0.125),
        tags=["schema"],
    )
    bad(
        "r-ext-operators-probability-nan",
        "operators.entries[0].probability is NaN.",
        lambda f: _entries(f)[0].update(probability=math.nan),
        code="NONFINITE_VALUE",
        tags=["nonfinite"],
    )
    bad(
        "r-ext-operators-missing-field",
        "operators.entries[1] has no input.",
        lambda f: _entries(f)[1].pop("input"),
        tags=["schema"],
    )
    bad(
        "r-ext-operators-empty-input",
        "operators.entries[1].input is empty (a probe has at least one token).",
        lambda f: _entries(f)[1].update(input=[]),
        tags=["schema"],
    )
    bad(
        "r-ext-operators-geometry-derivation",
        'operators.entries[0].derivation is "teacher-geometry", which an operator fact cannot '
        "have (it is a teacher's answer or the author's).",
        lambda f: _entries(f)[0].update(derivation="teacher-geometry"),
        tags=["registry"],
    )
    bad(
        "r-ext-operators-unknown-field",
        'operators.entries[0] has an unknown member "rank".',
        lambda f: _entries(f)[0].update(rank=1),
        tags=["schema"],
    )
    bad(
        "r-ext-order-schema-before-references",
        'operators.entries[1] has no input and names the unknown source "num:9": the data is '
        "checked against its schema before its references (§10), so SCHEMA_VIOLATION.",
        lambda f: (_entries(f)[1].pop("input"), _entries(f)[1].update(source="num:9")),
        tags=["order"],
        spec=["registered", "order"],
    )

    # ---- the producer's side
    fields = full_1_1_fields()
    s.add(
        "p-produce-1-1-extensions",
        "Emit the full 1.1 packet: both registered extensions, written as given (the extension "
        "data is free-form for the encoding).",
        op="produce",
        spec=["registered", "deterministic"],
        inp={"description": describe(fields, FULL_TENSORS)},
        expected={"outcome": "valid", "packet_b64": b64(full_1_1.encode())},
        tags=["produce", "format-1.1", "extension-registered"],
        intermediate=intermediates(full_1_1, full_1_1.encode()),
    )
    s.add(
        "p-encode-1-1-extensions",
        "Re-encode the JSON form of the full 1.1 packet to the normative CBOR.",
        op="encode",
        spec=["registered", "json", "deterministic"],
        inp={"encoding": "json", "b64": b64(json_form(full_1_1))},
        expected={"outcome": "valid", "packet_b64": b64(full_1_1.encode())},
        tags=["encode", "format-1.1", "extension-registered"],
        intermediate=intermediates(full_1_1, full_1_1.encode()),
    )
    for vid, desc, code, fn in (
        (
            "p-refuse-derivation-edges",
            "a derivation with 3 items for 4 edges",
            "SCHEMA_VIOLATION",
            lambda f: _derivation(f)["edges"].pop(),
        ),
        (
            "p-refuse-operators-dangling",
            "an operator entry naming an unknown concept",
            "DANGLING_REFERENCE",
            lambda f: _entries(f)[0].update(target="ghost"),
        ),
    ):
        fields = copy.deepcopy(full_1_1_fields())
        fn(fields)
        s.add(
            vid,
            f"Asked to emit an invalid 1.1 packet ({desc}), the producer refuses with {code}.",
            op="produce",
            spec=["registered"],
            inp={"description": describe(fields, FULL_TENSORS)},
            expected={"outcome": "invalid", "code": code},
            tags=["produce", "refuse", "format-1.1"],
        )
    # keep the 1.0 base in sight: nothing above may change it
    assert full_fields()["header"]["version"] == "1.0"
