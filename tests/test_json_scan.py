"""The JSON form's item count before parsing (m2kt_ref.packet.json_scan) against the parsed text."""

from __future__ import annotations

import json
from typing import Any

from data_items import data_items
from hypothesis import given
from hypothesis import strategies as st

from m2kt_ref.packet.json_scan import count_json_items, item_bound

#: Names that stress the scanner: the body's own name, escaped, quotes and brackets in strings.
NAMES = st.sampled_from(["body", "a", 'q"uote', "br[ack{et", "co,lon:", "bo\\dy", "é", ""])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8), NAMES
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    doc = draw(st.dictionaries(NAMES.filter(lambda n: n != "body"), VALUES, max_size=3))
    if draw(st.booleans()):
        doc["body"] = draw(VALUES)
    spacing = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps(doc, separators=spacing, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):
        text = text.replace(b'"body"', b'"bo\\u0064y"')  # the same name, escaped
    return doc, text


@given(documents())
def test_counts_match_the_parsed_document(case):
    doc, text = case
    body = data_items(doc["body"]) if "body" in doc else 0
    other = data_items(doc) - body
    assert item_bound(text) >= body + other
    counted = count_json_items(text, body, other)  # exact budgets force the walk when needed
    if item_bound(text) > min(body, other):
        assert (counted.body, counted.other) == (body, other)
    if body > 0:
        assert count_json_items(text, body - 1, other + body).body == body
    assert count_json_items(text, body + other, other - 1).other == other


def test_a_count_stops_one_past_its_budget():
    text = b'{"body": [' + b",".join([b"{}"] * 1000) + b"]}"
    assert count_json_items(text, 10, 100).body == 11
    assert count_json_items(text, 10_000, 1).other == 2  # the top object and the name "body"
    assert count_json_items(text, 1001, 2).body == 1001
