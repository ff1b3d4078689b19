"""``m2kt keygen``, ``m2kt sign`` and ``m2kt verify`` (spec/signing.md).

Output conventions follow ``m2kt validate``: on failure one ``FILE: CODE: message`` line per
problem and exit status 1; ``--json`` prints machine-readable output instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from m2kt_ref.cli.common import add_limit_option, add_trust_option, limits_from, print_json
from m2kt_ref.errors import M2ktError, UsageError

__all__ = ["keygen_command", "register", "sign_command", "verify_command"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "keygen",
        help="make an Ed25519 key pair (NAME.key, NAME.pub)",
        description="Write NAME.key (secret COSE_Key, mode 0600) and NAME.pub (public COSE_Key).",
    )
    p.add_argument("-o", "--output", required=True, metavar="NAME", help="path stem of the pair")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--json", action="store_true", help="print paths and kid as JSON")
    p.set_defaults(handler=keygen_command)

    p = subparsers.add_parser(
        "sign",
        help="add a signature to a packet",
        description="Append a COSE signature by KEY to FILE and write OUT (same encoding as "
        "FILE). Refuses packets whose provenance is incomplete (spec/signing.md §8).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--key", required=True, metavar="NAME.key", help="secret key file")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    add_limit_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=sign_command)

    p = subparsers.add_parser(
        "verify",
        help="verify packet signatures against trusted keys",
        description="Exit 0 only when every FILE is valid and at least K distinct trusted keys "
        "signed it (K also at least the packet's safety.min_signers).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    add_trust_option(p)
    p.add_argument("--min-signers", type=int, default=1, metavar="K", help="k of n (default 1)")
    add_limit_option(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of results")
    p.set_defaults(handler=verify_command)


def _line(file: str, err: M2ktError) -> str:
    return f"{file}: {err.code}: {err}"


def keygen_command(args: argparse.Namespace) -> int:
    from m2kt_ref.packet.keys import SigningKey, write_key_pair

    stem = Path(args.output)
    targets = [stem.with_name(stem.name + ext) for ext in (".key", ".pub")]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        raise UsageError(f"{existing[0]} exists (use --force to overwrite)")
    key = SigningKey.generate()
    secret, public = write_key_pair(key, stem)
    if args.json:
        print_json({"key": str(secret), "pub": str(public), "kid": key.kid.hex()})
    else:
        print(f"wrote {secret} (secret, mode 0600) and {public}; kid {key.kid.hex()}")
    return 0


def sign_command(args: argparse.Namespace) -> int:
    from m2kt_ref.packet import codec
    from m2kt_ref.packet.files import read_bytes
    from m2kt_ref.packet.keys import load_signing_key
    from m2kt_ref.packet.signing import describe_signers, sign_packet

    try:
        key = load_signing_key(args.key)
        encoding = "json" if codec.sniff_json(bytes(read_bytes(args.file)[:64])) else "cbor"
        packet = codec.read_packet(args.file, limits_from(args))
        signed = sign_packet(packet, key)
        codec.write_packet(signed, args.output, encoding=encoding)
    except M2ktError as exc:
        if args.json:
            print_json([{"file": args.file, "signed": False, "errors": [exc.to_dict()]}])
        else:
            print(_line(args.file, exc), file=sys.stderr)
        return 1
    signers = describe_signers(signed)
    if args.json:
        print_json(
            [
                {
                    "file": args.file,
                    "output": args.output,
                    "signed": True,
                    "packet_id": signed.packet_id,
                    "signers": signers,
                }
            ]
        )
    else:
        print(
            f"{args.output}: signed by {key.kid.hex()[:16]}… "
            f"({len(signers)} signature{'s' if len(signers) != 1 else ''})"
        )
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from m2kt_ref.packet.signing import verify_file
    from m2kt_ref.packet.trust import TrustStore

    if args.min_signers < 1:
        raise UsageError("--min-signers must be at least 1")
    limits = limits_from(args)
    trust = TrustStore.load(args.trust)
    results: list[dict[str, Any]] = []
    ok = True
    for file in args.files:
        try:
            result = verify_file(file, trust, min_signers=args.min_signers, limits=limits)
        except M2ktError as exc:  # unreadable file
            ok = False
            results.append({"file": file, "valid": False, "errors": [exc.to_dict()], "signers": []})
            if not args.json:
                print(_line(file, exc))
            continue
        ok = ok and result.valid
        results.append({"file": file, **result.to_dict()})
        if args.json:
            continue
        if result.valid:
            names = ", ".join(s.name or (s.kid or "?")[:16] for s in result.signers if s.counted)
            print(
                f"{file}: verified: {result.counted} trusted signer(s), "
                f"{result.required} required ({names})"
            )
        else:
            for err in result.errors:
                print(_line(file, err))
    if args.json:
        print_json(results)
    return 0 if ok else 1
