"""The deployment files of ``deploy/`` as systemd and the Procfile read them: for
``tests/test_deploy.py`` (they say what the Procfile says) and
``tests/pipeline/test_deploy_units.py`` (they run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.support.stack import ROOT

DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
ENV_FILE = DEPLOY / "shiphub.env"
NGINX = DEPLOY / "nginx" / "shiphub.conf"
# Where the units find the service's programs (docs/deployment.md installs it there).
VENV_BIN = "/opt/shiphub/.venv/bin/"
SHELL_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")
SYSTEMD_VARIABLE = re.compile(r"\$\{(\w+)\}")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): command.strip()
        for name, command in (line.split(":", 1) for line in lines if line.strip())
    }


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections, each key with its values in order (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}: no continued lines: {line}"
        if heading := re.fullmatch(r"\[(\w+)\]", line):
            section = sections.setdefault(heading.group(1), {})
            continue
        assert section is not None, f"{path.name}: {line} before any section"
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(sections: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = sections.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: expected one value, found {values}"
    return values[0]


def env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines as systemd's EnvironmentFile= reads them (a value in quotes
    unquoted); each name once."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line), f"{path.name}: not NAME=value: {line}"
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        assert name not in found, f"{path.name}: {name} is set twice"
        found[name] = value
    return found


def systemd_command(procfile_line: str) -> list[str]:
    """The words a unit runs for a Procfile line (the rule in this module's docstring)."""
    program, *arguments = shlex.split(procfile_line)
    return [VENV_BIN + program] + [SHELL_DEFAULT.sub(r"${\1}", word) for word in arguments]


def exec_start(path: Path) -> list[str]:
    line = one(unit(path), "Service", "ExecStart")
    # No quoting, so that a shell's split and systemd's are the same.
    assert not set(line) & set("'\"\\"), f"{path.name}: ExecStart without quotes: {line}"
    return line.split()


def unit_files() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def group_files() -> dict[str, Path]:
    """The queue groups' env files: ``deploy/worker-<group>.env``."""
    return {p.stem.removeprefix("worker-"): p for p in sorted(DEPLOY.glob("worker-*.env"))}


def expanded(words: list[str], env: dict[str, str], instance: str, host: str) -> list[str]:
    """A command's words as systemd runs them: ``${NAME}`` replaced by the variable's value
    (one word, whatever it holds), ``%i`` by the instance, ``%H`` by the host's name."""
    specifiers = {"%i": instance, "%H": host, "%%": "%"}
    return [
        SYSTEMD_VARIABLE.sub(
            lambda m: env.get(m.group(1), ""),
            re.sub(r"%[iH%]", lambda m: specifiers[m.group(0)], word),
        )
        for word in words
    ]
