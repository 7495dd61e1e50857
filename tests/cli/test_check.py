"""``shiphub check``: this host's configuration, Redis and the receiver, each finding ok, note or
problem, exit 0 only when nothing is a problem; secrets only ever "set" or "not set"."""

from __future__ import annotations

from typing import Any

from tests.cli.conftest import Run, cli_env, run_shiphub
from tests.dotcom.conftest import DotcomSimulator
from tests.support.servers import HubServer
from tests.support.stack import ROOT, Stack, free_port

# Values that must never be printed, whatever check says about them.
BROKEN_SECRET_KEY = "not-a-fernet-key-but-still-a-secret"
PUSH_PASSWORD = "push-url-password"
BROKEN_PUSH_SECRET = "whsec_not-base64-but-still-a-secret"


def check_env(stack: Stack, sim: DotcomSimulator, hub: HubServer, **changes: str | None) -> Any:
    """The environment the stack's own processes run with (the test integration importable),
    changed by ``changes`` (None removes a variable)."""
    env: dict[str, str | None] = {
        **cli_env(sim, hub),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": stack.redis.url,
        "ENDPOINT_KEY": Stack.ENDPOINT_KEY,
        "SHIPHUB_SECRET_KEY": Stack.SECRET_KEY,
        "HUB_PUSH_SECRET": Stack.PUSH_SECRET,
        "SHIPHUB_INTEGRATION_MODULES": "tests.support.acme",
        "POLLS": "off",
        "SHIPHUB_URL": stack.url,
    }
    env.update(changes)
    return env


def findings(run: Run) -> dict[str, tuple[str, str]]:
    """Each human output line as subject -> (level, detail)."""
    found = {}
    for line in run.out.splitlines()[:-1]:
        level, subject, detail = line.split(maxsplit=2)
        found[subject] = (level, detail)
    return found


def test_the_stacks_own_configuration_is_all_good(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    run = run_shiphub("check", env=check_env(cli_stack, simulator_process, hub))

    assert run.code == 0, run
    assert run.out.splitlines()[-1] == "all good"
    found = findings(run)
    assert found["ENDPOINT_KEY"] == ("ok", "set")
    assert found["SHIPHUB_SECRET_KEY"] == ("ok", "set")
    assert found["HUB_PUSH_URL"] == (
        "ok",
        f"{hub.url}/push (HUB_ACCESS_TOKEN set), store 'test-store'",
    )
    assert found["HUB_PUSH_SECRET"] == (
        "ok",
        "set: pushes carry a Standard Webhooks webhook-signature (1 secret)",
    )
    assert found["dotcom"] == (
        "ok",
        "configured; from the environment: api_key set, password set, shipping_lookup set",
    )
    assert found["shipping_orders"][0] == "note"
    assert "SHIPPING_ORDERS_API_URL not set" in found["shipping_orders"][1]
    assert found["POLLS"] == ("ok", "'off': nothing is polled")
    assert found["REDIS_URL"] == ("ok", f"{cli_stack.redis.url} answers")
    assert found["receiver"] == ("ok", f"{cli_stack.url}/healthz: redis ok, broker ok")
    assert found["token"] == ("ok", f"{cli_stack.url} takes it")


def test_a_receiver_out_of_reach_is_only_a_note_and_polls_are_listed(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    env = check_env(
        cli_stack,
        simulator_process,
        hub,
        SHIPHUB_URL=f"http://127.0.0.1:{free_port()}",
        POLLS="dotcom.tracking=600",
        HUB_PUSH_URL=f"http://hub:{PUSH_PASSWORD}@127.0.0.1:9/push?token={PUSH_PASSWORD}",
        HUB_PUSH_SECRET=None,
    )

    run = run_shiphub("check", "--json", env=env)

    assert run.code == 0, run
    report = run.json()
    assert report["ok"] is True
    by_subject = {c["subject"]: c for c in report["checks"]}
    assert by_subject["receiver"]["level"] == "note"
    assert "not reachable" in by_subject["receiver"]["detail"]
    assert by_subject["POLLS"]["detail"] == "'dotcom.tracking=600': dotcom.tracking every 600 s"
    assert "token" not in by_subject
    assert by_subject["HUB_PUSH_URL"]["detail"].startswith("http://127.0.0.1:9/push (")
    assert by_subject["HUB_PUSH_SECRET"] == {
        "subject": "HUB_PUSH_SECRET",
        "level": "note",
        "detail": "not set: pushes carry webhook-id and webhook-timestamp but no "
        "webhook-signature (hubs verify X-Hub-Signature)",
    }
    assert PUSH_PASSWORD not in run.out


def test_a_broken_configuration_names_every_problem_and_exits_1(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    env = check_env(
        cli_stack,
        simulator_process,
        hub,
        DOTCOM_API_URL="not-a-url",
        POLLS="dotcom.nothing",
        REDIS_URL=f"redis://:{PUSH_PASSWORD}@127.0.0.1:{free_port()}/0",
        ENDPOINT_KEY="a-wrong-endpoint-key",
    )

    run = run_shiphub("check", env=env)

    assert run.code == 1, run
    assert run.out.splitlines()[-1] == "4 problem(s)"
    found = findings(run)
    assert found["dotcom"] == (
        "problem",
        "Dotcom Distribution configuration is invalid: DOTCOM_API_URL: Value error, must be an "
        "http(s) URL; every process refuses to start",
    )
    assert found["POLLS"] == (
        "problem",
        "POLLS: unknown service 'dotcom.nothing'; beat refuses to start",
    )
    assert found["REDIS_URL"][0] == "problem"
    assert "does not answer (ConnectionError)" in found["REDIS_URL"][1]
    assert found["token"] == (
        "problem",
        f"{cli_stack.url} refuses it: check ENDPOINT_KEY or --token-file",
    )
    assert PUSH_PASSWORD not in run.out
    assert "a-wrong-endpoint-key" not in run.out + run.err


def test_invalid_settings_are_named_without_their_values(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    env = check_env(
        cli_stack,
        simulator_process,
        hub,
        SHIPHUB_SECRET_KEY=BROKEN_SECRET_KEY,
        TASK_MAX_ATTEMPTS="0",
        HUB_PUSH_SECRET=BROKEN_PUSH_SECRET,
    )

    run = run_shiphub("check", env=env)

    assert run.code == 1, run
    found = findings(run)
    assert found["SHIPHUB_SECRET_KEY"][0] == "problem"
    assert found["SHIPHUB_SECRET_KEY"][1].startswith("SHIPHUB_SECRET_KEY must be Fernet keys")
    assert found["TASK_MAX_ATTEMPTS"] == ("problem", "Input should be greater than or equal to 1")
    assert found["HUB_PUSH_SECRET"] == (
        "problem",
        "HUB_PUSH_SECRET: the secret is not 'whsec_' followed by valid base64 (A-Z a-z 0-9 + /, "
        "'=' padding)",
    )
    assert BROKEN_SECRET_KEY not in run.out + run.err
    assert BROKEN_PUSH_SECRET.removeprefix("whsec_") not in run.out + run.err


def test_without_endpoint_key_nothing_starts_unless_insecure_development_is_explicit(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    secure = check_env(
        cli_stack, simulator_process, hub, ENDPOINT_KEY=None, SHIPHUB_SECRET_KEY=None
    )

    refused = run_shiphub("check", env=secure)
    insecure = run_shiphub("check", env={**secure, "SHIPHUB_INSECURE_DEV": "1"})

    assert refused.code == 1, refused
    assert findings(refused)["ENDPOINT_KEY"] == (
        "problem",
        "not set: the receiver refuses to start without it",
    )
    assert findings(refused)["SHIPHUB_SECRET_KEY"][0] == "problem"
    # The stack's receiver wants a token: without one, this host is refused too.
    assert findings(refused)["token"] == (
        "problem",
        f"{cli_stack.url} refuses requests without one: check ENDPOINT_KEY or --token-file",
    )
    found = findings(insecure)
    assert found["ENDPOINT_KEY"][0] == found["SHIPHUB_SECRET_KEY"][0] == "note"
    assert "SHIPHUB_INSECURE_DEV" in found["ENDPOINT_KEY"][1]


def test_settings_that_look_valid_are_named_a_missing_webhook_secret_too(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    """A JSON lookup with a bracket missing, a configured integration that takes webhooks with
    no secret to verify them: each is a problem, named; an unfit secret is named, not said."""
    secret = "webhook-secret-that-must-not-show"
    broken = check_env(
        cli_stack,
        simulator_process,
        hub,
        DOTCOM_SHIPPING_LOOKUP='[{"Standard": "03"}',
        SHIPPING_ORDERS_API_URL=f"http://127.0.0.1:{free_port()}",
        SHIPPING_ORDERS_WEBHOOK_SECRET=None,
    )
    unfit = {
        **broken,
        "DOTCOM_SHIPPING_LOOKUP": None,
        "ECOMDASH_CARRIER_LOOKUP": '{"UPS": 1',
        "SHIPPING_ORDERS_WEBHOOK_SECRET": f"{secret} ",
    }

    first = run_shiphub("check", env=broken)
    second = run_shiphub("check", env=unfit)

    assert first.code == 1, first
    found = findings(first)
    assert found["dotcom"][0] == "problem"
    assert "DOTCOM_SHIPPING_LOOKUP: shipping_lookup is not valid JSON" in found["dotcom"][1]
    assert found["webhooks/shipping_orders"] == (
        "problem",
        "neither SHIPPING_ORDERS_WEBHOOK_SECRET nor SHIPPING_ORDERS_WEBHOOK_SECRETS is set: "
        "events cannot be verified, so none is taken (every event at /webhooks/shipping_orders "
        "is refused 401)",
    )
    assert second.code == 1, second
    found = findings(second)
    assert found["ecomdash"][0] == "problem"
    assert "ECOMDASH_CARRIER_LOOKUP: carrier_lookup is not valid JSON" in found["ecomdash"][1]
    assert found["shipping_orders"][0] == "problem"
    assert (
        "SHIPPING_ORDERS_WEBHOOK_SECRET: Value error, has leading or trailing whitespace"
        in (found["shipping_orders"][1])
    )
    assert secret not in second.out + second.err


def test_a_webhook_secret_is_said_set_and_an_unconfigured_integrations_missing_one_is_a_note(
    cli_stack: Stack, simulator_process: DotcomSimulator, hub: HubServer
) -> None:
    configured = check_env(
        cli_stack,
        simulator_process,
        hub,
        SHIPPING_ORDERS_API_URL=f"http://127.0.0.1:{free_port()}",
        SHIPPING_ORDERS_WEBHOOK_SECRET="webhook-secret-0123456789",
    )
    unconfigured = {
        **configured,
        "SHIPPING_ORDERS_API_URL": None,
        "SHIPPING_ORDERS_WEBHOOK_SECRET": None,
    }

    said_set = findings(run_shiphub("check", env=configured))
    said_unset = findings(run_shiphub("check", env=unconfigured))

    assert said_set["webhooks/shipping_orders"] == (
        "ok",
        f"events are verified for store(s) {configured.get('HUB_STORE', 'default')}",
    )
    assert said_unset["webhooks/shipping_orders"][0] == "note"
    assert "neither SHIPPING_ORDERS_WEBHOOK_SECRET nor" in said_unset["webhooks/shipping_orders"][1]
