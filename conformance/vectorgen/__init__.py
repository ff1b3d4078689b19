"""The conformance vector generator, by topic; ``conformance/generate`` is its command line.

Modules, in the order their vectors appear in the manifest (the order is part of the output:
moving a call in :func:`build_suite` changes ``manifest.json``):

* :mod:`reader_valid`, :mod:`reader_encoding`, :mod:`reader_json`, :mod:`reader_body`,
  :mod:`reader_tensors`, :mod:`reader_request` - the reader vectors (``r-*``);
* :mod:`registered` - format 1.1's registered extensions (reader and producer vectors);
* :mod:`boundary` - bounds the spec states, both sides of each;
* :mod:`reader_rules` - reader vectors for rules single-rule mutants broke unnoticed;
* :mod:`verifier` - signed packets, trust stores, policies (``v-*``);
* :mod:`verifier_rules` - the same for the verifier (``conformance/mutants``);
* :mod:`producer` - packets to emit, and refusals (``p-*``).

Each exposes ``add_vectors(suite, bases)``. They share :mod:`common` (constants, tensors, base
bodies), :mod:`packets` (packets built by hand with :mod:`rawcbor`; :class:`packets.Bases`),
:mod:`suite` (the vector list) and :mod:`cose` (keys and COSE items); :mod:`checks` and
:mod:`output` cross-check and write. Only :mod:`reference` imports ``m2kt_ref``.
"""

from __future__ import annotations

from typing import Any

from . import (
    boundary,
    producer,
    reader_body,
    reader_encoding,
    reader_json,
    reader_request,
    reader_rules,
    reader_tensors,
    reader_valid,
    registered,
    verifier,
    verifier_rules,
)
from .checks import check_reference_canonical, check_vectors
from .output import write
from .packets import Bases
from .suite import Suite

#: Every topic module, in manifest order.
TOPICS = (
    reader_valid,
    reader_encoding,
    reader_json,
    reader_body,
    reader_tensors,
    reader_request,
    registered,
    boundary,
    reader_rules,
    verifier,
    verifier_rules,
    producer,
)

__all__ = ["TOPICS", "build_suite", "check_vectors", "write"]


def build_suite() -> list[dict[str, Any]]:
    """Every vector, in manifest order, after checking the hand-built base packets."""
    bases = Bases.make()
    check_reference_canonical(bases)
    s = Suite()
    for topic in TOPICS:
        topic.add_vectors(s, bases)
    return s.vectors
