"""What makes a secret setting no secret, checked when a process starts.

A secret that is blank (``" "``), has whitespace around it (a pasted line break), or holds a
control character is refused at start-up, naming the variable and the problem, never the value:
otherwise it is taken as set and fails later, or (a webhook secret) verifies what it should not.
A webhook secret is also a key someone could guess from one captured event, so it has a minimum
length. ``secret_problem`` and ``webhook_secret_problem`` are the one place these rules live: the
settings classes use them through ``SecretsChecked``, and any secret read another way (a secret
per store) is checked with them too.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

# Settings named like this hold a secret (as ``worker.basics.logs`` redacts them), whatever their
# type.
SECRET_NAME_SUFFIXES = ("_key", "_password", "_secret", "_token")
# An HMAC key shorter than this could be found from one signed event by trying them all.
WEBHOOK_SECRET_MIN_LENGTH = 12


def secret_problem(value: str, min_length: int = 1) -> str | None:
    """What makes ``value`` unfit as a secret, or None; the value itself is never in the text."""
    if not value.strip():
        return "is blank (only whitespace)"
    if value != value.strip():
        return "has leading or trailing whitespace (a pasted line break or space?)"
    if not value.isprintable():
        at = next(at for at, c in enumerate(value) if not c.isprintable())
        return f"has a control or invisible character at position {at}"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters: use at least {min_length}"
    return None


def webhook_secret_problem(value: str) -> str | None:
    """What makes ``value`` unfit to verify a provider's webhook signatures, or None."""
    return secret_problem(value, WEBHOOK_SECRET_MIN_LENGTH)


def is_secret_name(field_name: str) -> bool:
    return field_name.lower().endswith(SECRET_NAME_SUFFIXES)


class SecretsChecked(BaseSettings):
    """Settings whose every secret (a ``SecretStr``, or text named like a secret) must pass
    ``secret_problem``; an unfit one is the field's validation error, which names the variable
    and not the value."""

    @field_validator("*")
    @classmethod
    def _secret_is_a_secret(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, str) and is_secret_name(info.field_name or ""):
            text = value
        else:
            return value
        if problem := secret_problem(text):
            raise ValueError(problem)
        return value
