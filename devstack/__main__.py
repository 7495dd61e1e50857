"""Run the whole service locally: ``python -m devstack`` (what ``bin/run`` does).

Starts a local Redis (a real redis-server with AOF, bound to 127.0.0.1; the fakeredis TCP server
with a warning where there is none), the provider simulators, then every line of the Procfile
(web, worker, beat, flower) exactly as written, with embedded defaults for every setting the
user did not give. Prints the URLs, stops everything on Ctrl-C, and stops everything if any
piece dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("SHIPHUB_STATE_DIR", ROOT / ".run"))
REDIS_PORT = int(os.environ.get("SHIPHUB_REDIS_PORT", "6390"))
DOTCOM_SIM_PORT = int(os.environ.get("DOTCOM_SIM_PORT", "8101"))
SHIPPING_ORDERS_SIM_PORT = int(os.environ.get("SHIPPING_ORDERS_SIM_PORT", "8102"))
DUOPLANE_SIM_PORT = int(os.environ.get("DUOPLANE_SIM_PORT", "8103"))
SPECTRUM_SIM_PORT = int(os.environ.get("SPECTRUM_SIM_PORT", "8104"))
ECOMDASH_SIM_PORT = int(os.environ.get("ECOMDASH_SIM_PORT", "8105"))
RECEIVER_PORT = os.environ.get("PORT", "8000")

# The embedded defaults: a working service with no account anywhere. Anything set in the
# environment wins.
DEFAULTS = {
    "PORT": "8000",
    "FLOWER_PORT": "5555",
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "DOTCOM_API_URL": f"http://127.0.0.1:{DOTCOM_SIM_PORT}/dcd_api_test/DCDAPIService.svc",
    "DOTCOM_API_KEY": "demo-api-key",
    "DOTCOM_PASSWORD": "demo-password",
    "DOTCOM_SHIPPING_LOOKUP": '[{"Standard": "03"}, {"UPS Ground (USD)": "03"}, '
    '{"UPS Two Day (USD)": "02"}]',
    "DOTCOM_POLL_LAG_SECONDS": "20",
    "DOTCOM_SIM_SHIP_AFTER": "2",
    "DOTCOM_SIM_VISIBLE_AFTER": "10",
    "SHIPPING_ORDERS_API_URL": f"http://127.0.0.1:{SHIPPING_ORDERS_SIM_PORT}",
    "SHIPPING_ORDERS_API_KEY": "demo-so-key",
    "SHIPPING_ORDERS_TENANT_ID": "demo-tenant",
    "SHIPPING_ORDERS_LOCATION_EXTERNAL_ID": "store-1",
    "SHIPPING_ORDERS_WEBHOOK_SECRET": "local-webhook-secret",
    # The simulator moves each order one step every 5 s and signs its webhooks to the receiver.
    "SHIPPING_ORDERS_SIM_STEP_SECONDS": "5",
    "SHIPPING_ORDERS_SIM_WEBHOOK_URL": (
        f"http://127.0.0.1:{RECEIVER_PORT}/webhooks/shipping_orders"
    ),
    "SHIPPING_ORDERS_SIM_WEBHOOK_SECRET": "local-webhook-secret",
    "DUOPLANE_API_URL": f"http://127.0.0.1:{DUOPLANE_SIM_PORT}",
    "DUOPLANE_API_KEY": "demo-dp-key",
    "DUOPLANE_PASSWORD": "demo-dp-password",
    "ECOMDASH_API_URL": f"http://127.0.0.1:{ECOMDASH_SIM_PORT}/api",
    "ECOMDASH_SUBSCRIPTION_KEY": "demo-apim-key",
    "ECOMDASH_ECD_KEY": "demo-ecd-key",
    "ECOMDASH_CARRIER_LOOKUP": '{"UPS": 1, "FedEx": 2, "USPS": 3}',
    "SPECTRUM_API_URL": f"http://127.0.0.1:{SPECTRUM_SIM_PORT}",
    "SPECTRUM_API_TOKEN": "demo-spectrum-token",
    "WORKER_CONCURRENCY": "8",
    "WEB_CONCURRENCY": "1",
}


# The polls of the providers on their simulators (unless POLLS is given): every 60 s.
SIMULATOR_POLLS = {
    "dotcom": "dotcom.tracking=60",
    "shipping_orders": "shipping_orders.tracking=60",
    "duoplane": "duoplane.tracking=60",
}


@dataclass(frozen=True)
class Simulator:
    """A provider's simulator: its process, module, the API URL variable that points at it,
    its port, and the integration it stands in for."""

    name: str
    module: str
    variable: str
    port: int
    integration: str

    def serves(self, env: dict[str, str]) -> bool:
        """Whether the provider's API URL is this simulator's: http on 127.0.0.1 at its port,
        with no user or password (``http://127.0.0.1:8101@elsewhere`` is elsewhere)."""
        try:
            where = urlsplit(env[self.variable])
            return (
                where.scheme == "http"
                and where.hostname == "127.0.0.1"
                and where.port == self.port
                and where.username is None
                and where.password is None
            )
        except ValueError:
            return False


SIMULATORS = (
    Simulator("dotcom-simulator", "simulators.dotcom", "DOTCOM_API_URL", DOTCOM_SIM_PORT, "dotcom"),
    Simulator(
        "shipping-orders-simulator",
        "simulators.shipping_orders",
        "SHIPPING_ORDERS_API_URL",
        SHIPPING_ORDERS_SIM_PORT,
        "shipping_orders",
    ),
    Simulator(
        "ecomdash-simulator",
        "simulators.ecomdash",
        "ECOMDASH_API_URL",
        ECOMDASH_SIM_PORT,
        "ecomdash",
    ),
    Simulator(
        "duoplane-simulator",
        "simulators.duoplane",
        "DUOPLANE_API_URL",
        DUOPLANE_SIM_PORT,
        "duoplane",
    ),
    Simulator(
        "spectrum-simulator",
        "simulators.spectrum",
        "SPECTRUM_API_URL",
        SPECTRUM_SIM_PORT,
        "spectrum",
    ),
)


def simulated(env: dict[str, str]) -> set[str]:
    """The integrations whose API URL is their simulator's: the only ones the demo and the
    default polls talk to."""
    return {sim.integration for sim in SIMULATORS if sim.serves(env)}


def shown_url(url: str) -> str:
    """A URL as it may be printed: without user, password and query (any may hold a secret)."""
    try:
        where = urlsplit(url)
        host = f"{where.hostname}:{where.port}" if where.port else where.hostname or ""
    except ValueError:
        return "(not a URL)"
    return urlunsplit((where.scheme, host, where.path, "", ""))


def say(text: str) -> None:
    print(f"[run] {text}", flush=True)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"[run] {what} did not come up on port {port}")
        time.sleep(0.1)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        STATE.mkdir(exist_ok=True)

    def start(self, name: str, argv: list[str] | str) -> None:
        log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        shell = isinstance(argv, str)
        self.children[name] = subprocess.Popen(
            argv,
            shell=shell,
            executable="/bin/bash" if shell else None,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def redis(self) -> None:
        if "REDIS_URL" in os.environ:
            say("using REDIS_URL from the environment; not starting a local Redis")
            return
        if port_open(REDIS_PORT):
            say(f"a Redis already listens on 127.0.0.1:{REDIS_PORT}; using it")
            return
        # SHIPHUB_REDIS=fake forces the fallback (to try it where redis-server exists).
        binary = shutil.which("redis-server") if os.environ.get("SHIPHUB_REDIS") != "fake" else None
        if binary:
            data = STATE / "redis"
            data.mkdir(parents=True, exist_ok=True)
            self.start(
                "redis",
                [
                    binary,
                    "--port",
                    str(REDIS_PORT),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(data),
                    "--appendonly",
                    "yes",
                    "--maxmemory-policy",
                    "noeviction",
                    "--hash-max-listpack-value",  # handler memory: docs/deployment.md
                    "256",
                ],
            )
        else:
            say(
                "WARNING: no redis-server here; using the fakeredis TCP server. Nothing survives "
                "a restart: for a demo only."
            )
            self.start(
                "redis", [sys.executable, "-m", "devstack.fake_redis", "--port", str(REDIS_PORT)]
            )
        wait_port(REDIS_PORT, "Redis")

    def simulators(self) -> None:
        """Each provider's simulator, unless its API URL was pointed elsewhere."""
        for sim in SIMULATORS:
            if sim.serves(self.env):
                self.start(sim.name, [sys.executable, "-m", sim.module, "--port", str(sim.port)])
                wait_port(sim.port, f"the {sim.name}")

    def services(self) -> None:
        for name, command in procfile().items():
            self.start(name, command.strip())
        wait_port(int(self.env["PORT"]), "the receiver")
        wait_port(int(self.env["FLOWER_PORT"]), "Flower", timeout=60)

    def watch(self) -> int:
        while True:
            for name, child in self.children.items():
                if child.poll() is not None:
                    say(f"{name} exited with {child.returncode}; see {STATE}/{name}.log")
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def local_secret_key() -> str:
    """The key that seals message parameters in this local Redis: made once, kept beside its
    data (readable by the owner only), so messages queued before a restart can still be read."""
    from cryptography.fernet import Fernet

    path = STATE / "secret.key"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def environment() -> dict[str, str]:
    env = {**DEFAULTS, **os.environ}
    # Polled: the providers on their simulators, never an account of yours unless POLLS says.
    if not os.environ.get("POLLS"):
        ours = simulated(env)
        env["POLLS"] = ",".join(p for i, p in SIMULATOR_POLLS.items() if i in ours) or "off"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    if not env.get("SHIPHUB_SECRET_KEY"):
        env["SHIPHUB_SECRET_KEY"] = local_secret_key()
    if not env.get("ENDPOINT_KEY"):
        env["SHIPHUB_INSECURE_DEV"] = "1"
        # No token: nothing but this machine may reach the receiver.
        env.setdefault("WEB_ADDRESS", "127.0.0.1")
        say(
            "WARNING: ENDPOINT_KEY is not set: the receiver accepts requests without a token "
            "(SHIPHUB_INSECURE_DEV=1). Set ENDPOINT_KEY for anything but local development."
        )
    return env


def taken_ports(env: dict[str, str]) -> list[str]:
    """The ports this run would listen on that something else already holds (Redis aside: one
    already listening on its port is used)."""
    wanted = {"the receiver (PORT)": env["PORT"], "Flower (FLOWER_PORT)": env["FLOWER_PORT"]}
    for sim in SIMULATORS:
        if sim.serves(env):
            wanted[f"the {sim.name}"] = str(sim.port)
    return [
        f"port {port} ({what}) is in use" for what, port in wanted.items() if port_open(int(port))
    ]


def stop_on(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> int:
    env = environment()
    if taken := taken_ports(env):
        say("cannot start: " + "; ".join(taken) + " (another bin/run? stop it, or set the port)")
        return 1
    stack = Stack(env)
    # SIGINT too, explicitly: started in the background (`bin/run &`) it arrives ignored.
    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGINT, stop_on)
    try:
        stack.redis()
        stack.simulators()
        stack.services()
        base = f"http://127.0.0.1:{env['PORT']}"
        say(f"receiver   {base}/   (integrations: {base}/dotcom/endpoint.json)")
        say(f"flower     http://127.0.0.1:{env['FLOWER_PORT']}/")
        say(f"metrics    {base}/metrics      health: {base}/healthz")
        ours = simulated(env)
        for sim in SIMULATORS:
            label = sim.integration.replace("_", " ")
            if sim.integration in ours:
                say(f"{label} sim {env[sim.variable]}")
                if sim.integration == "shipping_orders":
                    say(f"  its webhooks to   {base}/webhooks/shipping_orders")
            else:
                say(
                    f"{label}: {sim.variable} is not bin/run's simulator "
                    f"({shown_url(env[sim.variable])}): its simulator is not started, the demo "
                    f"skips {sim.integration}, and it is polled only if POLLS says so"
                )
        say(f"polls      {env['POLLS']}")
        say(f"logs       {STATE}/*.log      Ctrl-C stops everything")
        if env.get("SHIPHUB_DEMO", "1") != "0":
            from devstack.demo import run_demo

            run_demo(base, env, simulated=ours)
        return stack.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping")
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
