"""docs/configuration.md is generated from the settings models: it lists every variable the
processes read, with the default and the description the code gives it, and cannot drift."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shiphub_cli import configuration_docs
from shiphub_cli.configuration_docs import COMMAND, PAGE, render, rewritten
from worker.basics.settings import Settings
from worker.integrations.dotcom.settings import DotcomSettings
from worker.integrations.kit import ProviderSettings
from worker.integrations.registry import BUILTIN_MODULES


def test_the_configuration_page_is_what_the_settings_models_say() -> None:
    page = PAGE.read_text()
    assert rewritten(page) == page, f"docs/configuration.md is not up to date: run {COMMAND}"


def test_every_variable_of_every_settings_model_is_on_the_page() -> None:
    page = PAGE.read_text()
    providers = [
        cls
        for cls in _subclasses(ProviderSettings)
        if cls.__module__.startswith(tuple(f"{module}." for module in BUILTIN_MODULES))
    ]
    assert len(providers) == len(BUILTIN_MODULES)
    for cls in [Settings, *providers]:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for name in cls.model_fields:
            assert f"| `{prefix}{name.upper()}` |" in page, (cls.__name__, name)


def test_a_row_is_the_variable_its_default_and_its_description() -> None:
    generated = render()
    assert (
        "| `HUB_PUSH_RETRY_FOR_SECONDS` | 86400 (24 h) | how long failed pushes of one answer are "
        "retried before the delivery is dead (listed, replayable) |"
    ) in generated
    assert "| `DOTCOM_TIMEZONE` | `America/New_York` |" in generated
    assert "| `ENDPOINT_KEY` | — |" in generated and "| `SHIPHUB_INSECURE_DEV` | off |" in generated
    # A default a provider gives a shared field keeps the shared field's meaning.
    assert DotcomSettings.model_fields["read_timeout_seconds"].description is None
    assert "| `DOTCOM_READ_TIMEOUT_SECONDS` | 60 | read timeout of one request |" in generated


def test_a_setting_without_a_description_cannot_reach_the_page() -> None:
    class Undescribed(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="UNDESCRIBED_")
        described: int = Field(1, description="has one")
        bare: int = 2

    with pytest.raises(ValueError, match=r"Undescribed\.bare has no description="):
        configuration_docs._table("Undescribed", "", Undescribed)


def test_the_check_command_says_how_to_regenerate_a_stale_page(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(
        PAGE.read_text().replace("| `LEASE_SECONDS` | 30 |", "| `LEASE_SECONDS` | 31 |")
    )
    monkeypatch.setattr(configuration_docs, "PAGE", stale)

    assert configuration_docs.main(["--check"]) == 1
    assert f"run {COMMAND}" in capsys.readouterr().err

    assert configuration_docs.main([]) == 0
    assert stale.read_text() == PAGE.read_text()
    assert configuration_docs.main(["--check"]) == 0


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found
