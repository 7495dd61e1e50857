"""The receiver's HTTP interface as the command line uses it, and what its answers mean as exit
statuses.

The command line is only a client: everything it does goes through the routes docs/http.md
documents, so it works the same against ``bin/run`` and a remote service, given its URL and the
hub's token. The token goes in ``X-Hub-Token`` and nowhere else: it is never printed, and an
error never quotes a request header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import click
import requests

DEFAULT_URL = "http://127.0.0.1:8000"
TOKEN_HEADER = "X-Hub-Token"


class Refused(click.ClickException):
    """Exit 1: the service answered no (refused, failed, not replayable, a check failed)."""

    exit_code = 1


class Unreachable(click.ClickException):
    """Exit 3: the service could not be reached, or answered 5xx (503: Redis is away)."""

    exit_code = 3


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status and its JSON body ({} when it had none)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def reason(self) -> str:
        """What the receiver said, from its error notifications (every refusal carries one)."""
        notes = [said(n) for n in self.body.get("notifications", []) if isinstance(n, dict)]
        if len(notes) > 1:
            return "".join(f"\n  {note}" for note in notes)
        return notes[0] if notes else "no reason given"


def said(note: dict[str, Any]) -> str:
    """A notification's words: its subject, then its description unless it only repeats it."""
    subject, description = note.get("subject"), note.get("description")
    return str(description) if subject in (None, description) else f"{subject}: {description}"


def token_problem(token: str) -> str | None:
    """What makes a token unfit for an HTTP header (its value is never shown)."""
    if not token:
        return "is empty"
    if not (token.isascii() and token.isprintable()):
        return "has characters an HTTP header cannot carry (a line break, a control character)"
    return None


class Receiver:
    """The receiver at ``url``: JSON requests with the hub's token, answers as ``Answer``."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token is not None:
            self.session.headers[TOKEN_HEADER] = token

    def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        return self._request("GET", path, params=params)

    def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None, wait: float = 0
    ) -> Answer:
        return self._request("POST", path, body, headers or {}, self.timeout + wait)

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        where = f"{self.url}{path}"
        try:
            response = self.session.request(
                method,
                where,
                params=params,
                json=body,
                headers=headers,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise Unreachable(f"the receiver at {self.url} did not answer in time") from None
        except requests.ConnectionError:
            raise Unreachable(
                f"cannot reach the receiver at {self.url} (is it running? its URL is "
                "SHIPHUB_URL or --url)"
            ) from None
        except requests.RequestException as exc:
            # Never the exception's text: some quote a header, and the token is one.
            raise Unreachable(
                f"cannot send {method} {path} to {self.url} ({exc.__class__.__name__})"
            ) from None
        return Answer(response.status_code, _json_object(response))

    def refusal(self, answer: Answer, what: str) -> click.ClickException:
        """The exception an answer that is not a 2xx stands for: 401 names the token's sources;
        5xx is Unreachable (exit 3); any other 4xx is Refused (exit 1)."""
        reason = answer.reason
        said = f"{what}: the receiver answered HTTP {answer.status}:" + (
            reason if reason.startswith("\n") else f" {reason}"
        )
        if answer.status == 401:
            return Refused(f"{said} (the token comes from ENDPOINT_KEY or --token-file)")
        if answer.status >= 500:
            return Unreachable(said)
        return Refused(said)


def path_of(*parts: str) -> str:
    """A route from its parts, each quoted (a message id may hold '/', which stays)."""
    return "".join("/" + quote(part, safe="/:@") for part in parts)


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"items": body}
