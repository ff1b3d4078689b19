#!/usr/bin/env python3
"""Rebuild every conformance vector and the manifest, deterministically.

Usage::

    conformance/generate [--out DIR] [--no-check]

Vectors are built from two small base packets (``minimal`` and ``full``) by the described
mutations, with the generator's own CBOR writer (:mod:`vectorgen.rawcbor`) so that ill-formed and
non-deterministic encodings can be written byte by byte. Fixed seeds, fixed timestamps and
Ed25519 keys derived from fixed seeds make the output identical on every run; a test regenerates
into a temporary directory and fails when the committed files differ.

Every vector states its expected outcome here, by construction. Unless ``--no-check`` is given,
the generator then runs each vector through the reference adapter and through the independent
implementation (``independent/m2kt_indep.py``, its own CBOR decoder, pynacl for Ed25519) and,
for signed vectors, checks every signature with pycose; any disagreement stops the run.

The generator itself is the package ``vectorgen/``, one module per topic (see its docstring);
this file is only the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# vectorgen lives next to this file; the repository root makes m2kt_ref importable uninstalled.
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from vectorgen import build_suite, check_vectors, write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="suite directory to write")
    parser.add_argument("--no-check", action="store_true", help="skip the cross-checks")
    args = parser.parse_args(argv)
    vectors = build_suite()
    if not args.no_check:
        problems = check_vectors(vectors)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"{len(problems)} disagreement(s); nothing written", file=sys.stderr)
            return 1
    write(args.out, vectors)
    print(f"wrote {len(vectors)} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
