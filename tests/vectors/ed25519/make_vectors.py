"""Generate ``m2kt_ed25519_edge.json``: Ed25519 edge cases in Wycheproof's EddsaVerify format.

The vectors are made here with a slow, independent pure-Python implementation of the edwards25519
arithmetic of RFC 8032 (nothing from pynacl or OpenSSL), and the tests check them against pynacl
(libsodium), pyca/cryptography (OpenSSL) and the strict checks of ``m2kt_ref.keys``. Every
signature below satisfies the *cofactorless* verification equation ``[S]B == R + [k]A`` as points,
so a verifier that only checks that equation accepts it; a strict verifier must reject each one
for the reason in its ``comment``.

Run ``python tests/vectors/ed25519/make_vectors.py`` to rewrite the file; a test fails when the
committed file differs from what this script produces (everything is derived from fixed seeds).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z

IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    """Point addition on edwards25519 (RFC 8032 §5.1.4, complete formulas)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(s: int, p: Point) -> Point:
    """Scalar multiplication by double-and-add (not constant time: test use only)."""
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = add(q, p)
        p = add(p, p)
        s >>= 1
    return q


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def recover_x(y: int, sign: int, *, lenient: bool = False) -> int | None:
    """The x with the given parity on the curve at ``y`` (RFC 8032 §5.1.3), or None.

    ``lenient`` accepts x = 0 with the sign bit set ("negative zero"), as ref10-style decoders do.
    """
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return 0 if (lenient or not sign) else None
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def decode(s: bytes, *, lenient: bool = False) -> Point | None:
    """Decode a 32-byte point; ``lenient`` reduces y mod p like permissive decoders do."""
    n = int.from_bytes(s, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        if not lenient:
            return None
        y -= P
    x = recover_x(y, sign, lenient=lenient)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def encode(p: Point) -> bytes:
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


_BY = 4 * pow(5, P - 2, P) % P
_BX = recover_x(_BY, 0)
assert _BX is not None
BASE: Point = (_BX, _BY, 1, _BX * _BY % P)


def order_divides(p: Point, n: int) -> bool:
    return equal(mul(n, p), IDENTITY)


def torsion_points() -> list[Point]:
    """The 8 points of order dividing 8, as multiples of one point of order exactly 8."""
    y = 2
    while True:
        x = recover_x(y, 0)
        if x is not None:
            t = mul(L, (x, y, 1, x * y % P))  # kills the prime-order component
            if not order_divides(t, 4):
                return [mul(i, t) for i in range(8)]
        y += 1


def small_order_encodings() -> set[bytes]:
    """Every 32-byte string that a lenient decoder maps to a point of order dividing 8.

    Canonical encodings of the 8 torsion points, the non-canonical y+p encodings (only y=0 and
    y=1 have y+p < 2^255), and the sign-bit variants of the x=0 points.
    """
    out: set[bytes] = set()
    for t in torsion_points():
        enc = encode(t)
        out.add(enc)
        n = int.from_bytes(enc, "little")
        y, sign = n & ((1 << 255) - 1), n >> 255
        if y + P < 1 << 255:
            out.add(int.to_bytes((y + P) | (sign << 255), 32, "little"))
        if recover_x(y, 0) == 0:  # x == 0: the sign bit may be set in a "negative zero"
            out.add(int.to_bytes(y | (1 << 255), 32, "little"))
            if y + P < 1 << 255:
                out.add(int.to_bytes((y + P) | (1 << 255), 32, "little"))
    return out


def expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def challenge(r_enc: bytes, a_enc: bytes, msg: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r_enc + a_enc + msg).digest(), "little") % L


def sign(seed: bytes, msg: bytes) -> bytes:
    """RFC 8032 Ed25519 signature (pure Python)."""
    a, prefix = expand(seed)
    a_enc = encode(mul(a, BASE))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % L
    r_enc = encode(mul(r, BASE))
    s = (r + challenge(r_enc, a_enc, msg) * a) % L
    return r_enc + int.to_bytes(s, 32, "little")


def public_key(seed: bytes) -> bytes:
    return encode(mul(expand(seed)[0], BASE))


def cofactorless_accepts(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """What a permissive verifier computes: ``[S]B == R + [k]A`` with lenient decoding and no
    range check on S, no small-order check on A or R, no subgroup check."""
    a = decode(pk, lenient=True)
    r = decode(sig[:32], lenient=True)
    if a is None or r is None or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    k = challenge(sig[:32], pk, msg)
    return equal(mul(s, BASE), add(r, mul(k, a)))


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"m2kt ed25519 vectors: " + label.encode()).digest()


def _forge_for_small_order_key(pk: bytes, label: str) -> tuple[bytes, bytes]:
    """A (message, signature) that the cofactorless equation accepts under small-order key pk.

    With R = [r]B and S = r, the equation holds whenever [k]A is the identity, i.e. when the
    order of A divides k. Try messages until it does (1 in 8 at worst).
    """
    a = decode(pk, lenient=True)
    assert a is not None
    r = int.from_bytes(_seed(label + "/r"), "little") % L
    r_enc = encode(mul(r, BASE))
    for i in range(256):
        msg = f"{label} #{i}".encode()
        if equal(mul(challenge(r_enc, pk, msg), a), IDENTITY):
            return msg, r_enc + int.to_bytes(r, 32, "little")
    raise AssertionError("no message found")


def _mixed_order_vector() -> tuple[bytes, bytes, bytes]:
    """Key A = aB + T (T of order 8) with a signature valid under the cofactorless equation.

    The signature is an ordinary one by secret a, over a message chosen so that 8 divides k
    (then [k]A == [k]aB). libsodium's verify accepts it; only a subgroup check rejects the key.
    """
    a, prefix = expand(_seed("mixed-order key"))
    t = torsion_points()[1]
    pk = encode(add(mul(a, BASE), t))
    for i in range(256):
        msg = f"mixed-order #{i}".encode()
        r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % L
        r_enc = encode(mul(r, BASE))
        k = challenge(r_enc, pk, msg)
        if k % 8 == 0:
            s = (r + k * a) % L
            return pk, msg, r_enc + int.to_bytes(s, 32, "little")
    raise AssertionError("no message found")


def build() -> dict:
    tests_by_key: dict[str, list[dict]] = {}

    def add_test(pk: bytes, msg: bytes, sig: bytes, comment: str, flags: list[str]) -> None:
        assert cofactorless_accepts(pk, msg, sig), comment
        tests_by_key.setdefault(pk.hex(), []).append(
            {"comment": comment, "flags": flags, "msg": msg.hex(), "sig": sig.hex()}
        )

    # A valid signature, for reference, and its non-canonical S variants.
    seed = _seed("signer")
    pk = public_key(seed)
    msg = b"m2kt packet id stand-in"
    sig = sign(seed, msg)
    tests_by_key.setdefault(pk.hex(), []).append(
        {"comment": "valid signature", "flags": ["Valid"], "msg": msg.hex(), "sig": sig.hex()}
    )
    s = int.from_bytes(sig[32:], "little")
    for j in (1, 2, 8):
        if s + j * L < 1 << 256:
            add_test(
                pk,
                msg,
                sig[:32] + int.to_bytes(s + j * L, 32, "little"),
                f"S replaced by S + {j}L (non-canonical S >= L, RFC 8032 §5.1.7)",
                ["SignatureMalleability"],
            )

    # R of small order: R = identity and S = k*a makes [S]B == R + [k]A exact.
    a, _ = expand(seed)
    for name, r_enc in (
        ("identity (y=1)", encode(IDENTITY)),
        ("identity, non-canonical y = p + 1", int.to_bytes(P + 1, 32, "little")),
    ):
        m = f"small-order R: {name}".encode()
        s_forged = challenge(r_enc, pk, m) * a % L
        add_test(
            pk,
            m,
            r_enc + int.to_bytes(s_forged, 32, "little"),
            f"R is a small-order point: {name}",
            ["SmallOrderR"],
        )

    # Public keys of small order: each signature is "valid" for the cofactorless equation.
    for enc in sorted(small_order_encodings()):
        n = int.from_bytes(enc, "little")
        y = n & ((1 << 255) - 1)
        noncanonical = y >= P or (n >> 255 and recover_x(y % P, 0) == 0)
        kind = "non-canonical" if noncanonical else "canonical"
        point = decode(enc, lenient=True)
        order = next(o for o in (1, 2, 4, 8) if point is not None and order_divides(point, o))
        m, s2 = _forge_for_small_order_key(enc, f"small-order key {enc.hex()}")
        add_test(
            enc,
            m,
            s2,
            f"public key is a {kind} encoding of a point of order {order}",
            ["SmallOrderKey"],
        )

    # A key with a torsion component, accepted by cofactorless libsodium verification.
    mpk, mmsg, msig = _mixed_order_vector()
    add_test(
        mpk,
        mmsg,
        msig,
        "public key aB + T has a component of order 8 (outside the prime-order subgroup)",
        ["MixedOrderKey"],
    )

    groups = []
    tc = 0
    for key_hex, tests in tests_by_key.items():
        for t in tests:
            tc += 1
            t["tcId"] = tc
            t["result"] = "valid" if t["flags"] == ["Valid"] else "invalid"
        groups.append(
            {
                "type": "EddsaVerify",
                "publicKey": {
                    "type": "EDDSAPublicKey",
                    "curve": "edwards25519",
                    "keySize": 255,
                    "pk": key_hex,
                },
                "tests": [
                    {k: t[k] for k in ("tcId", "comment", "flags", "msg", "sig", "result")}
                    for t in tests
                ],
            }
        )
    return {
        "algorithm": "EDDSA",
        "schema": "eddsa_verify_schema_v1.json",
        "generatorVersion": "m2kt tests/vectors/ed25519/make_vectors.py",
        "numberOfTests": tc,
        "header": [
            "Ed25519 edge cases for m2kt strict verification. Each invalid signature satisfies",
            "the cofactorless equation [S]B == R + [k]A, so only the named check rejects it.",
        ],
        "notes": {
            "Valid": {"bugType": "BASIC", "description": "An ordinary valid signature."},
            "SignatureMalleability": {
                "bugType": "SIGNATURE_MALLEABILITY",
                "description": "S is not reduced modulo L (RFC 8032 §5.1.7 requires S < L).",
            },
            "SmallOrderR": {
                "bugType": "CAN_OF_WORMS",
                "description": "R is a point of small order; m2kt verifiers reject it.",
            },
            "SmallOrderKey": {
                "bugType": "AUTH_BYPASS",
                "description": "The public key has small order: a signature for it can be "
                "forged without any secret, for many messages at once.",
            },
            "MixedOrderKey": {
                "bugType": "CAN_OF_WORMS",
                "description": "The public key lies outside the prime-order subgroup; "
                "cofactored and cofactorless verifiers disagree about its signatures.",
            },
        },
        "testGroups": groups,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


OUT = Path(__file__).with_name("m2kt_ed25519_edge.json")

if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
