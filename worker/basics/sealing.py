"""Message parameters (provider credentials among them) sealed for the time they are stored.

A hub message carries its configuration as parameters (``dotcom.password``...). They are stored
apart from the message body, encrypted with AES-256-GCM (an AEAD, from the ``cryptography``
library) under a key derived from ``SHIPHUB_SECRET_KEY`` (HKDF-SHA256), so neither Redis nor its
append-only file ever holds them in clear. They are kept, sealed, as long as the message's
record: a replay runs with them as the first run did (the configuration filling what they
lack), and a resend of the message replaces them with those it carries. They expire with the
record (``RECORD_TTL_SECONDS``).

Every message the hub sends carries parameters, so the intake seals one per message: one
AES-GCM call (a few microseconds) where Fernet (AES-CBC, then HMAC-SHA256, then base64, in
Python) took five times as long. A sealed text is ``aead:`` and the URL-safe base64 of a random
96-bit nonce and the ciphertext with its tag (random nonces stay safe for 2**32 seals per key:
at 100,000 messages a day, a century). Records sealed by earlier versions (``fernet:``) are
still opened, until they expire.

``SHIPHUB_SECRET_KEY`` is a comma list of Fernet keys: the first seals, all of them open, so a
key is rotated by putting the new one first and dropping the old one once no record sealed
with it is left (``RECORD_TTL_SECONDS`` after the rotation; before that, a replay of a message
sealed with the dropped key fails saying its parameters could not be read). Without a key
(insecure development mode only) parameters are stored as they are.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from worker.basics.errors import HardError

AEAD, FERNET, PLAIN = "aead:", "fernet:", "plain:"
NONCE_BYTES = 12
# What the AES-GCM key is derived for: a Fernet key's bytes are never used as they are.
KEY_PURPOSE = b"shiphub: message parameters sealed at rest, AES-256-GCM"


class Sealer:
    def __init__(self, keys: SecretStr | None) -> None:
        values = [k.strip() for k in keys.get_secret_value().split(",")] if keys else []
        values = [k for k in values if k]
        self._fernet = MultiFernet([Fernet(k) for k in values]) if values else None
        self._aeads = [AESGCM(_aead_key(k)) for k in values]  # the first seals

    def seal(self, text: str) -> str:
        if not self._aeads:
            return PLAIN + text
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[0].encrypt(nonce, text.encode(), None)
        return AEAD + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> str:
        if sealed.startswith(PLAIN):
            return sealed.removeprefix(PLAIN)
        if self._fernet is None:
            raise HardError(
                "Parameters could not be read",
                ["They were sealed with SHIPHUB_SECRET_KEY, which is not set here"],
            )
        if sealed.startswith(AEAD):
            return self._open_aead(sealed.removeprefix(AEAD))
        try:  # sealed by an earlier version, with Fernet
            return self._fernet.decrypt(sealed.removeprefix(FERNET).encode()).decode()
        except InvalidToken:
            raise _unreadable() from None

    def _open_aead(self, text: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(text.encode())
        except (binascii.Error, ValueError):
            raise _unreadable() from None
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for aead in self._aeads:
            try:
                return aead.decrypt(nonce, sealed, None).decode()
            except (InvalidTag, ValueError):
                continue
        raise _unreadable()


def _aead_key(fernet_key: str) -> bytes:
    """The AES-256-GCM key of one ``SHIPHUB_SECRET_KEY`` entry: HKDF-SHA256 of its bytes."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_PURPOSE)
    return hkdf.derive(base64.urlsafe_b64decode(fernet_key.encode()))


def _unreadable() -> HardError:
    return HardError(
        "Parameters could not be read",
        [
            "They were sealed with a SHIPHUB_SECRET_KEY this process does not have: "
            "rotate keys by listing the new one first and the old one after it"
        ],
    )


@lru_cache(maxsize=4)
def sealer(keys: SecretStr | None) -> Sealer:
    """The sealer for ``SHIPHUB_SECRET_KEY`` (made once per process, not once per message)."""
    return Sealer(keys)


def key_problem(keys: str) -> str | None:
    """What is wrong with a SHIPHUB_SECRET_KEY value, or None (the value is never shown)."""
    for key in (k.strip() for k in keys.split(",")):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return (
                "must be Fernet keys (32 url-safe base64-encoded bytes), comma separated; make "
                'one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            )
    return None
