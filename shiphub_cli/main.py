"""``shiphub``: the operator's command line, a client of the receiver's HTTP interface.

Each command is one or a few documented routes (docs/http.md), so it works against
any receiver given its URL (``SHIPHUB_URL``) and the hub's token (``ENDPOINT_KEY``, or
``--token-file``); ``check`` alone looks at this host's own configuration.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from shiphub_cli import render, routing
from shiphub_cli.messages import new_message_id, poll_message, read_message
from shiphub_cli.receiver import (
    DEFAULT_URL,
    Answer,
    Receiver,
    Refused,
    path_of,
    token_problem,
)
from worker.hub.messages import store_problem

EXIT_CODES = """\b
Exit status:
  0  done (the message was taken, the record shown, the replay queued, every check ok)
  1  the service answered no: refused (4xx, a wrong token), the message failed,
     not replayable, a check failed
  2  usage error: a wrong option, a file that is not a hub message, an ambiguous message type
  3  the receiver could not be reached, or answered 5xx (503: its Redis is away)"""

HELP = f"""Operate a shiphub service: send hub messages, read their records, list what failed and
replay it, run a poll now, check this host's configuration.

\b
The receiver is SHIPHUB_URL (default {DEFAULT_URL}); the hub's token is read
from ENDPOINT_KEY, or from the file given with --token-file (never from the command line),
and is never printed.

\b
Try, after bin/run:
  shiphub send tests/fixtures/dotcom/shipment_ready.json --to dotcom --wait 30
  shiphub show dotcom 51af1dc5fe53543f1200f519
  shiphub poll dotcom --wait 30
  shiphub dead
  shiphub failed --integration dotcom
  SHIPHUB_INSECURE_DEV=1 REDIS_URL=redis://127.0.0.1:6390/0 shiphub check

{EXIT_CODES}"""

STORE_HELP = "The hub store (X-Hub-Store; the receiver's HUB_STORE when not given)."


def _store(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A store goes in a header and into Redis keys: the receiver's own rules, checked first."""
    if value is None:
        return None
    problem = store_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


WAIT_HELP = "Wait up to this long (at most 180 s) for the answer (X-Hub-Wait)."


def _given(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An argument that names something (an integration, a message id) cannot be blank."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty")
    return value


def _url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL, such as http://127.0.0.1:8000")
    return value


@dataclass
class Context:
    url: str
    token: str | None
    timeout: float

    def receiver(self) -> Receiver:
        return Receiver(self.url, self.token, self.timeout)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the receiver's JSON, for scripts."
)


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="SHIPHUB_URL",
    default=DEFAULT_URL,
    callback=_url,
    show_default=True,
    help="The receiver's base URL (SHIPHUB_URL).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the hub's token from this file instead of ENDPOINT_KEY.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the receiver (plus any --wait).",
)
@click.version_option(package_name="shiphub", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, url: str, token_file: Path | None, timeout: float) -> None:
    ctx.obj = Context(url, _token(token_file), timeout)


@cli.command(epilog=EXIT_CODES, short_help="Send a hub message from a JSON file.")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--to",
    metavar="INTEGRATION[/SERVICE]",
    help="Where to send it, when not one "
    "service takes its message type (shipment:ready: dotcom or shipping_orders).",
)
@click.option("--wait", type=click.FloatRange(0, 180), default=0, help=WAIT_HELP)
@click.option("--store", callback=_store, help=STORE_HELP)
@json_option
@click.pass_obj
def send(
    obj: Context, file: IO[str], to: str | None, wait: float, store: str | None, as_json: bool
) -> None:
    """Send a hub message from FILE ('-' for stdin), as the hub posts it.

    The integration and service come from its "message" type, as the receiver's endpoint.json
    documents list them. A FILE without "message_id" is sent with a fresh one (printed), so
    sending that file again sends a new message; with an id, sending it again is a duplicate,
    answered from the record.

    \b
    shiphub send tests/fixtures/dotcom/shipment_ready.json --to dotcom --wait 30
    shiphub send tests/fixtures/dotcom/shipment_results_poll.json --json
    """
    message = read_message(file, file.name if file.name != "<stdin>" else "stdin")
    receiver = obj.receiver()
    target = routing.target_for(receiver, message["message"], to)
    if not message.get("message_id"):
        message["message_id"] = new_message_id()
        click.echo(f"message_id {message['message_id']} (new: the file has none)", err=as_json)
    answer = receiver.post(target.path, message, headers=_hub_headers(wait, store), wait=wait)
    _report_answer(receiver, answer, target.name, as_json)


@cli.command(epilog=EXIT_CODES, short_help="Run a poll now.")
@click.argument("integration", callback=_given)
@click.argument("service", required=False, callback=_given)
@click.option("--wait", type=click.FloatRange(0, 180), default=0, help=WAIT_HELP)
@click.option("--store", callback=_store, help=STORE_HELP)
@json_option
@click.pass_obj
def poll(
    obj: Context,
    integration: str,
    service: str | None,
    wait: float,
    store: str | None,
    as_json: bool,
) -> None:
    """Run a poll of INTEGRATION now (SERVICE: which one, when it has several).

    The poll message a scheduled tick would send, with an id of its own (manual-...): it
    continues from the store's cursor and its answer is pushed to the hub like a scheduled
    poll's.

    \b
    shiphub poll dotcom --wait 30
    shiphub poll dotcom tracking --store my-store
    """
    receiver = obj.receiver()
    target = routing.poll_target(receiver, integration, service)
    message = poll_message(target.integration, target.service, target.messages[0])
    answer = receiver.post(target.path, message, headers=_hub_headers(wait, store), wait=wait)
    _report_answer(receiver, answer, target.name, as_json)


@cli.command(epilog=EXIT_CODES, short_help="Show a message's record.")
@click.argument("integration", callback=_given)
@click.argument("message_id", callback=_given)
@json_option
@click.pass_obj
def show(obj: Context, integration: str, message_id: str, as_json: bool) -> None:
    """Show the record of a message: status, attempts, last error, answer, delivery.

    \b
    shiphub show dotcom 51af1dc5fe53543f1200f519
    """
    receiver = obj.receiver()
    answer = receiver.get(path_of("messages", integration, message_id))
    if not answer.ok:
        raise receiver.refusal(answer, f"{integration} {message_id}")
    if as_json:
        _echo_json(answer.body)
    else:
        _echo_lines(render.record_lines(answer.body))


@cli.command(epilog=EXIT_CODES, short_help="List dead messages and dead deliveries.")
@json_option
@click.pass_obj
def dead(obj: Context, as_json: bool) -> None:
    """List dead messages (retries ran out) and dead deliveries (pushes to the hub ran out).

    Replay them with 'shiphub replay'.
    """
    receiver = obj.receiver()
    listing = _dead(receiver)
    if as_json:
        _echo_json(listing)
        return
    errors = {
        (row["integration"], row["message_id"]): _last_error(receiver, kind, row)
        for kind in ("messages", "deliveries")
        for row in listing.get(kind, [])
    }
    _echo_lines(render.dead_lines(listing, errors))


STATES = ("failed", "dead", "retrying")
DEFAULT_STATES = ("failed", "dead")
DEFAULT_LIMIT = 50


@cli.command(epilog=EXIT_CODES, short_help="List failed, dead or retrying messages.")
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATES),
    multiple=True,
    help="Which (again for more than one; default: failed and dead).",
)
@click.option("--integration", callback=_given, help="Only this integration's messages.")
@click.option("--store", callback=_store, help="Only this hub store's messages.")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="At most this many (a page).",
)
@click.option("--cursor", callback=_given, help="Start where an earlier page said (its 'more:').")
@json_option
@click.pass_obj
def failed(
    obj: Context,
    statuses: tuple[str, ...],
    integration: str | None,
    store: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List failed messages (the provider refused them) and dead ones (their retries ran out),
    or retrying ones (--status retrying), newest first, by integration and store: every one
    of them, a page at a time (GET /messages).

    \b
    shiphub failed
    shiphub failed --integration dotcom --store my-store
    shiphub failed --status retrying --json
    """
    query = {
        "status": ",".join(statuses) or None,
        "integration": integration,
        "store": store,
        "limit": str(limit),
        "cursor": cursor,
    }
    receiver = obj.receiver()
    answer = receiver.get("/messages", params={k: v for k, v in query.items() if v})
    if not answer.ok:
        raise receiver.refusal(answer, "listing failed messages")
    if as_json:
        _echo_json(answer.body)
        return
    shown = statuses or DEFAULT_STATES
    _echo_lines(render.listed_lines(answer.body, shown, integration, store))
    if following := answer.body.get("next_cursor"):
        click.echo(f"more: {_next_page(statuses, integration, store, limit, following)}")


def _next_page(
    statuses: tuple[str, ...], integration: str | None, store: str | None, limit: int, cursor: str
) -> str:
    """The command that shows the next page (add --url or --token-file, if given)."""
    words = ["shiphub", "failed", *(f"--status={s}" for s in statuses)]
    filters = (("integration", integration), ("store", store))
    words += [f"--{name}={value}" for name, value in filters if value]
    words += [] if limit == DEFAULT_LIMIT else [f"--limit={limit}"]
    return shlex.join([*words, f"--cursor={cursor}"])


@cli.command(epilog=EXIT_CODES, short_help="Replay a failed or dead message, or a dead delivery.")
@click.argument("integration", callback=_given)
@click.argument("message_id", required=False, callback=_given)
@click.option("--delivery", is_flag=True, help="Push a dead delivery's answer to the hub again.")
@click.option(
    "--all-dead", is_flag=True, help="Replay every dead message (or delivery) of INTEGRATION."
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 180),
    default=0,
    help="Wait up to this long (at most 180 s) for each replayed message to finish; exit 1 if "
    "one failed.",
)
@json_option
@click.pass_obj
def replay(
    obj: Context,
    integration: str,
    message_id: str | None,
    delivery: bool,
    all_dead: bool,
    wait: float,
    as_json: bool,
) -> None:
    """Handle a failed or dead message again (its retry budget starts over), or push a dead
    delivery again (--delivery). Each outcome is reported; exit 1 if any was not replayable.

    \b
    shiphub replay dotcom 51af1dc5fe53543f1200f519
    shiphub replay --delivery dotcom 51af1dc5fe53543f1200f519
    shiphub replay --all-dead dotcom
    shiphub replay --all-dead --delivery dotcom
    shiphub replay dotcom 51af1dc5fe53543f1200f519 --wait 30
    """
    if all_dead == (message_id is not None):
        raise click.UsageError("give MESSAGE_ID, or --all-dead for every dead one (not both)")
    receiver = obj.receiver()
    kind = "deliveries" if delivery else "messages"
    if message_id is not None:
        ids = [message_id]
    else:
        ids = [r["message_id"] for r in _dead(receiver)[kind] if r["integration"] == integration]
    outcomes = [_replay(receiver, kind, integration, one) for one in ids]
    if wait and kind == "messages":
        outcomes = [_finished(receiver, integration, o, wait) for o in outcomes]
    if as_json:
        _echo_json({"replayed": outcomes})
    elif not outcomes:
        click.echo(f"no dead {kind} of {integration}")
    else:
        _echo_lines(
            [f"{o['outcome']}  {integration}  {o['message_id']}  {o['detail']}" for o in outcomes]
        )
    if any(o["outcome"] in UNDONE for o in outcomes):
        raise click.exceptions.Exit(1)


@cli.command(
    epilog=EXIT_CODES, short_help="Check this host's configuration, Redis and the receiver."
)
@json_option
@click.pass_obj
def check(obj: Context, as_json: bool) -> None:
    """Check the configuration this host's processes would start with.

    The environment (worker.basics.settings, each integration's settings and start-up check, POLLS)
    as web, worker and beat would read it, whether Redis (REDIS_URL) answers, and the receiver's
    /healthz at SHIPHUB_URL if it can be reached. A secret is only said to be set or not set.
    Exit 0 when nothing is a problem, 1 otherwise.

    \b
    SHIPHUB_INSECURE_DEV=1 REDIS_URL=redis://127.0.0.1:6390/0 shiphub check
    """
    from shiphub_cli.checks import Level, run_checks

    found = run_checks(obj.receiver(), obj.token is not None)
    problems = [c for c in found if c.level == Level.PROBLEM]
    if as_json:
        _echo_json({"ok": not problems, "checks": [c.as_json() for c in found]})
    else:
        width = max(len(c.subject) for c in found)
        _echo_lines([f"{c.level:<8} {c.subject:<{width}}  {c.detail}" for c in found])
        click.echo(f"{len(problems)} problem(s)" if problems else "all good")
    if problems:
        raise click.exceptions.Exit(1)


def _token(token_file: Path | None) -> str | None:
    """The hub's token: the file's first line, or ENDPOINT_KEY; None sends none (a receiver in
    insecure development mode takes requests without one)."""
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {token_file}: {exc.__class__.__name__}", param_hint="--token-file"
            ) from None
        token, source = (lines[0].strip() if lines else ""), f"the token in {token_file}"
    else:
        token, source = os.environ.get("ENDPOINT_KEY", ""), "ENDPOINT_KEY"
        if not token:
            return None
    if problem := token_problem(token):
        raise click.UsageError(f"{source} {problem} (its value is not shown)")
    return token


def _hub_headers(wait: float, store: str | None) -> dict[str, str]:
    headers = {"X-Hub-Wait": f"{wait:g}"} if wait else {}
    if store:
        headers["X-Hub-Store"] = store
    return headers


def _report_answer(receiver: Receiver, answer: Answer, where: str, as_json: bool) -> None:
    """Print a hub message's answer. A 500 in the hub's answer shape is the message's own
    failure (the provider refused, or its retries ran out): exit 1. Other 4xx: exit 1; other
    5xx: exit 3."""
    failed = answer.status == 500 and "messages" in answer.body
    if as_json and answer.body:
        _echo_json(answer.body)
    if not answer.ok and not failed:
        raise receiver.refusal(answer, f"sending to {where}")
    if not as_json:
        _echo_lines(render.answer_lines(answer, where))
    if failed:
        raise Refused(f"{where} {answer.body.get('message_id')}: the message failed")


def _dead(receiver: Receiver) -> dict[str, Any]:
    answer = receiver.get("/dead")
    if not answer.ok:
        raise receiver.refusal(answer, "listing dead messages")
    return answer.body


def _last_error(receiver: Receiver, kind: str, row: dict[str, Any]) -> str | None:
    """The reason a dead message or delivery died, from its record (None if it is gone)."""
    answer = receiver.get(path_of("messages", row["integration"], row["message_id"]))
    if not answer.ok:
        return None
    if kind == "deliveries":
        return (answer.body.get("delivery") or {}).get("last_error")
    return answer.body.get("last_error")


def _replay(receiver: Receiver, kind: str, integration: str, message_id: str) -> dict[str, str]:
    route = "deliveries" if kind == "deliveries" else "messages"
    answer = receiver.post(path_of(route, integration, message_id, "replay"))
    if answer.status == 409:
        return _outcome(message_id, "refused", answer.reason)
    if not answer.ok:
        raise receiver.refusal(answer, f"replaying {integration} {message_id}")
    if kind == "deliveries":
        return _outcome(message_id, "pending", "the answer is pushed to the hub again")
    if answer.body.get("status") == "accepted":
        return _outcome(message_id, "accepted", "recorded; the watchdog queues it within a minute")
    return _outcome(message_id, "queued", "queued to be handled again")


# A replay's outcomes that exit 1: not replayable, or (with --wait) run and failed again.
UNDONE = ("refused", "failed", "dead")
FINISHED = ("succeeded", "failed", "dead")


def _finished(
    receiver: Receiver, integration: str, outcome: dict[str, str], wait: float
) -> dict[str, str]:
    """A queued replay's outcome once its message finished (its status, with its error when it
    failed), or as it was queued when ``wait`` seconds pass first."""
    if outcome["outcome"] not in ("queued", "accepted"):
        return outcome
    message_id = outcome["message_id"]
    deadline = time.monotonic() + wait
    while True:
        answer = receiver.get(path_of("messages", integration, message_id))
        if not answer.ok:
            raise receiver.refusal(answer, f"{integration} {message_id}")
        status = str(answer.body.get("status"))
        if status in FINISHED:
            error = answer.body.get("last_error")
            detail = f"replays {answer.body.get('replays', 0)}" + (f": {error}" if error else "")
            return _outcome(message_id, status, detail)
        if time.monotonic() >= deadline:
            return _outcome(message_id, status, f"still {status} after {wait:g} s")
        time.sleep(0.2)


def _outcome(message_id: str, outcome: str, detail: str) -> dict[str, str]:
    return {"message_id": message_id, "outcome": outcome, "detail": detail}


def _echo_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2))


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


def main(argv: list[str] | None = None) -> int:
    """The console script: the exit status the help describes."""
    try:
        cli.main(args=argv, prog_name="shiphub")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
