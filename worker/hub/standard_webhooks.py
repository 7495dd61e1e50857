"""Pushes to the hub signed as Standard Webhooks (https://www.standardwebhooks.com), the scheme
behind Svix and many APIs, so that a hub verifies one with a call of a maintained library:

* ``webhook-id``: the idempotency key, the same on every push of one answer part;
* ``webhook-timestamp``: unix seconds of this push;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
  secret, space separated (during a rotation the hub accepts either).

A secret is written ``whsec_<base64 of its key>`` (standard base64, padding optional, as the
reference libraries read it); a key shorter than ``MIN_KEY_BYTES`` is refused, as the standard
asks. Nothing here ever puts a secret in what it says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

PREFIX = "whsec_"
MIN_KEY_BYTES = 24  # the standard: a secret SHOULD be 24 to 64 bytes
SIGNATURE_VERSION = "v1"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def secrets_problem(text: str) -> str | None:
    """What makes ``text`` (one or several space-separated secrets) unfit, or None; which secret
    and why, never its value."""
    written = text.split()
    if not written:
        return "holds no secret"
    for number, secret in enumerate(written, start=1):
        if problem := _secret_problem(secret):
            which = f"secret {number} of {len(written)}" if len(written) > 1 else "the secret"
            return f"{which} {problem}"
    return None


def _secret_problem(secret: str) -> str | None:
    if not secret.startswith(PREFIX):
        return f"does not start with {PREFIX!r} (write it {PREFIX}<base64 of the key>)"
    try:
        key = _key(secret)
    except ValueError:
        return f"is not {PREFIX!r} followed by valid base64 (A-Z a-z 0-9 + /, '=' padding)"
    if len(key) < MIN_KEY_BYTES:
        return f"is a key of {len(key)} bytes: use at least {MIN_KEY_BYTES}"
    return None


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(PREFIX)
    if not _BASE64.fullmatch(encoded):
        raise ValueError("not base64")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc


def signing_keys(text: str) -> tuple[bytes, ...]:
    """The keys of the space-separated ``whsec_`` secrets in ``text`` (checked by
    ``secrets_problem`` first: a ValueError here names no secret)."""
    return tuple(_key(secret) for secret in text.split())


def signature(keys: tuple[bytes, ...], webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` for each key, space separated."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        f"{SIGNATURE_VERSION},"
        + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )
