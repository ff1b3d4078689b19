"""Everything the generator takes from the reference library, ``m2kt_ref``, in one place.

The generator builds packets by hand, but it needs the reference for a few things: the summary
format and profiles of the conformance protocol, signatures made with the public signing API,
and the cross-checks (canonical encoder, adapter, harness). Other modules import these names from
here, never from ``m2kt_ref`` directly, so that a move inside the library changes only this file.
"""

from __future__ import annotations

from m2kt_ref.conformance import adapter
from m2kt_ref.conformance.harness import materialise
from m2kt_ref.conformance.protocol import PROFILES, PROTOCOL_VERSION, judge, summarize
from m2kt_ref.packet import codec
from m2kt_ref.packet.keys import SigningKey
from m2kt_ref.packet.signing import BODY_PROTECTED, sig_structure, sign_packet
from m2kt_ref.packet.trust import trust_entry

__all__ = [
    "BODY_PROTECTED",
    "PROFILES",
    "PROTOCOL_VERSION",
    "SigningKey",
    "adapter",
    "codec",
    "judge",
    "materialise",
    "sig_structure",
    "sign_packet",
    "summarize",
    "trust_entry",
]
