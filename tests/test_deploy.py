"""The deployment files of ``deploy/`` (docs/deployment.md) stay true to the service: the systemd
units run exactly the Procfile's commands, each checked before it starts and restarted when it
stops; the env file names every setting the settings models define, at its default, and nothing
else; the proxy's and Redis's figures are the service's.

**The rule for a unit's ExecStart** (``systemd_command``): the Procfile's line, word for word
(both split as a shell splits them), except that

- the program is the one installed in the venv: ``gunicorn`` is ``/opt/shiphub/.venv/bin/gunicorn``
  (systemd runs no ``PATH`` lookup of ours);
- a shell default ``${NAME:-default}`` is written ``${NAME}``, as systemd spells a variable that
  stays one word (systemd has no defaults: ``deploy/shiphub.env`` sets ``NAME`` to that default,
  or to one of ``DEPLOYMENT_CHOICES``);
- the worker template adds ``WORKER_EXTRA`` after it: the queues of its group and a node name of
  its own.

Nothing else differs: a word added, dropped, reordered or changed on either side fails.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from tests.support.deploy_files import (
    DEPLOY,
    ENV_FILE,
    NGINX,
    SHELL_DEFAULT,
    SYSTEMD_VARIABLE,
    UNITS,
    VENV_BIN,
    env_file,
    exec_start,
    group_files,
    one,
    procfile,
    systemd_command,
    unit,
    unit_files,
)
from tests.support.stack import ROOT
from worker.basics.secret_settings import is_secret_name
from worker.integrations.registry import BUILTIN_MODULES, HUB_QUEUE

CHECK = f"{VENV_BIN}shiphub check"
# Each unit and the Procfile line it runs.
PROCESSES = {
    "shiphub-web.service": "web",
    "shiphub-worker@.service": "worker",
    "shiphub-beat.service": "beat",
    "shiphub-flower.service": "flower",
}
WORKER_EXTRA = ["--queues", "${WORKER_QUEUES}", "--hostname", "%i@%H"]
# Set per queue group (deploy/worker-<group>.env), not in the shared env file.
GROUP_VARIABLES = {"WORKER_QUEUES"}
# Where the env file departs from the Procfile's default, on purpose: the receiver listens on
# loopback, behind the proxy on the same host.
DEPLOYMENT_CHOICES = {"WEB_ADDRESS": "127.0.0.1"}
# After its deadline an attempt takes up to this long to write its outcome (docs/operations.md).
OUTCOME_WRITE_SECONDS = 5


# --------------------------------------------------------------------------------------------
# The units run the Procfile


def test_every_procfile_process_has_a_unit_and_every_unit_a_procfile_line() -> None:
    assert sorted(PROCESSES.values()) == sorted(procfile())
    assert sorted(p.name for p in unit_files()) == sorted(PROCESSES)


@pytest.mark.parametrize("name", PROCESSES)
def test_a_unit_runs_exactly_its_procfile_line(name: str) -> None:
    expected = systemd_command(procfile()[PROCESSES[name]])
    if name == "shiphub-worker@.service":
        expected += WORKER_EXTRA
    assert exec_start(UNITS / name) == expected


def test_the_rule_turns_shell_defaults_into_systemd_variables_and_nothing_else() -> None:
    line = "gunicorn --bind ${WEB_ADDRESS:-0.0.0.0}:${PORT:-8000} --workers 2 app"
    assert systemd_command(line) == [
        "/opt/shiphub/.venv/bin/gunicorn",
        "--bind",
        "${WEB_ADDRESS}:${PORT}",
        "--workers",
        "2",
        "app",
    ]
    # A word the unit changed, added or dropped is not the Procfile's line any more.
    assert systemd_command(line) != systemd_command(line.replace("--workers 2", "--workers 3"))
    assert systemd_command(line) != systemd_command(line + " --preload")


@pytest.mark.parametrize("name", PROCESSES)
def test_every_variable_a_unit_uses_is_set_to_the_procfiles_default(name: str) -> None:
    """systemd has no ``:-default``: a variable left unset would be an empty word."""
    env = env_file(ENV_FILE)
    defaults = dict(SHELL_DEFAULT.findall(procfile()[PROCESSES[name]]))
    used = set(SYSTEMD_VARIABLE.findall(" ".join(exec_start(UNITS / name))))
    for variable in used - GROUP_VARIABLES:
        assert env.get(variable), f"{name} uses ${{{variable}}}: set it in {ENV_FILE.name}"
        assert env[variable] == DEPLOYMENT_CHOICES.get(variable, defaults[variable]), variable
    if "WORKER_QUEUES" in used:
        for group, path in group_files().items():
            assert env_file(path).get("WORKER_QUEUES"), f"group {group}: WORKER_QUEUES"


@pytest.mark.parametrize("path", unit_files(), ids=lambda p: p.name)
def test_every_unit_checks_the_host_before_it_starts_and_restarts(path: Path) -> None:
    sections = unit(path)
    assert sections["Service"].get("ExecStartPre") == [CHECK]
    assert one(sections, "Service", "Restart") in ("always", "on-failure")
    assert float(one(sections, "Service", "RestartSec")) > 0
    assert int(one(sections, "Unit", "StartLimitBurst")) > 1
    assert float(one(sections, "Unit", "StartLimitIntervalSec")) > 0
    # An invalid setting exits 3 (docs/configuration.md): restarting will not mend it.
    assert one(sections, "Service", "RestartPreventExitStatus") == "3"
    assert sections["Service"]["EnvironmentFile"][0] == "/etc/shiphub/shiphub.env"
    assert one(sections, "Service", "WorkingDirectory") == "/opt/shiphub"
    assert one(sections, "Service", "User") == "shiphub"
    assert one(sections, "Unit", "PartOf") == "shiphub.target"
    assert one(sections, "Install", "WantedBy") == "shiphub.target"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "KillSignal": "SIGTERM",
        "KillMode": "mixed",
    }.items():
        assert one(sections, "Service", key) == value, key


def test_the_target_starts_every_process() -> None:
    wanted = one(unit(UNITS / "shiphub.target"), "Unit", "Wants").split()
    expected = [n.replace("@.", "@main.") for n in PROCESSES]
    assert sorted(wanted) == sorted(expected)


def test_stop_timeouts_leave_gunicorn_and_celery_their_graceful_shutdown() -> None:
    graceful = shlex.split(procfile()["web"])
    graceful_seconds = float(graceful[graceful.index("--graceful-timeout") + 1])
    web = float(one(unit(UNITS / "shiphub-web.service"), "Service", "TimeoutStopSec"))
    assert graceful_seconds < web
    # Celery's warm shutdown lets a running attempt end: by its deadline, plus its last write.
    attempt = float(env_file(ENV_FILE)["TASK_TIME_LIMIT_SECONDS"]) + OUTCOME_WRITE_SECONDS
    worker = unit(UNITS / "shiphub-worker@.service")
    assert float(one(worker, "Service", "TimeoutStopSec")) >= attempt


def test_the_queue_groups_consume_every_queue() -> None:
    queues = {m.rsplit(".", 1)[-1] for m in BUILTIN_MODULES} | {HUB_QUEUE}
    groups = {
        group: env_file(path)["WORKER_QUEUES"].split(",") for group, path in group_files().items()
    }
    assert set(groups["main"]) == queues, "the main group consumes every queue"
    for group, path in group_files().items():
        assert set(env_file(path)) <= GROUP_VARIABLES | {"WORKER_CONCURRENCY"}, group
        assert set(groups[group]) <= queues, f"group {group}: unknown queues"


# --------------------------------------------------------------------------------------------
# The env file names every setting


def settings_models() -> list[type[BaseSettings]]:
    """Every settings model the service defines: the leaves of BaseSettings in its modules."""
    importlib.import_module("worker.basics.settings")
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{module}.settings")
    found, pending = [], list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith(("worker.", "endpoint.")) and not cls.__subclasses__():
            found.append(cls)
    return found


def model_variables() -> dict[str, tuple[type[BaseSettings], str]]:
    """Each environment variable of the models: its model and field."""
    found = {}
    for cls in settings_models():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for name, field in cls.model_fields.items():
            assert field.alias is None and field.validation_alias is None, (cls, name)
            found[prefix + name.upper()] = (cls, name)
    return found


def documented_process_variables() -> set[str]:
    """The variables of docs/configuration.md's hand-written "The processes" table (read by the
    Procfile's lines and gunicorn, not by the models)."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page.split("\n## The processes\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}


def known_variables() -> set[str]:
    """What the shared env file sets: every model's variables, each integration's
    ``<NAME>_MAX_CONCURRENCY`` and the documented process variables but the groups' own."""
    concurrency = {f"{m.rsplit('.', 1)[-1].upper()}_MAX_CONCURRENCY" for m in BUILTIN_MODULES}
    processes = documented_process_variables() - GROUP_VARIABLES
    return set(model_variables()) | concurrency | processes


def is_secret(variable: str) -> bool:
    if variable == "FLOWER_BASIC_AUTH":
        return True
    if variable not in model_variables():
        return False
    cls, name = model_variables()[variable]
    annotation = cls.model_fields[name].annotation
    kinds = set(getattr(annotation, "__args__", (annotation,)))
    # As worker.basics.logs redacts them: a SecretStr, or text named like a secret.
    return SecretStr in kinds or (str in kinds and is_secret_name(name))


def test_the_models_are_found() -> None:
    names = {cls.__name__ for cls in settings_models()}
    assert {"Settings", "DotcomSettings", "SpectrumSettings"} <= names
    assert "PORT" in model_variables() and "DUOPLANE_PAGE_SIZE" in model_variables()


def test_the_env_file_names_every_setting() -> None:
    missing = sorted(known_variables() - set(env_file(ENV_FILE)))
    assert not missing, f"{ENV_FILE.name} does not name {missing}"


def test_the_env_file_names_nothing_unknown() -> None:
    unknown = sorted(set(env_file(ENV_FILE)) - known_variables())
    assert not unknown, f"{ENV_FILE.name} names what nothing reads: {unknown}"


def test_the_env_file_gives_every_setting_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read as the processes read it, every model's value is the field's default (a secret
    left empty is unset), so the file is valid as shipped and changes nothing unnoticed."""
    for variable in known_variables():
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env_file(ENV_FILE).items():
        monkeypatch.setenv(variable, value)
    for cls in settings_models():
        read = cls()
        for name, field in cls.model_fields.items():
            assert getattr(read, name) == field.default, f"{cls.__name__}.{name}"


def test_every_secret_is_left_empty_and_marked() -> None:
    lines = ENV_FILE.read_text().splitlines()
    env = env_file(ENV_FILE)
    secrets = [variable for variable in env if is_secret(variable)]
    assert "ENDPOINT_KEY" in secrets and "DOTCOM_PASSWORD" in secrets
    for variable in secrets:
        assert env[variable] == "", f"{variable} is a secret: leave it empty in the example"
        at = next(n for n, line in enumerate(lines) if line.startswith(f"{variable}="))
        comment = []  # the comment lines right above it
        while at > 0 and lines[at - 1].startswith("#"):
            at -= 1
            comment.append(lines[at])
        assert any(c.startswith("# SECRET") for c in comment), f"mark {variable}: # SECRET above"


# --------------------------------------------------------------------------------------------
# The proxy and Redis


def nginx_values(directive: str) -> list[str]:
    text = re.sub(r"#.*", "", NGINX.read_text())
    return re.findall(rf"^\s*{directive}\s+([^;{{\n]+);", text, re.M)


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def test_the_proxy_takes_the_bodies_the_receiver_takes() -> None:
    (body,) = nginx_values("client_max_body_size")
    assert size(body) == int(env_file(ENV_FILE)["MAX_BODY_BYTES"])


def test_the_proxy_waits_as_long_as_a_waiting_request_and_within_gunicorns_timeout() -> None:
    from worker.basics.settings import Settings

    longest_wait = next(
        m.le for m in Settings.model_fields["hub_wait_seconds"].metadata if hasattr(m, "le")
    )
    web = shlex.split(procfile()["web"])
    gunicorn_timeout = float(web[web.index("--timeout") + 1])
    (read,) = nginx_values("proxy_read_timeout")
    assert longest_wait < seconds(read) <= gunicorn_timeout


def test_the_proxy_limits_slow_clients_and_keeps_ops_private() -> None:
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        (value,) = nginx_values(directive)
        assert seconds(value) <= 30, directive
    assert nginx_values("limit_req") and nginx_values("limit_conn")
    headers = " ".join(nginx_values("proxy_set_header"))
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto"):
        assert header in headers
    env = env_file(ENV_FILE)
    assert nginx_values("server") == [f"{env['WEB_ADDRESS']}:{env['PORT']}"]
    ops = NGINX.read_text().split("location /ops", 1)[1].split("}", 1)[0]
    assert "deny all;" in ops
    # Flower is not behind the proxy, and listens on loopback only.
    assert env["FLOWER_PORT"] not in " ".join(nginx_values("server") + nginx_values("proxy_pass"))
    assert env["FLOWER_ADDRESS"] == "127.0.0.1"


def test_redis_conf_sets_what_the_deployment_page_requires() -> None:
    page = (ROOT / "docs" / "deployment.md").read_text()
    table = page.split("### Redis settings and memory", 1)[1].split("\n#", 1)[0]
    required = dict(re.findall(r"^\| `([\w-]+)` \| `([^`]+)`", table, re.M))
    assert {"appendonly", "maxmemory-policy", "hash-max-listpack-value"} <= set(required)
    conf = {}
    for line in (DEPLOY / "redis.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf[key] = value.strip()
    assert {key: conf.get(key) for key in required} == required
