"""Free-form values (``provenance.parameters``, extension data) stay in the JSON data model
(spec §6): the flat check that answers for millions of items agrees with the recursive walk
that names the first problem and its path."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from m2kt_ref.packet import rules


class Text(str):
    """A str subclass: in the data model, but not of the exact type the flat loop vouches for."""


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),  # past both ends of the int range
    st.floats(),  # NaN and infinities included
    st.text(max_size=3),
    st.builds(Text, st.text(max_size=2)),
    st.binary(max_size=2),  # outside the model
)
KEYS = st.one_of(st.text(max_size=3), st.integers(-2, 2), st.builds(Text, st.text(max_size=2)))


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


VALUES = st.recursive(
    st.one_of(SCALARS, st.sampled_from([nested(32), nested(33), {"a": nested(32)}])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=24,
)


@given(VALUES)
def test_the_flat_check_agrees_with_the_recursive_walk(value):
    first = rules._first_json_model_problem(value)
    assert rules._json_model_problem(value) == first
    if rules._plainly_in_json_model(value):
        assert first is None


def test_the_first_problem_in_document_order_is_named():
    value = {"a": [1, 2, math.inf], "b": b"x", "c": 2**64}
    assert rules._json_model_problem(value) == ("non-finite number", "/a/2")
    # an item lies at most 32 levels below the value's root: {"x": [[...[0]...]]} with 31
    # arrays puts the 0 at level 32
    assert rules._json_model_problem({"x": nested(32)})[0] == "nested too deeply"
    assert rules._json_model_problem({"x": nested(31)}) is None
    assert rules._json_model_problem([{}] * 100_000) is None
