"""Message parameters (provider credentials among them) sealed for the time they are stored.

A hub message carries its configuration as parameters (``dotcom.password``...). They are stored
apart from the message body, encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from the
``cryptography`` library) under ``SHIPHUB_SECRET_KEY``, so neither Redis nor its append-only file
ever holds them in clear. They are kept, sealed, as long as the message's record: a replay runs
with them as the first run did (the configuration filling what they lack), and a resend of the
message replaces them with those it carries. They expire with the record
(``RECORD_TTL_SECONDS``).

``SHIPHUB_SECRET_KEY`` is a comma list of Fernet keys: the first seals, all of them open, so a
key is rotated by putting the new one first and dropping the old one once no record sealed
with it is left (``RECORD_TTL_SECONDS`` after the rotation; before that, a replay of a message
sealed with the dropped key fails saying its parameters could not be read). Without a key
(insecure development mode only) parameters are stored as they are.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from worker.basics.errors import HardError

FERNET, PLAIN = "fernet:", "plain:"


class Sealer:
    def __init__(self, keys: SecretStr | None) -> None:
        values = [k.strip() for k in keys.get_secret_value().split(",")] if keys else []
        self._fernet = MultiFernet([Fernet(k) for k in values if k]) if values else None

    def seal(self, text: str) -> str:
        if self._fernet is None:
            return PLAIN + text
        return FERNET + self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        if sealed.startswith(PLAIN):
            return sealed.removeprefix(PLAIN)
        if self._fernet is None:
            raise HardError(
                "Parameters could not be read",
                ["They were sealed with SHIPHUB_SECRET_KEY, which is not set here"],
            )
        try:
            return self._fernet.decrypt(sealed.removeprefix(FERNET).encode()).decode()
        except InvalidToken:
            raise HardError(
                "Parameters could not be read",
                [
                    "They were sealed with a SHIPHUB_SECRET_KEY this process does not have: "
                    "rotate keys by listing the new one first and the old one after it"
                ],
            ) from None


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
