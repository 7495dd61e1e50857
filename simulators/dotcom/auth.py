"""Dotcom's request signing: ``Authorization: <api_key>:<Base64(HMAC-MD5(password, URL))>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def sign(url: str, password: str) -> str:
    """Dotcom's signature: Base64 of HMAC-MD5 keyed with the password over the full URL."""
    digest = hmac.new(password.encode("utf-8"), url.encode("utf-8"), hashlib.md5).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization_header(api_key: str, password: str, url: str) -> str:
    """The full ``Authorization`` header value a client sends for ``url``."""
    return f"{api_key}:{sign(url, password)}"


def request_url_as_sent(environ: Mapping[str, Any]) -> str:
    """The absolute URL the client requested, rebuilt from the raw request target.

    ``request.url`` would re-encode the query (``%20`` vs ``+``, ``:``), breaking signatures.
    """
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI") or _target_from_parts(environ)
    target = _undo_wsgi_encoding(target)
    if target.startswith(("http://", "https://")):  # absolute-form request target
        return target
    return f"{environ.get('wsgi.url_scheme', 'http')}://{_host(environ)}{target}"


def _target_from_parts(environ: Mapping[str, Any]) -> str:
    path = _undo_wsgi_encoding(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")
    encoded = quote(path, safe="/;:@&=+$,!~*'()-._")
    return f"{encoded}?{query}" if query else encoded


def _undo_wsgi_encoding(value: str) -> str:
    """WSGI hands over request bytes decoded as latin-1; recover the original text."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _host(environ: Mapping[str, Any]) -> str:
    if environ.get("HTTP_HOST"):
        return str(environ["HTTP_HOST"])
    name, port = environ["SERVER_NAME"], environ["SERVER_PORT"]
    default_port = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
    return name if port == default_port else f"{name}:{port}"


def is_authorized(header: str | None, url: str, accounts: Mapping[str, str]) -> bool:
    if not header or ":" not in header:
        return False
    api_key, _, signature = header.strip().rpartition(":")
    password = accounts.get(api_key)
    if password is None:
        return False
    return hmac.compare_digest(signature.encode("utf-8"), sign(url, password).encode("ascii"))
