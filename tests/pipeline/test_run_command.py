"""The run command (``python -m devstack``, what ``bin/run`` execs) with no configuration: it
starts Redis, the simulators and every Procfile line as written, and accepts a message."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devstack.demo import SIMULATED_PROVIDERS, run_demo
from tests.support.servers import RecordingServer
from tests.support.stack import ROOT, free_port, wait_until
from tests.support.walkthrough import walked_blocks

FIXTURES = ROOT / "tests" / "fixtures" / "dotcom"


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a TCP port is listening on (``/proc/net/tcp``)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def minimal_env(tmp_path: Path, ports: dict[str, str]) -> dict[str, str]:
    passthrough = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "SYSTEMROOT")
    }
    return {**passthrough, **ports, "SHIPHUB_STATE_DIR": str(tmp_path), "SHIPHUB_DEMO": "0"}


FUZZ_SEED = 20261123


def readme_walkthrough(ports: dict[str, str], state_dir: Path) -> str:
    """Every ``sh`` block of the manual (the README's, then each page's of ``docs/``, in the
    order ``WALKED_PAGES`` declares), as one script that stops at the first command that fails,
    on this run's ports and state directory instead of the defaults."""
    script = "\n".join(
        f"echo '[walk] {page} block {n}'\n{block}" for page, n, block in walked_blocks()
    )
    for default, name in (
        ("8000", "PORT"),
        ("6390", "SHIPHUB_REDIS_PORT"),
        ("5555", "FLOWER_PORT"),
        ("8101", "DOTCOM_SIM_PORT"),
        ("8102", "SHIPPING_ORDERS_SIM_PORT"),
        ("8103", "DUOPLANE_SIM_PORT"),
        ("8104", "SPECTRUM_SIM_PORT"),
        ("8105", "ECOMDASH_SIM_PORT"),
    ):
        for host in ("localhost", "127.0.0.1"):
            script = script.replace(f"{host}:{default}", f"{host}:{ports[name]}")
    # The manual's fuzzing run draws new cases each time, for whoever runs it; here the same
    # ones, so that CI is reproducible (tests/fuzz and the property tests do the searching).
    script = script.replace(" run http://", f" run --seed {FUZZ_SEED} http://")
    assert ("schemathesis run" in script) == ("--seed" in script), "the fuzzing run moved"
    return "set -e\n" + script.replace(" .run/", f" {state_dir}/")


def walk_the_readme(ports: dict[str, str], state_dir: Path, env: dict[str, str]) -> str:
    """Run the manual's commands against a running ``bin/run``; what they printed."""
    walked = subprocess.run(
        ["bash", "-c", readme_walkthrough(ports, state_dir)],
        cwd=ROOT,
        env={**env, "SHIPHUB_URL": f"http://127.0.0.1:{ports['PORT']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = walked.stdout + walked.stderr
    assert walked.returncode == 0, said
    assert "Traceback" not in said and "Internal error" not in said, said
    # The first curl: the seed's sample, sent to Dotcom (not "already exists").
    assert "Successfully Sent Shipment to Dotcom Distribution" in said, said
    return said


RUN_PORTS = (
    "PORT",
    "FLOWER_PORT",
    "SHIPHUB_REDIS_PORT",
    "DOTCOM_SIM_PORT",
    "SHIPPING_ORDERS_SIM_PORT",
    "DUOPLANE_SIM_PORT",
    "SPECTRUM_SIM_PORT",
    "ECOMDASH_SIM_PORT",
)


def test_run_command_started_in_the_background_stops_on_sigint(tmp_path: Path) -> None:
    """A background job inherits SIGINT ignored; bin/run must still stop on it."""
    ports = {name: str(free_port()) for name in RUN_PORTS}
    run = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=minimal_env(tmp_path, ports),
        stdout=(tmp_path / "run.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `bin/run &`
    )
    base = f"http://127.0.0.1:{ports['PORT']}"
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, timeout=90)
        os.kill(run.pid, signal.SIGINT)
        run.wait(60)
        assert run.returncode == 0
        wait_until(lambda: not listening_addresses(int(ports["PORT"])), timeout=20)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)


def test_a_second_run_names_the_port_that_is_taken_before_starting_anything(
    tmp_path: Path,
) -> None:
    ports = {name: str(free_port()) for name in RUN_PORTS}
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(ports["DOTCOM_SIM_PORT"])))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=minimal_env(tmp_path, ports),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert f"port {ports['DOTCOM_SIM_PORT']}" in said and "in use" in said, said
    assert "[run] receiver" not in said  # no URL printed as if it had started


@pytest.mark.parametrize("redis", ["redis-server", "fake"])
def test_run_command_comes_up_with_no_configuration_and_accepts_a_message(
    tmp_path: Path, redis: str
) -> None:
    ports = {
        name: str(free_port())
        for name in (
            "PORT",
            "FLOWER_PORT",
            "SHIPHUB_REDIS_PORT",
            "DOTCOM_SIM_PORT",
            "SHIPPING_ORDERS_SIM_PORT",
            "DUOPLANE_SIM_PORT",
            "SPECTRUM_SIM_PORT",
            "ECOMDASH_SIM_PORT",
        )
    }
    passthrough = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "SYSTEMROOT")
    }
    env = {
        **passthrough,
        **ports,
        "SHIPHUB_STATE_DIR": str(tmp_path),
        "SHIPHUB_REDIS": redis,
        # The demo runs, only faster: the simulator ships at once and shows it at once.
        "DOTCOM_SIM_SHIP_AFTER": "0",
        "DOTCOM_SIM_VISIBLE_AFTER": "0",
        "DOTCOM_POLL_LAG_SECONDS": "1",
    }
    printed = tmp_path / "run.out"
    run = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=printed.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{ports['PORT']}"
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, timeout=90)
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{ports['FLOWER_PORT']}/", timeout=2).ok,
            timeout=60,
        )
        wait_until(lambda: "POST /spectrum/send_tracking" in printed.read_text(), 90)
        wait_until(
            lambda: printed.read_text().split("POST /spectrum/send_tracking")[1].count("\n") >= 3,
            30,
        )
        demo = printed.read_text()
        # Dotcom's shipment:confirm went to every sales channel: each simulator holds exactly
        # one tracking update.
        for channel in ("ecomdash", "duoplane", "spectrum"):
            assert f"POST /{channel}/send_tracking" in demo
        sim = "http://127.0.0.1:{}/_sim/{}".format
        held = {
            "ecomdash": requests.get(sim(ports["ECOMDASH_SIM_PORT"], "tracking"), timeout=5).json(),
            "duoplane": requests.get(
                sim(ports["DUOPLANE_SIM_PORT"], "shipments"), timeout=5
            ).json(),
            "spectrum": requests.get(
                sim(ports["SPECTRUM_SIM_PORT"], "notifications"), timeout=5
            ).json(),
        }
        for channel, listing in held.items():
            entries = (
                next(v for v in listing.values() if isinstance(v, list))
                if isinstance(listing, dict)
                else listing
            )
            assert len(entries) == 1, (channel, listing)
        # The Shipping Order API demo: placed with a provider, moved along by the simulator's
        # clock, its webhooks verified and taken (get_shipment answers where it is now). Its
        # dispatch reaches the hub in the send's answer or, when the simulator's webhook is
        # handled first, in a push the demo does not print: either is right.
        assert re.search(r"shipment:update: S\d{11} status \w+ \([A-Z_]+\)", demo), demo
        assert "POST /shipping_orders/get_shipment" in demo
        after = demo.split("get_shipment")[-1]
        assert "status assigned" in after or "status picked_up" in after, demo

        # Every command the manual shows, in order, right after the demo.
        said = walk_the_readme(ports, tmp_path, env)
        # jq follows that message through the receiver's and the worker's logs.
        assert "intake queued" in said and '"attempt":1' in said, said
        # Insecure development mode (no ENDPOINT_KEY): the receiver listens on loopback only.
        assert listening_addresses(int(ports["PORT"])) == {"127.0.0.1"}
        for name in (
            "web",
            "worker",
            "beat",
            "flower",
            "redis",
            "dotcom-simulator",
            "shipping-orders-simulator",
            "ecomdash-simulator",
            "duoplane-simulator",
            "spectrum-simulator",
        ):
            assert (tmp_path / f"{name}.log").exists(), name
        if redis == "redis-server":
            assert list((tmp_path / "redis").glob("appendonly*")), "Redis runs without AOF"
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.wait(60)
    output = printed.read_text()
    assert "shipment:confirm" in output  # the demo's poll found its shipment
    assert "WARNING: ENDPOINT_KEY is not set" in output
    assert ("using the fakeredis TCP server" in output) == (redis == "fake")
    assert "[run] receiver" in output
    assert run.returncode == 0, output


def test_a_second_run_on_the_same_records_runs_its_demo_and_the_readme_again(
    tmp_path: Path,
) -> None:
    """Records persist across runs (AOF): the demo and every README command must still work
    on the second run, answered from the records where the ids are the same."""
    ports = {name: str(free_port()) for name in RUN_PORTS}
    env = {
        **minimal_env(tmp_path, ports),
        "SHIPHUB_DEMO": "1",
        "SHIPHUB_REDIS": "redis-server",
        "DOTCOM_SIM_SHIP_AFTER": "0",
        "DOTCOM_SIM_VISIBLE_AFTER": "0",
        "DOTCOM_POLL_LAG_SECONDS": "1",
    }
    for turn in (1, 2):
        printed = tmp_path / f"run-{turn}.out"
        run = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=env,
            stdout=printed.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda out=printed: "[demo] done." in out.read_text(), timeout=240)
            if turn == 2:
                walk_the_readme(ports, tmp_path, env)
        finally:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(60)
        output = printed.read_text()
        assert run.returncode == 0, output
        assert "Traceback" not in output, output


def test_a_provider_pointed_at_a_real_account_is_never_called_by_the_demo_or_polled(
    tmp_path: Path,
) -> None:
    """``DOTCOM_API_URL`` and credentials of a real account: the demo sends no stranger's order
    there and the run does not poll it; it says why, and does not say the README's commands
    work. The other providers, on their simulators, go through the demo as usual."""
    real = RecordingServer()
    ports = {name: str(free_port()) for name in RUN_PORTS}
    env = {
        **minimal_env(tmp_path, ports),
        "SHIPHUB_DEMO": "1",
        "DOTCOM_API_URL": f"{real.url}/dcd_api/DCDAPIService.svc",
        "DOTCOM_API_KEY": "a-real-account-key",
        "DOTCOM_PASSWORD": "a-real-account-password",
    }
    printed = tmp_path / "run.out"
    run = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=printed.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: "[demo] ended" in printed.read_text(), timeout=240)
        beat = (tmp_path / "beat.log").read_text()
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.wait(60)
        real.close()
    output = printed.read_text()
    assert real.seen() == [], real.seen()
    assert "dotcom" in output and "DOTCOM_API_URL is not bin/run's simulator" in output, output
    assert "[demo] skipped dotcom" in output, output
    assert "the README's commands work now" not in output, output
    assert "[demo] done." not in output, output
    # The Shipping Order API, on its simulator, went through the demo: its get answered the
    # shipment's status. Which one depends on the simulator's clock (a step every 5 s) and on
    # the webhooks that told the earlier ones first, so any status will do.
    assert "shipping_orders failed" not in output and "skipped shipping_orders" not in output
    assert re.search(r"shipment:update: S\d{11} status \w+ \([A-Z_]+\)", output), output
    # Polled: the simulators' providers, not the real account.
    assert "poll shipping_orders.tracking" in beat and "poll dotcom.tracking" not in beat, beat
    assert "a-real-account" not in output
    assert run.returncode == 0, output


def test_the_demo_says_it_succeeded_only_when_it_did(capsys: pytest.CaptureFixture[str]) -> None:
    """A receiver that fails every message: the demo ends saying what failed, never that the
    README's commands work now (and does not stop the run with a traceback)."""
    failing = RecordingServer(
        500,
        {"notifications": [{"level": "error", "subject": "x", "description": "it broke"}]},
    )
    try:
        succeeded = run_demo(failing.url, {}, simulated=set(SIMULATED_PROVIDERS))
    finally:
        failing.close()
    said = capsys.readouterr().out
    assert succeeded is False
    assert "the README's commands work now" not in said and "[demo] done." not in said, said
    assert "[demo] ended" in said and "failed" in said, said
    assert failing.seen(), "the demo did not run"
