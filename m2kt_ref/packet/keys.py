"""Ed25519 keys for packet signatures: strict checks and COSE_Key files (spec/signing.md §5).

Thin layer over pynacl (libsodium). libsodium already refuses most malformed signatures; the
checks that the spec makes normative (S < L, canonical and non-small-order R and A, A in the
prime-order subgroup) are also written out here, so that they hold whatever the binding does and
so that a failure names its reason.

Key files are COSE_Key maps (RFC 9052 §7, RFC 9053 §7.2: kty OKP, crv Ed25519) in deterministic
CBOR: ``NAME.pub`` holds ``{1: 1, 2: kid, 3: -8, -1: 6, -2: x}`` and ``NAME.key`` adds ``-4: d``
(the 32-byte seed) and is written with mode 0600.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
import nacl.utils

from m2kt_ref.errors import M2ktError, SignatureError
from m2kt_ref.packet.codec import canonical_cbor, decode_strict_cbor
from m2kt_ref.packet.files import read_bytes, write_atomic
from m2kt_ref.packet.limits import DEFAULT_LIMITS

__all__ = [
    "SMALL_ORDER_ENCODINGS",
    "L",
    "P",
    "PublicKey",
    "SigningKey",
    "is_canonical_point",
    "is_canonical_scalar",
    "is_small_order",
    "load_public_key",
    "load_signing_key",
    "public_key_problem",
    "signature_problem",
    "write_key_pair",
]

#: Field prime and group order of edwards25519 (RFC 8032 §5.1).
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493

#: COSE_Key labels (RFC 9052 §7.1, RFC 9053 §7.2) and values used here.
KTY, KID, ALG, CRV, X, D = 1, 2, 3, -1, -2, -4
KTY_OKP, CRV_ED25519, ALG_EDDSA = 1, 6, -8

_PUBLIC_LABELS = frozenset({KTY, KID, ALG, CRV, X})
_SECRET_LABELS = _PUBLIC_LABELS | {D}

#: y-coordinate encodings (sign bit cleared) of every point of order dividing 8, including the
#: non-canonical y = p and y = p + 1. The same list as libsodium's ``ge25519_has_small_order``;
#: tests/test_signing.py recomputes it from the curve equation.
SMALL_ORDER_ENCODINGS = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # y=0, order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # y=1, order 1
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p-1, order 2
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p (0), order 4
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p+1 (1), order 1
    )
)


def is_small_order(encoded: bytes) -> bool:
    """True when a 32-byte point encoding decodes (leniently) to a point of order 1, 2, 4 or 8."""
    return encoded[:31] + bytes([encoded[31] & 0x7F]) in SMALL_ORDER_ENCODINGS


def is_canonical_point(encoded: bytes) -> bool:
    """True when the encoded y-coordinate is below p (RFC 8032 §5.1.3 decoding, step 1)."""
    return int.from_bytes(encoded, "little") & ((1 << 255) - 1) < P


def is_canonical_scalar(encoded: bytes) -> bool:
    """True when a 32-byte little-endian scalar is below the group order L (RFC 8032 §5.1.7)."""
    return int.from_bytes(encoded, "little") < L


@lru_cache(maxsize=4096)
def public_key_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not an acceptable Ed25519 public key, or None when it is.

    Acceptable: 32 bytes, canonical y, not of small order, and on the curve in the prime-order
    subgroup (libsodium's ``crypto_core_ed25519_is_valid_point``). Cached: a verifier sees the
    same few keys again and again, and the subgroup check costs a scalar multiplication.
    """
    if len(raw) != 32:
        return f"public key is {len(raw)} bytes, not 32"
    if not is_canonical_point(raw):
        return "public key encoding is not canonical (y >= p)"
    if is_small_order(raw):
        return "public key is a point of small order"
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        return "public key is not a point of the prime-order subgroup"
    return None


def signature_problem(signature: bytes) -> str | None:
    """Why a 64-byte Ed25519 signature is refused before the equation is even tried, or None."""
    if len(signature) != 64:
        return f"signature is {len(signature)} bytes, not 64"
    if not is_canonical_scalar(signature[32:]):
        return "signature scalar S is not canonical (S >= L)"
    if not is_canonical_point(signature[:32]) or is_small_order(signature[:32]):
        return "signature point R is non-canonical or of small order"
    return None


class PublicKey:
    """An Ed25519 public key that passed :func:`public_key_problem`.

    Args:
        raw: the 32-byte RFC 8032 encoding. It must be canonical, not of small order, and in
            the prime-order subgroup.

    Raises:
        SignatureError: ``KEY_MALFORMED`` from the constructor when the bytes are not acceptable.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))    # a fixed seed, for examples only
        >>> public = m2kt_ref.PublicKey(key.public_key.raw)
        >>> public == key.public_key, len(public.kid)       # kid = SHA-256 of the raw key
        (True, 32)
        >>> public.verify(b"hello", key.sign(b"hello"))     # returns None, or raises
        >>> try:
        ...     public.verify(b"hellO", key.sign(b"hello"))
        ... except m2kt_ref.SignatureError as exc:
        ...     print(exc.code)
        SIGNATURE_INVALID
        >>> try:
        ...     m2kt_ref.PublicKey(bytes(32))               # a point of small order
        ... except m2kt_ref.SignatureError as exc:
        ...     print(exc.code)
        KEY_MALFORMED
    """

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        problem = public_key_problem(raw)
        if problem:
            raise SignatureError("KEY_MALFORMED", problem)
        self.raw = raw

    @property
    def kid(self) -> bytes:
        """Key id: SHA-256 of the raw 32-byte public key."""
        return hashlib.sha256(self.raw).digest()

    @property
    def kid_hex(self) -> str:
        """The key id as lowercase hex."""
        return self.kid.hex()

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature strictly; returns None or raises ``SIGNATURE_INVALID``."""
        problem = signature_problem(signature)
        if problem:
            raise SignatureError("SIGNATURE_INVALID", problem)
        try:
            nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), self.raw)
        except nacl.exceptions.BadSignatureError:
            raise SignatureError("SIGNATURE_INVALID", "Ed25519 signature does not verify") from None

    def cose_key(self) -> dict[int, Any]:
        """The minimal COSE_Key map ``{1: 1, -1: 6, -2: x}`` (what a signature embeds)."""
        return {KTY: KTY_OKP, CRV: CRV_ED25519, X: self.raw}

    def to_cose_key_bytes(self) -> bytes:
        """The public key file: deterministic CBOR of ``{1: 1, 2: kid, 3: -8, -1: 6, -2: x}``."""
        return canonical_cbor(
            {KTY: KTY_OKP, KID: self.kid, ALG: ALG_EDDSA, CRV: CRV_ED25519, X: self.raw}
        )

    @classmethod
    def from_cose_key(cls, value: Any, *, where: str = "COSE_Key") -> PublicKey:
        """Build from a decoded COSE_Key map holding no secret (labels 1, 2, 3, -1, -2)."""
        return cls(_check_cose_key(value, _PUBLIC_LABELS, where)[X])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey(kid={self.kid_hex[:16]}…)"


class SigningKey:
    """An Ed25519 secret key (the 32-byte RFC 8032 seed) and its public key.

    Use :meth:`generate` for a real key; a fixed seed gives the same key every time (tests,
    examples). Signing is deterministic (RFC 8032).

    Args:
        seed: the 32-byte secret seed.

    Raises:
        SignatureError: ``KEY_MALFORMED`` when the seed is not 32 bytes.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey.generate()
        >>> signature = key.sign(b"message")
        >>> len(signature), key.public_key.verify(b"message", signature)
        (64, None)
        >>> fixed = m2kt_ref.SigningKey(bytes(range(32)))
        >>> fixed.kid == m2kt_ref.SigningKey(bytes(range(32))).kid
        True
        >>> try:
        ...     m2kt_ref.SigningKey(b"too short")
        ... except m2kt_ref.SignatureError as exc:
        ...     print(exc.code)
        KEY_MALFORMED
    """

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        seed = bytes(seed)
        if len(seed) != 32:
            raise SignatureError("KEY_MALFORMED", f"secret key is {len(seed)} bytes, not 32")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key = PublicKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's random source."""
        return cls(nacl.utils.random(32))

    @property
    def kid(self) -> bytes:
        """The public key's id: SHA-256 of the raw 32-byte public key."""
        return self.public_key.kid

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(bytes(message)).signature

    def to_cose_key_bytes(self) -> bytes:
        """The secret key file: the public key file's map plus ``-4: d`` (the seed)."""
        pub = self.public_key
        return canonical_cbor(
            {
                KTY: KTY_OKP,
                KID: pub.kid,
                ALG: ALG_EDDSA,
                CRV: CRV_ED25519,
                X: pub.raw,
                D: bytes(self._key),
            }
        )

    @classmethod
    def from_cose_key(cls, value: Any, *, where: str = "COSE_Key") -> SigningKey:
        """Build from a decoded COSE_Key map with ``-4: d``; ``x``, if present, must match."""
        fields = _check_cose_key(value, _SECRET_LABELS, where, secret=True)
        key = cls(fields[D])
        if X in fields and fields[X] != key.public_key.raw:
            raise SignatureError("KEY_MALFORMED", f"{where}: x does not match the secret d")
        if KID in fields and fields[KID] != key.kid:
            raise SignatureError("KEY_MALFORMED", f"{where}: kid is not SHA-256(x)")
        return key

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.public_key.kid_hex[:16]}…)"


def _check_cose_key(
    value: Any, allowed: frozenset[int], where: str, *, secret: bool = False
) -> Mapping[int, Any]:
    """Check the shape of a decoded OKP/Ed25519 COSE_Key map; returns it."""

    def bad(why: str) -> SignatureError:
        return SignatureError("KEY_MALFORMED", f"{where}: {why}")

    if not isinstance(value, Mapping):
        raise bad("not a COSE_Key map")
    extra = [k for k in value if not (type(k) is int and k in allowed)]
    if extra:
        raise bad(f"unexpected label {extra[0]!r}")
    if value.get(KTY) != KTY_OKP or type(value.get(KTY)) is not int:
        raise bad("kty is not OKP (1)")
    if value.get(CRV) != CRV_ED25519 or type(value.get(CRV)) is not int:
        raise bad("crv is not Ed25519 (6)")
    if ALG in value and (type(value[ALG]) is not int or value[ALG] != ALG_EDDSA):
        raise bad("alg is not EdDSA (-8)")
    if secret:
        if not isinstance(value.get(D), bytes) or len(value[D]) != 32:
            raise bad("d is not a 32-byte byte string")
        if X in value and not isinstance(value[X], bytes):
            raise bad("x is not a byte string")
    else:
        if not isinstance(value.get(X), bytes) or len(value[X]) != 32:
            raise bad("x is not a 32-byte byte string")
        if KID in value and value[KID] != hashlib.sha256(value[X]).digest():
            raise bad("kid is not SHA-256(x)")
    if KID in value and not isinstance(value[KID], bytes):
        raise bad("kid is not a byte string")
    return value


def _read_cose_key(path: str | Path) -> Any:
    buf = read_bytes(path)
    if len(buf) > 4096:
        raise SignatureError("KEY_MALFORMED", f"{path}: {len(buf)} bytes is too large for a key")
    try:
        return decode_strict_cbor(bytes(buf), DEFAULT_LIMITS, "/")
    except M2ktError as exc:
        raise SignatureError("KEY_MALFORMED", f"{path}: not CBOR ({exc.code})") from None


def load_public_key(path: str | Path) -> PublicKey:
    """Read a ``.pub`` file (COSE_Key, see module docstring).

    Args:
        path: the public key file, as written by :func:`write_key_pair`.

    Returns:
        The public key.

    Raises:
        SignatureError: ``KEY_MALFORMED`` when the file is not a valid Ed25519 COSE_Key
            without a secret (not CBOR, wrong labels, a bad point, a kid that does not match).
        FileAccessError: ``IO_ERROR`` when the file cannot be read.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _, public_path = m2kt_ref.write_key_pair(key, Path(tmp) / "alice")
        ...     public = m2kt_ref.load_public_key(public_path)
        >>> public == key.public_key
        True
    """
    return PublicKey.from_cose_key(_read_cose_key(path), where=str(path))


def load_signing_key(path: str | Path) -> SigningKey:
    """Read a ``.key`` file (COSE_Key with ``d``).

    Args:
        path: the secret key file, as written by :func:`write_key_pair`.

    Returns:
        The signing key.

    Raises:
        SignatureError: ``KEY_MALFORMED`` when the file is not a valid Ed25519 COSE_Key with a
            32-byte ``d`` (or its ``x`` or ``kid`` does not match the secret).
        FileAccessError: ``IO_ERROR`` when the file cannot be read.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     secret_path, public_path = m2kt_ref.write_key_pair(key, Path(tmp) / "alice")
        ...     again = m2kt_ref.load_signing_key(secret_path)
        ...     try:
        ...         m2kt_ref.load_signing_key(public_path)     # no secret in a .pub file
        ...     except m2kt_ref.SignatureError as exc:
        ...         print(exc.code)
        KEY_MALFORMED
        >>> again.sign(b"x") == key.sign(b"x")
        True
    """
    return SigningKey.from_cose_key(_read_cose_key(path), where=str(path))


def write_key_pair(key: SigningKey, stem: str | Path) -> tuple[Path, Path]:
    """Write ``STEM.key`` (mode 0600) and ``STEM.pub`` (mode 0644) atomically.

    Args:
        key: the key pair to write.
        stem: the files' path without suffix (``keys/alice`` -> ``keys/alice.key``,
            ``keys/alice.pub``); the directory must exist.

    Returns:
        The two paths, secret first.

    Raises:
        FileAccessError: ``IO_ERROR`` when a file cannot be written.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey.generate()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     secret, public = m2kt_ref.write_key_pair(key, Path(tmp) / "alice")
        ...     print(secret.name, public.name, m2kt_ref.load_public_key(public) == key.public_key)
        alice.key alice.pub True
    """
    stem = Path(stem)
    secret_path = stem.with_name(stem.name + ".key")
    public_path = stem.with_name(stem.name + ".pub")
    write_atomic(secret_path, [key.to_cose_key_bytes()], mode=0o600)
    write_atomic(public_path, [key.public_key.to_cose_key_bytes()], mode=0o644)
    return secret_path, public_path
