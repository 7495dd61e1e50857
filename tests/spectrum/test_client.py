"""The Spectrum client over real HTTP against the simulator: the token header leaves our HTTP
stack with its underscores, and Spectrum's answers are sorted by what they mean. Also the
settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.spectrum.conftest import TOKEN, SpectrumSimulator, purchase_order
from worker.basics.errors import ConfigurationError, HardError, TransientError
from worker.integrations.spectrum.client import (
    TOKEN_HEADER,
    Forbidden,
    SpectrumClient,
    UnknownRecipeSets,
)
from worker.integrations.spectrum.settings import (
    SpectrumSettings,
    check_settings,
    load_config,
    spectrum_settings,
)

TIMEOUT = (2.0, 5.0)


def client(sim: SpectrumSimulator, token: str = TOKEN, url: str | None = None) -> SpectrumClient:
    return SpectrumClient(url or sim.url, SecretStr(token), TIMEOUT)


def notification(po: str, *recipe_sets: str) -> dict[str, object]:
    return {
        "purchaseOrderNumber": po,
        "lineItems": [
            {"recipeSetReadableId": rs, "shipmentTracking": "1Z1,1Z2"} for rs in recipe_sets
        ],
    }


def test_the_token_header_arrives_with_its_underscores(sim: SpectrumSimulator) -> None:
    """The simulator reads the token only from a raw header line named SPECTRUM_API_TOKEN
    (a dashed name, or a server that drops underscore headers, gets a 403)."""
    assert TOKEN_HEADER == "SPECTRUM_API_TOKEN"
    status = client(sim).ship_notification(notification("R805661123", "ABCD1234"))
    assert status.ok and status.purchaseOrderNumber == "R805661123"
    assert status.details == "Updated tracking number for recipeSetReadableId(s): ABCD1234."
    assert sim.requests() == {"received": 1, "accepted": 1}


def test_unknown_recipe_sets_carry_the_ids_and_spectrums_words(sim: SpectrumSimulator) -> None:
    with pytest.raises(UnknownRecipeSets) as caught:
        client(sim).ship_notification(notification("R805661123", "ABCD1234", "NOPE0000", "ZZ"))
    assert caught.value.ids == ["NOPE0000", "ZZ"]
    assert caught.value.status == 409
    assert caught.value.details == "Unable to find recipeSetReadableId(s): NOPE0000, ZZ."


def test_a_404_with_that_body_is_the_same_refusal(sim: SpectrumSimulator) -> None:
    sim.configure(unknown_status=404)
    with pytest.raises(UnknownRecipeSets) as caught:
        client(sim).ship_notification(notification(purchase_order(), "ABCD1234"))
    assert caught.value.status == 404 and caught.value.ids == ["ABCD1234"]


def test_a_404_elsewhere_points_at_the_api_url(sim: SpectrumSimulator) -> None:
    with pytest.raises(HardError) as caught:
        client(sim, url=f"{sim.url}/wrong").ship_notification(
            notification("R805661123", "ABCD1234")
        )
    assert not isinstance(caught.value, UnknownRecipeSets)
    assert "check SPECTRUM_API_URL" in str(caught.value)


def test_a_bad_token_is_forbidden_and_not_echoed(sim: SpectrumSimulator) -> None:
    with pytest.raises(Forbidden) as caught:
        client(sim, token="not-the-token-1234").ship_notification(
            notification("R805661123", "ABCD1234")
        )
    assert caught.value.status == 403
    assert "not-the-token-1234" not in str(caught.value)


def test_a_500_is_transient_with_spectrums_words(sim: SpectrumSimulator) -> None:
    sim.fault("http_500")
    with pytest.raises(TransientError) as caught:
        client(sim).ship_notification(notification("R805661123", "ABCD1234"))
    assert (
        "Ship Notification processing for R805661123 encountered an error." in caught.value.reasons
    )
    assert sim.notifications() == []


def test_settings_require_the_url_and_check_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPECTRUM_API_URL", "SPECTRUM_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert check_settings() == ["SPECTRUM_API_URL"]
    with pytest.raises(HardError, match="SPECTRUM_API_URL is not set"):
        _ = spectrum_settings().base_url
    assert load_config() == {}

    monkeypatch.setenv("SPECTRUM_API_URL", "https://api.spectrumcustomizer.example/")
    monkeypatch.setenv("SPECTRUM_API_TOKEN", "env-token")
    assert check_settings() == []
    assert spectrum_settings().base_url == "https://api.spectrumcustomizer.example"
    assert load_config()["api_token"].get_secret_value() == "env-token"
    assert SpectrumSettings().per_second == 1.5  # 90 a minute, under Spectrum's ~100

    monkeypatch.setenv("SPECTRUM_API_URL", "ftp://nope")
    with pytest.raises(ConfigurationError, match="SPECTRUM_API_URL"):
        check_settings()
    monkeypatch.setenv("SPECTRUM_API_URL", "https://x.example")
    monkeypatch.setenv("SPECTRUM_RATE_PER_MINUTE", "0")
    with pytest.raises(ConfigurationError, match="SPECTRUM_RATE_PER_MINUTE"):
        check_settings()
