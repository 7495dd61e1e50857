"""Parameters sealed at intake: one cheap AEAD per message (AES-256-GCM, its key derived from
SHIPHUB_SECRET_KEY's Fernet key), records sealed by earlier versions (Fernet) still opened, and
keys rotated as before: the first seals, all open."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.basics.sealing import Sealer
from worker.pipeline.intake import sealed_parameters

OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()
PARAMETERS = [
    {"name": "dotcom.api_key", "value": "key-\u00e9"},
    {"name": "dotcom.password", "value": "hunter2"},
    {"name": "dotcom.shipping_lookup", "value": [{"Standard": "03"}]},
]


def sealer(*keys: str) -> Sealer:
    return Sealer(SecretStr(",".join(keys)))


def test_a_seal_is_aes_gcm_opens_to_the_text_and_never_shows_it() -> None:
    text = json.dumps(PARAMETERS)
    sealed = sealer(NEW_KEY).seal(text)

    assert sealed.startswith("aead:")
    assert "hunter2" not in sealed and "api_key" not in sealed
    assert sealer(NEW_KEY).open(sealed) == text
    assert sealer(NEW_KEY).seal(text) != sealed  # a fresh nonce each time


def test_the_intakes_sealed_parameters_open_to_the_same_parameters() -> None:
    sealed = sealed_parameters(sealer(NEW_KEY), PARAMETERS)

    assert json.loads(sealer(NEW_KEY).open(sealed)) == PARAMETERS


def test_a_record_sealed_with_fernet_by_an_earlier_version_still_opens() -> None:
    earlier = "fernet:" + Fernet(OLD_KEY).encrypt(b'[{"name": "api_key", "value": "k"}]').decode()

    assert sealer(NEW_KEY, OLD_KEY).open(earlier) == '[{"name": "api_key", "value": "k"}]'


def test_keys_rotate_the_first_seals_all_open_and_a_dropped_key_is_named() -> None:
    sealed = sealer(OLD_KEY).seal("[]")

    assert sealer(NEW_KEY, OLD_KEY).open(sealed) == "[]"
    assert sealer(NEW_KEY, OLD_KEY).seal("[]") != sealed
    assert sealer(NEW_KEY).open(sealer(NEW_KEY, OLD_KEY).seal("[]")) == "[]"
    with pytest.raises(HardError, match="could not be read") as refused:
        sealer(NEW_KEY).open(sealed)
    assert "rotate keys" in " ".join(refused.value.reasons)


@pytest.mark.parametrize("damage", ["aead:", "aead:!!!", "aead:AAAA"])
def test_a_damaged_seal_is_a_hard_error_not_a_crash(damage: str) -> None:
    with pytest.raises(HardError, match="could not be read"):
        sealer(NEW_KEY).open(damage)


def test_without_a_key_parameters_are_kept_plain_and_a_seal_cannot_be_read() -> None:
    plain = Sealer(None)

    assert plain.open(plain.seal("[]")) == "[]"
    with pytest.raises(HardError, match="could not be read"):
        plain.open(sealer(NEW_KEY).seal("[]"))
