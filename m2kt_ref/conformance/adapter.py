"""The reference library behind the conformance protocol (``m2kt conformance adapter``).

Reads one JSON request per line on stdin and writes one reply per line on stdout
(spec/conformance.md §4). Every operation maps onto the public API of the reference library;
any :class:`~m2kt_ref.errors.M2ktError` becomes an ``invalid`` result with its code, anything else
an ``errored`` reply with the traceback, so a bug here shows up as errored, never as a pass.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from m2kt_ref import __version__
from m2kt_ref.conformance.protocol import PROFILES, PROTOCOL_VERSION, summarize
from m2kt_ref.errors import M2ktError, UsageError
from m2kt_ref.packet import codec
from m2kt_ref.packet import tensors as tz
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "OPERATIONS",
    "decode_input",
    "handle",
    "input_bytes",
    "limits_from",
    "op_decode",
    "op_encode",
    "op_produce",
    "op_verify",
    "serve",
]


def limits_from(overrides: Any) -> Limits:
    """Default limits with the vector's overrides; unknown names or negative values: ``USAGE``."""
    if overrides is None:
        return DEFAULT_LIMITS
    names = {f.name for f in dataclasses.fields(Limits)}
    if not isinstance(overrides, dict):
        raise UsageError("limits must be an object")
    for name, value in overrides.items():
        if name not in names:
            raise UsageError(f"unknown limit {name!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UsageError(f"limit {name} must be a non-negative integer")
    return dataclasses.replace(DEFAULT_LIMITS, **overrides)


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise UsageError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not valid base64") from None


def input_bytes(inp: dict[str, Any]) -> bytes | memoryview:
    """The request's input bytes: inline (``b64``) or a file (``path``, memory-mapped)."""
    if "path" in inp:
        return read_bytes(inp["path"])
    return _b64(inp.get("b64"), "input.b64")


def decode_input(inp: dict[str, Any]) -> codec.Packet:
    """Decode the request's packet in its encoding under its limits (raises the first problem)."""
    limits = limits_from(inp.get("limits"))
    buf = input_bytes(inp)
    if inp.get("encoding", "cbor") == "json":
        return codec.decode_json(bytes(buf), limits)
    return codec.decode(buf, limits)


def _values(packet: codec.Packet) -> dict[str, list[float]]:
    return {t.name: packet.tensor_f32(t.name).reshape(-1).tolist() for t in packet.body.tensors}


def _valid(packet: codec.Packet, inp: dict[str, Any]) -> dict[str, Any]:
    values = _values(packet) if inp.get("values") else None
    return {
        "outcome": "valid",
        "packet_id": packet.packet_id,
        "summary": summarize(
            packet.body.to_data(), signed=packet.signatures is not None, values=values
        ),
    }


def op_decode(inp: dict[str, Any]) -> dict[str, Any]:
    """reader: decode and validate."""
    return _valid(decode_input(inp), inp)


def op_verify(inp: dict[str, Any]) -> dict[str, Any]:
    """verifier: decode, then check signatures against the trust store and policy."""
    from m2kt_ref.conformance import verify_adapter

    policy = verify_adapter.load_policy(inp)
    packet = decode_input(inp)
    signers = verify_adapter.verify(packet, policy, limits_from(inp.get("limits")))
    return {**_valid(packet, inp), "signers": signers}


def op_encode(inp: dict[str, Any]) -> dict[str, Any]:
    """producer: re-encode the JSON form given as input to the normative CBOR."""
    packet = codec.decode_json(bytes(input_bytes(inp)), limits_from(inp.get("limits")))
    return {"outcome": "valid", "packet_b64": base64.b64encode(codec.encode(packet)).decode()}


def op_produce(inp: dict[str, Any]) -> dict[str, Any]:
    """producer: build a packet from body fields and raw tensors, then check it like a reader."""
    desc = inp.get("description")
    if not isinstance(desc, dict) or not isinstance(desc.get("fields"), dict):
        raise UsageError("description.fields must be an object")
    tensors: dict[str, tz.EncodedTensor] = {}
    for t in desc.get("tensors", []):
        data = _b64(t.get("b64"), f"tensor {t.get('name')}")
        scale = t.get("scale")
        tensors[t["name"]] = tz.EncodedTensor(
            t["dtype"], tuple(t["shape"]), memoryview(data), None if scale is None else float(scale)
        )
    if len(tensors) != len(desc.get("tensors", [])):
        raise UsageError("two tensors share a name")
    packet = codec.assemble(desc["fields"], tensors)
    encoded = codec.encode(packet)
    codec.decode(encoded)  # refuse what a reader would refuse (non-finite values...)
    return {"outcome": "valid", "packet_b64": base64.b64encode(encoded).decode()}


OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "decode": op_decode,
    "verify": op_verify,
    "encode": op_encode,
    "produce": op_produce,
}


def handle(op: str, inp: dict[str, Any]) -> dict[str, Any]:
    """Run one operation; returns the reply's ``result`` (a coded refusal is a result too)."""
    try:
        return OPERATIONS[op](inp)
    except M2ktError as exc:
        return {"outcome": "invalid", **exc.to_dict()}


def serve(stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> int:
    """Answer protocol requests until ``stop`` or end of input; returns the exit status."""

    def send(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        stdout.flush()

    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cmd = request.get("cmd")
        if cmd == "start":
            send(
                {
                    "protocol": PROTOCOL_VERSION,
                    "implementation": {
                        "name": "m2kt_ref",
                        "version": __version__,
                        "language": f"python {sys.version.split()[0]}",
                        "profiles": list(PROFILES),
                    },
                }
            )
        elif cmd == "run":
            seq = request["seq"]
            try:
                send({"seq": seq, "result": handle(request["op"], request["input"])})
            except Exception as exc:  # a bug in the reference: report it, keep serving
                send(
                    {
                        "seq": seq,
                        "errored": {
                            "message": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(),
                        },
                    }
                )
        elif cmd == "stop":
            return 0
    return 0
