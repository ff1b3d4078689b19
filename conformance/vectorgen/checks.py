"""The cross-checks run before anything is written (skipped with ``--no-check``).

A vector's expected outcome is stated by construction in the topic modules; these checks make
sure two implementations written apart agree with it: the reference library (through its
conformance adapter) and the independent implementation (``conformance/independent/``, its own
CBOR decoder), plus pycose for every signature of a valid ``verify`` vector. The generator's own
CBOR writer is checked against the reference's canonical encoder first.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from .packets import Bases
from .reference import adapter, codec, judge, materialise

#: The suite directory, ``conformance/``: the independent implementation lives under it.
SUITE_DIR = Path(__file__).resolve().parent.parent


def check_reference_canonical(bases: Bases) -> None:
    """Our hand-written encoder and layout must agree with the reference's canonical encoder."""
    for b in (bases.minimal, bases.full):
        assert codec.canonical_cbor(b.body) == b.body_bytes, "rawcbor disagrees with codec"
        ref = codec.decode(b.encode())
        assert codec.encode(ref) == b.encode(), "envelope differs from the reference"


def check_vectors(vectors: list[dict[str, Any]]) -> list[str]:
    """Run every vector through the reference adapter and the independent implementation."""
    sys.path.insert(0, str(SUITE_DIR / "independent"))
    import m2kt_indep  # the second implementation (no m2kt_ref import)

    problems = []
    with TemporaryFiles() as files:
        for v in vectors:
            request = files.materialise(v["input"])
            result = adapter.handle(v["op"], request)
            problem = judge(v["expected"], result, v["op"])
            if problem:
                problems.append(f"{v['id']}: reference: {problem}")
            if v["op"] in m2kt_indep.OPERATIONS:
                result = m2kt_indep.handle(v["op"], request)
                problem = judge(v["expected"], result, v["op"])
                if problem:
                    problems.append(f"{v['id']}: independent: {problem}")
            if v["op"] == "verify" and v["expected"]["outcome"] == "valid":
                problem = pycose_check(v)
                if problem:
                    problems.append(f"{v['id']}: pycose: {problem}")
    return problems


def pycose_check(v: dict[str, Any]) -> str | None:
    """Every counted signer of a valid verify vector verifies under pycose (an independent COSE
    implementation), fed by the independent implementation's CBOR decoder."""
    from m2kt_indep import DEFAULT_LIMITS, decode_cbor, decode_item, decode_json
    from pycose.keys import OKPKey
    from pycose.messages import SignMessage

    raw = base64.b64decode(v["input"]["b64"])
    limits = dict(DEFAULT_LIMITS)
    p = decode_json(raw, limits) if v["input"]["encoding"] == "json" else decode_cbor(raw, limits)
    item = decode_item(p.signatures, max_depth=32, tags=True)
    message = SignMessage.from_cose_obj(item.value, True)
    if message.payload.hex() != v["expected"]["packet_id"]:
        return "payload is not the packet id"
    verified = set()
    for signer in message.signers:
        x = decode_item(signer.phdr_encoded, max_depth=32, tags=False)[14][8][1][-2]
        signer.key = OKPKey(crv="ED25519", x=x)
        if not signer.verify_signature():
            return "a signature does not verify"
        verified.add(hashlib.sha256(x).hexdigest())
    if not set(v["expected"]["signers"]) <= verified:
        return "a counted signer is not among the verified ones"
    return None


class TemporaryFiles:
    """Materialise ``file`` inputs the way the harness does (see m2kt_ref.conformance.harness)."""

    def __enter__(self) -> TemporaryFiles:
        self._dir = tempfile.TemporaryDirectory(prefix="m2kt-gen-")
        return self

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()

    def materialise(self, inp: dict[str, Any]) -> dict[str, Any]:
        return materialise(inp, Path(self._dir.name))
