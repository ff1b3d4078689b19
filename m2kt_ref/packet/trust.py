"""Trust stores: which public keys a verifier accepts, under which names and when (§6).

A trust store is built from any mix of

* ``.pub`` files (COSE_Key, :mod:`m2kt_ref.packet.keys`), named after the file's stem, always valid;
* JSON documents shaped like a JWK Set (RFC 7517 §5) whose keys are OKP/Ed25519 JWKs (RFC 8037)
  with extra members ``name`` and optional ``not_before`` / ``not_after`` (RFC 3339, UTC)::

      {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "<base64url>", "name": "alice",
                 "not_after": "2027-01-01T00:00:00Z"}]}

A file whose first non-blank byte is ``{`` is read as JSON, any other as a COSE_Key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from m2kt_ref.errors import SignatureError
from m2kt_ref.packet.files import read_bytes
from m2kt_ref.packet.keys import PublicKey, load_public_key

__all__ = [
    "MAX_TRUST_STORE_BYTES",
    "TrustStore",
    "TrustedKey",
    "format_time",
    "parse_time",
    "trust_entry",
    "trusted_keys_from_json",
    "trusted_keys_from_text",
]

_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ENTRY_MEMBERS = frozenset(
    {"kty", "crv", "x", "kid", "alg", "use", "name", "not_before", "not_after"}
)
MAX_TRUST_STORE_BYTES = 1 << 24


def parse_time(text: Any, where: str) -> int:
    """Seconds since the Unix epoch of an RFC 3339 UTC time ``YYYY-MM-DDTHH:MM:SS[.f]Z``."""
    # fullmatch: ``$`` would also accept a trailing newline
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise SignatureError("TRUST_STORE_MALFORMED", f"{where}: not an RFC 3339 UTC time")
    try:
        moment = datetime(*(int(g) for g in m.groups()[:6]), tzinfo=timezone.utc)
    except ValueError:
        raise SignatureError("TRUST_STORE_MALFORMED", f"{where}: no such date or time") from None
    return int(moment.timestamp())


def format_time(seconds: int) -> str:
    """RFC 3339 UTC form of a Unix time (the integer itself when outside years 1..9999)."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts, its display name and optional validity window.

    Args:
        public_key: the trusted key.
        name: the name reports show for the signer.
        not_before: Unix seconds before which the key is not valid (None: no lower bound).
        not_after: Unix seconds after which the key has expired (None: no upper bound).
        source: where the entry came from (a file, an entry of a JSON trust store), for
            messages.

    Example:
        >>> import m2kt_ref
        >>> key = m2kt_ref.SigningKey(bytes(range(32)))
        >>> alice = m2kt_ref.TrustedKey(key.public_key, "alice", not_after=1_800_000_000)
        >>> alice.kid == key.kid, alice.window_error(1_700_000_000, "signing time")
        (True, None)
        >>> alice.window_error(1_900_000_000, "verification time").code
        'KEY_EXPIRED'
        >>> alice.to_dict()["not_after"]
        '2027-01-15T08:00:00Z'
    """

    public_key: PublicKey
    name: str
    not_before: int | None = None
    not_after: int | None = None
    source: str = ""

    @property
    def kid(self) -> bytes:
        """The key id: SHA-256 of the raw public key."""
        return self.public_key.kid

    def window_error(self, moment: int, what: str) -> SignatureError | None:
        """``KEY_NOT_YET_VALID`` / ``KEY_EXPIRED`` when ``moment`` is outside the window."""
        if self.not_before is not None and moment < self.not_before:
            return SignatureError(
                "KEY_NOT_YET_VALID",
                f"{what} {format_time(moment)} is before key {self.name!r} becomes valid "
                f"({format_time(self.not_before)})",
            )
        if self.not_after is not None and moment > self.not_after:
            return SignatureError(
                "KEY_EXPIRED",
                f"{what} {format_time(moment)} is after key {self.name!r} expired "
                f"({format_time(self.not_after)})",
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """Name, hex kid and the window in RFC 3339 UTC (for reports)."""
        out: dict[str, Any] = {"name": self.name, "kid": self.public_key.kid_hex}
        if self.not_before is not None:
            out["not_before"] = format_time(self.not_before)
        if self.not_after is not None:
            out["not_after"] = format_time(self.not_after)
        return out


class TrustStore:
    """Trusted keys by key id. Listing a key twice is allowed only with identical attributes.

    Build one from :class:`TrustedKey` objects, or read ``.pub`` files and JSON trust stores
    with :meth:`load`. A store supports ``len``, iteration, ``kid in store`` and
    :meth:`get`.

    Args:
        keys: the trusted keys.

    Raises:
        SignatureError: ``TRUST_STORE_MALFORMED`` on a conflicting duplicate.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> alice = m2kt_ref.SigningKey(bytes(range(32)))
        >>> store = m2kt_ref.TrustStore([m2kt_ref.TrustedKey(alice.public_key, "alice")])
        >>> len(store), alice.kid in store, store.get(alice.kid).name
        (1, True, 'alice')
        >>> with tempfile.TemporaryDirectory() as tmp:           # .pub files: named by stem
        ...     _, public = m2kt_ref.write_key_pair(alice, Path(tmp) / "lab")
        ...     print([k.name for k in m2kt_ref.TrustStore.load([public])])
        ['lab']
        >>> try:
        ...     store.add(m2kt_ref.TrustedKey(alice.public_key, "mallory"))
        ... except m2kt_ref.SignatureError as exc:
        ...     print(exc.code)
        TRUST_STORE_MALFORMED
    """

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._by_kid: dict[bytes, TrustedKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: TrustedKey) -> None:
        """Add ``key``; a key already present must have the same name and window.

        Raises:
            SignatureError: ``TRUST_STORE_MALFORMED`` on a conflicting duplicate.
        """
        known = self._by_kid.get(key.kid)
        if known is None:
            self._by_kid[key.kid] = key
        elif (known.name, known.not_before, known.not_after) != (
            key.name,
            key.not_before,
            key.not_after,
        ):
            raise SignatureError(
                "TRUST_STORE_MALFORMED",
                f"key {key.public_key.kid_hex[:16]}… is listed twice with different name or "
                f"window ({known.source or known.name}, {key.source or key.name})",
            )

    def get(self, kid: bytes) -> TrustedKey | None:
        """The trusted key with this key id (32-byte SHA-256), or None."""
        return self._by_kid.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> TrustStore:
        """Read ``.pub`` files and JSON trust stores (see the module docstring).

        Raises:
            SignatureError: ``KEY_MALFORMED`` or ``TRUST_STORE_MALFORMED``;
            FileAccessError: ``IO_ERROR``.
        """
        store = cls()
        for path in paths:
            for key in _load_one(Path(path)):
                store.add(key)
        return store


def _load_one(path: Path) -> list[TrustedKey]:
    buf = read_bytes(path)
    if len(buf) > MAX_TRUST_STORE_BYTES:
        raise SignatureError("TRUST_STORE_MALFORMED", f"{path}: larger than 16 MiB")
    if bytes(buf[:64]).lstrip()[:1] == b"{":
        return trusted_keys_from_text(bytes(buf), source=str(path))
    return [TrustedKey(load_public_key(path), path.stem, source=str(path))]


def _no_constant(name: str) -> Any:
    raise ValueError(name)


class _DuplicateMember(ValueError):
    """A JSON object names a member twice."""


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateMember
    return out


def trusted_keys_from_text(text: bytes | str, *, source: str = "trust store") -> list[TrustedKey]:
    """Parse the text of a JSON trust store (spec/signing.md §6.1) into trusted keys.

    A member named twice in one object is refused: JSON parsers disagree on which of the two
    wins, so a reviewer reading the file could see another key, name or window than the
    verifier trusts.

    Raises:
        SignatureError: ``TRUST_STORE_MALFORMED`` for text that is not JSON (NaN included), a
        member named twice, or the shape of :func:`trusted_keys_from_json`; ``KEY_MALFORMED``
        for a key that is not an acceptable Ed25519 public key.
    """
    if len(text) > MAX_TRUST_STORE_BYTES:
        raise SignatureError("TRUST_STORE_MALFORMED", f"{source}: larger than 16 MiB")
    try:
        doc = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicate_members)
    except _DuplicateMember:
        raise SignatureError(
            "TRUST_STORE_MALFORMED", f"{source}: a JSON object names a member twice"
        ) from None
    except (ValueError, RecursionError):
        raise SignatureError("TRUST_STORE_MALFORMED", f"{source}: not valid JSON") from None
    return trusted_keys_from_json(doc, source=source)


def trusted_keys_from_json(doc: Any, *, source: str = "trust store") -> list[TrustedKey]:
    """Parse a JSON trust store document (already loaded) into trusted keys.

    Raises:
        SignatureError: ``TRUST_STORE_MALFORMED`` for the document's shape, ``KEY_MALFORMED``
        for a key that is not an acceptable Ed25519 public key.
    """

    def bad(why: str) -> SignatureError:
        return SignatureError("TRUST_STORE_MALFORMED", f"{source}: {why}")

    if not isinstance(doc, dict) or set(doc) != {"keys"} or not isinstance(doc["keys"], list):
        raise bad('expected an object with one member "keys" (a list)')
    out = []
    for i, entry in enumerate(doc["keys"]):
        where = f"keys[{i}]"
        if not isinstance(entry, dict):
            raise bad(f"{where} is not an object")
        extra = sorted(set(entry) - _ENTRY_MEMBERS)
        if extra:
            raise bad(f"{where}: unknown member {extra[0]!r}")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            raise bad(f'{where}: kty must be "OKP" and crv "Ed25519"')
        if entry.get("alg", "EdDSA") != "EdDSA" or entry.get("use", "sig") != "sig":
            raise bad(f'{where}: alg must be "EdDSA" and use "sig"')
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 1024:
            raise bad(f"{where}: name must be a non-empty string")
        x = entry.get("x")
        if not isinstance(x, str) or not _B64URL.fullmatch(x) or len(x) != 43:
            raise bad(f"{where}: x must be 32 bytes in unpadded base64url (43 characters)")
        try:
            raw = base64.urlsafe_b64decode(x + "=")
        except (binascii.Error, ValueError):
            raise bad(f"{where}: x is not base64url") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != x:
            raise bad(f"{where}: x is not the canonical base64url of its bytes")
        try:
            key = PublicKey(raw)
        except SignatureError as exc:
            raise SignatureError("KEY_MALFORMED", f"{source}: {where}: {exc.message}") from None
        if "kid" in entry and entry["kid"] != key.kid_hex:
            raise bad(f"{where}: kid must be the hex SHA-256 of the key")
        not_before = (
            parse_time(entry["not_before"], f"{source}: {where}.not_before")
            if "not_before" in entry
            else None
        )
        not_after = (
            parse_time(entry["not_after"], f"{source}: {where}.not_after")
            if "not_after" in entry
            else None
        )
        if not_before is not None and not_after is not None and not_before > not_after:
            raise bad(f"{where}: not_before is after not_after")
        out.append(TrustedKey(key, name, not_before, not_after, source=f"{source} {where}"))
    return out


def trust_entry(
    key: PublicKey, name: str, *, not_before: str | None = None, not_after: str | None = None
) -> dict[str, str]:
    """A JSON trust-store entry for ``key`` (the inverse of :func:`trusted_keys_from_json`)."""
    entry = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(key.raw).rstrip(b"=").decode(),
        "kid": key.kid_hex,
        "name": name,
    }
    if not_before is not None:
        entry["not_before"] = not_before
    if not_after is not None:
        entry["not_after"] = not_after
    return entry
